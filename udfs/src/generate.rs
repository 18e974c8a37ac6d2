//! The model-call function `vista_generate`, generic over [`VisionLanguageModel`] so that this
//! crate builds and tests without candle. The `vista` crate implements the trait and hands a
//! [`ModelLoader`] to the session.

use std::sync::Arc;

/// One row for the model: its encoded images (in prompt order) and its instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GenerateRequest {
    pub images: Vec<Arc<[u8]>>,
    pub instruction: String,
}

/// Generation settings, from `SET vista.*`; part of the job fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSettings {
    pub max_new_tokens: usize,
    pub num_beams: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// `vicuna_v1` or `raw`.
    pub prompt_template: String,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        GenerateSettings {
            max_new_tokens: 64,
            num_beams: 1,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            prompt_template: "vicuna_v1".to_string(),
        }
    }
}

/// Which model to load: `SET vista.model / vista.device / vista.dtype`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelSpec {
    pub dir: String,
    pub device: String,
    pub dtype: String,
}

/// A loaded vision-language model. `generate` runs on a dedicated worker thread that owns the
/// device (never on a tokio worker); it decodes the images of one micro-batch itself, so encoded
/// bytes are all that is held in flight.
pub trait VisionLanguageModel: Send + Sync + 'static {
    /// Identifies the weights and configuration (e.g. a hash of config.json and the
    /// safetensors headers); recorded in output metadata and job fingerprints.
    fn fingerprint(&self) -> String;

    /// Generates text for a micro-batch: one result per request, in order. A row that cannot be
    /// processed (corrupt image, too many images) is an `Err` with a one-line reason; it must not
    /// fail the other rows.
    fn generate(
        &self,
        batch: &[GenerateRequest],
        settings: &GenerateSettings,
    ) -> Vec<Result<String, String>>;
}

/// Loads a model for a spec; called lazily, once per distinct spec per process.
pub type ModelLoader =
    Arc<dyn Fn(&ModelSpec) -> Result<Arc<dyn VisionLanguageModel>, String> + Send + Sync>;
