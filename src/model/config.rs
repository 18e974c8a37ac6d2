//! `config.json` of an InstructBLIP checkpoint, as `InstructBlipConfig.save_pretrained` writes it.
//! Defaults are transformers' own, because older checkpoints only store what differs from them.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "defaults::v_hidden")]
    pub hidden_size: usize,
    #[serde(default = "defaults::v_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::v_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::v_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::v_image")]
    pub image_size: usize,
    #[serde(default = "defaults::v_patch")]
    pub patch_size: usize,
    #[serde(default = "defaults::gelu")]
    pub hidden_act: String,
    #[serde(default = "defaults::eps6")]
    pub layer_norm_eps: f64,
    #[serde(default = "defaults::yes")]
    pub qkv_bias: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QFormerConfig {
    #[serde(default = "defaults::q_vocab")]
    pub vocab_size: usize,
    #[serde(default = "defaults::q_hidden")]
    pub hidden_size: usize,
    #[serde(default = "defaults::q_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::q_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::q_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::gelu")]
    pub hidden_act: String,
    #[serde(default = "defaults::q_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "defaults::eps12")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default = "defaults::two")]
    pub cross_attention_frequency: usize,
    #[serde(default = "defaults::v_hidden")]
    pub encoder_hidden_size: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_type: Option<String>,
}

/// The LLaMA/Vicuna decoder (`text_config`, model_type `llama`).
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    #[serde(default = "defaults::llama")]
    pub model_type: String,
    #[serde(default = "defaults::t_vocab")]
    pub vocab_size: usize,
    #[serde(default = "defaults::t_hidden")]
    pub hidden_size: usize,
    #[serde(default = "defaults::t_intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::t_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::t_heads")]
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "defaults::eps6")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default = "defaults::silu")]
    pub hidden_act: String,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// The context the decoder was trained for; a longer prompt is refused per row.
    #[serde(default = "defaults::t_context")]
    pub max_position_embeddings: usize,
}

impl TextConfig {
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Rejects what the decoder code does not implement, instead of computing something else.
    pub fn validate(&self) -> Result<(), String> {
        if self.model_type != "llama" {
            return Err(format!(
                "config.json: text_config.model_type `{}` is not supported (only `llama`/Vicuna decoders)",
                self.model_type
            ));
        }
        let rope_type =
            self.rope_parameters.as_ref().and_then(|p| p.rope_type.clone()).or_else(|| {
                self.rope_scaling.as_ref().and_then(|s| {
                    s.get("rope_type")
                        .or_else(|| s.get("type"))
                        .and_then(|v| v.as_str().map(str::to_string))
                })
            });
        if let Some(kind) = rope_type.filter(|k| k != "default") {
            return Err(format!(
                "config.json: text_config rope type `{kind}` is not supported (only default RoPE)"
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "config.json: text_config.hidden_act `{}` is not supported (silu)",
                self.hidden_act
            ));
        }
        if self.num_attention_heads == 0
            || self.num_kv_heads() == 0
            || !self.num_attention_heads.is_multiple_of(self.num_kv_heads())
        {
            return Err(format!(
                "config.json: text_config.num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        Ok(())
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10000.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vision_config: VisionConfig,
    pub qformer_config: QFormerConfig,
    pub text_config: TextConfig,
    #[serde(default = "defaults::queries")]
    pub num_query_tokens: usize,
    #[serde(default, alias = "image_token_id")]
    pub image_token_index: Option<u32>,
}

impl Config {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects what the model code does not implement, instead of computing something else.
    fn validate(&self) -> Result<(), String> {
        self.text_config.validate()?;
        for (what, act) in [
            ("vision_config.hidden_act", &self.vision_config.hidden_act),
            ("qformer_config.hidden_act", &self.qformer_config.hidden_act),
        ] {
            if act != "gelu" {
                return Err(format!("config.json: {what} `{act}` is not supported (gelu)"));
            }
        }
        let checks = [
            (
                "vision_config",
                self.vision_config.hidden_size,
                self.vision_config.num_attention_heads,
            ),
            (
                "qformer_config",
                self.qformer_config.hidden_size,
                self.qformer_config.num_attention_heads,
            ),
        ];
        for (what, hidden, heads) in checks {
            if heads == 0 || !hidden.is_multiple_of(heads) {
                return Err(format!(
                    "config.json: {what}.hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
                ));
            }
        }
        if self.qformer_config.cross_attention_frequency == 0 {
            return Err("config.json: qformer_config.cross_attention_frequency must be >= 1".into());
        }
        if self.vision_config.patch_size == 0
            || self.vision_config.image_size < self.vision_config.patch_size
        {
            return Err(format!(
                "config.json: vision_config.image_size {} is smaller than patch_size {}",
                self.vision_config.image_size, self.vision_config.patch_size
            ));
        }
        Ok(())
    }

    /// Patches along one side; the patch convolution drops any remainder.
    pub fn patches_per_side(&self) -> usize {
        self.vision_config.image_size / self.vision_config.patch_size
    }
}

/// Values `transformers` assumes for fields a `config.json` may omit (InstructBLIP-Vicuna-7B's
/// shapes; `v_`, `q_`, `t_` for the vision, Q-Former and text configs), so a partial config
/// loads as it does in Python.
mod defaults {
    pub fn v_hidden() -> usize {
        1408
    }
    pub fn v_intermediate() -> usize {
        6144
    }
    pub fn v_layers() -> usize {
        39
    }
    pub fn v_heads() -> usize {
        16
    }
    pub fn v_image() -> usize {
        224
    }
    pub fn v_patch() -> usize {
        14
    }
    pub fn q_vocab() -> usize {
        30522
    }
    pub fn q_hidden() -> usize {
        768
    }
    pub fn q_layers() -> usize {
        12
    }
    pub fn q_heads() -> usize {
        12
    }
    pub fn q_intermediate() -> usize {
        3072
    }
    pub fn q_positions() -> usize {
        512
    }
    pub fn t_vocab() -> usize {
        32000
    }
    /// transformers' `LlamaConfig` default.
    pub fn t_context() -> usize {
        2048
    }
    pub fn t_hidden() -> usize {
        4096
    }
    pub fn t_intermediate() -> usize {
        11008
    }
    pub fn t_layers() -> usize {
        32
    }
    pub fn t_heads() -> usize {
        32
    }
    pub fn queries() -> usize {
        32
    }
    pub fn two() -> usize {
        2
    }
    pub fn eps6() -> f64 {
        1e-6
    }
    pub fn eps12() -> f64 {
        1e-12
    }
    pub fn yes() -> bool {
        true
    }
    pub fn gelu() -> String {
        "gelu".into()
    }
    pub fn silu() -> String {
        "silu".into()
    }
    pub fn llama() -> String {
        "llama".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_config_gets_transformers_defaults() {
        let cfg = Config::from_json(
            r#"{"vision_config": {}, "qformer_config": {"vocab_size": 30523},
                "text_config": {"model_type": "llama", "vocab_size": 32001}}"#,
        )
        .unwrap();
        assert_eq!(cfg.vision_config.num_hidden_layers, 39);
        assert_eq!(cfg.qformer_config.cross_attention_frequency, 2);
        assert_eq!(cfg.text_config.num_kv_heads(), 32);
        assert_eq!(cfg.text_config.head_dim(), 128);
        assert_eq!(cfg.num_query_tokens, 32);
        assert_eq!(cfg.patches_per_side(), 16);
    }

    #[test]
    fn unsupported_language_model_is_named() {
        let err = Config::from_json(
            r#"{"vision_config": {}, "qformer_config": {}, "text_config": {"model_type": "t5"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("`t5` is not supported"), "{err}");
    }
}
