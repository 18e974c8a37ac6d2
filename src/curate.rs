//! `vista curate`: CoinIt-style instruction samples from imported COCO-format annotations, as SQL
//! jobs (queries/curate_<task>.sql, docs/curate.md).
//!
//! The input is a directory written by `vista import coco-instances` (`images`, `instances`,
//! `categories`, optionally `captions`). `queries/curate_common.sql` runs first (image
//! de-duplication, object flags, contour sequences), then the task's script, whose view
//! `sample` holds every *candidate* sample in the samples layout plus `class`, `pre_drop` and
//! `recon_iou` (how well the target polygon redraws the mask), then `curate_balance.sql`, which
//! caps each class and adds `dropped_by` (NULL = kept, else the filter that removed it).
//! Kept samples are written as manifest-listed shards; the report counts every candidate per
//! filter and draws the IoU histogram, so a curator sees what was kept and why.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch, is_null};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use serde::Serialize;

use crate::output;
use crate::script::{self, Shard, ShardWriter};
use crate::session::{self, SessionOptions};

pub(crate) mod report;

pub const COMMON_SQL: &str = include_str!("../queries/curate_common.sql");

/// The last step of every job: caps each class of the task script's `sample` view at
/// `$max_per_class` and names every dropped candidate's filter.
pub const BALANCE_SQL: &str = include_str!("../queries/curate_balance.sql");

/// The curation scripts shipped with vista, by task.
pub const SCRIPTS: &[(&str, &str)] = &[
    ("rec", include_str!("../queries/curate_rec.sql")),
    ("res", include_str!("../queries/curate_res.sql")),
    ("grec", include_str!("../queries/curate_grec.sql")),
    ("gres", include_str!("../queries/curate_gres.sql")),
    ("caption", include_str!("../queries/curate_caption.sql")),
    ("vqa", include_str!("../queries/curate_vqa.sql")),
    ("attcoseg", include_str!("../queries/curate_attcoseg.sql")),
];

/// Tables a curation script may read, registered from `<input>/<name>.parquet` when present.
const INPUT_TABLES: &[&str] = &["images", "instances", "categories", "captions"];

#[derive(Debug, Clone, PartialEq, Serialize, clap::Args)]
pub struct CurateOptions {
    /// rec | res | grec | gres | caption | vqa | attcoseg, or the path of an edited .sql copy.
    pub task: String,
    /// Directory written by `vista import coco-instances`.
    #[arg(long)]
    pub input: PathBuf,
    /// Output directory (samples/part-*.parquet, manifest.json, report/).
    #[arg(long = "out")]
    pub out_dir: PathBuf,
    /// Picks templates, balancing order, absent categories and image pairs.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Coordinate text of targets: bins | decimal.
    #[arg(long, default_value = "decimal")]
    pub style: String,
    /// Contour points per mask target.
    #[arg(long, default_value_t = 32)]
    pub points: i64,
    /// Drop mask targets whose polygon redraws the mask with a lower IoU (`low_iou`).
    #[arg(long, default_value_t = 0.5)]
    pub min_iou: f64,
    /// Objects with a smaller COCO area are `tiny` (dropped).
    #[arg(long, default_value_t = 16.0)]
    pub min_area: f64,
    /// Drop images within this pHash Hamming distance of an earlier one (`duplicate_image`);
    /// -1 = no de-duplication (no image is read).
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    pub phash_distance: i64,
    /// Keep at most this many samples per class (category, answer, attribute); 0 = no cap.
    #[arg(long, default_value_t = 0)]
    pub max_per_class: i64,
    /// No-target samples (absent categories) per image for grec/gres/vqa.
    #[arg(long, default_value_t = 1)]
    pub negatives_per_image: i64,
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Rows per Parquet shard.
    #[arg(long, default_value_t = 10000)]
    pub shard_rows: usize,
    /// Directory relative image paths are resolved against (vista.base_dir).
    #[arg(long)]
    pub base_dir: Option<String>,
    /// Memory the job's operators may hold before sorts and windows spill to the temporary
    /// directory: 256M, 2G, ...; 0 or none = no limit (memory then grows with the candidates,
    /// ~2.5 KB each). Not part of what is made: shards are the same with any limit.
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    pub memory_limit: Option<usize>,
}

/// `512`, `64K`, `256M`, `2G` (powers of 1024).
fn parse_bytes(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim().to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let scale: usize = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("'{s}': expected a size such as 256M or 2G")),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("'{s}': expected a size such as 256M or 2G"))
}

/// The memory limit of a job that names none (`vista curate --memory-limit`'s default): large
/// enough that sets up to ~100k masks never spill, small enough that bigger ones run in flat
/// memory (docs/curate.md has the measurements).
pub const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;

impl Default for CurateOptions {
    fn default() -> Self {
        CurateOptions {
            task: "res".into(),
            input: PathBuf::from("coco"),
            out_dir: PathBuf::from("curated"),
            seed: 0,
            style: "decimal".into(),
            points: 32,
            min_iou: 0.5,
            min_area: 16.0,
            phash_distance: 4,
            max_per_class: 0,
            negatives_per_image: 1,
            split: "train".into(),
            shard_rows: 10_000,
            base_dir: None,
            memory_limit: Some(DEFAULT_MEMORY_LIMIT),
        }
    }
}

/// One line naming the script; a memory error says which flag to change.
fn job_error(name: &str, e: &datafusion::error::DataFusionError) -> anyhow::Error {
    let text = crate::engine::one_line(&e.strip_backtrace());
    if text.contains("Resources exhausted") {
        anyhow::anyhow!(
            "{name}: out of memory under --memory-limit (raise it, or 0 for none): {text}"
        )
    } else {
        anyhow::anyhow!("{name}: {text}")
    }
}

/// What a curation run did (also `manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CurateSummary {
    pub task: String,
    pub candidates: usize,
    pub kept: usize,
    /// Candidates per filter that dropped them.
    pub dropped: BTreeMap<String, usize>,
    pub shards: Vec<Shard>,
    pub options: CurateOptions,
    /// SHA-256 of the script text (common prelude + task script) that ran.
    pub script_sha256: String,
    #[serde(skip)]
    pub report_dir: PathBuf,
}

impl std::fmt::Display for CurateSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} candidates, {} kept in {} shard(s)",
            self.task,
            self.candidates,
            self.kept,
            self.shards.len()
        )?;
        for (k, v) in &self.dropped {
            write!(f, ", {v} {k}")?;
        }
        write!(f, "; report in {}", self.report_dir.display())
    }
}

fn check(opts: &CurateOptions) -> Result<()> {
    if !["bins", "decimal"].contains(&opts.style.as_str()) {
        bail!("curate: --style must be 'bins' or 'decimal', got '{}'", opts.style);
    }
    if !(3..=256).contains(&opts.points) {
        bail!("curate: --points must be 3 to 256, got {}", opts.points);
    }
    if !(0.0..=1.0).contains(&opts.min_iou) {
        bail!("curate: --min-iou must be in [0, 1], got {}", opts.min_iou);
    }
    if opts.phash_distance > 31 {
        bail!("curate: --phash-distance must be at most 31 bits, got {}", opts.phash_distance);
    }
    if opts.max_per_class < 0 || opts.negatives_per_image < 0 || opts.min_area < 0.0 {
        bail!("curate: --max-per-class, --negatives-per-image and --min-area must be >= 0");
    }
    if opts.shard_rows == 0 {
        bail!("curate: --shard-rows must be positive");
    }
    Ok(())
}

/// The task's script text and a name for errors.
fn script_of(task: &str) -> Result<(String, String)> {
    if let Some((_, sql)) = SCRIPTS.iter().find(|(t, _)| *t == task) {
        return Ok((format!("curate_{task}.sql"), sql.to_string()));
    }
    let p = Path::new(task);
    if p.extension().is_some_and(|e| e == "sql") {
        let sql = std::fs::read_to_string(p)
            .with_context(|| format!("curate: cannot read script '{}'", p.display()))?;
        return Ok((p.display().to_string(), sql));
    }
    bail!(
        "curate: unknown task '{task}' (one of {}, or a .sql file)",
        SCRIPTS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
    )
}

fn params(opts: &CurateOptions, task: &str) -> ParamValues {
    let values = [
        ("seed", ScalarValue::Int64(Some(opts.seed))),
        ("style", ScalarValue::Utf8(Some(opts.style.clone()))),
        ("points", ScalarValue::Int64(Some(opts.points))),
        ("min_iou", ScalarValue::Float64(Some(opts.min_iou))),
        ("min_area", ScalarValue::Float64(Some(opts.min_area))),
        ("phash_distance", ScalarValue::Int64(Some(opts.phash_distance))),
        ("max_per_class", ScalarValue::Int64(Some(opts.max_per_class))),
        ("negatives_per_image", ScalarValue::Int64(Some(opts.negatives_per_image))),
        ("split", ScalarValue::Utf8(Some(opts.split.clone()))),
        ("source", ScalarValue::Utf8(Some(format!("vista-curate {task} seed={}", opts.seed)))),
    ];
    ParamValues::Map(HashMap::from_iter(values.map(|(k, v)| (k.to_string(), v.into()))))
}

/// Runs one curation job (see the module docs). Builds its own runtime when called from sync
/// code via [`curate`].
pub fn curate(opts: &CurateOptions) -> Result<CurateSummary> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(curate_async(opts))
}

pub async fn curate_async(opts: &CurateOptions) -> Result<CurateSummary> {
    check(opts)?;
    let (name, task_sql) = script_of(&opts.task)?;
    let task = name.trim_start_matches("curate_").trim_end_matches(".sql").to_string();
    let mut settings = vec![
        // The samples layout stores text as Utf8.
        ("datafusion.sql_parser.map_string_types_to_utf8view".to_string(), "false".to_string()),
        // A string view read from Parquet points into its whole decoded page: every batch of
        // masks would hold (and be charged for) its row group's RLE text, tens of megabytes,
        // so a sort under --memory-limit could not take even one batch. Plain strings own
        // their bytes.
        ("datafusion.execution.parquet.schema_force_view_types".to_string(), "false".to_string()),
    ];
    if let Some(b) = &opts.base_dir {
        settings.push(("vista.base_dir".to_string(), b.clone()));
    }
    let memory_limit = opts.memory_limit.filter(|&bytes| bytes > 0);
    if let Some(limit) = memory_limit {
        // A sort sets this much aside to merge its spills; DataFusion's 10 MB default alone
        // would exceed a small limit.
        let merge = (limit / 16).clamp(64 << 10, 10 << 20);
        settings.push((
            "datafusion.execution.sort_spill_reservation_bytes".to_string(),
            merge.to_string(),
        ));
        // Rows carry masks (kilobytes each): a sort must hold at least one whole batch of its
        // share of the pool, so batches are kept to about a megabyte or two.
        settings.push(("datafusion.execution.batch_size".to_string(), "512".to_string()));
    }
    // With a limit (the default), sorts spill beyond it and memory stays near it (the queries
    // keep hash joins to small build sides: a join cannot spill); without one jobs run a little
    // faster and memory grows with the candidates (docs/curate.md).
    let ctx =
        session::new_context(&SessionOptions { settings, target_partitions: None, memory_limit })?;
    register_inputs(&ctx, &opts.input).await?;
    let params = params(opts, &task);
    script::run_script(&ctx, COMMON_SQL, &params, "curate_common.sql").await?.collect().await?;
    script::run_script(&ctx, &task_sql, &params, &name).await?.collect().await?;
    let df = script::run_script(&ctx, BALANCE_SQL, &params, "curate_balance.sql").await?;
    let mut stream = df.execute_stream().await.map_err(|e| job_error(&name, &e))?;

    let script_sha256 = sha256_text(&format!("{COMMON_SQL}\n{task_sql}\n{BALANCE_SQL}"));
    let meta = output::provenance(
        Some(&format!("{task_sql}\n{BALANCE_SQL}")),
        &[
            // Where the output goes is not part of what was made: the same job written to two
            // directories gives byte-identical shards.
            (
                "vista.curate".to_string(),
                serde_json::to_string(&CurateOptions {
                    out_dir: PathBuf::new(),
                    memory_limit: None,
                    ..opts.clone()
                })?,
            ),
            ("vista.curate.script_sha256".to_string(), script_sha256.clone()),
        ],
    );
    let samples = crate::import::samples_schema();
    let mut shards = ShardWriter::new(
        &opts.out_dir.join("samples"),
        opts.shard_rows,
        samples.clone(),
        meta.clone(),
    );
    let mut tally = report::Tally::new(opts.min_iou);
    let mut row = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| job_error(&name, &e))?;
        let candidates = candidate_columns(&batch, &name)?;
        tally.add(&candidates)?;
        let kept = is_null(&candidates.dropped_by)?;
        let kept_rows = to_samples(&filter_record_batch(&batch, &kept)?, &samples, &name, row)?;
        shards.push(kept_rows)?;
        let dropped = datafusion::arrow::compute::not(&kept)?;
        tally.keep_dropped(&filter_record_batch(&candidates.report_batch()?, &dropped)?);
        row += batch.num_rows();
    }
    let written = shards.finish()?;
    let report_dir = opts.out_dir.join("report");
    tally.write(&report_dir, &task, &meta)?;
    let summary = CurateSummary {
        task,
        candidates: tally.candidates(),
        kept: tally.kept(),
        dropped: tally.dropped(),
        shards: written,
        options: opts.clone(),
        script_sha256,
        report_dir,
    };
    output::write_json_atomic(&opts.out_dir.join("manifest.json"), &summary)?;
    Ok(summary)
}

async fn register_inputs(ctx: &SessionContext, input: &Path) -> Result<()> {
    if !input.is_dir() {
        bail!(
            "curate: input '{}' is not a directory (write one with `vista import coco-instances`)",
            input.display()
        );
    }
    for name in INPUT_TABLES {
        let path = input.join(format!("{name}.parquet"));
        if path.is_file() {
            ctx.register_parquet(
                *name,
                path.to_string_lossy().as_ref(),
                ParquetReadOptions::default(),
            )
            .await?;
        }
    }
    Ok(())
}

/// The report columns of a candidate batch.
struct Candidates {
    sample_id: ArrayRef,
    task: ArrayRef,
    dropped_by: ArrayRef,
    recon_iou: ArrayRef,
}

impl Candidates {
    fn report_batch(&self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            report::dropped_schema(),
            vec![
                self.sample_id.clone(),
                self.task.clone(),
                self.dropped_by.clone(),
                self.recon_iou.clone(),
            ],
        )?)
    }
}

fn candidate_columns(batch: &RecordBatch, name: &str) -> Result<Candidates> {
    let col = |c: &str, t: &DataType| -> Result<ArrayRef> {
        let a = batch.column_by_name(c).with_context(|| {
            format!("{name}: the last statement must return a `{c}` column (docs/curate.md)")
        })?;
        Ok(cast(a, t)?)
    };
    Ok(Candidates {
        sample_id: col("sample_id", &DataType::Utf8)?,
        task: col("task", &DataType::Utf8)?,
        dropped_by: col("dropped_by", &DataType::Utf8)?,
        recon_iou: col("recon_iou", &DataType::Float64)?,
    })
}

/// Kept rows in the samples layout: columns by name, cast to the canonical types; a column the
/// script does not return is NULL; a NULL in a required column is an error naming the sample.
fn to_samples(
    batch: &RecordBatch,
    schema: &SchemaRef,
    name: &str,
    first_row: usize,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let col = match batch.column_by_name(field.name()) {
            Some(a) => cast(a, field.data_type()).with_context(|| {
                format!("{name}: column `{}` cannot be read as {}", field.name(), field.data_type())
            })?,
            None => new_null_array(field.data_type(), batch.num_rows()),
        };
        if !field.is_nullable() && col.null_count() > 0 {
            let i = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
            let id = batch
                .column_by_name("sample_id")
                .and_then(|a| cast(a, &DataType::Utf8).ok())
                .map(|a| a.as_string::<i32>().value(i).to_string())
                .unwrap_or_default();
            bail!(
                "{name}: kept row {} (sample_id '{id}') has a NULL `{}`",
                first_row + i,
                field.name()
            );
        }
        columns.push(col);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn sha256_text(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}
