//! LLaVA-1.5 (`model_type` `llava`, the llava-hf layout) serving `vista_generate`: CLIP's centre
//! crop, each `<image>` of the prompt replaced by that image's projected patch features, and the
//! same batched LLaMA generation as VistaLLM. LLaVA-NeXT (`llava_next`) is the same model with
//! tiled images (`next`): an image's tiles go through the tower as images of their own and are
//! packed into one run of tokens of the image's own length.

pub mod config;
pub mod net;
pub mod next;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vista_udfs::generate::GenerateRequest;

use super::generate::{self, DecodeOptions};
use super::preprocess::{decode_rgb_within, Preprocess};
use super::prompt::{self, Piece, Prompt, Template};
use super::TextSide;
pub use config::LlavaConfig;
use net::Llava;
use next::AnyRes;

pub struct LlavaModel {
    pub config: LlavaConfig,
    pub net: Llava,
    pub text: TextSide,
    pub preprocess: Preprocess,
    /// LLaVA-NeXT's tiling; `None` under LLaVA-1.5 (one centre-cropped tile per image).
    pub anyres: Option<AnyRes>,
    pub device: Device,
    pub dtype: DType,
    fingerprint: String,
}

/// One preprocessed image: its normalised tiles [3 * S * S each] and its decoded size, (0, 0)
/// under LLaVA-1.5, where every image has the same tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiles {
    pub tiles: Vec<Vec<f32>>,
    pub height: usize,
    pub width: usize,
}

/// One image of a micro-batch: its tiles among the batch's pixels and its decoded size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSlot {
    pub first: usize,
    pub tiles: usize,
    pub height: usize,
    pub width: usize,
}

impl LlavaModel {
    pub fn load(dir: &Path, device: &str, dtype: &str) -> Result<Self, String> {
        let (vb, fingerprint) = super::open_weights(dir, device, dtype)?;
        Self::load_with(dir, vb, fingerprint)
    }

    pub fn load_with(dir: &Path, vb: VarBuilder, fingerprint: String) -> Result<Self, String> {
        let (device, dtype) = (vb.device().clone(), vb.dtype());
        let config = LlavaConfig::from_json(&super::read(&dir.join("config.json"))?)?;
        let net = Llava::new(&config, vb).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = TextSide::load_chat(dir)?;
        let mut preprocess = Preprocess::from_dir(dir, config.vision_config.image_size)?;
        let has_processor_file = ["preprocessor_config.json", "processor_config.json"]
            .iter()
            .any(|f| dir.join(f).is_file());
        // CLIPImageProcessor's own default when the checkpoint does not say.
        preprocess.center_crop |= !has_processor_file;
        let anyres = match &config.image_grid_pinpoints {
            Some(pinpoints) if config.is_next() => {
                check_processor_pinpoints(dir, pinpoints)?;
                let v = &config.vision_config;
                Some(AnyRes {
                    pinpoints: pinpoints.clone(),
                    tile: v.image_size,
                    side: v.image_size / v.patch_size,
                })
            }
            _ => None,
        };
        Ok(LlavaModel { config, net, text, preprocess, anyres, device, dtype, fingerprint })
    }

    /// LLaVA has its own chat turn: VistaLLM's default template means LLaVA's.
    pub fn prompt(
        &self,
        template: Template,
        instruction: &str,
        images: usize,
    ) -> Result<Prompt, String> {
        let text = match template {
            Template::VicunaV1 | Template::Llava | Template::Qwen => {
                prompt::llava_text(instruction, images)?
            }
            Template::Raw => prompt::llava_instruction(instruction, images)?,
        };
        prompt::marked(&text, instruction, images, &self.text.tokenizer)
    }

    /// Image tokens of an image of `height` x `width` pixels.
    pub fn image_token_count(&self, height: usize, width: usize) -> usize {
        match &self.anyres {
            Some(anyres) => anyres.tokens(height, width),
            None => self.config.tokens_per_image(),
        }
    }

    /// A prompt's length with its images' tokens, the k-th image being `images[k]`.
    pub fn prompt_len(&self, prompt: &Prompt, images: &[ImageSlot]) -> usize {
        prompt
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Tokens(t) => t.len(),
                Piece::Image(k) => self.image_token_count(images[*k].height, images[*k].width),
            })
            .sum()
    }

    /// An image's normalised tiles and its decoded size.
    pub fn preprocess_image(&self, bytes: &[u8], max_pixels: u64) -> Result<Tiles, String> {
        match &self.anyres {
            None => Ok(Tiles {
                tiles: vec![self.preprocess.run(bytes, false, max_pixels)?],
                height: 0,
                width: 0,
            }),
            Some(anyres) => {
                let img = decode_rgb_within(bytes, max_pixels)?;
                Ok(Tiles {
                    tiles: anyres.tiles(&self.preprocess, &img),
                    height: img.height() as usize,
                    width: img.width() as usize,
                })
            }
        }
    }

    /// One image's decoder input [tokens, text_hidden] from the projected tiles of its batch
    /// `tokens` [tiles, T, text_hidden].
    pub fn image_embeds(&self, tokens: &Tensor, slot: &ImageSlot) -> candle_core::Result<Tensor> {
        match (&self.anyres, &self.net.image_newline) {
            (Some(anyres), Some(newline)) => anyres.pack(
                &tokens.narrow(0, slot.first, slot.tiles)?,
                slot.height,
                slot.width,
                newline,
            ),
            _ => tokens.get(slot.first),
        }
    }

    /// Stacks preprocessed images (tiles) into [n, 3, S, S] on the model's device and dtype.
    pub fn pixel_tensor(&self, images: Vec<Vec<f32>>) -> candle_core::Result<Tensor> {
        let s = self.preprocess.size;
        let n = images.len();
        Tensor::from_vec(images.concat(), (n, 3, s, s), &self.device)?.to_dtype(self.dtype)
    }

    /// Generated token ids per request (each row's own error, or its ids).
    pub fn generate_ids(
        &self,
        batch: &[GenerateRequest],
        template: Template,
        opts: &DecodeOptions,
    ) -> Vec<Result<Vec<u32>, String>> {
        let mut results: Vec<Result<Vec<u32>, String>> = vec![Ok(Vec::new()); batch.len()];
        let mut ready: Vec<(usize, Prompt, Vec<ImageSlot>)> = Vec::new();
        let mut pixels = Vec::new();
        for (row, req) in batch.iter().enumerate() {
            let context = self.config.text_config.max_position_embeddings;
            let prepared = (|| {
                self.text.check_instruction(&req.instruction, context)?;
                let prompt = self.prompt(template, &req.instruction, req.images.len())?;
                let mut slots = Vec::with_capacity(req.images.len());
                let mut tiles = Vec::new();
                for (k, bytes) in req.images.iter().enumerate() {
                    let image = self
                        .preprocess_image(bytes, opts.max_image_pixels)
                        .map_err(|e| format!("image {}: {e}", k + 1))?;
                    slots.push(ImageSlot {
                        first: pixels.len() + tiles.len(),
                        tiles: image.tiles.len(),
                        height: image.height,
                        width: image.width,
                    });
                    tiles.extend(image.tiles);
                }
                // A LLaVA-NeXT image's tokens depend on its size: known once decoded.
                self.text.check_context(self.prompt_len(&prompt, &slots), context)?;
                Ok::<_, String>((prompt, slots, tiles))
            })();
            match prepared {
                Ok((prompt, slots, tiles)) => {
                    ready.push((row, prompt, slots));
                    pixels.extend(tiles);
                }
                Err(e) => results[row] = Err(e),
            }
        }
        if ready.is_empty() {
            return results;
        }
        let run = || -> candle_core::Result<Vec<Vec<u32>>> {
            let image_tokens = if pixels.is_empty() {
                None
            } else {
                Some(self.net.image_tokens(&self.pixel_tensor(pixels)?)?)
            };
            let rows = ready
                .iter()
                .map(|(_, prompt, slots)| {
                    super::embed_pieces(&self.net.llm, &self.device, &prompt.pieces, |k| {
                        self.image_embeds(
                            image_tokens.as_ref().expect("rows with images"),
                            &slots[k],
                        )
                    })
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            generate::generate(&self.net.llm, &rows, opts)
        };
        let rows: Vec<usize> = ready.iter().map(|(row, _, _)| *row).collect();
        super::run_ready(&self.device, &mut results, &rows, run);
        results
    }
}

/// A processor file's `image_grid_pinpoints` tile the images; the model packs their features by
/// config.json's. They must agree, or an image's tokens would not match its tiles.
fn check_processor_pinpoints(dir: &Path, pinpoints: &[[usize; 2]]) -> Result<(), String> {
    for name in ["preprocessor_config.json", "processor_config.json"] {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let json: serde_json::Value = serde_json::from_str(&super::read(&path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let processor = json.get("image_processor").unwrap_or(&json);
        let Some(theirs) = processor.get("image_grid_pinpoints") else {
            return Ok(());
        };
        let theirs: Vec<[usize; 2]> = serde_json::from_value(theirs.clone())
            .map_err(|e| format!("{}: image_grid_pinpoints: {e}", path.display()))?;
        if theirs != pinpoints {
            return Err(format!(
                "{}: image_grid_pinpoints {theirs:?} differ from config.json's {pinpoints:?}",
                path.display()
            ));
        }
        return Ok(());
    }
    Ok(())
}

super::serve_vision_language_model!(LlavaModel);
