//! The LLaMA/Vicuna decoder (`language_model.*`) for batched generation: every row has its own
//! positions (left padding does not shift RoPE) and an attention mask that hides its padding.
//! The KV cache lives outside the weights ([`KvCache`]) so that generation can drop finished
//! rows and beams can reorder it.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};

use super::config::TextConfig;
use super::cpu::attention as cpu_attention;
use super::nn::{linear_b, rms_norm, rope as apply_rope, softmax_last_dim, Linear, Norm};

/// The magnitude of the additive mask for hidden positions: large enough that `exp` underflows
/// to exactly 0, finite so that a fully hidden row (a padding query) stays a number.
pub fn mask_fill_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => 6.0e4,
        _ => 1.0e30,
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    /// Qwen3's RMS norms of each head's queries and keys, before RoPE (absent in LLaMA).
    q_norm: Option<Norm>,
    k_norm: Option<Norm>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let (h, kvh) = (cfg.num_attention_heads, cfg.num_kv_heads());
        let b = cfg.attention_bias;
        Ok(Attention {
            q_proj: linear_b(d, h * hd, b, vb.pp("q_proj"))?,
            k_proj: linear_b(d, kvh * hd, b, vb.pp("k_proj"))?,
            v_proj: linear_b(d, kvh * hd, b, vb.pp("v_proj"))?,
            o_proj: linear_b(h * hd, d, b, vb.pp("o_proj"))?,
            q_norm: head_norm(cfg, &vb, "q_norm")?,
            k_norm: head_norm(cfg, &vb, "k_norm")?,
            heads: h,
            kv_heads: kvh,
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
        cache: &mut Option<LayerKv>,
    ) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let shape = |x: Tensor, heads| {
            x.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let q = shape(self.q_proj.forward(xs)?, self.heads)?;
        let k = shape(self.k_proj.forward(xs)?, self.kv_heads)?;
        let v = shape(self.v_proj.forward(xs)?, self.kv_heads)?;
        let q = match &self.q_norm {
            Some(n) => n.forward(&q)?,
            None => q,
        };
        let k = match &self.k_norm {
            Some(n) => n.forward(&k)?,
            None => k,
        };
        let q = apply_rope(&q, &rope.0, &rope.1)?;
        let k = apply_rope(&k, &rope.0, &rope.1)?;
        let (k, v) = match cache {
            Some(kv) => kv.append(&k, &v)?,
            None => {
                *cache = Some(LayerKv { len: t, keys: k.clone(), values: v.clone() });
                (k, v)
            }
        };
        let scale = (self.head_dim as f64).powf(-0.5);
        let token_major = |x: &Tensor| x.transpose(1, 2);
        if let Some(out) = cpu_attention::attention(
            &token_major(&q)?,
            &token_major(&k)?,
            &token_major(&v)?,
            Some(mask),
            scale,
        )? {
            return self.o_proj.forward(&out);
        }
        let rep = self.heads / self.kv_heads;
        let (k, v) = (repeat_kv(&k, rep)?, repeat_kv(&v, rep)?);
        let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        let att = softmax_last_dim(&att)?;
        let out = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, self.heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

fn head_norm(cfg: &TextConfig, vb: &VarBuilder, name: &str) -> Result<Option<Norm>> {
    if vb.contains_tensor(&format!("{name}.weight")) {
        Ok(Some(rms_norm(cfg.head_dim(), cfg.rms_norm_eps, vb.pp(name))?))
    } else {
        Ok(None)
    }
}

fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?.expand((b, h, rep, t, d))?.reshape((b, h * rep, t, d))
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        let (d, i, b) = (cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias);
        Ok(Mlp {
            gate_proj: linear_b(d, i, b, vb.pp("gate_proj"))?,
            up_proj: linear_b(d, i, b, vb.pp("up_proj"))?,
            down_proj: linear_b(i, d, b, vb.pp("down_proj"))?,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let g = self.gate_proj.forward(xs)?;
        self.down_proj.forward(&super::nn::swiglu_in_place(g, &self.up_proj.forward(xs)?)?)
    }
}

struct Block {
    input_layernorm: Norm,
    self_attn: Attention,
    post_attention_layernorm: Norm,
    mlp: Mlp,
}

/// Keys and values of one layer, [rows, kv_heads, capacity, head_dim], of which the first `len`
/// positions are filled. Decoding appends in place: concatenating instead copies the whole
/// cache at every step (26 MB per token at batch 8 of the benchmark model, ~2.5 ms).
struct LayerKv {
    keys: Tensor,
    values: Tensor,
    len: usize,
}

impl LayerKv {
    /// Appends [rows, kv_heads, t, head_dim] and returns views of everything so far.
    fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        if k.track_op() || v.track_op() || self.keys.track_op() || self.values.track_op() {
            // Autograd needs ops it can differentiate.
            self.keys = Tensor::cat(&[&self.filled(&self.keys)?, k], 2)?;
            self.values = Tensor::cat(&[&self.filled(&self.values)?, v], 2)?;
            self.len += t;
            return Ok((self.keys.clone(), self.values.clone()));
        }
        if self.len + t > self.keys.dim(2)? {
            // Doubling keeps the copies to O(1) per token.
            let capacity = (self.len + t).max(2 * self.len).max(64);
            self.keys = self.grown(&self.keys, capacity)?;
            self.values = self.grown(&self.values, capacity)?;
        }
        self.keys.slice_set(&k.contiguous()?, 2, self.len)?;
        self.values.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len += t;
        Ok((self.filled(&self.keys)?, self.filled(&self.values)?))
    }

    fn filled(&self, x: &Tensor) -> Result<Tensor> {
        x.narrow(2, 0, self.len)
    }

    fn grown(&self, x: &Tensor, capacity: usize) -> Result<Tensor> {
        let (b, h, _, d) = x.dims4()?;
        let buffer = Tensor::zeros((b, h, capacity, d), x.dtype(), x.device())?;
        buffer.slice_set(&self.filled(x)?.contiguous()?, 2, 0)?;
        Ok(buffer)
    }

    /// Room for `more` positions past those filled, without growing again.
    fn reserve(&mut self, more: usize) -> Result<()> {
        if self.keys.track_op() || self.values.track_op() {
            return Ok(());
        }
        let capacity = self.len + more;
        if capacity > self.keys.dim(2)? {
            self.keys = self.grown(&self.keys, capacity)?;
            self.values = self.grown(&self.values, capacity)?;
        }
        Ok(())
    }

    /// A copy of the given rows (reordered, or repeated), capacity kept, in a buffer of its
    /// own: buffers are written in place, so two caches never share one.
    fn rows(&self, rows: &Tensor) -> Result<LayerKv> {
        Ok(LayerKv {
            keys: self.keys.index_select(rows, 0)?,
            values: self.values.index_select(rows, 0)?,
            len: self.len,
        })
    }

    /// A copy without the first `n` positions; the room past the filled ones is kept.
    fn without_front(&self, n: usize) -> Result<LayerKv> {
        let tail = |x: &Tensor| -> Result<Tensor> {
            let (b, h, capacity, d) = x.dims4()?;
            let buffer = Tensor::zeros((b, h, capacity - n, d), x.dtype(), x.device())?;
            buffer.slice_set(&x.narrow(2, n, self.len - n)?.contiguous()?, 2, 0)?;
            Ok(buffer)
        };
        Ok(LayerKv { keys: tail(&self.keys)?, values: tail(&self.values)?, len: self.len - n })
    }
}

/// Per-layer keys and values of the rows being generated, [rows, kv_heads, T, head_dim].
#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
}

/// A deep copy: the cache's buffers are appended to in place.
impl Clone for KvCache {
    fn clone(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| l.as_ref().map(|kv| kv.without_front(0)).transpose())
            .collect::<Result<Vec<_>>>()
            .expect("copying a CPU or GPU tensor of the same shape does not fail");
        KvCache { layers }
    }
}

impl KvCache {
    pub fn new(layers: usize) -> Self {
        KvCache { layers: (0..layers).map(|_| None).collect() }
    }

    pub fn len(&self) -> usize {
        self.layers.first().and_then(|l| l.as_ref()).map_or(0, |kv| kv.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps (and reorders to) the given rows.
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for kv in self.layers.iter_mut().flatten() {
            *kv = kv.rows(rows)?;
        }
        Ok(())
    }

    /// Room for `more` positions in every layer: generation reserves what it may still add
    /// after the prompt, so that the cache is neither copied again nor doubled past its need.
    pub fn reserve(&mut self, more: usize) -> Result<()> {
        for kv in self.layers.iter_mut().flatten() {
            kv.reserve(more)?;
        }
        Ok(())
    }

    /// Drops the first `n` positions of every row (padding that no remaining row needs).
    pub fn drop_front(&mut self, n: usize) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        for kv in self.layers.iter_mut().flatten() {
            *kv = kv.without_front(n)?;
        }
        Ok(())
    }
}

pub struct Llama {
    embed_tokens: Embedding,
    blocks: Vec<Block>,
    norm: Norm,
    lm_head: Linear,
    inv_freq: Vec<f32>,
    head_dim: usize,
}

impl Llama {
    /// `vb` points at `language_model` (`model.*` and `lm_head` below it).
    pub fn new(cfg: &TextConfig, vb: VarBuilder) -> Result<Self> {
        Self::from_parts(cfg, vb.pp("model"), vb)
    }

    /// The decoder's tensors under `m` (`embed_tokens`, `layers`, `norm`) and `lm_head` under
    /// `head`: checkpoints of other families keep the two apart.
    pub fn from_parts(cfg: &TextConfig, m: VarBuilder, head: VarBuilder) -> Result<Self> {
        let embed_tokens = embedding(cfg.vocab_size, cfg.hidden_size, m.pp("embed_tokens"))?;
        let blocks = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = m.pp("layers").pp(i);
                Ok(Block {
                    input_layernorm: rms_norm(
                        cfg.hidden_size,
                        cfg.rms_norm_eps,
                        l.pp("input_layernorm"),
                    )?,
                    self_attn: Attention::new(cfg, l.pp("self_attn"))?,
                    post_attention_layernorm: rms_norm(
                        cfg.hidden_size,
                        cfg.rms_norm_eps,
                        l.pp("post_attention_layernorm"),
                    )?,
                    mlp: Mlp::new(cfg, l.pp("mlp"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lm_head = if cfg.tie_word_embeddings && !head.contains_tensor("lm_head.weight") {
            Linear::new(embed_tokens.embeddings().clone(), None)
        } else {
            Linear::new(head.pp("lm_head").get((cfg.vocab_size, cfg.hidden_size), "weight")?, None)
        };
        let hd = cfg.head_dim();
        let theta = cfg.rope_theta() as f32;
        // As transformers computes it: float32 powers of the base.
        let inv_freq = (0..hd).step_by(2).map(|i| 1.0 / theta.powf(i as f32 / hd as f32)).collect();
        Ok(Llama {
            embed_tokens,
            blocks,
            norm: rms_norm(cfg.hidden_size, cfg.rms_norm_eps, m.pp("norm"))?,
            lm_head,
            inv_freq,
            head_dim: hd,
        })
    }

    pub fn layers(&self) -> usize {
        self.blocks.len()
    }

    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    /// cos/sin [rows, t, head_dim / 2] for multimodal RoPE: frequency `i` turns with the
    /// position on axis `axis_of[i]` (0 temporal, 1 height, 2 width) of `positions[r][axis]`.
    pub fn mrope_tables(
        &self,
        positions: &[[Vec<u32>; 3]],
        axis_of: &[usize],
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let rows = positions.len();
        let t = positions.first().map_or(0, |p| p[0].len());
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(rows * t * half);
        let mut sin = Vec::with_capacity(rows * t * half);
        for row in positions {
            for j in 0..t {
                for (&f, &axis) in self.inv_freq.iter().zip(axis_of) {
                    let a = row[axis].get(j).copied().unwrap_or(0) as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let cos = Tensor::from_vec(cos, (rows, t, half), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (rows, t, half), dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// cos/sin [rows, t, head_dim / 2] for each row's own positions.
    fn rope_tables(
        &self,
        positions: &[Vec<u32>],
        dtype: DType,
        dev: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let rows = positions.len();
        let t = positions.first().map_or(0, |p| p.len());
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(rows * t * half);
        let mut sin = Vec::with_capacity(rows * t * half);
        for row in positions {
            for &p in row {
                for &f in &self.inv_freq {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let cos = Tensor::from_vec(cos, (rows, t, half), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (rows, t, half), dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// Runs `embeds` [rows, t, hidden] after what `cache` holds.
    ///
    /// `positions[r]` are row r's RoPE positions for the t new tokens; `key_pad[r]` is how many
    /// leading cache+new positions of row r are padding (hidden from every query). The new tokens
    /// attend causally. Returns logits [rows, t, vocab] (`all`) or [rows, vocab] for the last
    /// position.
    pub fn forward(
        &self,
        embeds: &Tensor,
        positions: &[Vec<u32>],
        key_pad: &[usize],
        cache: &mut KvCache,
        all: bool,
    ) -> Result<Tensor> {
        let xs = self.hidden_states(embeds, positions, key_pad, cache)?;
        let t = xs.dim(1)?;
        if all {
            self.logits(&xs)
        } else {
            self.logits(&xs.narrow(1, t - 1, 1)?)?.squeeze(1)
        }
    }

    /// The decoder's final (normed) hidden states [rows, t, hidden]; arguments as `forward`.
    pub fn hidden_states(
        &self,
        embeds: &Tensor,
        positions: &[Vec<u32>],
        key_pad: &[usize],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let rope = self.rope_tables(positions, embeds.dtype(), embeds.device())?;
        self.hidden_states_with(embeds, &rope, key_pad, cache, &mut |_, xs| Ok(xs))
    }

    /// [`hidden_states`](Self::hidden_states) with the rotary tables given, and `after_layer(k,
    /// xs)` applied to the output of every layer k (Qwen3-VL adds DeepStack features there).
    pub fn hidden_states_with(
        &self,
        embeds: &Tensor,
        rope: &(Tensor, Tensor),
        key_pad: &[usize],
        cache: &mut KvCache,
        after_layer: &mut dyn FnMut(usize, Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let (rows, t, _) = embeds.dims3()?;
        let dev = embeds.device();
        let dtype = embeds.dtype();
        let past = cache.len();
        let total = past + t;
        let fill = mask_fill_value(dtype) as f32;
        let mut mask = Vec::with_capacity(rows * t * total);
        for &pad in key_pad.iter().take(rows) {
            for i in 0..t {
                for j in 0..total {
                    let hidden = j < pad || j > past + i;
                    mask.push(if hidden { -fill } else { 0.0 });
                }
            }
        }
        let mask = Tensor::from_vec(mask, (rows, 1, t, total), dev)?.to_dtype(dtype)?;
        let mut xs = embeds.clone();
        for (k, (block, layer_cache)) in self.blocks.iter().zip(cache.layers.iter_mut()).enumerate()
        {
            let h = block.self_attn.forward(
                &block.input_layernorm.forward(&xs)?,
                rope,
                &mask,
                layer_cache,
            )?;
            let h = (h + &xs)?;
            xs = after_layer(
                k,
                (block.mlp.forward(&block.post_attention_layernorm.forward(&h)?)? + h)?,
            )?;
        }
        self.norm.forward(&xs)
    }

    /// Vocabulary logits of hidden states [..., hidden].
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }

    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.embeddings().dim(D::Minus1).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seed: f32, t: usize) -> Tensor {
        (Tensor::arange(0f32, (2 * 3 * t * 4) as f32, &Device::Cpu).unwrap() + seed as f64)
            .unwrap()
            .reshape((2, 3, t, 4))
            .unwrap()
    }

    fn same(a: &Tensor, b: &Tensor) -> bool {
        a.dims() == b.dims()
            && a.flatten_all().unwrap().to_vec1::<f32>().unwrap()
                == b.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    /// In-place appends (past the first buffer's capacity) hold what concatenation would; a
    /// clone, a row selection and a front drop are independent copies.
    #[test]
    fn appends_in_place_and_copies_are_independent() {
        let mut kv = LayerKv { keys: part(0., 5), values: part(100., 5), len: 5 };
        let (mut want_k, mut want_v) = (part(0., 5), part(100., 5));
        for step in 0..70 {
            let (k, v) = (part(1000. * step as f32, 1), part(-1000. * step as f32, 1));
            let (got_k, got_v) = kv.append(&k, &v).unwrap();
            want_k = Tensor::cat(&[&want_k, &k], 2).unwrap();
            want_v = Tensor::cat(&[&want_v, &v], 2).unwrap();
            assert!(same(&got_k, &want_k) && same(&got_v, &want_v), "step {step}");
        }
        let mut cache = KvCache { layers: vec![Some(kv)] };
        let snapshot = cache.clone();
        let rows = Tensor::new(&[1u32, 1, 0], &Device::Cpu).unwrap();
        let mut picked = KvCache {
            layers: vec![Some(snapshot.layers[0].as_ref().unwrap().rows(&rows).unwrap())],
        };
        let layer = |c: &mut KvCache, x: f32| {
            let kv = c.layers[0].as_mut().unwrap();
            let n = kv.keys.dim(0).unwrap();
            let extra = part(x, 1).narrow(0, 0, 1).unwrap().repeat((n, 1, 1, 1)).unwrap();
            kv.append(&extra, &extra).unwrap()
        };
        layer(&mut cache, 7.);
        let (k_picked, _) = layer(&mut picked, 9.);
        let (k_snap, _) = layer(&mut cache.clone(), 8.);
        // Appending to one copy changed none of the others.
        assert!(same(&k_picked.narrow(2, 0, 75).unwrap(), &want_k.index_select(&rows, 0).unwrap()));
        assert!(same(&k_snap.narrow(2, 0, 75).unwrap(), &want_k));
        let keys = |c: &KvCache| {
            let kv = c.layers[0].as_ref().unwrap();
            kv.filled(&kv.keys).unwrap()
        };
        assert!(same(&keys(&cache).narrow(2, 0, 75).unwrap(), &want_k));
        // 76 filled in a doubled buffer of 128: room for 60 more means growing to 136.
        let capacity = |c: &KvCache| c.layers[0].as_ref().unwrap().keys.dim(2).unwrap();
        assert_eq!(capacity(&cache), 128);
        cache.reserve(60).unwrap();
        assert_eq!(capacity(&cache), 76 + 60);
        cache.drop_front(10).unwrap();
        assert_eq!(cache.len(), 66);
        assert!(same(&keys(&cache).narrow(2, 0, 65).unwrap(), &want_k.narrow(2, 10, 65).unwrap()));
        // Dropping the front keeps the room reserved past the filled positions.
        assert_eq!(capacity(&cache), 66 + 60);
        for _ in 0..60 {
            layer(&mut cache, 1.);
        }
        assert_eq!(capacity(&cache), 126);
    }
}
