//! LLaVA-1.5 (`model_type` `llava`, the llava-hf layout) serving `vista_generate`: CLIP's centre
//! crop, each `<image>` of the prompt replaced by that image's projected patch features, and the
//! same batched LLaMA generation as VistaLLM.

pub mod config;
pub mod net;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use vista_udfs::generate::GenerateRequest;

use super::generate::{self, DecodeOptions};
use super::preprocess::Preprocess;
use super::prompt::{self, Prompt, Template};
use super::TextSide;
pub use config::LlavaConfig;
use net::Llava;

pub struct LlavaModel {
    pub config: LlavaConfig,
    pub net: Llava,
    pub text: TextSide,
    pub preprocess: Preprocess,
    pub device: Device,
    pub dtype: DType,
    fingerprint: String,
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
        Ok(LlavaModel { config, net, text, preprocess, device, dtype, fingerprint })
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

    fn check_prompt_length(&self, prompt: &Prompt) -> Result<(), String> {
        let len = prompt.len(self.config.tokens_per_image());
        self.text.check_context(len, self.config.text_config.max_position_embeddings)
    }

    /// Stacks preprocessed images into [n, 3, S, S] on the model's device and dtype.
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
        let mut ready = Vec::new();
        let mut pixels = Vec::new();
        for (row, req) in batch.iter().enumerate() {
            let prepared = (|| {
                self.text.check_instruction(
                    &req.instruction,
                    self.config.text_config.max_position_embeddings,
                )?;
                let prompt = self.prompt(template, &req.instruction, req.images.len())?;
                self.check_prompt_length(&prompt)?;
                let imgs = req
                    .images
                    .iter()
                    .enumerate()
                    .map(|(k, bytes)| {
                        self.preprocess
                            .run(bytes, false, opts.max_image_pixels)
                            .map_err(|e| format!("image {}: {e}", k + 1))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok::<_, String>((prompt, imgs))
            })();
            match prepared {
                Ok((prompt, imgs)) => {
                    ready.push((row, prompt, pixels.len()));
                    pixels.extend(imgs);
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
                .map(|(_, prompt, first)| {
                    super::embed_pieces(&self.net.llm, &self.device, &prompt.pieces, |k| {
                        image_tokens.as_ref().expect("rows with images").get(first + k)
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

super::serve_vision_language_model!(LlavaModel);
