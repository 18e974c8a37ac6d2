//! Qwen3-VL (`model_type` `qwen3_vl`) serving `vista_generate`: images resized to multiples of
//! the merged patch within the checkpoint's pixel budget, Qwen's chat template, image tokens
//! with (t, h, w) grid positions under interleaved multimodal RoPE, and DeepStack features added
//! to the first decoder layers at the image positions. The decoder is our LLaMA (with Qwen3's
//! per-head q/k norms), so batching, padding and the KV cache are the shared ones.

pub mod config;
pub mod vision;

use std::path::Path;

use candle_core::{DType, Device, Result as CResult, Tensor};
use candle_nn::VarBuilder;
use serde::Deserialize;
use vista_udfs::generate::GenerateRequest;

use super::generate::{self, DecodeOptions, Prefill};
use super::llama::{KvCache, Llama};
use super::preprocess::{decode_rgb_within, resize_bicubic};
use super::prompt::{self, Piece, Template};
use super::TextSide;
pub use config::Qwen3VlConfig;
use vision::{Patches, VisionModel};

/// The image processor's settings (`preprocessor_config.json`, `Qwen2VLImageProcessor`).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageSettings {
    #[serde(default = "default_mean")]
    pub image_mean: [f32; 3],
    #[serde(default = "default_mean")]
    pub image_std: [f32; 3],
    #[serde(default)]
    pub size: Option<PixelBudget>,
    #[serde(default)]
    pub min_pixels: Option<usize>,
    #[serde(default)]
    pub max_pixels: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PixelBudget {
    pub shortest_edge: usize,
    pub longest_edge: usize,
}

fn default_mean() -> [f32; 3] {
    [0.5, 0.5, 0.5]
}

impl ImageSettings {
    /// (min, max) pixels of a resized image; `size` names them `shortest_edge` / `longest_edge`.
    fn budget(&self) -> (usize, usize) {
        match &self.size {
            Some(s) => (s.shortest_edge, s.longest_edge),
            None => (self.min_pixels.unwrap_or(65536), self.max_pixels.unwrap_or(16777216)),
        }
    }
}

/// Height and width, multiples of `factor`, close to (h, w) in aspect and within the pixel
/// budget (`smart_resize`; Python's `round`, half to even).
pub fn smart_resize(h: usize, w: usize, factor: usize, min: usize, max: usize) -> (usize, usize) {
    let round = |x: f64| -> usize { (x.round_ties_even() as usize) * factor };
    let (hf, wf, f) = (h as f64, w as f64, factor as f64);
    let (mut hb, mut wb) = (round(hf / f), round(wf / f));
    if hb * wb > max {
        let beta = (hf * wf / max as f64).sqrt();
        hb = factor.max(((hf / beta / f).floor() as usize) * factor);
        wb = factor.max(((wf / beta / f).floor() as usize) * factor);
    } else if hb * wb < min {
        let beta = (min as f64 / (hf * wf)).sqrt();
        hb = ((hf * beta / f).ceil() as usize) * factor;
        wb = ((wf * beta / f).ceil() as usize) * factor;
    }
    (hb, wb)
}

pub struct Qwen3VlModel {
    pub config: Qwen3VlConfig,
    pub vision: VisionModel,
    pub llm: Llama,
    pub text: TextSide,
    pub image: ImageSettings,
    pub device: Device,
    pub dtype: DType,
    rope_axes: Vec<usize>,
    fingerprint: String,
}

/// A row's prompt pieces and the (h, w) patch grid of each of its images.
type RowPrompt = (Vec<Piece>, Vec<(usize, usize)>);

/// A row ready for the decoder: its embeddings, 3-D positions, where its image tokens are and
/// their DeepStack features (one tensor per DeepStack layer), and its decoding offset.
pub struct PreparedRow {
    pub embeds: Tensor,
    pub positions: [Vec<u32>; 3],
    pub visual: Vec<u32>,
    pub deepstack: Vec<Tensor>,
    pub delta: i64,
}

impl Qwen3VlModel {
    pub fn load(dir: &Path, device: &str, dtype: &str) -> Result<Self, String> {
        let (vb, fingerprint) = super::open_weights(dir, device, dtype)?;
        Self::load_with(dir, vb, fingerprint)
    }

    pub fn load_with(dir: &Path, vb: VarBuilder, fingerprint: String) -> Result<Self, String> {
        let (device, dtype) = (vb.device().clone(), vb.dtype());
        let config = Qwen3VlConfig::from_json(&super::read(&dir.join("config.json"))?)?;
        let at = |e: candle_core::Error| format!("{}: {e}", dir.display());
        let vision =
            VisionModel::new(&config.vision_config, vb.pp("model").pp("visual")).map_err(at)?;
        let llm = Llama::from_parts(&config.text_config, vb.pp("model").pp("language_model"), vb)
            .map_err(at)?;
        let text = TextSide::load_chat(dir)?;
        let path = dir.join("preprocessor_config.json");
        let image: ImageSettings = if path.is_file() {
            serde_json::from_str(&super::read(&path)?)
                .map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            serde_json::from_str("{}").expect("defaults")
        };
        let rope_axes = config.rope_axes()?;
        Ok(Qwen3VlModel { config, vision, llm, text, image, device, dtype, rope_axes, fingerprint })
    }

    /// The prompt's pieces: Qwen3-VL's chat turn for `vicuna_v1` (the default) and `qwen`, the
    /// same text without it for `raw`.
    pub fn prompt(
        &self,
        template: Template,
        instruction: &str,
        images: usize,
    ) -> Result<Vec<Piece>, String> {
        let chat = template != Template::Raw;
        let text = prompt::qwen_text(instruction, images, chat)?;
        let ids = self
            .text
            .tokenizer
            .encode(text.as_str(), true)
            .map_err(|e| format!("cannot tokenize the prompt: {e}"))?
            .get_ids()
            .to_vec();
        let pieces = prompt::split_on_marker(ids, self.config.image_token_id);
        let found = pieces.iter().filter(|p| matches!(p, Piece::Image(_))).count();
        if found != images {
            return Err(format!(
                "the tokenized prompt has {found} image tokens but the row has {images} images"
            ));
        }
        Ok(pieces)
    }

    /// Encoded image -> its patches in the processor's order.
    pub fn patches(&self, bytes: &[u8], max_pixels: u64) -> Result<Patches, String> {
        let v = &self.config.vision_config;
        let img = decode_rgb_within(bytes, max_pixels)?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w.max(h) > 200 * w.min(h) {
            return Err(format!("image of {w}x{h}: aspect ratio over 200"));
        }
        let factor = v.patch_size * v.spatial_merge_size;
        let (min, max) = self.image.budget();
        let (rh, rw) = smart_resize(h, w, factor, min, max);
        let img = resize_bicubic(&img, rw, rh);
        let (p, m) = (v.patch_size, v.spatial_merge_size);
        let (gh, gw) = (rh / p, rw / p);
        let (mean, std) = (self.image.image_mean, self.image.image_std);
        let mut data = Vec::with_capacity(gh * gw * 3 * p * p);
        for br in 0..gh / m {
            for bc in 0..gw / m {
                for ir in 0..m {
                    for ic in 0..m {
                        let (y0, x0) = ((br * m + ir) * p, (bc * m + ic) * p);
                        for c in 0..3 {
                            for y in 0..p {
                                for x in 0..p {
                                    let v = img.get_pixel((x0 + x) as u32, (y0 + y) as u32).0[c];
                                    let v = (f64::from(v) * (1.0 / 255.0)) as f32;
                                    data.push((v - mean[c]) / std[c]);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(Patches { data, grid_h: gh, grid_w: gw })
    }

    /// Embeddings, positions and DeepStack features of each prompt; `features` are the merged
    /// image tokens and DeepStack features of all the rows' images in order.
    fn prepare(
        &self,
        prompts: &[RowPrompt],
        features: Option<&(Tensor, Vec<Tensor>)>,
    ) -> CResult<Vec<PreparedRow>> {
        let m = self.config.vision_config.spatial_merge_size;
        let mut token = 0usize;
        let mut rows = Vec::with_capacity(prompts.len());
        for (pieces, grids) in prompts {
            let mut parts = Vec::new();
            let mut pos: [Vec<u32>; 3] = Default::default();
            let mut visual = Vec::new();
            let mut deepstack: Vec<Vec<Tensor>> =
                vec![Vec::new(); features.map_or(0, |f| f.1.len())];
            let mut current = 0u32;
            for piece in pieces {
                match piece {
                    Piece::Tokens(ids) => {
                        parts.push(self.llm.embed(&Tensor::new(ids.as_slice(), &self.device)?)?);
                        for axis in &mut pos {
                            axis.extend(current..current + ids.len() as u32);
                        }
                        current += ids.len() as u32;
                    }
                    Piece::Image(k) => {
                        let (gh, gw) = (grids[*k].0 / m, grids[*k].1 / m);
                        let n = gh * gw;
                        let (tokens, stacks) = features.expect("rows with images");
                        let first = pos[0].len() as u32;
                        parts.push(tokens.narrow(0, token, n)?);
                        for (layer, s) in stacks.iter().enumerate() {
                            deepstack[layer].push(s.narrow(0, token, n)?);
                        }
                        token += n;
                        visual.extend(first..first + n as u32);
                        for r in 0..gh as u32 {
                            for c in 0..gw as u32 {
                                pos[0].push(current);
                                pos[1].push(current + r);
                                pos[2].push(current + c);
                            }
                        }
                        current += gh.max(gw) as u32;
                    }
                }
            }
            let len = pos[0].len() as i64;
            let top = pos.iter().flatten().copied().max().map_or(-1, i64::from);
            rows.push(PreparedRow {
                embeds: Tensor::cat(&parts, 0)?,
                positions: pos,
                visual,
                deepstack: deepstack.iter().map(|d| Tensor::cat(d, 0)).collect::<CResult<_>>()?,
                delta: top + 1 - len,
            });
        }
        Ok(rows)
    }

    /// A request's prompt pieces with its images' patch grids, and the images' patches.
    fn request(
        &self,
        req: &GenerateRequest,
        template: Template,
        max_pixels: u64,
    ) -> Result<(RowPrompt, Vec<Patches>), String> {
        let pieces = self.prompt(template, &req.instruction, req.images.len())?;
        let patches = req
            .images
            .iter()
            .enumerate()
            .map(|(k, b)| self.patches(b, max_pixels).map_err(|e| format!("image {}: {e}", k + 1)))
            .collect::<Result<Vec<_>, String>>()?;
        let grids = patches.iter().map(|p| (p.grid_h, p.grid_w)).collect();
        Ok(((pieces, grids), patches))
    }

    /// Generated token ids per request (each row's own error, or its ids).
    pub fn generate_ids(
        &self,
        batch: &[GenerateRequest],
        template: Template,
        opts: &DecodeOptions,
    ) -> Vec<Result<Vec<u32>, String>> {
        let mut results: Vec<Result<Vec<u32>, String>> = vec![Ok(Vec::new()); batch.len()];
        let mut ready = Vec::new();
        let mut prompts = Vec::new();
        let mut images = Vec::new();
        let context = self.config.text_config.max_position_embeddings;
        let m2 = self.config.vision_config.spatial_merge_size.pow(2);
        for (row, req) in batch.iter().enumerate() {
            let prepared = (|| {
                self.text.check_instruction(&req.instruction, context)?;
                let ((pieces, grids), patches) =
                    self.request(req, template, opts.max_image_pixels)?;
                let len: usize = pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Tokens(t) => t.len(),
                        Piece::Image(k) => grids[*k].0 * grids[*k].1 / m2,
                    })
                    .sum();
                self.text.check_context(len, context)?;
                Ok::<_, String>(((pieces, grids), patches))
            })();
            match prepared {
                Ok((prompt, patches)) => {
                    ready.push(row);
                    prompts.push(prompt);
                    images.extend(patches);
                }
                Err(e) => results[row] = Err(e),
            }
        }
        if ready.is_empty() {
            return results;
        }
        let run = || -> CResult<Vec<Vec<u32>>> {
            let features = if images.is_empty() {
                None
            } else {
                Some(self.vision.forward(&images, &self.device, self.dtype)?)
            };
            let rows = self.prepare(&prompts, features.as_ref())?;
            let embeds: Vec<Tensor> = rows.iter().map(|r| r.embeds.clone()).collect();
            let prefill = QwenPrefill { rows: &rows, axes: &self.rope_axes };
            generate::generate_with(&self.llm, &embeds, opts, &prefill)
        };
        super::run_ready(&self.device, &mut results, &ready, run);
        results
    }

    /// Logits [rows, width, vocab] of the prompts of `batch` as one left-padded batch (what the
    /// parity tests compare), with each row's padding.
    pub fn prompt_logits(
        &self,
        batch: &[GenerateRequest],
        template: Template,
    ) -> Result<(Tensor, Vec<usize>), String> {
        let mut prompts = Vec::new();
        let mut images = Vec::new();
        for req in batch {
            let (prompt, patches) = self.request(req, template, u64::MAX)?;
            prompts.push(prompt);
            images.extend(patches);
        }
        let e = |e: candle_core::Error| e.to_string();
        let features = self.vision.forward(&images, &self.device, self.dtype).map_err(e)?;
        let rows = self.prepare(&prompts, Some(&features)).map_err(e)?;
        let embeds: Vec<Tensor> = rows.iter().map(|r| r.embeds.clone()).collect();
        let (padded, pads) = generate::left_pad(&embeds).map_err(e)?;
        let prefill = QwenPrefill { rows: &rows, axes: &self.rope_axes };
        let all: Vec<usize> = (0..rows.len()).collect();
        let mut cache = KvCache::new(self.llm.layers());
        let hidden = prefill.hidden(&self.llm, &all, &padded, &pads, &mut cache).map_err(e)?;
        Ok((self.llm.logits(&hidden).map_err(e)?, pads))
    }
}

/// Qwen3-VL's prompt pass: multimodal RoPE over the rows' 3-D positions and the DeepStack
/// additions; while decoding, each row's positions continue after its largest one.
struct QwenPrefill<'a> {
    rows: &'a [PreparedRow],
    axes: &'a [usize],
}

impl QwenPrefill<'_> {
    fn hidden(
        &self,
        llm: &Llama,
        rows: &[usize],
        embeds: &Tensor,
        pads: &[usize],
        cache: &mut KvCache,
    ) -> CResult<Tensor> {
        let (n, width, hidden) = embeds.dims3()?;
        // Padding positions are hidden from every query; any value serves.
        let positions: Vec<[Vec<u32>; 3]> = rows
            .iter()
            .zip(pads)
            .map(|(&r, &pad)| {
                std::array::from_fn(|axis| {
                    let mut p = vec![0u32; pad];
                    p.extend_from_slice(&self.rows[r].positions[axis]);
                    p
                })
            })
            .collect();
        let rope = llm.mrope_tables(&positions, self.axes, embeds.dtype(), embeds.device())?;
        let layers = self.rows.first().map_or(0, |r| r.deepstack.len());
        let mut index = Vec::new();
        for (i, (&r, &pad)) in rows.iter().zip(pads).enumerate() {
            index.extend(self.rows[r].visual.iter().map(|&v| (i * width + pad) as u32 + v));
        }
        let index = Tensor::from_vec(index.clone(), index.len(), embeds.device())?;
        let stacks: Vec<Option<Tensor>> = (0..layers)
            .map(|k| {
                let parts: Vec<&Tensor> =
                    rows.iter().map(|&r| &self.rows[r].deepstack[k]).collect();
                if parts.iter().all(|p| p.dim(0).unwrap_or(0) == 0) {
                    Ok(None)
                } else {
                    Tensor::cat(&parts, 0).map(Some)
                }
            })
            .collect::<CResult<_>>()?;
        let mut add = |k: usize, xs: Tensor| -> CResult<Tensor> {
            match stacks.get(k) {
                Some(Some(s)) => xs
                    .reshape((n * width, hidden))?
                    .index_add(&index, &s.to_dtype(xs.dtype())?, 0)?
                    .reshape((n, width, hidden)),
                _ => Ok(xs),
            }
        };
        llm.hidden_states_with(embeds, &rope, pads, cache, &mut add)
    }
}

impl Prefill for QwenPrefill<'_> {
    fn prefill(
        &self,
        llm: &Llama,
        rows: &[usize],
        embeds: &Tensor,
        pads: &[usize],
        cache: &mut KvCache,
    ) -> CResult<Tensor> {
        let hidden = self.hidden(llm, rows, embeds, pads, cache)?;
        let width = hidden.dim(1)?;
        llm.logits(&hidden.narrow(1, width - 1, 1)?)?.squeeze(1)
    }

    fn position_offset(&self, row: usize) -> i64 {
        self.rows[row].delta
    }
}

super::serve_vision_language_model!(Qwen3VlModel);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_rounds_half_to_even_and_keeps_the_budget() {
        // 40 / 16 = 2.5 rounds to 2 (Python's round), 30 / 16 = 1.875 to 2.
        assert_eq!(smart_resize(30, 40, 16, 256, 4096), (32, 32));
        // 50 x 23: rounds to 48 x 16 (768 px), within 256..4096.
        assert_eq!(smart_resize(50, 23, 16, 256, 4096), (48, 16));
        // Over the budget: scaled down, floored to the factor.
        assert_eq!(smart_resize(1000, 500, 16, 256, 4096), (80, 32));
        // Under it: scaled up, ceiled.
        assert_eq!(smart_resize(8, 8, 16, 1024, 4096), (32, 32));
    }
}
