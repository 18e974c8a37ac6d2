//! `SET vista.*` settings, readable by every function at execution time through
//! `ScalarFunctionArgs::config_options`.

use std::any::Any;

use datafusion::common::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::common::extensions_options;

extensions_options! {
    /// The fields of [`VistaConfig`] (`SET vista.<name> = ...`).
    pub struct VistaSettings {
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
        /// End tokens are not chosen before this many generated tokens (transformers'
        /// `min_new_tokens`); 0 lets a row end at once.
        pub min_new_tokens: usize, default = 0
        /// Beam width; 1 means greedy (or sampling when temperature > 0).
        pub num_beams: usize, default = 1
        /// How greedy decoding picks a coordinate token `<bin_k>` once the most likely token is
        /// one: `argmax` (that token, as transformers decodes) or `median` (the median of the
        /// next-token distribution over the bins). Models without `<bin_k>` tokens decode alike.
        pub coord_decode: String, default = "argmax".to_string()
        /// Sampling temperature; 0 means greedy.
        pub temperature: f64, default = 0.0
        /// Nucleus sampling threshold.
        pub top_p: f64, default = 1.0
        /// Seed for sampling.
        pub seed: u64, default = 0
        /// Prompt template: `vicuna_v1`, `raw`, `llava` or `qwen` (LLaVA and Qwen3-VL
        /// checkpoints read `vicuna_v1` as their own chat template).
        pub prompt_template: String, default = "vicuna_v1".to_string()
        /// Most pixels a decoded image, or any buffer derived from it (square padding), may
        /// hold; a larger image is a row error. The default is PIL's decompression-bomb error
        /// threshold (2 x `Image.MAX_IMAGE_PIXELS`).
        pub max_image_pixels: u64, default = crate::limits::DEFAULT_MAX_IMAGE_PIXELS
        /// Most bytes `read_bytes` reads from one file; a larger file is a row error.
        pub max_file_bytes: u64, default = crate::limits::DEFAULT_MAX_FILE_BYTES
        /// Most requests `read_bytes` has in flight at once for the URLs (`s3://`, `gs://`,
        /// `http(s)://`) of one batch.
        pub remote_concurrency: usize, default = 16
        /// Coordinates the model writes: `bins` (VistaLLM-style checkpoints with bin tokens),
        /// `decimal`, `llava` (LLaVA-1.5's instructions and boxes) or `qwen` (Qwen3-VL's
        /// grounding prompts and JSON boxes);
        /// `vista_prompt(..., style => 'model')` asks for this style.
        pub coord_style: String, default = "bins".to_string()
    }
}

/// Settings of the vista functions (`SET vista.<name> = ...`): [`VistaSettings`] as a
/// configuration extension whose entries carry their full name (`vista.base_dir`).
///
/// DataFusion's `extensions_options!` lists an extension's entries by bare field name
/// (`base_dir`). Ballista sends a session's settings to its scheduler and executors as those
/// entries and sets them back by name, so bare names would be dropped there (`could not find
/// config namespace for key "base_dir"`) and every executor would run with the defaults.
#[derive(Debug, Clone, Default)]
pub struct VistaConfig(pub VistaSettings);

impl std::ops::Deref for VistaConfig {
    type Target = VistaSettings;
    fn deref(&self) -> &VistaSettings {
        &self.0
    }
}

impl std::ops::DerefMut for VistaConfig {
    fn deref_mut(&mut self) -> &mut VistaSettings {
        &mut self.0
    }
}

impl ExtensionOptions for VistaConfig {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    /// `key` without the prefix (as `ConfigOptions::set` passes it), or with it.
    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        let key = key.strip_prefix("vista.").unwrap_or(key);
        self.0.set(key, value)
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        self.0
            .entries()
            .into_iter()
            .map(|e| ConfigEntry { key: format!("{}.{}", Self::PREFIX, e.key), ..e })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's entries set on a fresh configuration reproduce its settings (what Ballista
    /// does between client, scheduler and executors).
    #[test]
    fn entries_carry_the_prefix_and_round_trip() {
        let mut a = ConfigOptions::new();
        a.extensions.insert(VistaConfig::default());
        a.set("vista.base_dir", "/data").unwrap();
        a.set("vista.batch_size", "3").unwrap();
        let entries = a.entries();
        assert!(entries.iter().any(|e| e.key == "vista.base_dir"));
        let mut b = ConfigOptions::new();
        b.extensions.insert(VistaConfig::default());
        for e in entries.into_iter().filter(|e| e.key.starts_with("vista.")) {
            if let Some(v) = e.value {
                b.set(&e.key, &v).unwrap();
            }
        }
        let v = VistaConfig::from_options(&b);
        assert_eq!((v.base_dir.as_str(), v.batch_size), ("/data", 3));
    }
}
