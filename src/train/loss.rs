//! The training loss: the cross-entropy of the answer tokens, averaged per sample.

use anyhow::Result;
use candle_core::{Tensor, D};

use super::data::{encode, Encoded, Sample};
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

/// The answer-token loss of a batch: mean over samples of each sample's mean token NLL.
pub(super) fn batch_loss(model: &VistaModel, batch: &[&Encoded]) -> candle_core::Result<Tensor> {
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
    let mut weights = Vec::new();
    for (r, e) in batch.iter().enumerate() {
        let prompt_len = rows[r].dim(0)? + 1 - e.answer.len();
        let start = r * t + pads[r] + prompt_len - 1;
        for (i, &tok) in e.answer.iter().enumerate() {
            index.push((start + i) as u32);
            targets.push(tok);
            weights.push(1.0 / (e.answer.len() as f32 * b as f32));
        }
    }
    let n = index.len();
    let picked = hidden.reshape((b * t, d))?.index_select(&Tensor::new(index, dev)?, 0)?;
    let logp = candle_nn::ops::log_softmax(&model.net.llm.logits(&picked)?, D::Minus1)?;
    let nll = logp.gather(&Tensor::from_vec(targets, (n, 1), dev)?, 1)?.neg()?.squeeze(1)?;
    (nll * Tensor::new(weights, dev)?)?.sum_all()
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
        total += batch_loss(model, &refs)?.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    Ok(total / encoded.len().max(1) as f64)
}
