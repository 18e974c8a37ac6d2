//! The instruction-guided image tokenizer: InstructBLIP's BERT-style Q-Former (`qformer.*`).
//! The learned queries and the instruction's tokens share self-attention; only the queries
//! cross-attend to the image (every `cross_attention_frequency` layers) and only their outputs
//! are kept.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, Embedding, VarBuilder};

use super::config::QFormerConfig;
use super::cpu::attention as cpu_attention;
use super::nn::{layer_norm, linear, softmax_last_dim, Linear, Norm};

struct MultiHeadAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    heads: usize,
    scale: f64,
}

impl MultiHeadAttention {
    fn new(cfg: &QFormerConfig, kv_size: usize, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(MultiHeadAttention {
            query: linear(d, d, vb.pp("query"))?,
            key: linear(kv_size, d, vb.pp("key"))?,
            value: linear(kv_size, d, vb.pp("value"))?,
            heads: cfg.num_attention_heads,
            scale: ((d / cfg.num_attention_heads) as f64).powf(-0.5),
        })
    }

    fn split(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        xs.reshape((b, t, self.heads, d / self.heads))?.transpose(1, 2)?.contiguous()
    }

    /// `mask`: additive, broadcastable to [b, heads, t, s]. With `probs`, the attention
    /// probabilities [b, heads, t, s] are pushed onto it (the fused kernel does not form them).
    fn forward(
        &self,
        xs: &Tensor,
        kv: &Tensor,
        mask: Option<&Tensor>,
        probs: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        let (q, k, v) = (self.query.forward(xs)?, self.key.forward(kv)?, self.value.forward(kv)?);
        let heads = |x: &Tensor| {
            let (b, t, d) = x.dims3()?;
            x.reshape((b, t, self.heads, d / self.heads))
        };
        if probs.is_none() {
            if let Some(out) =
                cpu_attention::attention(&heads(&q)?, &heads(&k)?, &heads(&v)?, mask, self.scale)?
            {
                return Ok(out);
            }
        }
        let (q, k, v) = (self.split(&q)?, self.split(&k)?, self.split(&v)?);
        let mut att = (q.matmul(&k.t()?)? * self.scale)?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = softmax_last_dim(&att)?;
        if let Some(p) = probs {
            p.push(att.clone());
        }
        att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))
    }
}

/// Attention plus its output block (dense, residual, LayerNorm).
struct AttentionBlock {
    attention: MultiHeadAttention,
    dense: Linear,
    norm: Norm,
}

impl AttentionBlock {
    fn new(cfg: &QFormerConfig, kv_size: usize, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(AttentionBlock {
            attention: MultiHeadAttention::new(cfg, kv_size, vb.pp("attention"))?,
            dense: linear(d, d, vb.pp("output").pp("dense"))?,
            norm: layer_norm(d, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        kv: &Tensor,
        mask: Option<&Tensor>,
        probs: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let a = self.attention.forward(xs, kv, mask, probs)?;
        self.norm.forward(&(self.dense.forward(&a)? + xs)?)
    }
}

struct FeedForward {
    intermediate: Linear,
    output: Linear,
    norm: Norm,
}

impl FeedForward {
    fn new(cfg: &QFormerConfig, vb_in: VarBuilder, vb_out: VarBuilder) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(FeedForward {
            intermediate: linear(d, i, vb_in.pp("dense"))?,
            output: linear(i, d, vb_out.pp("dense"))?,
            norm: layer_norm(d, cfg.layer_norm_eps, vb_out.pp("LayerNorm"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = super::nn::gelu_erf_in_place(self.intermediate.forward(xs)?)?;
        self.norm.forward(&(self.output.forward(&h)? + xs)?)
    }
}

struct Layer {
    attention: AttentionBlock,
    crossattention: Option<AttentionBlock>,
    ffn_text: FeedForward,
    ffn_query: FeedForward,
}

impl Layer {
    fn new(cfg: &QFormerConfig, index: usize, vb: VarBuilder) -> Result<Self> {
        let crossattention = if index.is_multiple_of(cfg.cross_attention_frequency) {
            Some(AttentionBlock::new(cfg, cfg.encoder_hidden_size, vb.pp("crossattention"))?)
        } else {
            None
        };
        Ok(Layer {
            attention: AttentionBlock::new(cfg, cfg.hidden_size, vb.pp("attention"))?,
            crossattention,
            ffn_text: FeedForward::new(cfg, vb.pp("intermediate"), vb.pp("output"))?,
            ffn_query: FeedForward::new(cfg, vb.pp("intermediate_query"), vb.pp("output_query"))?,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        image: &Tensor,
        queries: usize,
        cross_probs: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let a = self.attention.forward(xs, xs, Some(mask), None)?;
        let total = a.dim(1)?;
        let mut q = a.narrow(1, 0, queries)?;
        if let Some(cross) = &self.crossattention {
            q = cross.forward(&q, image, None, cross_probs)?;
        }
        let q = self.ffn_query.forward(&q)?;
        if total > queries {
            let text = self.ffn_text.forward(&a.narrow(1, queries, total - queries)?)?;
            Tensor::cat(&[&q, &text], 1)
        } else {
            Ok(q)
        }
    }
}

pub struct QFormer {
    word_embeddings: Embedding,
    position_embeddings: Tensor,
    layernorm: Norm,
    layers: Vec<Layer>,
}

impl QFormer {
    pub fn new(cfg: &QFormerConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, i, vb.pp("encoder").pp("layer").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(QFormer {
            word_embeddings: embedding(cfg.vocab_size, d, emb.pp("word_embeddings"))?,
            position_embeddings: emb
                .pp("position_embeddings")
                .get((cfg.max_position_embeddings, d), "weight")?,
            layernorm: layer_norm(d, cfg.layer_norm_eps, emb.pp("layernorm"))?,
            layers,
        })
    }

    /// query_tokens [n, Q, d]; input_ids [n, L] (right-padded); text_mask [n, L] (1 = real, as
    /// the model dtype); image [n, patches + 1, encoder_hidden]. Returns the query outputs [n, Q, d].
    pub fn forward(
        &self,
        query_tokens: &Tensor,
        input_ids: &Tensor,
        text_mask: &Tensor,
        image: &Tensor,
    ) -> Result<Tensor> {
        self.run(query_tokens, input_ids, text_mask, image, None)
    }

    /// [`QFormer::forward`], also returning every cross-attention layer's probabilities
    /// [n, heads, Q, patches + 1] (for training losses on where the queries look).
    pub fn forward_with_cross_attention(
        &self,
        query_tokens: &Tensor,
        input_ids: &Tensor,
        text_mask: &Tensor,
        image: &Tensor,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut probs = Vec::new();
        let out = self.run(query_tokens, input_ids, text_mask, image, Some(&mut probs))?;
        Ok((out, probs))
    }

    fn run(
        &self,
        query_tokens: &Tensor,
        input_ids: &Tensor,
        text_mask: &Tensor,
        image: &Tensor,
        mut cross_probs: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (n, queries, _) = query_tokens.dims3()?;
        let len = input_ids.dim(1)?;
        let words = self.word_embeddings.forward(input_ids)?;
        let pos = self.position_embeddings.narrow(0, 0, len)?.unsqueeze(0)?;
        let text = words.broadcast_add(&pos)?;
        let mut xs = self.layernorm.forward(&Tensor::cat(&[query_tokens, &text], 1)?)?;
        let ones = Tensor::ones((n, queries), text_mask.dtype(), text_mask.device())?;
        let keep = Tensor::cat(&[&ones, text_mask], 1)?;
        // Additive mask [n, 1, 1, Q + L]: 0 where attended, a large negative where padded.
        let mask = ((keep - 1.0)? * super::llama::mask_fill_value(xs.dtype()))?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, image, queries, cross_probs.as_deref_mut())?;
        }
        xs.narrow(1, 0, queries)
    }
}
