//! The whole network as `InstructBlipForConditionalGeneration` lays it out: vision encoder,
//! query tokens, Q-Former, language projection and the decoder.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::Config;
use super::llama::Llama;
use super::nn::{linear, Linear};
use super::qformer::QFormer;
use super::vision::VisionModel;

pub struct InstructBlip {
    pub vision: VisionModel,
    query_tokens: Tensor,
    pub qformer: QFormer,
    language_projection: Linear,
    pub llm: Llama,
}

impl InstructBlip {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let qd = cfg.qformer_config.hidden_size;
        Ok(InstructBlip {
            vision: VisionModel::new(&cfg.vision_config, vb.pp("vision_model"))?,
            query_tokens: vb.get((1, cfg.num_query_tokens, qd), "query_tokens")?,
            qformer: QFormer::new(&cfg.qformer_config, vb.pp("qformer"))?,
            language_projection: linear(
                qd,
                cfg.text_config.hidden_size,
                vb.pp("language_projection"),
            )?,
            llm: Llama::new(&cfg.text_config, vb.pp("language_model"))?,
        })
    }

    /// The learned query tokens, one copy per image [n, Q, qformer_hidden].
    fn queries(&self, n: usize) -> Result<Tensor> {
        let (_, q, d) = self.query_tokens.dims3()?;
        self.query_tokens.expand((n, q, d))?.contiguous()
    }

    /// Q-Former query outputs [n, Q, qformer_hidden] for images already through the encoder.
    pub fn query_outputs(
        &self,
        image_features: &Tensor,
        qformer_ids: &Tensor,
        qformer_mask: &Tensor,
    ) -> Result<Tensor> {
        let queries = self.queries(image_features.dim(0)?)?;
        self.qformer.forward(&queries, qformer_ids, qformer_mask, image_features)
    }

    /// Image tokens for the language model [n, Q, text_hidden] of images already through the
    /// encoder, and every Q-Former cross-attention layer's probabilities [n, heads, Q, patches
    /// + 1] (a training loss on where the queries look needs them).
    pub fn image_tokens_with_cross_attention(
        &self,
        image_features: &Tensor,
        qformer_ids: &Tensor,
        qformer_mask: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let queries = self.queries(image_features.dim(0)?)?;
        let (out, probs) = self.qformer.forward_with_cross_attention(
            &queries,
            qformer_ids,
            qformer_mask,
            image_features,
        )?;
        Ok((self.language_projection.forward(&out)?, probs))
    }

    /// Image tokens for the language model [n, Q, text_hidden]: pixel_values [n, 3, S, S], each
    /// image with the (right-padded) Q-Former ids of its row's instruction. On the CPU the
    /// encoder runs `CPU_IMAGE_CHUNK` images at a time: GEMMs of 4 x 257 rows already run at
    /// full speed, and the activations of a whole micro-batch would otherwise dominate memory.
    pub fn image_tokens(
        &self,
        pixel_values: &Tensor,
        qformer_ids: &Tensor,
        qformer_mask: &Tensor,
    ) -> Result<Tensor> {
        let n = pixel_values.dim(0)?;
        let chunk = if pixel_values.device().is_cpu() { CPU_IMAGE_CHUNK } else { n.max(1) };
        let mut parts = Vec::with_capacity(n.div_ceil(chunk));
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let feats = self.vision.forward(&pixel_values.narrow(0, start, len)?)?;
            let q = self.query_outputs(
                &feats,
                &qformer_ids.narrow(0, start, len)?,
                &qformer_mask.narrow(0, start, len)?,
            )?;
            parts.push(self.language_projection.forward(&q)?);
        }
        Tensor::cat(&parts, 0)
    }
}

const CPU_IMAGE_CHUNK: usize = 4;
