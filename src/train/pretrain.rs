//! Stage 0: the image encoder learns to see before the VistaLLM stages, as the paper starts from
//! a pretrained EVA-CLIP. Scenes are drawn by `vista synth`'s generator on the fly (an endless,
//! seeded stream), and every patch token of the encoder's output is asked, through a linear head
//! that is dropped afterwards, what lies under it: the colour, shape and size of the object
//! covering most of the patch (or none), the scene's background texture, and the object's box.
//! These are the facts every task's answer is made of, so the Q-Former and the decoder start
//! stage 1 from features they can read instead of from noise.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var, D};
use image::RgbImage;

use super::params::Params;
use crate::model::VistaModel;
use crate::synth::scene::{self, Scene, BACKGROUNDS, COLORS, SHAPES, SIZES};

/// Checkpoint names of the head's tensors. They live in the trained parameters (so the optimiser
/// and checkpoints treat them as any other) and are left out of the model from stage 1 on.
pub(super) const HEAD_WEIGHT: &str = "pretrain_head.weight";
pub(super) const HEAD_BIAS: &str = "pretrain_head.bias";

/// Objects per scene, as `vista synth` draws them by default.
const MAX_OBJECTS: usize = 4;
/// The scene stream is independent of every other use of the seed.
const SCENE_SALT: u64 = 0x7072_6574_7261_696e;

/// The head's output columns: class groups (each with "none" first where it applies) and the box.
const GROUPS: [usize; 4] = [COLORS.len() + 1, SHAPES.len() + 1, SIZES.len() + 1, BACKGROUNDS.len()];
const BOX: usize = 4;
/// Weight of the box's L1 loss (in units of the image side) against the class losses.
const BOX_WEIGHT: f64 = 5.0;

fn outputs() -> usize {
    GROUPS.iter().sum::<usize>() + BOX
}

/// Adds the head to `params.trained`: from `source` (a resumed stage 0) or freshly initialised.
pub(super) fn add_head(
    params: &mut Params,
    source: Option<&HashMap<String, Tensor>>,
    hidden: usize,
    seed: u64,
) -> candle_core::Result<()> {
    let dev = candle_core::Device::Cpu;
    let (w, b) = match source.and_then(|s| Some((s.get(HEAD_WEIGHT)?, s.get(HEAD_BIAS)?))) {
        Some((w, b)) => (w.clone(), b.clone()),
        None => {
            let mut rng = crate::model::generate::SplitMix64::new(seed ^ SCENE_SALT);
            let std = 1.0 / (hidden as f64).sqrt();
            let values: Vec<f32> = (0..outputs() * hidden)
                .map(|_| (super::params::normal(&mut rng) * std) as f32)
                .collect();
            (
                Tensor::from_vec(values, (outputs(), hidden), &dev)?,
                Tensor::zeros(outputs(), DType::F32, &dev)?,
            )
        }
    };
    params.trained.insert(HEAD_WEIGHT.into(), Var::from_tensor(&w)?);
    params.trained.insert(HEAD_BIAS.into(), Var::from_tensor(&b)?);
    Ok(())
}

/// What lies under each patch of one scene, row-major over the patch grid.
struct PatchLabels {
    /// Per group of [`GROUPS`]: the class of every patch.
    classes: [Vec<u32>; 4],
    /// The covering object's box `[x0, y0, x1, y1] / side`, zeros for background patches.
    boxes: Vec<f32>,
    /// 1 for patches an object covers, else 0.
    covered: Vec<f32>,
}

fn patch_labels(s: &Scene, patch: usize) -> PatchLabels {
    let side = s.side as usize;
    let grid = side / patch;
    let mut labels = PatchLabels {
        classes: std::array::from_fn(|_| Vec::with_capacity(grid * grid)),
        boxes: Vec::with_capacity(grid * grid * BOX),
        covered: Vec::with_capacity(grid * grid),
    };
    for r in 0..grid {
        for c in 0..grid {
            let count = |o: &scene::Object| {
                (r * patch..(r + 1) * patch)
                    .map(|y| {
                        o.mask[y * side + c * patch..y * side + (c + 1) * patch]
                            .iter()
                            .filter(|&&m| m)
                            .count()
                    })
                    .sum::<usize>()
            };
            // Visible masks are disjoint: the object with most pixels in the patch, if it covers
            // at least a quarter of it.
            let best = s
                .objects
                .iter()
                .map(|o| (count(o), o))
                .max_by_key(|(n, _)| *n)
                .filter(|(n, _)| 4 * n >= patch * patch)
                .map(|(_, o)| o);
            let [color, shape, size, background] = &mut labels.classes;
            background.push(s.background as u32);
            match best {
                Some(o) => {
                    color.push(o.color as u32 + 1);
                    shape.push(o.shape as u32 + 1);
                    size.push(o.size as u32 + 1);
                    labels.boxes.extend(o.bbox.map(|v| v as f32 / side as f32));
                    labels.covered.push(1.0);
                }
                None => {
                    color.push(0);
                    shape.push(0);
                    size.push(0);
                    labels.boxes.extend([0.0; BOX]);
                    labels.covered.push(0.0);
                }
            }
        }
    }
    labels
}

/// The loss of micro-batch `micro` of step `step`: `batch` fresh scenes through the encoder and
/// the head; the mean of the class groups' cross-entropies plus the weighted box L1.
pub(super) fn batch_loss(
    model: &VistaModel,
    params: &Params,
    seed: u64,
    index: u64,
    batch: usize,
) -> candle_core::Result<Tensor> {
    let dev = &model.device;
    let vc = &model.config.vision_config;
    let (side, patch) = (vc.image_size, vc.patch_size);
    let mut pixels = Vec::with_capacity(batch);
    let mut all = Vec::with_capacity(batch);
    for i in 0..batch as u64 {
        let s = scene::generate(seed ^ SCENE_SALT, index + i, side as u32, MAX_OBJECTS);
        let img = RgbImage::from_raw(s.side, s.side, s.rgb.clone())
            .ok_or_else(|| candle_core::Error::Msg("scene pixels".into()))?;
        pixels.push(model.preprocess.normalize(&img));
        all.push(patch_labels(&s, patch));
    }
    let feats = model.net.vision.forward(&model.pixel_tensor(pixels)?)?;
    let (n, t, d) = feats.dims3()?;
    let patches = feats.narrow(1, 1, t - 1)?.reshape((n * (t - 1), d))?;
    let w = params.trained[HEAD_WEIGHT].as_tensor();
    let b = params.trained[HEAD_BIAS].as_tensor();
    let out = patches.matmul(&w.t()?)?.broadcast_add(b)?;
    let rows = n * (t - 1);
    let mut loss = Tensor::zeros((), DType::F32, dev)?;
    let mut col = 0;
    for (g, &width) in GROUPS.iter().enumerate() {
        let targets: Vec<u32> = all.iter().flat_map(|l| l.classes[g].iter().copied()).collect();
        let logp = candle_nn::ops::log_softmax(&out.narrow(1, col, width)?, D::Minus1)?;
        let nll = logp.gather(&Tensor::from_vec(targets, (rows, 1), dev)?, 1)?.neg()?.mean_all()?;
        loss = (loss + nll)?;
        col += width;
    }
    let boxes: Vec<f32> = all.iter().flat_map(|l| l.boxes.iter().copied()).collect();
    let covered: Vec<f32> = all.iter().flat_map(|l| l.covered.iter().copied()).collect();
    let n_covered = covered.iter().sum::<f32>().max(1.0);
    let covered = Tensor::from_vec(covered, (rows, 1), dev)?;
    let l1 = (out.narrow(1, col, BOX)? - Tensor::from_vec(boxes, (rows, BOX), dev)?)?
        .abs()?
        .broadcast_mul(&covered)?
        .sum_all()?;
    let l1 = (l1 * (BOX_WEIGHT / (f64::from(n_covered) * BOX as f64)))?;
    loss + l1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_labels_follow_the_visible_masks() {
        let s = scene::generate(3, 0, 96, 4);
        let l = patch_labels(&s, 12);
        assert_eq!(l.classes[0].len(), 64);
        assert_eq!(l.boxes.len(), 64 * 4);
        // Every object big enough to cover a quarter of some patch labels that patch with its
        // own colour and box; background patches carry no box.
        for (i, &cov) in l.covered.iter().enumerate() {
            let bx = &l.boxes[i * 4..i * 4 + 4];
            if cov == 0.0 {
                assert_eq!(l.classes[0][i], 0);
                assert_eq!(bx, &[0.0; 4]);
            } else {
                let o = s
                    .objects
                    .iter()
                    .find(|o| o.bbox.map(|v| v as f32 / 96.0) == [bx[0], bx[1], bx[2], bx[3]])
                    .expect("the box of an object");
                assert_eq!(l.classes[0][i], o.color as u32 + 1);
                assert_eq!(l.classes[1][i], o.shape as u32 + 1);
            }
            assert_eq!(l.classes[3][i], s.background as u32);
        }
        assert!(l.covered.iter().any(|&c| c == 1.0));
    }
}
