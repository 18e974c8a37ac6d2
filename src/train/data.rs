//! The training data: reading the sample table, tokenizing samples for the model, and the
//! length-grouped batches of each optimiser step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vista_udfs::text::coords::{parse_objects, Parsed, Tag};

use crate::model::generate::SplitMix64;
use crate::model::prompt::{Prompt, Template};
use crate::model::VistaModel;

/// One training sample, as read from the table.
#[derive(Debug, Clone)]
pub struct Sample {
    pub task: String,
    pub images: Vec<Arc<[u8]>>,
    pub instruction: String,
    pub target: String,
}

// ---------------------------------------------------------------------------------------------
// Reading the sample table
// ---------------------------------------------------------------------------------------------

fn parquet_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read '{}'", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                if e.is_dir() || e.extension().is_some_and(|x| x == "parquet") {
                    walk(&e, out)?;
                }
            }
        } else if p.is_file() {
            out.push(p.to_path_buf());
        } else {
            bail!("--samples '{}': no such file or directory", p.display());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    if out.is_empty() {
        bail!("--samples: no Parquet files found");
    }
    Ok(out)
}

fn strings(batch: &RecordBatch, col: &str, file: &Path) -> Result<Vec<Option<String>>> {
    let a = batch
        .column_by_name(col)
        .ok_or_else(|| anyhow!("{}: no `{col}` column", file.display()))?;
    let a = datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Utf8)
        .with_context(|| format!("{}: column `{col}` is not text", file.display()))?;
    let s = a.as_string::<i32>();
    Ok((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect())
}

fn binary_at(a: &dyn Array, i: usize) -> Option<Arc<[u8]>> {
    use datafusion::arrow::datatypes::DataType as T;
    if a.is_null(i) {
        return None;
    }
    let bytes: &[u8] = match a.data_type() {
        T::Binary => a.as_binary::<i32>().value(i),
        T::LargeBinary => a.as_binary::<i64>().value(i),
        T::BinaryView => a.as_binary_view().value(i),
        _ => return None,
    };
    Some(Arc::from(bytes))
}

/// Reads task, images (the `images` list, else `image`), instruction and target of every row.
pub fn read_samples(paths: &[PathBuf]) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for file in parquet_files(paths)? {
        let f = std::fs::File::open(&file)
            .with_context(|| format!("cannot open '{}'", file.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .with_context(|| format!("{}: not a Parquet file", file.display()))?
            .build()?;
        for batch in reader {
            let batch = batch.with_context(|| format!("{}: cannot read", file.display()))?;
            let task = strings(&batch, "task", &file)?;
            let instruction = strings(&batch, "instruction", &file)?;
            let target = strings(&batch, "target", &file)?;
            let image = batch.column_by_name("image");
            let images = batch.column_by_name("images");
            for row in 0..batch.num_rows() {
                let mut imgs = Vec::new();
                if let Some(list) = images.filter(|c| c.is_valid(row)) {
                    let list = list.as_list_opt::<i32>().ok_or_else(|| {
                        anyhow!("{}: `images` must be a list of binary", file.display())
                    })?;
                    let values = list.value(row);
                    for k in 0..values.len() {
                        imgs.push(binary_at(values.as_ref(), k).ok_or_else(|| {
                            anyhow!(
                                "{}: row {row}: image {} is null or not binary",
                                file.display(),
                                k + 1
                            )
                        })?);
                    }
                } else if let Some(b) = image.and_then(|c| binary_at(c.as_ref(), row)) {
                    imgs.push(b);
                }
                let field = |v: &Option<String>, name: &str| {
                    v.clone()
                        .ok_or_else(|| anyhow!("{}: row {row}: `{name}` is null", file.display()))
                };
                out.push(Sample {
                    task: field(&task[row], "task")?,
                    images: imgs,
                    instruction: field(&instruction[row], "instruction")?,
                    target: target[row].clone().unwrap_or_default(),
                });
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

/// A sample tokenized for the model: the prompt, the Q-Former ids and the answer ids (with EOS).
pub(super) struct Encoded {
    pub(super) task: String,
    pub(super) prompt: Prompt,
    pub(super) qformer_ids: Vec<u32>,
    pub(super) answer: Vec<u32>,
    pub(super) images: Vec<Arc<[u8]>>,
    /// The box of a single-image answer that is one box or one mask (stage 0's grounding).
    pub(super) box_target: Option<[f32; 4]>,
    /// `box_target` in the model's input frame (after square padding), where stage 0 asks the
    /// Q-Former's cross-attention to look; None when the frame is unknown (a centre-cropping
    /// preprocessor, an image whose size cannot be read).
    pub(super) input_box: Option<[f32; 4]>,
    /// A single-image sample whose answer is text, not coordinates (stage 0's words probe).
    pub(super) text_answer: bool,
    /// How many boxes or masks a single-image answer made only of them holds, capped at
    /// [`super::pretrain::COUNT_CLASSES`] - 1; 0 for an empty answer ("no target"). None for
    /// text answers, multi-image samples and, once the pool is built, the tasks whose answers
    /// always hold one (stage 0's count probe).
    pub(super) count_target: Option<u32>,
}

pub(super) fn encode(model: &VistaModel, s: &Sample) -> Result<Encoded, String> {
    let prompt = model.prompt(Template::VicunaV1, &s.instruction, s.images.len())?;
    let qformer_ids = model.qformer_ids(&prompt.qformer_text)?;
    let mut answer = model
        .text
        .tokenizer
        .encode(s.target.as_str(), false)
        .map_err(|e| format!("cannot tokenize the target: {e}"))?
        .get_ids()
        .to_vec();
    answer.extend_from_slice(model.stop_ids());
    let box_target =
        (s.images.len() == 1).then(|| super::pretrain::target_box(&s.target)).flatten();
    let input_box = box_target
        .filter(|_| !model.preprocess.center_crop)
        .and_then(|b| super::pretrain::in_square_frame(b, &s.images[0]));
    let text_answer = s.images.len() == 1
        && !s.target.trim().is_empty()
        && parse_objects(&s.target, &[Tag::Box, Tag::Point, Tag::Mask]) == Parsed::Empty;
    let count_target =
        (s.images.len() == 1).then(|| super::pretrain::target_count(&s.target)).flatten();
    Ok(Encoded {
        task: s.task.clone(),
        prompt,
        qformer_ids,
        answer,
        images: s.images.clone(),
        box_target,
        input_box,
        text_answer,
        count_target,
    })
}

/// Batches per group: a group of shuffled samples is sorted by length and cut into batches, so
/// that a batch's rows need little padding (the padded length is what a step costs).
pub(super) const LENGTH_GROUP: usize = 8;

/// Sample indices of a stage's micro-batch `m` (counted over the stage: step × accumulation +
/// micro), `batch_size` of them. The batches of an epoch are a function of the seed, the stage
/// and the epoch: a resumed run recomputes them. Without `lengths` the shuffled order is cut as
/// it is, for draws whose cost does not grow with the answer.
pub(super) fn batch_indices(
    pool: &[usize],
    lengths: Option<&[usize]>,
    seed: u64,
    stage: u32,
    m: usize,
    batch_size: usize,
) -> Vec<usize> {
    let bs = batch_size.min(pool.len());
    let per_epoch = pool.len() / bs;
    let (epoch, at) = (m / per_epoch, m % per_epoch);
    let mut order = pool.to_vec();
    let mut rng =
        SplitMix64::new(seed ^ (u64::from(stage) << 56) ^ (epoch as u64).wrapping_mul(0x9e37_79b9));
    for i in (1..order.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order.truncate(per_epoch * bs);
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(per_epoch);
    for group in order.chunks_mut(bs * LENGTH_GROUP) {
        if let Some(lengths) = lengths {
            group.sort_by_key(|&i| lengths[i]);
        }
        batches.extend(group.chunks(bs).map(<[usize]>::to_vec));
    }
    // Long and short batches alternate at random, not in runs.
    for i in (1..batches.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        batches.swap(i, j);
    }
    batches.swap_remove(at)
}
