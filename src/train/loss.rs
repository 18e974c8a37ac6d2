//! The training loss: the cross-entropy of the answer tokens, averaged per sample, plus (with a
//! coordinate weight) an L1 loss on the coordinate that each `<bin_k>` answer token's
//! distribution over the bins expects.

use std::collections::HashMap;

use anyhow::Result;
use candle_core::{Tensor, D};

use super::data::{encode, Encoded, Sample};
use super::AnswerLoss;
use crate::model::generate::{left_pad, prefill_positions};
use crate::model::llama::KvCache;
use crate::model::prompt::{Piece, Template};
use crate::model::VistaModel;

/// The model inputs of every image of `batch` in order: pixel values [images, 3, S, S] and the
/// Q-Former ids and mask of each image's sample; None when no sample has an image.
pub(super) fn image_inputs(
    model: &VistaModel,
    batch: &[&Encoded],
) -> candle_core::Result<Option<(Tensor, Tensor, Tensor)>> {
    let mut pixels = Vec::new();
    let mut qrows = Vec::new();
    for e in batch {
        for img in &e.images {
            pixels.push(
                model
                    .preprocess
                    .run(
                        img,
                        Template::VicunaV1.pads_to_square(),
                        vista_udfs::limits::DEFAULT_MAX_IMAGE_PIXELS,
                    )
                    .map_err(candle_core::Error::Msg)?,
            );
            qrows.push(e.qformer_ids.clone());
        }
    }
    if pixels.is_empty() {
        return Ok(None);
    }
    let (qids, qmask) = model.qformer_batch(&qrows)?;
    Ok(Some((model.pixel_tensor(pixels)?, qids, qmask)))
}

/// The image tokens [images, Q, hidden] of every image of `batch` in order, each read with its
/// sample's instruction; None when no sample has an image.
pub(super) fn image_tokens(
    model: &VistaModel,
    batch: &[&Encoded],
) -> candle_core::Result<Option<Tensor>> {
    image_inputs(model, batch)?
        .map(|(pixels, qids, qmask)| model.net.image_tokens(&pixels, &qids, &qmask))
        .transpose()
}

/// The answer-token loss of a batch: mean over samples of each sample's mean token NLL, or with
/// [`AnswerLoss::Token`] the mean NLL over every answer token of the batch (transformers'
/// language-model loss). Per sample, a one-token answer's token weighs as much as a whole 40-token answer, so
/// the first token of "no target" (the end token) outweighs the `<b_st>` that opens a list of
/// boxes many times over; per token, every decision weighs the same. With
/// `coord_weight` > 0, every answer token that is a coordinate `<bin_k>` also pays
/// `coord_weight` x |E[j] - k| / 1000, E over the bins' softmax at that position, weighted as
/// its NLL is. The cross-entropy alone scores bin 741 against a target of 740 as wrong as bin
/// 10; the expected coordinate's gradient moves the mass towards the target from either side,
/// in proportion to how far each bin is.
pub(super) fn batch_loss(
    model: &VistaModel,
    batch: &[&Encoded],
    coord_weight: f64,
    mode: AnswerLoss,
) -> candle_core::Result<Tensor> {
    let dev = &model.device;
    let image_tokens = image_tokens(model, batch)?;
    let mut rows = Vec::with_capacity(batch.len());
    let mut first = 0;
    for e in batch {
        let n = e.prompt.pieces.iter().filter(|p| matches!(p, Piece::Image(_))).count();
        let toks = (0..n)
            .map(|k| image_tokens.as_ref().expect("rows with images").get(first + k))
            .collect::<candle_core::Result<Vec<_>>>()?;
        first += n;
        let prompt = model.prompt_embeds(&e.prompt, &toks)?;
        let inputs = &e.answer[..e.answer.len() - 1];
        rows.push(if inputs.is_empty() {
            prompt
        } else {
            Tensor::cat(&[&prompt, &model.net.llm.embed(&Tensor::new(inputs, dev)?)?], 0)?
        });
    }
    let (embeds, pads) = left_pad(&rows)?;
    let (b, t, d) = embeds.dims3()?;
    let positions = prefill_positions(t, &pads);
    let hidden = model.net.llm.hidden_states(
        &embeds,
        &positions,
        &pads,
        &mut KvCache::new(model.net.llm.layers()),
    )?;
    let mut index = Vec::new();
    let mut targets = Vec::new();
    let lens: Vec<usize> = batch.iter().map(|e| e.answer.len()).collect();
    let weights = token_weights(&lens, mode);
    for (r, e) in batch.iter().enumerate() {
        let prompt_len = rows[r].dim(0)? + 1 - e.answer.len();
        let start = r * t + pads[r] + prompt_len - 1;
        for (i, &tok) in e.answer.iter().enumerate() {
            index.push((start + i) as u32);
            targets.push(tok);
        }
    }
    let n = index.len();
    let picked = hidden.reshape((b * t, d))?.index_select(&Tensor::new(index, dev)?, 0)?;
    let logits = model.net.llm.logits(&picked)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let coord = if coord_weight > 0.0 {
        coordinate_l1(&logits, &targets, &weights, model.text.bin_ids())?
    } else {
        None
    };
    let nll = logp.gather(&Tensor::from_vec(targets, (n, 1), dev)?, 1)?.neg()?.squeeze(1)?;
    let loss = (nll * Tensor::new(weights, dev)?)?.sum_all()?;
    match coord {
        Some(l1) => loss + (l1 * coord_weight)?,
        None => Ok(loss),
    }
}

/// Each answer token's weight in [`batch_loss`], in batch order, for answers of `lens` tokens:
/// 1 / (len x samples) per sample, 1 / all tokens per token.
fn token_weights(lens: &[usize], mode: AnswerLoss) -> Vec<f32> {
    let total: usize = lens.iter().sum();
    lens.iter()
        .flat_map(|&len| {
            let w = match mode {
                AnswerLoss::Sample => 1.0 / (len as f32 * lens.len() as f32),
                AnswerLoss::Token => 1.0 / total as f32,
            };
            std::iter::repeat_n(w, len)
        })
        .collect()
}

/// The weighted sum, over the rows of `logits` whose target is a bin, of |E[j] - k| / (bins - 1):
/// E the coordinate expected under the softmax over the bins' logits, k the target's bin. None
/// when no target is a bin.
fn coordinate_l1(
    logits: &Tensor,
    targets: &[u32],
    weights: &[f32],
    bins: &[u32],
) -> candle_core::Result<Option<Tensor>> {
    let dev = logits.device();
    let of_bin: HashMap<u32, usize> = bins.iter().enumerate().map(|(k, &id)| (id, k)).collect();
    let scale = (bins.len().max(2) - 1) as f32;
    let (mut rows, mut goal, mut w) = (Vec::new(), Vec::new(), Vec::new());
    for (i, t) in targets.iter().enumerate() {
        if let Some(&k) = of_bin.get(t) {
            rows.push(i as u32);
            goal.push(k as f32 / scale);
            w.push(weights[i]);
        }
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let m = rows.len();
    let at_bins = logits
        .index_select(&Tensor::new(rows, dev)?, 0)?
        .index_select(&Tensor::new(bins, dev)?, 1)?;
    let p = crate::model::nn::softmax_last_dim(&at_bins)?;
    let coords: Vec<f32> = (0..bins.len()).map(|k| k as f32 / scale).collect();
    let expected = p.matmul(&Tensor::from_vec(coords, (bins.len(), 1), dev)?)?.squeeze(1)?;
    let l1 = (expected - Tensor::from_vec(goal, m, dev)?)?.abs()?;
    Ok(Some((l1 * Tensor::from_vec(w, m, dev)?)?.sum_all()?))
}

/// The mean answer loss of `samples` under `model` (batches of `batch_size`); no gradients are
/// kept when the model's weights are plain tensors.
pub fn answer_loss(model: &VistaModel, samples: &[Sample], batch_size: usize) -> Result<f64> {
    let encoded = samples
        .iter()
        .map(|s| encode(model, s).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let mut total = 0.0;
    for chunk in encoded.chunks(batch_size.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        total += batch_loss(model, &refs, 0.0, AnswerLoss::Sample)?.to_scalar::<f32>()? as f64
            * chunk.len() as f64;
    }
    Ok(total / encoded.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_answer_weighs_as_a_long_one_per_sample_and_as_one_token_per_token() {
        // "No target" (the end token alone) beside a box answer of 3 tokens.
        let (sample, token) = (AnswerLoss::Sample, AnswerLoss::Token);
        assert_eq!(token_weights(&[1, 3], sample), [0.5, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0]);
        assert_eq!(token_weights(&[1, 3], token), [0.25; 4]);
        assert_eq!(token_weights(&[2, 2], token), token_weights(&[2, 2], sample));
    }

    #[test]
    fn the_coordinate_loss_is_the_expected_bins_distance_to_the_target() {
        let dev = candle_core::Device::Cpu;
        // Vocabulary of 6: ids 2, 3, 4 are bins 0, 1, 2 (coordinates 0, 0.5, 1).
        let bins = [2u32, 3, 4];
        let ln2 = std::f32::consts::LN_2;
        let logits = Tensor::new(
            &[
                [9.0f32, 0.0, 0.0, 0.0, 0.0, 7.0], // bins uniform: E = 0.5, target bin 0
                [0.0, 0.0, 0.0, ln2, ln2, 0.0],    // p = 1/5, 2/5, 2/5: E = 0.6, target bin 2
                [0.0, 0.0, 5.0, 0.0, 0.0, 0.0],    // target 5 is no bin: left out
            ],
            &dev,
        )
        .unwrap();
        let logits = candle_core::Var::from_tensor(&logits).unwrap();
        let l1 = coordinate_l1(&logits, &[2, 4, 5], &[1.0, 0.5, 1.0], &bins).unwrap().unwrap();
        let want = 0.5 * 1.0 + 0.4 * 0.5;
        assert!((l1.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        // The gradient moves each row's mass towards its target bin: up for the target, down
        // for the farthest bin; rows and columns outside the bins get none.
        let grads = l1.backward().unwrap();
        let g: Vec<Vec<f32>> = grads.get(logits.as_tensor()).unwrap().to_vec2().unwrap();
        assert!(g[0][2] < 0.0 && g[0][4] > 0.0, "{:?}", g[0]);
        assert!(g[1][4] < 0.0 && g[1][2] > 0.0, "{:?}", g[1]);
        assert!(g.iter().all(|r| r[0] == 0.0 && r[1] == 0.0 && r[5] == 0.0));
        assert!(g[2].iter().all(|&v| v == 0.0));
        assert!(coordinate_l1(&logits, &[0, 1, 5], &[1.0; 3], &bins).unwrap().is_none());
    }
}
