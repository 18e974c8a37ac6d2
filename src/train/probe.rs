//! What stage 0 put into the image tokens, measured on any sample table: the box that stage 0's
//! box head reads from the mean image token, next to the answer's box, for every single-image
//! sample whose answer is one box or one mask. On held-out samples this is how well the image
//! tokenizer finds the object an instruction names before any decoder reads it, so a REC score
//! of the finished model can be split into what the image tokens carry and what the decoder
//! makes of it (docs/train.md).

use std::path::Path;

use anyhow::{bail, Result};
use vista_udfs::metrics::boxes::{iou, BoxXyxy};

use super::data::{encode, Encoded, Sample};
use super::params::Builder;
use super::pretrain::{apply_head, pool, GROUND_BIAS, GROUND_WEIGHT};
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

/// The head's boxes for the box samples of `samples` (at most `limit` of them, in order; 0 = all),
/// `batch` images per forward pass. `model_dir` is a `vista train` output whose weights still hold
/// stage 0's head: its `checkpoint/` while the run is in stage 0 (`--stop-after` ends a run
/// there), since stage 1 drops the head.
pub fn probe_boxes(
    model_dir: &Path,
    samples: &[Sample],
    limit: usize,
    batch: usize,
) -> Result<Vec<ProbedBox>> {
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
    let Some(source) = source else {
        bail!(
            "{}: no stage-0 box head ({GROUND_WEIGHT}) in its weights or checkpoint/; probe a run stopped in stage 0",
            model_dir.display()
        );
    };
    let (w, b) = (source[GROUND_WEIGHT].clone(), source[GROUND_BIAS].clone());
    // Nothing trainable: plain tensors, so the forward passes build no autograd graph.
    let (builder, _) = Builder::new(Some(source), 0, |_: &str| false);
    let model = VistaModel::load_with(
        model_dir,
        builder.into_var_builder(&candle_core::Device::Cpu),
        "probe".into(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", model_dir.display()))?;
    let mut picked: Vec<(usize, Encoded)> = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if limit > 0 && picked.len() == limit {
            break;
        }
        let e = encode(&model, s).map_err(|e| anyhow::anyhow!("sample {i}: {e}"))?;
        if e.box_target.is_some() {
            picked.push((i, e));
        }
    }
    let mut out = Vec::with_capacity(picked.len());
    for chunk in picked.chunks(batch.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().map(|(_, e)| e).collect();
        let Some(tokens) = super::loss::image_tokens(&model, &refs)? else { continue };
        let boxes: Vec<Vec<f32>> = apply_head(&pool(&tokens)?, &w, &b)?.to_vec2()?;
        for ((index, e), p) in chunk.iter().zip(boxes) {
            out.push(ProbedBox {
                index: *index,
                task: e.task.clone(),
                target: e.box_target.unwrap_or_default(),
                probe: [p[0], p[1], p[2], p[3]],
            });
        }
    }
    Ok(out)
}

/// Per task (and over all): probed samples, the share whose box has IoU > 0.5 with the answer's,
/// and the share whose centre lies inside it.
pub fn probe_summary(rows: &[ProbedBox]) -> Vec<(String, usize, f64, f64)> {
    let mut tasks: Vec<String> = rows.iter().map(|r| r.task.clone()).collect();
    tasks.sort();
    tasks.dedup();
    tasks.push("all".into());
    tasks
        .into_iter()
        .map(|t| {
            let of: Vec<&ProbedBox> = rows.iter().filter(|r| t == "all" || r.task == t).collect();
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
