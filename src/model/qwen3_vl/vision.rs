//! Qwen3-VL's vision tower (`model.visual.*`): the 3-D patch embedding as one linear layer,
//! learned positions resampled bilinearly to each image's grid, pre-LN blocks whose attention
//! rotates queries and keys by each patch's (row, column) and stays within its image, the 2x2
//! patch merger, and the DeepStack mergers of chosen layers.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{embedding, Embedding, VarBuilder};

use super::config::VisionConfig;
use crate::model::cpu::attention as cpu_attention;
use crate::model::nn::{
    gelu_erf, gelu_tanh_in_place, layer_norm, linear, rope, softmax_last_dim, Linear, Norm,
};

/// Most patches that go through the vision tower in one pass (five 448x448 images at patch 16,
/// 784 patches each). Past a few thousand rows a matrix product gains little from its size,
/// while the MLP activations grow with it (4,096 x 4,304 x 4 bytes in Qwen3-VL-2B's tower:
/// 70 MB).
const PATCHES_PER_PASS: usize = 4096;

struct Block {
    norm1: Norm,
    norm2: Norm,
    qkv: Linear,
    proj: Linear,
    fc1: Linear,
    fc2: Linear,
}

/// `Qwen3VLVisionPatchMerger`: 2x2 neighbouring patches into one token of the decoder's width.
/// The main merger normalises each patch first; the DeepStack ones the concatenation.
struct Merger {
    norm: Norm,
    fc1: Linear,
    fc2: Linear,
    post_shuffle: bool,
    width: usize,
}

impl Merger {
    fn new(cfg: &VisionConfig, post_shuffle: bool, vb: VarBuilder) -> Result<Self> {
        let width = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let norm_size = if post_shuffle { width } else { cfg.hidden_size };
        Ok(Merger {
            norm: layer_norm(norm_size, 1e-6, vb.pp("norm"))?,
            fc1: linear(width, width, vb.pp("linear_fc1"))?,
            fc2: linear(width, cfg.out_hidden_size, vb.pp("linear_fc2"))?,
            post_shuffle,
            width,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = if self.post_shuffle {
            self.norm.forward(&xs.reshape(((), self.width))?)?
        } else {
            self.norm.forward(xs)?.reshape(((), self.width))?
        };
        self.fc2.forward(&gelu_erf(&self.fc1.forward(&xs)?)?)
    }
}

pub struct VisionModel {
    /// The Conv3d with kernel = stride over one patch, as a linear layer over its values.
    patch_embed: Linear,
    patch_values: usize,
    pos_embed: Embedding,
    blocks: Vec<Block>,
    merger: Merger,
    deepstack: Vec<(usize, Merger)>,
    inv_freq: Vec<f32>,
    cfg: VisionConfig,
}

/// One image's patches in the processor's order (2x2 merge blocks, row-major inside each):
/// [h * w, channels * patch * patch] (one frame: the processor repeats it in every temporal
/// slot, which the tower's summed slot weights stand for), and its grid of h x w patches.
pub struct Patches {
    pub data: Vec<f32>,
    pub grid_h: usize,
    pub grid_w: usize,
}

impl VisionModel {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let inner = cfg.in_channels * p * p;
        let pe = vb.pp("patch_embed").pp("proj");
        // An image fills every temporal slot of a patch with the same frame, so the Conv3d's
        // slots are summed once here (in f32): half the patch values and half the products.
        let patch_weight = pe.get((d, cfg.in_channels, cfg.temporal_patch_size, p, p), "weight")?;
        let patch_weight = patch_weight
            .to_dtype(DType::F32)?
            .sum(2)?
            .to_dtype(patch_weight.dtype())?
            .reshape((d, inner))?;
        let patch_embed = Linear::new(patch_weight, Some(pe.get(d, "bias")?));
        let blocks = (0..cfg.depth)
            .map(|i| {
                let b = vb.pp("blocks").pp(i);
                Ok(Block {
                    norm1: layer_norm(d, 1e-6, b.pp("norm1"))?,
                    norm2: layer_norm(d, 1e-6, b.pp("norm2"))?,
                    qkv: linear(d, 3 * d, b.pp("attn").pp("qkv"))?,
                    proj: linear(d, d, b.pp("attn").pp("proj"))?,
                    fc1: linear(d, cfg.intermediate_size, b.pp("mlp").pp("linear_fc1"))?,
                    fc2: linear(cfg.intermediate_size, d, b.pp("mlp").pp("linear_fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let deepstack = cfg
            .deepstack_visual_indexes
            .iter()
            .enumerate()
            .map(|(k, &layer)| {
                Ok((layer, Merger::new(cfg, true, vb.pp("deepstack_merger_list").pp(k))?))
            })
            .collect::<Result<Vec<_>>>()?;
        // Axial RoPE: a quarter of each head's frequencies for the row, a quarter for the column.
        let spatial = cfg.head_dim() / 2;
        let theta = cfg.rope_theta() as f32;
        let inv_freq =
            (0..spatial).step_by(2).map(|i| 1.0 / theta.powf(i as f32 / spatial as f32)).collect();
        Ok(VisionModel {
            patch_embed,
            patch_values: inner,
            pos_embed: embedding(cfg.num_position_embeddings, d, vb.pp("pos_embed"))?,
            blocks,
            merger: Merger::new(cfg, false, vb.pp("merger"))?,
            deepstack,
            inv_freq,
            cfg: cfg.clone(),
        })
    }

    /// (row, column) of each patch of an h x w grid in merge-block order.
    fn patch_coords(&self, h: usize, w: usize) -> Vec<(usize, usize)> {
        let m = self.cfg.spatial_merge_size;
        let mut out = Vec::with_capacity(h * w);
        for br in 0..h / m {
            for bc in 0..w / m {
                for ir in 0..m {
                    for ic in 0..m {
                        out.push((br * m + ir, bc * m + ic));
                    }
                }
            }
        }
        out
    }

    /// The learned positions of a `side` x `side` table resampled to an h x w grid
    /// (bilinear, corners aligned), for the patches in merge-block order: [h * w, hidden].
    fn positions(&self, h: usize, w: usize, dev: &Device, dtype: DType) -> Result<Tensor> {
        let side = (self.cfg.num_position_embeddings as f64).sqrt() as usize;
        let taps = |i: usize, n: usize| -> [(usize, f32); 2] {
            let src = if n > 1 { i as f32 * (side - 1) as f32 / (n - 1) as f32 } else { 0.0 };
            let lo = src.floor();
            let d = src - lo;
            let lo = lo as usize;
            [(lo.min(side - 1), 1.0 - d), ((lo + 1).min(side - 1), d)]
        };
        let coords = self.patch_coords(h, w);
        let mut index = Vec::with_capacity(coords.len() * 4);
        let mut weight = Vec::with_capacity(coords.len() * 4);
        for &(r, c) in &coords {
            for (hi, hw) in taps(r, h) {
                for (wi, ww) in taps(c, w) {
                    index.push((hi * side + wi) as u32);
                    weight.push(hw * ww);
                }
            }
        }
        let n = coords.len();
        let rows = self.pos_embed.forward(&Tensor::from_vec(index, n * 4, dev)?)?;
        let weight = Tensor::from_vec(weight, (n, 4, 1), dev)?.to_dtype(dtype)?;
        rows.reshape((n, 4, ()))?.broadcast_mul(&weight)?.sum(1)
    }

    /// cos/sin [1, h * w, head_dim / 2] of the axial rotary embedding.
    fn rotary(&self, h: usize, w: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
        let coords = self.patch_coords(h, w);
        let half = self.inv_freq.len() * 2;
        let mut cos = Vec::with_capacity(coords.len() * half);
        let mut sin = Vec::with_capacity(coords.len() * half);
        for &(r, c) in &coords {
            for pos in [r, c] {
                for &f in &self.inv_freq {
                    let a = pos as f32 * f;
                    cos.push(a.cos());
                    sin.push(a.sin());
                }
            }
        }
        let n = coords.len();
        Ok((Tensor::from_vec(cos, (1, n, half), dev)?, Tensor::from_vec(sin, (1, n, half), dev)?))
    }

    /// Self-attention of the patches of every image at once (`lens`: each image's patch count,
    /// in order): the projections run over all of them, the attention within each image.
    fn attention(
        &self,
        block: &Block,
        xs: &Tensor,
        rot: &(Tensor, Tensor),
        lens: &[usize],
    ) -> Result<Tensor> {
        let (n, d) = xs.dims2()?;
        let heads = self.cfg.num_heads;
        let hd = d / heads;
        let qkv = block.qkv.forward(xs)?.reshape((n, 3, heads, hd))?.permute((1, 2, 0, 3))?;
        // Rotary and attention in f32, as transformers computes them.
        let part = |i: usize| -> Result<Tensor> {
            qkv.get(i)?.unsqueeze(0)?.to_dtype(DType::F32)?.contiguous()
        };
        let q = rope(&part(0)?, &rot.0, &rot.1)?;
        let k = rope(&part(1)?, &rot.0, &rot.1)?;
        let v = part(2)?;
        let scale = (hd as f64).powf(-0.5);
        let mut outs = Vec::with_capacity(lens.len());
        let mut start = 0;
        for &len in lens {
            // [1, heads, len, hd] of one image.
            let seg = |x: &Tensor| x.narrow(2, start, len);
            let (q, k, v) = (seg(&q)?, seg(&k)?, seg(&v)?);
            let token_major = |x: &Tensor| x.transpose(1, 2);
            let out = match cpu_attention::attention(
                &token_major(&q)?,
                &token_major(&k)?,
                &token_major(&v)?,
                None,
                scale,
            )? {
                Some(out) => out.reshape((len, d))?,
                None => {
                    let att = (q.matmul(&k.t()?)? * scale)?;
                    softmax_last_dim(&att)?
                        .matmul(&v)?
                        .squeeze(0)?
                        .transpose(0, 1)?
                        .reshape((len, d))?
                }
            };
            outs.push(out);
            start += len;
        }
        block.proj.forward(&Tensor::cat(&outs, 0)?.to_dtype(xs.dtype())?)
    }

    /// Merged image tokens [tokens, out_hidden] of each image in order, concatenated, and the
    /// DeepStack features of each chosen layer in the same layout. Consecutive images go through
    /// the tower together, up to `PATCHES_PER_PASS` patches (one image alone may be larger), so
    /// that each weight is one large matrix product while the activations stay bounded.
    pub fn forward(
        &self,
        images: &[Patches],
        dev: &Device,
        dtype: DType,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut merged = Vec::new();
        let mut stacks: Vec<Vec<Tensor>> = vec![Vec::new(); self.deepstack.len()];
        let mut start = 0;
        while start < images.len() {
            let mut end = start + 1;
            let mut total = images[start].grid_h * images[start].grid_w;
            while end < images.len() {
                let next = images[end].grid_h * images[end].grid_w;
                if total + next > PATCHES_PER_PASS {
                    break;
                }
                total += next;
                end += 1;
            }
            let (m, s) = self.forward_pass(&images[start..end], dev, dtype)?;
            merged.push(m);
            for (all, one) in stacks.iter_mut().zip(s) {
                all.push(one);
            }
            start = end;
        }
        let stacks = stacks.iter().map(|s| Tensor::cat(s, 0)).collect::<Result<Vec<_>>>()?;
        Ok((Tensor::cat(&merged, 0)?, stacks))
    }

    /// `forward` for images that go through the tower together: the patches of all of them pass
    /// each layer at once, attention stays within each image, and the mergers take groups of
    /// four consecutive patches, which never straddle two images.
    fn forward_pass(
        &self,
        images: &[Patches],
        dev: &Device,
        dtype: DType,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let total: usize = images.iter().map(|img| img.grid_h * img.grid_w).sum();
        let mut patches = Vec::with_capacity(total * self.patch_values);
        let mut positions = Vec::with_capacity(images.len());
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        let mut lens = Vec::with_capacity(images.len());
        for img in images {
            let (h, w) = (img.grid_h, img.grid_w);
            patches.extend_from_slice(&img.data);
            positions.push(self.positions(h, w, dev, dtype)?);
            let (c, s) = self.rotary(h, w, dev)?;
            cos.push(c);
            sin.push(s);
            lens.push(h * w);
        }
        let patches = Tensor::from_vec(patches, (total, self.patch_values), dev)?;
        let x = self.patch_embed.forward(&patches.to_dtype(dtype)?)?;
        let mut x = (x + Tensor::cat(&positions, 0)?)?;
        let rot = (Tensor::cat(&cos, 1)?, Tensor::cat(&sin, 1)?);
        let mut stacks: Vec<Option<Tensor>> = vec![None; self.deepstack.len()];
        for (layer, block) in self.blocks.iter().enumerate() {
            let a = self.attention(block, &block.norm1.forward(&x)?, &rot, &lens)?;
            let x1 = (x + a)?;
            let up = block.fc1.forward(&block.norm2.forward(&x1)?)?;
            let m = block.fc2.forward(&gelu_tanh_in_place(up)?)?;
            x = (x1 + m)?;
            for (k, (at, merger)) in self.deepstack.iter().enumerate() {
                if *at == layer {
                    stacks[k] = Some(merger.forward(&x)?);
                }
            }
        }
        let stacks = stacks
            .into_iter()
            .map(|s| {
                s.ok_or_else(|| {
                    candle_core::Error::Msg("a DeepStack layer index is past the last layer".into())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((self.merger.forward(&x)?, stacks))
    }
}
