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
    /// End tokens are not chosen before this many tokens (transformers' `min_new_tokens`).
    pub min_new_tokens: usize,
    pub num_beams: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
    /// `vicuna_v1` or `raw`.
    pub prompt_template: String,
    /// Most pixels an input image, or a buffer made from it, may hold (`vista.max_image_pixels`).
    pub max_image_pixels: u64,
    /// How greedy decoding picks a coordinate token (`vista.coord_decode`).
    pub coord_decode: CoordDecode,
}

/// How greedy decoding picks a coordinate token `<bin_k>` when the most likely next token is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CoordDecode {
    /// The most likely token, as transformers' greedy search.
    #[default]
    Argmax,
    /// The bin at which the distribution over the bins reaches half its mass. A model unsure of
    /// a coordinate spreads its mass over neighbouring bins; the median is the estimate with the
    /// least expected distance to the coordinate, where the argmax picks one noisy peak and the
    /// mean falls between two candidate objects.
    Median,
}

impl CoordDecode {
    /// The rule `vista.coord_decode` names, if it names one.
    pub fn parse(name: &str) -> Option<CoordDecode> {
        [CoordDecode::Argmax, CoordDecode::Median].into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            CoordDecode::Argmax => "argmax",
            CoordDecode::Median => "median",
        }
    }
}

impl Default for GenerateSettings {
    fn default() -> Self {
        GenerateSettings {
            max_new_tokens: 64,
            min_new_tokens: 0,
            num_beams: 1,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            prompt_template: "vicuna_v1".to_string(),
            max_image_pixels: crate::limits::DEFAULT_MAX_IMAGE_PIXELS,
            coord_decode: CoordDecode::Argmax,
        }
    }
}

/// One row's generated text, and whether generation stopped because it reached
/// `max_new_tokens` rather than on an end token (the answer may then be cut short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub text: String,
    pub truncated: bool,
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

    /// As [`generate`](Self::generate), with whether each row stopped on the length limit.
    /// `vista_generate` calls this one; a model that cannot tell keeps this default, which
    /// reports no row as truncated.
    fn generate_detailed(
        &self,
        batch: &[GenerateRequest],
        settings: &GenerateSettings,
    ) -> Vec<Result<Generation, String>> {
        self.generate(batch, settings)
            .into_iter()
            .map(|r| r.map(|text| Generation { text, truncated: false }))
            .collect()
    }
}

/// Loads a model for a spec; called lazily, once per distinct spec per process.
pub type ModelLoader =
    Arc<dyn Fn(&ModelSpec) -> Result<Arc<dyn VisionLanguageModel>, String> + Send + Sync>;

#[cfg(test)]
mod tests;
mod udf;
pub mod worker;

pub(crate) const SECTION: datafusion::logical_expr::DocSection =
    datafusion::logical_expr::DocSection {
        include: true,
        label: "Vista model functions",
        description: Some("Run the vision-language model on images and instructions."),
    };

pub use udf::{
    documentation, model_spec, settings, vista_generate_udf, vista_generate_udf_with_linger,
};

/// The fingerprint of the model for `spec`, loading it on the shared worker if no query has yet
/// (so a job can fingerprint itself without loading the model twice).
pub async fn model_fingerprint(loader: &ModelLoader, spec: &ModelSpec) -> Result<String, String> {
    let worker = worker::worker_for(loader, spec, worker::DEFAULT_LINGER).await?;
    Ok(worker.fingerprint().to_string())
}
