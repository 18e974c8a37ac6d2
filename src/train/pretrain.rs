//! Stage 0: the image encoder learns to see before the VistaLLM stages, as the paper starts from
//! a pretrained EVA-CLIP. Scenes are drawn by `vista synth`'s generator on the fly (an endless,
//! seeded stream), and every patch token of the encoder's output is asked, through a linear head
//! that is dropped afterwards, what lies under it: the colour, shape and size of the object
//! covering most of the patch (or none), the scene's background texture, and the object's box.
//! These are the facts every task's answer is made of.
//!
//! In the same steps the image tokenizer (query tokens, Q-Former, projection) learns to extract
//! what the instruction asks for: for every single-image training sample, the mean of its image
//! tokens must give, through linear heads, the box when the answer is one box or one mask (REC,
//! RES, one-target GREC/GRES), and the answer's words (their distribution over the decoder's
//! vocabulary) when the answer is text (VQA, PointQA, captions). The decoder then starts stage 1
//! from image tokens that already carry the answer, instead of having to discover the routing
//! through the language loss, where the answers' text priors win.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var, D};
use image::RgbImage;
use vista_udfs::text::coords::{parse_objects, Parsed, Tag};

use super::data::Encoded;
use super::params::Params;
use crate::model::generate::argmax;
use crate::model::VistaModel;
use crate::synth::scene::{self, Scene, BACKGROUNDS, COLORS, SHAPES, SIZES};

/// Checkpoint names of the head's tensors. They live in the trained parameters (so the optimiser
/// and checkpoints treat them as any other) and are left out of the model from stage 1 on.
pub(super) const HEAD_WEIGHT: &str = "pretrain_head.weight";
pub(super) const HEAD_BIAS: &str = "pretrain_head.bias";
pub(super) const GROUND_WEIGHT: &str = "pretrain_ground.weight";
pub(super) const GROUND_BIAS: &str = "pretrain_ground.bias";
pub(super) const WORDS_WEIGHT: &str = "pretrain_words.weight";
pub(super) const WORDS_BIAS: &str = "pretrain_words.bias";
pub(super) const COUNT_WEIGHT: &str = "pretrain_count.weight";
pub(super) const COUNT_BIAS: &str = "pretrain_count.bias";
/// Every stage-0 head's name starts so; stage 1 leaves them out.
pub(super) const PREFIX: &str = "pretrain_";

/// Objects per scene, as `vista synth` draws them by default.
const MAX_OBJECTS: usize = 4;
/// The scene stream is independent of every other use of the seed.
const SCENE_SALT: u64 = 0x7072_6574_7261_696e;

/// The head's output columns: class groups (each with "none" first where it applies) and the box.
const GROUPS: [usize; 4] = [COLORS.len() + 1, SHAPES.len() + 1, SIZES.len() + 1, BACKGROUNDS.len()];
const BOX: usize = 4;
/// Weight of the box's L1 loss (in units of the image side) against the class losses.
const BOX_WEIGHT: f64 = 5.0;
/// The count probe's classes: no target, one, two, and three or more.
pub(super) const COUNT_CLASSES: usize = 4;

fn outputs() -> usize {
    GROUPS.iter().sum::<usize>() + BOX
}

/// Adds the heads to `params.trained`: from `source` (a resumed stage 0) or freshly initialised;
/// the count head only with `count`.
pub(super) fn add_heads(
    params: &mut Params,
    source: Option<&HashMap<String, Tensor>>,
    (vision_hidden, text_hidden, vocab): (usize, usize, usize),
    count: bool,
    seed: u64,
) -> candle_core::Result<()> {
    let dev = candle_core::Device::Cpu;
    let mut rng = crate::model::generate::SplitMix64::new(seed ^ SCENE_SALT);
    let mut heads = vec![
        (HEAD_WEIGHT, HEAD_BIAS, outputs(), vision_hidden),
        (GROUND_WEIGHT, GROUND_BIAS, BOX, text_hidden),
        (WORDS_WEIGHT, WORDS_BIAS, vocab, text_hidden),
    ];
    // Last, so that the other heads draw the same initial weights with and without it.
    if count {
        heads.push((COUNT_WEIGHT, COUNT_BIAS, COUNT_CLASSES, text_hidden));
    }
    for (w_name, b_name, out, hidden) in heads {
        let (w, b) = match source.and_then(|s| Some((s.get(w_name)?, s.get(b_name)?))) {
            Some((w, b)) => (w.clone(), b.clone()),
            // The box probe starts at zero weights and the image centre, the prior's middle: from
            // a random start its L1 loss spends hundreds of steps unlearning the random read-out
            // (measured: still above the constant predictor's 0.218 after 300 steps), and its
            // gradient into the image tokenizer is noise meanwhile.
            None if w_name == GROUND_WEIGHT => {
                (Tensor::zeros((out, hidden), DType::F32, &dev)?, Tensor::full(0.5f32, out, &dev)?)
            }
            None => {
                let std = 1.0 / (hidden as f64).sqrt();
                let values: Vec<f32> = (0..out * hidden)
                    .map(|_| (super::params::normal(&mut rng) * std) as f32)
                    .collect();
                (
                    Tensor::from_vec(values, (out, hidden), &dev)?,
                    Tensor::zeros(out, DType::F32, &dev)?,
                )
            }
        };
        params.trained.insert(w_name.into(), Var::from_tensor(&w)?);
        params.trained.insert(b_name.into(), Var::from_tensor(&b)?);
    }
    Ok(())
}

/// The box `[x0, y0, x1, y1]` (fractions of the square frame) of an answer that is one box or
/// one mask, in either coordinate style (`<b_st><bin_a> <bin_b> <bin_c> <bin_d><b_ed>` or
/// `[a,b,c,d]`; a mask's box encloses its points); None for other answers, several targets or
/// none. A decimal box and a decimal mask differ only in length: a box has 4 values, a mask at
/// least 3 points.
pub(super) fn target_box(target: &str) -> Option<[f32; 4]> {
    let Parsed::Ok(objects) = parse_objects(target, &[Tag::Box, Tag::Mask]) else {
        return None;
    };
    let [v] = objects.as_slice() else { return None };
    let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    if v.len() == 4 {
        return Some([v[0], v[1], v[2], v[3]]);
    }
    if v.len() < 6 || v.len() % 2 == 1 {
        return None;
    }
    let (xs, ys): (Vec<f32>, Vec<f32>) = v.chunks(2).map(|p| (p[0], p[1])).unzip();
    let lo = |v: &[f32]| v.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = |v: &[f32]| v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Some([lo(&xs), lo(&ys), hi(&xs), hi(&ys)])
}

/// How many boxes or masks `target` holds when it is made only of them (capped at
/// [`COUNT_CLASSES`] - 1), 0 when it is empty ("no target"), None for any other answer.
pub(super) fn target_count(target: &str) -> Option<u32> {
    if target.trim().is_empty() {
        return Some(0);
    }
    match parse_objects(target, &[Tag::Box, Tag::Mask]) {
        Parsed::Ok(objects) => Some(objects.len().min(COUNT_CLASSES - 1) as u32),
        _ => None,
    }
}

/// `bx` (fractions of an image's width and height) in the frame the model sees: the image
/// centred on a square canvas as the `vicuna_v1` preprocessing pads it. None when the image's
/// size cannot be read.
pub(super) fn in_square_frame(bx: [f32; 4], image: &[u8]) -> Option<[f32; 4]> {
    let (w, h) = vista_udfs::image::dimensions(image).ok()?;
    let side = w.max(h);
    let (dx, dy) = ((side - w) / 2, (side - h) / 2);
    let x = |v: f32| (v * w as f32 + dx as f32) / side as f32;
    let y = |v: f32| (v * h as f32 + dy as f32) / side as f32;
    Some([x(bx[0]), y(bx[1]), x(bx[2]), y(bx[3])])
}

/// For each patch of a `grid` x `grid` encoder (after its class token, which gets 0), the
/// fraction of the patch that `bx` covers.
fn patch_cover(bx: [f32; 4], grid: usize) -> Vec<f32> {
    let g = grid as f32;
    let overlap = |lo: f32, hi: f32, i: usize| {
        let (a, b) = (i as f32 / g, (i + 1) as f32 / g);
        ((hi.min(b) - lo.max(a)) * g).max(0.0)
    };
    let mut cover = vec![0.0];
    for r in 0..grid {
        for c in 0..grid {
            cover.push(overlap(bx[0], bx[2], c) * overlap(bx[1], bx[3], r));
        }
    }
    cover
}

/// What the probe heads read: the mean of each image's tokens, [images, Q, d] -> [images, d].
pub(super) fn pool(tokens: &Tensor) -> candle_core::Result<Tensor> {
    tokens.mean(1)
}

/// A probe head `x W^T + b` on pooled tokens `x` [rows, d]; `weight` [out, d], `bias` [out].
pub(super) fn apply_head(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
) -> candle_core::Result<Tensor> {
    x.matmul(&weight.t()?)?.broadcast_add(bias)
}

/// The probe loss of a batch of single-image samples: for rows with a box, the L1 distance (in
/// units of the image side) of the box read from the mean image token; for rows with a text
/// answer, the cross-entropy of the answer's token distribution under the words head. With
/// `attention_weight` > 0, rows with a box also pay `attention_weight` x -log of the share of the
/// Q-Former's cross-attention (mean over layers, heads and queries, each patch weighted by how
/// much of it the box covers) that falls inside the box: the answer's object is where the
/// queries should read. With `each`, every layer, head and query pays its own -log share (their
/// mean), so none of them can read elsewhere. With `count_weight` > 0 (and the count head
/// added), rows with a count target also pay `count_weight` x the cross-entropy of their number
/// of targets under the count head. Also returns the parts (the box L1, the words
/// cross-entropy, the share of attention inside the box, the count cross-entropy and the count
/// head's accuracy; NaN where the batch had no such row).
pub(super) fn probe_loss(
    model: &VistaModel,
    params: &Params,
    batch: &[&Encoded],
    attention_weight: f64,
    each: bool,
    count_weight: f64,
) -> candle_core::Result<(Tensor, [f64; 5])> {
    let dev = &model.device;
    let (pixels, qids, qmask) = super::loss::image_inputs(model, batch)?
        .ok_or_else(|| candle_core::Error::Msg("a probe batch without images".into()))?;
    let feats = model.net.vision.forward(&pixels)?;
    let (tokens, cross) = model.net.image_tokens_with_cross_attention(&feats, &qids, &qmask)?;
    // Probe samples have one image each, so image token row i is sample i's.
    let pooled = pool(&tokens)?;
    let head = |w: &str, b: &str, x: &Tensor| {
        apply_head(x, params.trained[w].as_tensor(), params.trained[b].as_tensor())
    };
    let rows =
        |keep: &dyn Fn(&Encoded) -> bool| -> candle_core::Result<Option<(Tensor, Vec<usize>)>> {
            let idx: Vec<usize> = (0..batch.len()).filter(|&i| keep(batch[i])).collect();
            if idx.is_empty() {
                return Ok(None);
            }
            let ids = Tensor::new(idx.iter().map(|&i| i as u32).collect::<Vec<_>>(), dev)?;
            Ok(Some((pooled.index_select(&ids, 0)?, idx)))
        };
    let mut loss = Tensor::zeros((), DType::F32, dev)?;
    let mut parts = [f64::NAN; 5];
    let grounded: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].input_box.is_some()).collect();
    if attention_weight > 0.0 && !grounded.is_empty() && !cross.is_empty() {
        let patches = feats.dim(1)? - 1;
        let grid = (patches as f64).sqrt().round() as usize;
        if grid * grid != patches {
            candle_core::bail!("the encoder's {patches} patches are not a square grid");
        }
        let cover: Vec<f32> = grounded
            .iter()
            .flat_map(|&i| patch_cover(batch[i].input_box.unwrap_or_default(), grid))
            .collect();
        let cover = Tensor::from_vec(cover, (grounded.len(), patches + 1), dev)?;
        let ids = Tensor::new(grounded.iter().map(|&i| i as u32).collect::<Vec<_>>(), dev)?;
        let mut share = Tensor::zeros(grounded.len(), DType::F32, dev)?;
        let mut each_nll = Tensor::zeros((), DType::F32, dev)?;
        // [n, 1, 1, patches + 1], against each layer's [n, heads, Q, patches + 1].
        let cover_each = if each { Some(cover.unsqueeze(1)?.unsqueeze(1)?) } else { None };
        for p in &cross {
            let p = p.index_select(&ids, 0)?;
            // [n, heads, Q, patches + 1] -> the mean distribution of each grounded row.
            let mean = p.mean(1)?.mean(1)?;
            share = (share + (mean * &cover)?.sum(1)?)?;
            if let Some(cover_each) = &cover_each {
                // The share inside the box of every head and query, [n, heads, Q].
                let inside = p.broadcast_mul(cover_each)?.sum(D::Minus1)?;
                each_nll = (each_nll + (inside + 1e-6)?.log()?.neg()?.mean_all()?)?;
            }
        }
        let share = (share / cross.len() as f64)?;
        parts[2] = f64::from(share.mean_all()?.to_scalar::<f32>()?);
        let nll = if each {
            (each_nll / cross.len() as f64)?
        } else {
            (share + 1e-6)?.log()?.neg()?.mean_all()?
        };
        loss = (loss + (nll * attention_weight)?)?;
    }
    if let Some((x, idx)) = rows(&|e| e.box_target.is_some())? {
        let boxes: Vec<f32> =
            idx.iter().flat_map(|&i| batch[i].box_target.unwrap_or_default()).collect();
        let target = Tensor::from_vec(boxes, (idx.len(), BOX), dev)?;
        let l1 = (head(GROUND_WEIGHT, GROUND_BIAS, &x)? - target)?.abs()?.mean_all()?;
        parts[0] = f64::from(l1.to_scalar::<f32>()?);
        loss = (loss + (l1 * BOX_WEIGHT)?)?;
    }
    if let Some((x, idx)) = rows(&|e| e.text_answer)? {
        let logp = candle_nn::ops::log_softmax(&head(WORDS_WEIGHT, WORDS_BIAS, &x)?, D::Minus1)?;
        let vocab = logp.dim(1)?;
        let mut bags = vec![0f32; idx.len() * vocab];
        for (r, &i) in idx.iter().enumerate() {
            let words =
                &batch[i].answer[..batch[i].answer.len().saturating_sub(model.stop_ids().len())];
            for &t in words {
                if (t as usize) < vocab {
                    bags[r * vocab + t as usize] += 1.0 / words.len().max(1) as f32;
                }
            }
        }
        let bags = Tensor::from_vec(bags, (idx.len(), vocab), dev)?;
        let ce = ((logp * bags)?.sum_all()?.neg()? / idx.len() as f64)?;
        parts[1] = f64::from(ce.to_scalar::<f32>()?);
        loss = (loss + ce)?;
    }
    if count_weight > 0.0 {
        if let Some((x, idx)) = rows(&|e| e.count_target.is_some())? {
            let counts: Vec<u32> =
                idx.iter().map(|&i| batch[i].count_target.unwrap_or_default()).collect();
            let logits = head(COUNT_WEIGHT, COUNT_BIAS, &x)?;
            let guessed = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
            let right = guessed.iter().zip(&counts).filter(|(g, c)| g == c).count();
            let target = Tensor::from_vec(counts, (idx.len(), 1), dev)?;
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let ce = logp.gather(&target, 1)?.neg()?.mean_all()?;
            parts[3] = f64::from(ce.to_scalar::<f32>()?);
            parts[4] = right as f64 / idx.len() as f64;
            loss = (loss + (ce * count_weight)?)?;
        }
    }
    Ok((loss, parts))
}

/// What lies under each patch of one scene, row-major over the patch grid.
struct PatchLabels {
    /// Per group of [`GROUPS`]: the class of every patch.
    classes: [Vec<u32>; 4],
    /// The covering object's box `[x0, y0, x1, y1] / side`, zeros for background patches.
    boxes: Vec<f32>,
    /// 1 for patches an object covers, else 0.
    covered: Vec<f32>,
    /// The covering object's position in the scene's objects, plus one; 0 for background.
    owner: Vec<usize>,
}

fn patch_labels(s: &Scene, patch: usize) -> PatchLabels {
    let side = s.side as usize;
    let grid = side / patch;
    let mut labels = PatchLabels {
        classes: std::array::from_fn(|_| Vec::with_capacity(grid * grid)),
        boxes: Vec::with_capacity(grid * grid * BOX),
        covered: Vec::with_capacity(grid * grid),
        owner: Vec::with_capacity(grid * grid),
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
                .enumerate()
                .map(|(i, o)| (count(o), i, o))
                .max_by_key(|(n, _, _)| *n)
                .filter(|(n, _, _)| 4 * n >= patch * patch)
                .map(|(_, i, o)| (i, o));
            let [color, shape, size, background] = &mut labels.classes;
            background.push(s.background as u32);
            labels.owner.push(best.map_or(0, |(i, _)| i + 1));
            match best.map(|(_, o)| o) {
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

/// Scenes `index..index + batch` of the stream of `seed`, through the encoder and the patch head
/// `(weight, bias)`: the head's outputs, one row per patch of every scene in order, and what lies
/// under those patches.
fn patch_outputs(
    model: &VistaModel,
    (weight, bias): (&Tensor, &Tensor),
    seed: u64,
    index: u64,
    batch: usize,
) -> candle_core::Result<(Tensor, Vec<PatchLabels>)> {
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
    Ok((apply_head(&patches, weight, bias)?, all))
}

/// The loss of `batch` fresh scenes (from scene `index` of the stream) through the encoder and
/// the patch head: the class groups' summed cross-entropies plus the weighted box L1; also
/// returns the two parts (the box L1 in image sides). With `balance`, the object groups'
/// cross-entropies are the mean over object patches plus the mean over the others.
pub(super) fn scene_loss(
    model: &VistaModel,
    params: &Params,
    seed: u64,
    index: u64,
    batch: usize,
    balance: bool,
) -> candle_core::Result<(Tensor, [f64; 2])> {
    let dev = &model.device;
    let head = (params.trained[HEAD_WEIGHT].as_tensor(), params.trained[HEAD_BIAS].as_tensor());
    let (out, all) = patch_outputs(model, head, seed, index, batch)?;
    let rows = out.dim(0)?;
    let covered: Vec<f32> = all.iter().flat_map(|l| l.covered.iter().copied()).collect();
    let n_covered = covered.iter().sum::<f32>();
    let covered = Tensor::from_vec(covered, (rows, 1), dev)?;
    let mut loss = Tensor::zeros((), DType::F32, dev)?;
    let mut col = 0;
    for (g, &width) in GROUPS.iter().enumerate() {
        let targets: Vec<u32> = all.iter().flat_map(|l| l.classes[g].iter().copied()).collect();
        let logp = candle_nn::ops::log_softmax(&out.narrow(1, col, width)?, D::Minus1)?;
        let nll = logp.gather(&Tensor::from_vec(targets, (rows, 1), dev)?, 1)?.neg()?;
        let nll = if balance && g < 3 {
            let part =
                |mask: &Tensor, n: f32| nll.broadcast_mul(mask)?.sum_all()? / f64::from(n.max(1.0));
            (part(&covered, n_covered)? + part(&(1.0 - &covered)?, rows as f32 - n_covered)?)?
        } else {
            nll.mean_all()?
        };
        loss = (loss + nll)?;
        col += width;
    }
    let boxes: Vec<f32> = all.iter().flat_map(|l| l.boxes.iter().copied()).collect();
    let l1 = (out.narrow(1, col, BOX)? - Tensor::from_vec(boxes, (rows, BOX), dev)?)?
        .abs()?
        .broadcast_mul(&covered)?
        .sum_all()?;
    let weighted = (l1 * (BOX_WEIGHT / (f64::from(n_covered.max(1.0)) * BOX as f64)))?;
    let box_l1 = f64::from(weighted.to_scalar::<f32>()?) / BOX_WEIGHT;
    let parts = [f64::from(loss.to_scalar::<f32>()?), box_l1];
    Ok(((loss + weighted)?, parts))
}

/// What stage 0's encoder head reads on `scenes` scenes of the stream of `seed` (`batch` a
/// forward pass), per group (colour, shape, size, background): the patches scored and the share
/// whose class the head gives, colour, shape and size over the patches an object covers and the
/// background over all; then per object group the objects scored and the share whose class the
/// mean of the head's outputs over the object's patches gives. The head is linear, so that mean
/// is the head applied to the mean of the patch tokens: what a reader that averages an
/// object's patches, as the Q-Former's attention does, can find there.
pub(super) fn patch_accuracy(
    model: &VistaModel,
    head: (&Tensor, &Tensor),
    seed: u64,
    scenes: usize,
    batch: usize,
) -> candle_core::Result<PatchAccuracy> {
    let mut patches = [(0usize, 0usize); 4];
    let mut objects = [(0usize, 0usize); 3];
    let mut index = 0;
    while index < scenes {
        let n = batch.max(1).min(scenes - index);
        let (out, all) = patch_outputs(model, head, seed, index as u64, n)?;
        let rows = out.to_vec2::<f32>()?;
        let per_scene = rows.len() / n.max(1);
        for (l, rows) in all.iter().zip(rows.chunks(per_scene)) {
            // Per object: the summed outputs over its patches and one of those patches, whose
            // labels are the object's.
            let mut sums: HashMap<usize, (Vec<f32>, usize)> = HashMap::new();
            for (p, row) in rows.iter().enumerate() {
                let mut col = 0;
                for (g, &width) in GROUPS.iter().enumerate() {
                    if g == 3 || l.covered[p] > 0.0 {
                        patches[g].0 += 1;
                        let guess = argmax(&row[col..col + width]);
                        patches[g].1 += usize::from(guess == l.classes[g][p]);
                    }
                    col += width;
                }
                if l.owner[p] > 0 {
                    let (sum, _) = sums.entry(l.owner[p]).or_insert((vec![0.0; row.len()], p));
                    sum.iter_mut().zip(row).for_each(|(s, v)| *s += v);
                }
            }
            for (sum, p) in sums.values() {
                let mut col = 0;
                for (g, o) in objects.iter_mut().enumerate() {
                    let width = GROUPS[g];
                    o.0 += 1;
                    o.1 += usize::from(argmax(&sum[col..col + width]) == l.classes[g][*p]);
                    col += width;
                }
            }
        }
        index += n;
    }
    let share = |(n, right): (usize, usize)| (n, right as f64 / n.max(1) as f64);
    Ok(PatchAccuracy { patches: patches.map(share), objects: objects.map(share) })
}

/// [`patch_accuracy`]'s result: `(scored, share right)` per patch group (colour, shape, size,
/// background) and per object group (colour, shape, size).
pub(super) struct PatchAccuracy {
    pub patches: [(usize, f64); 4],
    pub objects: [(usize, f64); 3],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_are_read_from_one_box_or_one_mask() {
        let b = target_box("<b_st><bin_615> <bin_365> <bin_917> <bin_667><b_ed>");
        assert_eq!(b, Some([0.615, 0.365, 0.917, 0.667]));
        let m =
            target_box("<m_st><bin_100> <bin_200> <bin_300> <bin_250> <bin_150> <bin_400><m_ed>");
        assert_eq!(m, Some([0.1, 0.2, 0.3, 0.4]));
        assert_eq!(
            target_box(
                "<b_st><bin_1> <bin_2> <bin_3> <bin_4><b_sep><bin_1> <bin_2> <bin_3> <bin_4><b_ed>"
            ),
            None
        );
        assert_eq!(target_box(""), None);
        assert_eq!(target_box("red"), None);
        assert_eq!(target_box("<p_st><bin_1> <bin_2><p_ed>"), None);
        // Every bin reads back as the f32 nearest k / 1000.
        for k in 0..=1000u32 {
            let t = format!("<b_st><bin_{k}> <bin_{k}> <bin_{k}> <bin_{k}><b_ed>");
            assert_eq!(target_box(&t), Some([k as f32 / 1000.0; 4]), "bin {k}");
        }
    }

    #[test]
    fn counts_are_read_from_box_and_mask_answers() {
        assert_eq!(target_count(""), Some(0));
        assert_eq!(target_count("  "), Some(0));
        assert_eq!(target_count("<b_st><bin_1> <bin_2> <bin_3> <bin_4><b_ed>"), Some(1));
        let two =
            "<b_st><bin_1> <bin_2> <bin_3> <bin_4><b_sep><bin_5> <bin_6> <bin_7> <bin_8><b_ed>";
        assert_eq!(target_count(two), Some(2));
        assert_eq!(target_count("[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6;0.1,0.1,0.2,0.2]"), Some(3));
        let four = "[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6;0.1,0.1,0.2,0.2;0.3,0.3,0.4,0.4]";
        assert_eq!(target_count(four), Some(3));
        assert_eq!(
            target_count("<m_st><bin_1> <bin_2> <bin_3> <bin_4> <bin_5> <bin_6><m_ed>"),
            Some(1)
        );
        assert_eq!(target_count("red"), None);
        assert_eq!(target_count("<p_st><bin_1> <bin_2><p_ed>"), None);
        assert_eq!(target_count("<b_st><bin_1>"), None);
    }

    #[test]
    fn boxes_are_read_from_decimal_answers_too() {
        assert_eq!(target_box("[0.396,0.115,0.677,0.396]"), Some([0.396, 0.115, 0.677, 0.396]));
        assert_eq!(target_box("[0.1,0.2,0.3,0.25,0.15,0.4]"), Some([0.1, 0.2, 0.3, 0.4]));
        assert_eq!(target_box("[0.1,0.2,0.3,0.4;0.5,0.5,0.6,0.6]"), None);
        assert_eq!(target_box("[0.5,0.5]"), None);
    }

    #[test]
    fn boxes_map_into_the_padded_square_and_onto_patches() {
        let png = |w: u32, h: u32| {
            let mut out = Vec::new();
            image::RgbImage::new(w, h)
                .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
                .unwrap();
            out
        };
        let b = [0.25, 0.5, 0.75, 1.0];
        assert_eq!(in_square_frame(b, &png(40, 40)), Some(b));
        // 40 x 20 sits 10 rows down a 40 x 40 canvas: y = (v * 20 + 10) / 40.
        assert_eq!(in_square_frame(b, &png(40, 20)), Some([0.25, 0.5, 0.75, 0.75]));
        assert_eq!(in_square_frame(b, &png(20, 40)), Some([0.375, 0.5, 0.625, 1.0]));
        assert_eq!(in_square_frame(b, b"not an image"), None);
        // A 2 x 2 grid: the class token first, then the patches row by row.
        assert_eq!(patch_cover([0.0, 0.0, 0.5, 0.5], 2), vec![0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(patch_cover([0.25, 0.5, 1.0, 1.0], 2), vec![0.0, 0.0, 0.0, 0.5, 1.0]);
    }

    /// A head that gives one class of every group whatever it reads scores the share of the
    /// scored patches that hold that class: colour, shape and size over the object patches,
    /// the background over all, on the scenes of the stream the seed names.
    #[test]
    fn patch_accuracy_is_the_share_of_patches_whose_class_the_head_gives() {
        let tmp = tempfile::tempdir().unwrap();
        let (opts, _) = super::super::test_model::tiny_fresh_model(tmp.path(), 1, |_| {});
        let (model, params) = super::super::build(&opts.out, None, 3, 0, &opts).unwrap();
        let weight = params.trained[HEAD_WEIGHT].as_tensor().zeros_like().unwrap();
        // Red, circle, small, and the first background texture.
        let picked = [1usize, 1, 1, 0];
        let mut bias = vec![0f32; outputs()];
        let mut col = 0;
        for (g, &width) in GROUPS.iter().enumerate() {
            bias[col + picked[g]] = 10.0;
            col += width;
        }
        let bias = Tensor::new(bias, &candle_core::Device::Cpu).unwrap();
        let got = patch_accuracy(&model, (&weight, &bias), 9, 5, 2).unwrap().patches;
        let (side, patch) = (48, model.config.vision_config.patch_size);
        let mut want = [(0usize, 0usize); 4];
        for i in 0..5 {
            let l = patch_labels(&scene::generate(9 ^ SCENE_SALT, i, side, MAX_OBJECTS), patch);
            for p in 0..l.covered.len() {
                for (g, w) in want.iter_mut().enumerate() {
                    if g == 3 || l.covered[p] > 0.0 {
                        w.0 += 1;
                        w.1 += usize::from(l.classes[g][p] as usize == picked[g]);
                    }
                }
            }
        }
        assert!(want[0].0 > 0 && want[3].0 == 5 * (side as usize / patch).pow(2));
        for g in 0..4 {
            assert_eq!(got[g].0, want[g].0, "group {g}");
            assert!((got[g].1 - want[g].1 as f64 / want[g].0 as f64).abs() < 1e-12, "group {g}");
        }
    }

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
        assert!(l.covered.contains(&1.0));
    }
}
