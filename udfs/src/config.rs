//! `SET vista.*` settings, readable by every function at execution time through
//! `ScalarFunctionArgs::config_options`.

use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::extensions_options;

extensions_options! {
    /// Settings of the vista functions (`SET vista.<name> = ...`).
    pub struct VistaConfig {
        /// Directory that relative paths given to `read_bytes` resolve against.
        pub base_dir: String, default = String::new()
        /// What a function does with a row it cannot process: `fail` (stop, naming the row) or `null`.
        pub on_error: String, default = "fail".to_string()
        /// Model directory (Hugging Face layout) used by `vista_generate`.
        pub model: String, default = String::new()
        /// Device for the model: `cpu` or `cuda:N`.
        pub device: String, default = "cpu".to_string()
        /// Model dtype: `f32` (CPU default), `bf16` or `f16` (CUDA).
        pub dtype: String, default = "f32".to_string()
        /// Rows per model micro-batch.
        pub batch_size: usize, default = 8
        /// Maximum number of generated tokens per row.
        pub max_new_tokens: usize, default = 64
        /// Beam width; 1 means greedy (or sampling when temperature > 0).
        pub num_beams: usize, default = 1
        /// Sampling temperature; 0 means greedy.
        pub temperature: f64, default = 0.0
        /// Nucleus sampling threshold.
        pub top_p: f64, default = 1.0
        /// Seed for sampling.
        pub seed: u64, default = 0
        /// Prompt template: `vicuna_v1` or `raw`.
        pub prompt_template: String, default = "vicuna_v1".to_string()
    }
}

impl ConfigExtension for VistaConfig {
    const PREFIX: &'static str = "vista";
}

impl VistaConfig {
    /// The settings in force for a function call (defaults when the session has none).
    pub fn from_options(options: &ConfigOptions) -> VistaConfig {
        options.extensions.get::<VistaConfig>().cloned().unwrap_or_default()
    }
}
