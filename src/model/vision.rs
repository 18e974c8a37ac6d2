//! The EVA ViT-g/14 image encoder of InstructBLIP (`vision_model.*`), with its post-LayerNorm,
//! and the same pre-LN ViT as LLaVA's CLIP tower (`VisionModel::clip`: separate q/k/v
//! projections fused on load, QuickGELU, a LayerNorm before the first layer, hidden states of
//! any layer).

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::config::VisionConfig;
use super::cpu::attention as cpu_attention;
use super::nn::{layer_norm, linear, quick_gelu_in_place, softmax_last_dim, Linear, Norm};

struct Attention {
    qkv: Linear,
    projection: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let qkv_vb = vb.pp("qkv");
        let weight = qkv_vb.get((3 * d, d), "weight")?;
        // transformers >= 4.4x stores the fused bias; older checkpoints store q_bias and v_bias
        // (the key bias is zero by construction).
        let bias = if !cfg.qkv_bias {
            None
        } else if qkv_vb.contains_tensor("bias") {
            Some(qkv_vb.get(3 * d, "bias")?)
        } else {
            let q = vb.get(d, "q_bias")?;
            let v = vb.get(d, "v_bias")?;
            Some(Tensor::cat(&[&q, &q.zeros_like()?, &v], 0)?)
        };
        Ok(Attention {
            qkv: Linear::new(weight, bias),
            projection: linear(d, d, vb.pp("projection"))?,
            heads: cfg.num_attention_heads,
            scale: ((d / cfg.num_attention_heads) as f64).powf(-0.5),
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, t, d) = xs.dims3()?;
        let hd = d / self.heads;
        let qkv = self.qkv.forward(xs)?.reshape((b, t, 3, self.heads, hd))?;
        let part = |i| qkv.narrow(2, i, 1)?.squeeze(2);
        if let Some(out) =
            cpu_attention::attention(&part(0)?, &part(1)?, &part(2)?, None, self.scale)?
        {
            return self.projection.forward(&out);
        }
        let qkv = qkv.permute((2, 0, 3, 1, 4))?;
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let att = (q.matmul(&k.t()?)? * self.scale)?;
        let att = softmax_last_dim(&att)?;
        let out = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.projection.forward(&out)
    }
}

/// The MLP's activation: EVA's exact GELU or CLIP's QuickGELU.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Activation {
    GeluErf,
    QuickGelu,
}

struct Layer {
    self_attn: Attention,
    layer_norm1: Norm,
    fc1: Linear,
    fc2: Linear,
    layer_norm2: Norm,
    activation: Activation,
}

impl Layer {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let (d, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        Ok(Layer {
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            layer_norm1: layer_norm(d, eps, vb.pp("layer_norm1"))?,
            fc1: linear(d, i, vb.pp("mlp").pp("fc1"))?,
            fc2: linear(i, d, vb.pp("mlp").pp("fc2"))?,
            layer_norm2: layer_norm(d, eps, vb.pp("layer_norm2"))?,
            activation: Activation::GeluErf,
        })
    }

    /// A CLIP encoder layer: q/k/v/out projections (fused here into one qkv), QuickGELU.
    fn clip(d: usize, i: usize, heads: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let a = vb.pp("self_attn");
        let part = |name: &str| -> Result<(Tensor, Tensor)> {
            Ok((a.pp(name).get((d, d), "weight")?, a.pp(name).get(d, "bias")?))
        };
        let (q, k, v) = (part("q_proj")?, part("k_proj")?, part("v_proj")?);
        let qkv = Linear::new(
            Tensor::cat(&[&q.0, &k.0, &v.0], 0)?,
            Some(Tensor::cat(&[&q.1, &k.1, &v.1], 0)?),
        );
        Ok(Layer {
            self_attn: Attention {
                qkv,
                projection: linear(d, d, a.pp("out_proj"))?,
                heads,
                scale: ((d / heads) as f64).powf(-0.5),
            },
            layer_norm1: layer_norm(d, eps, vb.pp("layer_norm1"))?,
            fc1: linear(d, i, vb.pp("mlp").pp("fc1"))?,
            fc2: linear(i, d, vb.pp("mlp").pp("fc2"))?,
            layer_norm2: layer_norm(d, eps, vb.pp("layer_norm2"))?,
            activation: Activation::QuickGelu,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = (self.self_attn.forward(&self.layer_norm1.forward(xs)?)? + xs)?;
        let up = self.fc1.forward(&self.layer_norm2.forward(&h)?)?;
        let up = match self.activation {
            Activation::GeluErf => super::nn::gelu_erf_in_place(up)?,
            Activation::QuickGelu => quick_gelu_in_place(up)?,
        };
        self.fc2.forward(&up)? + h
    }
}

pub struct VisionModel {
    class_embedding: Tensor,
    patch_embedding: Linear,
    patch_size: usize,
    position_embedding: Tensor,
    /// CLIP's `pre_layrnorm` over the embeddings.
    pre_layernorm: Option<Norm>,
    layers: Vec<Layer>,
    post_layernorm: Norm,
}

/// The shape of a CLIP vision tower (`CLIPVisionConfig`).
pub struct ClipShape {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f64,
}

impl VisionModel {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let side = cfg.image_size / cfg.patch_size;
        let (p, pe) = (cfg.patch_size, emb.pp("patch_embedding"));
        // The stride-p, p x p convolution is a linear map of each patch's 3·p·p pixels in
        // (channel, row, column) order: the conv weight's own order.
        let patch_embedding = Linear::new(
            pe.get((d, 3, p, p), "weight")?.reshape((d, 3 * p * p))?,
            Some(pe.get(d, "bias")?),
        );
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::new(cfg, vb.pp("encoder").pp("layers").pp(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(VisionModel {
            class_embedding: emb.get((1, 1, d), "class_embedding")?,
            patch_embedding,
            patch_size: p,
            position_embedding: emb.get((1, side * side + 1, d), "position_embedding")?,
            pre_layernorm: None,
            layers,
            post_layernorm: layer_norm(d, cfg.layer_norm_eps, vb.pp("post_layernorm"))?,
        })
    }

    /// A CLIP vision tower (`vision_model.*` of `CLIPVisionModel`): patch convolution without
    /// bias, positions as an embedding table, `pre_layrnorm`.
    pub fn clip(cfg: &ClipShape, vb: VarBuilder) -> Result<Self> {
        let (d, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.channels);
        let emb = vb.pp("embeddings");
        let side = cfg.image_size / p;
        let eps = cfg.layer_norm_eps;
        let layers = (0..cfg.layers)
            .map(|i| {
                let l = vb.pp("encoder").pp("layers").pp(i);
                Layer::clip(d, cfg.intermediate_size, cfg.heads, eps, l)
            })
            .collect::<Result<Vec<_>>>()?;
        let patch_weight = emb.pp("patch_embedding").get((d, c, p, p), "weight")?;
        Ok(VisionModel {
            class_embedding: emb.get(d, "class_embedding")?.reshape((1, 1, d))?,
            patch_embedding: Linear::new(patch_weight.reshape((d, c * p * p))?, None),
            patch_size: p,
            position_embedding: emb
                .pp("position_embedding")
                .get((side * side + 1, d), "weight")?
                .unsqueeze(0)?,
            pre_layernorm: Some(layer_norm(d, eps, vb.pp("pre_layrnorm"))?),
            layers,
            post_layernorm: layer_norm(d, eps, vb.pp("post_layernorm"))?,
        })
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// pixel_values [n, 3, S, S] -> post-LayerNorm features [n, 1 + patches, hidden].
    pub fn forward(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let last = self.layers.len().saturating_sub(1);
        let states = self.hidden_states(pixel_values, &[last])?;
        self.post_layernorm.forward(states.last().expect("at least one layer"))
    }

    /// The outputs of the layers `picked` (0-based, increasing) [n, 1 + patches, hidden] each;
    /// layers past the last picked one are not run, and the others' outputs are not kept.
    pub fn hidden_states(&self, pixel_values: &Tensor, picked: &[usize]) -> Result<Vec<Tensor>> {
        let last = picked.iter().max().map_or(0, |k| k + 1);
        let (n, c, h, w) = pixel_values.dims4()?;
        let p = self.patch_size;
        let (rows, cols) = (h / p, w / p);
        // Pixels past the last whole patch are dropped, as the convolution drops them.
        let patches = pixel_values
            .narrow(2, 0, rows * p)?
            .narrow(3, 0, cols * p)?
            .contiguous()?
            .reshape((n, c, rows, p, cols, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((n, rows * cols, c * p * p))?;
        let patches = self.patch_embedding.forward(&patches)?;
        let d = patches.dim(D::Minus1)?;
        let cls = self.class_embedding.expand((n, 1, d))?;
        let mut xs = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.position_embedding)?;
        if let Some(norm) = &self.pre_layernorm {
            xs = norm.forward(&xs)?;
        }
        let mut states = Vec::with_capacity(picked.len());
        for (k, layer) in self.layers.iter().take(last).enumerate() {
            xs = layer.forward(&xs)?;
            if picked.contains(&k) {
                states.push(xs.clone());
            }
        }
        Ok(states)
    }
}
