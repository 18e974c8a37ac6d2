//! What stage 0 put into the image tokens, measured on any sample table: the box that stage 0's
//! box head reads from the mean image token, next to the answer's box, for every single-image
//! sample whose answer is one box or one mask. On held-out samples this is how well the image
//! tokenizer finds the object an instruction names before any decoder reads it, so a REC score
//! of the finished model can be split into what the image tokens carry and what the decoder
//! makes of it (docs/train.md). A stage 0 trained with `--probe-count` also gives, through its
//! count head, how many of the objects a GREC or GRES instruction names the image holds.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Result};
use candle_core::Tensor;
use vista_udfs::metrics::boxes::{iou, BoxXyxy};

use super::data::{encode, Encoded, Sample};
use super::params::Builder;
use super::pretrain::{
    apply_head, patch_accuracy, pool, COUNT_BIAS, COUNT_WEIGHT, GROUND_BIAS, GROUND_WEIGHT,
    HEAD_BIAS, HEAD_WEIGHT,
};
use crate::model::generate::argmax;
use crate::model::VistaModel;

/// One probed sample: the answer's box and the head's box, fractions of the image's width and
/// height.
#[derive(Debug, Clone)]
pub struct ProbedBox {
    /// The sample's position in `samples`.
    pub index: usize,
    pub task: String,
    pub target: [f32; 4],
    pub probe: [f32; 4],
}

impl ProbedBox {
    pub fn iou(&self) -> f64 {
        let b = |v: [f32; 4]| BoxXyxy(v.map(f64::from));
        // The head's box can come out inverted; it then covers nothing.
        let mut p = self.probe;
        (p[2], p[3]) = (p[2].max(p[0]), p[3].max(p[1]));
        iou(&b(p), &b(self.target))
    }

    /// The head's box centre lies inside the answer's box: the right object, however imprecise.
    pub fn centre_inside(&self) -> bool {
        let (t, p) = (self.target, self.probe);
        let (cx, cy) = ((p[0] + p[2]) / 2.0, (p[1] + p[3]) / 2.0);
        (t[0]..=t[2]).contains(&cx) && (t[1]..=t[3]).contains(&cy)
    }
}

/// A stage-0 checkpoint opened once for its heads: the model and the weights that hold them.
pub struct Stage0Probe {
    model: VistaModel,
    weights: HashMap<String, Tensor>,
}

impl Stage0Probe {
    /// The model of `model_dir` with the weights of the first of its `checkpoint/` and itself
    /// that still holds stage 0's box head: its `checkpoint/` while the run is in stage 0
    /// (`--stop-after` ends a run there), since stage 1 drops the heads.
    pub fn open(model_dir: &Path) -> Result<Self> {
        let mut source = None;
        for dir in [model_dir.join("checkpoint"), model_dir.to_path_buf()] {
            if dir.join("model.safetensors").is_file() {
                let weights = Builder::load_source(&dir, &candle_core::Device::Cpu)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
                if weights.contains_key(GROUND_WEIGHT) && weights.contains_key(GROUND_BIAS) {
                    source = Some(weights);
                    break;
                }
            }
        }
        let Some(weights) = source else {
            bail!(
                "{}: no stage-0 box head ({GROUND_WEIGHT}) in its weights or checkpoint/; probe a run stopped in stage 0",
                model_dir.display()
            );
        };
        // Nothing trainable: plain tensors, so the forward passes build no autograd graph.
        let (builder, _) = Builder::new(Some(weights.clone()), 0, |_: &str| false);
        let model = VistaModel::load_with(
            model_dir,
            builder.into_var_builder(&candle_core::Device::Cpu),
            "probe".into(),
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_dir.display()))?;
        Ok(Stage0Probe { model, weights })
    }

    /// `(index, sample)` of the samples `keep` picks, encoded (at most `limit`; 0 = all).
    fn pick(
        &self,
        samples: &[Sample],
        limit: usize,
        keep: impl Fn(&Encoded) -> bool,
    ) -> Result<Vec<(usize, Encoded)>> {
        let mut picked = Vec::new();
        for (i, s) in samples.iter().enumerate() {
            if limit > 0 && picked.len() == limit {
                break;
            }
            let e = encode(&self.model, s).map_err(|e| anyhow::anyhow!("sample {i}: {e}"))?;
            if keep(&e) {
                picked.push((i, e));
            }
        }
        Ok(picked)
    }

    /// The rows of the head `(weight, bias)` over the mean image token of each picked sample,
    /// `batch` images per forward pass.
    fn read_head(
        &self,
        picked: &[&Encoded],
        (weight, bias): (&str, &str),
        batch: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let (w, b) = (&self.weights[weight], &self.weights[bias]);
        let mut out = Vec::with_capacity(picked.len());
        for refs in picked.chunks(batch.max(1)) {
            let tokens = super::loss::image_tokens(&self.model, refs)?
                .ok_or_else(|| anyhow::anyhow!("probed samples without images"))?;
            out.extend(apply_head(&pool(&tokens)?, w, b)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// The head's boxes for the box samples of `samples` (at most `limit` of them, in order;
    /// 0 = all), `batch` images per forward pass.
    pub fn boxes(&self, samples: &[Sample], limit: usize, batch: usize) -> Result<Vec<ProbedBox>> {
        let picked = self.pick(samples, limit, |e| e.box_target.is_some())?;
        let refs: Vec<&Encoded> = picked.iter().map(|(_, e)| e).collect();
        let boxes = self.read_head(&refs, (GROUND_WEIGHT, GROUND_BIAS), batch)?;
        Ok(picked
            .iter()
            .zip(boxes)
            .map(|((index, e), p)| ProbedBox {
                index: *index,
                task: e.task.clone(),
                target: e.box_target.unwrap_or_default(),
                probe: [p[0], p[1], p[2], p[3]],
            })
            .collect())
    }

    /// For a stage 0 trained with `--probe-count`: per task whose answers hold a varying number
    /// of boxes or masks (and over them all), the samples, the share whose number of targets
    /// (none, one, two, three or more) the count head reads from the mean image token, and that
    /// share among the no-target samples alone. None when the weights hold no count head or
    /// `samples` no such task.
    pub fn counts(&self, samples: &[Sample], batch: usize) -> Result<Option<Vec<ProbedCounts>>> {
        if !self.weights.contains_key(COUNT_WEIGHT) {
            return Ok(None);
        }
        let mut encoded: Vec<Encoded> = self
            .pick(samples, 0, |e| e.count_target.is_some())?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        // As stage 0 reads them: the tasks whose answers always hold one target are left out.
        super::counted_pool(&mut encoded);
        encoded.retain(|e| e.count_target.is_some());
        if encoded.is_empty() {
            return Ok(None);
        }
        let refs: Vec<&Encoded> = encoded.iter().collect();
        let logits = self.read_head(&refs, (COUNT_WEIGHT, COUNT_BIAS), batch)?;
        // (task, the answer's count, the head's count).
        let rows: Vec<(&str, u32, u32)> = encoded
            .iter()
            .zip(&logits)
            .map(|(e, l)| (e.task.as_str(), e.count_target.unwrap_or_default(), argmax(l)))
            .collect();
        let share = |of: &[&(&str, u32, u32)]| {
            of.iter().filter(|r| r.1 == r.2).count() as f64 / of.len().max(1) as f64
        };
        Ok(Some(
            by_task(&rows, |r| r.0)
                .into_iter()
                .map(|(task, of)| {
                    let none: Vec<&(&str, u32, u32)> =
                        of.iter().copied().filter(|r| r.1 == 0).collect();
                    ProbedCounts {
                        task,
                        samples: of.len(),
                        accuracy: share(&of),
                        no_target_accuracy: share(&none),
                    }
                })
                .collect(),
        ))
    }

    /// What the encoder's patch head reads on `scenes` scenes drawn by stage 0's generator from
    /// `seed` (one the training run did not use, so they are held out), `batch` a forward pass:
    /// per line, what is read, how many were scored and the share whose class the head gives.
    /// First per patch (colour, shape and size over the patches an object covers, the
    /// background texture over all), then per object from the mean of its patches' outputs.
    /// Where these are high and the answers that need the same fact are not, the image
    /// tokenizer or the decoder loses it, not the encoder.
    pub fn patches(&self, seed: u64, scenes: usize, batch: usize) -> Result<Vec<PatchLine>> {
        let (Some(w), Some(b)) = (self.weights.get(HEAD_WEIGHT), self.weights.get(HEAD_BIAS))
        else {
            bail!("the probed weights hold no stage-0 patch head ({HEAD_WEIGHT})");
        };
        let acc = patch_accuracy(&self.model, (w, b), seed, scenes, batch)?;
        let lines = ["patch colour", "patch shape", "patch size", "patch background"]
            .into_iter()
            .zip(acc.patches)
            .chain(["object colour", "object shape", "object size"].into_iter().zip(acc.objects));
        Ok(lines.map(|(what, (scored, accuracy))| PatchLine { what, scored, accuracy }).collect())
    }
}

/// One line of [`Stage0Probe::patches`].
#[derive(Debug, Clone)]
pub struct PatchLine {
    pub what: &'static str,
    /// Patches or objects scored.
    pub scored: usize,
    /// The share of them whose class the head gives.
    pub accuracy: f64,
}

/// One task's line of [`Stage0Probe::counts`].
#[derive(Debug, Clone)]
pub struct ProbedCounts {
    pub task: String,
    pub samples: usize,
    /// The share whose number of targets the count head reads.
    pub accuracy: f64,
    /// The same among the samples with no target.
    pub no_target_accuracy: f64,
}

/// `rows` per task, in task order, then all of them as "all".
fn by_task<T>(rows: &[T], task: impl Fn(&T) -> &str) -> Vec<(String, Vec<&T>)> {
    let mut tasks: Vec<&str> = rows.iter().map(&task).collect();
    tasks.sort();
    tasks.dedup();
    let mut out: Vec<(String, Vec<&T>)> = tasks
        .into_iter()
        .map(|t| (t.to_string(), rows.iter().filter(|r| task(r) == t).collect()))
        .collect();
    out.push(("all".into(), rows.iter().collect()));
    out
}

/// Per task (and over all): probed samples, the share whose box has IoU > 0.5 with the answer's,
/// and the share whose centre lies inside it.
pub fn probe_summary(rows: &[ProbedBox]) -> Vec<(String, usize, f64, f64)> {
    by_task(rows, |r| r.task.as_str())
        .into_iter()
        .map(|(t, of)| {
            let n = of.len().max(1) as f64;
            let acc = of.iter().filter(|r| r.iou() > 0.5).count() as f64 / n;
            let inside = of.iter().filter(|r| r.centre_inside()).count() as f64 / n;
            (t, of.len(), acc, inside)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_boxes_score_by_iou_and_centre() {
        let row =
            |probe| ProbedBox { index: 0, task: "rec".into(), target: [0.2, 0.2, 0.4, 0.4], probe };
        let exact = row([0.2, 0.2, 0.4, 0.4]);
        assert_eq!((exact.iou(), exact.centre_inside()), (1.0, true));
        // Shifted by half its width: IoU 1/3, centre on the edge (inside).
        let shifted = row([0.3, 0.2, 0.5, 0.4]);
        assert!((shifted.iou() - 1.0 / 3.0).abs() < 1e-6 && shifted.centre_inside());
        let elsewhere = row([0.6, 0.6, 0.8, 0.8]);
        assert_eq!((elsewhere.iou(), elsewhere.centre_inside()), (0.0, false));
        // An inverted box covers nothing.
        assert_eq!(row([0.4, 0.4, 0.2, 0.2]).iou(), 0.0);
        let summary = probe_summary(&[exact, shifted, elsewhere]);
        assert_eq!(summary.len(), 2);
        let (task, n, acc, inside) = &summary[1];
        assert_eq!((task.as_str(), *n), ("all", 3));
        assert!((acc - 1.0 / 3.0).abs() < 1e-9 && (inside - 2.0 / 3.0).abs() < 1e-9);
    }
}
