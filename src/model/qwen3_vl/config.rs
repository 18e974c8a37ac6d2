//! `config.json` of a Qwen3-VL checkpoint (`model_type` `qwen3_vl`), as
//! `Qwen3VLConfig.save_pretrained` writes it; defaults are transformers' own.

use serde::Deserialize;

use crate::model::config::TextConfig;

#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "defaults::depth")]
    pub depth: usize,
    #[serde(default = "defaults::hidden")]
    pub hidden_size: usize,
    #[serde(default = "defaults::act")]
    pub hidden_act: String,
    #[serde(default = "defaults::intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::heads")]
    pub num_heads: usize,
    #[serde(default = "defaults::channels")]
    pub in_channels: usize,
    #[serde(default = "defaults::patch")]
    pub patch_size: usize,
    #[serde(default = "defaults::merge")]
    pub spatial_merge_size: usize,
    #[serde(default = "defaults::temporal")]
    pub temporal_patch_size: usize,
    #[serde(default = "defaults::out_hidden")]
    pub out_hidden_size: usize,
    #[serde(default = "defaults::positions")]
    pub num_position_embeddings: usize,
    #[serde(default = "defaults::deepstack")]
    pub deepstack_visual_indexes: Vec<usize>,
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
}

impl VisionConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    pub fn rope_theta(&self) -> f64 {
        self.rope_parameters.as_ref().and_then(|p| p.get("rope_theta")?.as_f64()).unwrap_or(10000.0)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3VlConfig {
    pub vision_config: VisionConfig,
    pub text_config: TextConfig,
    #[serde(default = "defaults::image_token")]
    pub image_token_id: u32,
    #[serde(default = "defaults::vision_start")]
    pub vision_start_token_id: u32,
    #[serde(default = "defaults::vision_end")]
    pub vision_end_token_id: u32,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// `text_config.rope_parameters` (or the older `rope_scaling`) as written.
    #[serde(skip)]
    text_rope: serde_json::Value,
}

impl Qwen3VlConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut cfg: Qwen3VlConfig =
            serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        cfg.text_config.tie_word_embeddings |= cfg.tie_word_embeddings;
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        let t = &raw["text_config"];
        cfg.text_rope = if t["rope_parameters"].is_object() {
            t["rope_parameters"].clone()
        } else {
            t["rope_scaling"].clone()
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        // The decoder is Qwen3 (LLaMA's layers with per-head q/k norms); the LLaMA checks apply
        // to everything but the name and the RoPE kind, which are checked here.
        let mut text = self.text_config.clone();
        text.model_type = "llama".into();
        text.rope_parameters = None;
        text.rope_scaling = None;
        text.validate()?;
        let rope = self.rope()?;
        if rope.iter().sum::<usize>() != self.text_config.head_dim() / 2 {
            return Err(format!(
                "config.json: text_config mrope_section {rope:?} does not add up to head_dim / 2 = {}",
                self.text_config.head_dim() / 2
            ));
        }
        let v = &self.vision_config;
        if v.hidden_act != "gelu_pytorch_tanh" {
            return Err(format!(
                "config.json: vision_config.hidden_act `{}` is not supported (gelu_pytorch_tanh)",
                v.hidden_act
            ));
        }
        if v.num_heads == 0
            || !v.hidden_size.is_multiple_of(v.num_heads)
            || !v.head_dim().is_multiple_of(4)
        {
            return Err(format!(
                "config.json: vision_config.hidden_size {} / num_heads {} must be a multiple of 4",
                v.hidden_size, v.num_heads
            ));
        }
        let side = (v.num_position_embeddings as f64).sqrt() as usize;
        if side * side != v.num_position_embeddings || side == 0 {
            return Err(format!(
                "config.json: vision_config.num_position_embeddings {} is not a square",
                v.num_position_embeddings
            ));
        }
        if let Some(&k) = v.deepstack_visual_indexes.iter().find(|&&k| k >= v.depth) {
            return Err(format!(
                "config.json: deepstack_visual_indexes has {k}, past the {} vision layers",
                v.depth
            ));
        }
        if v.deepstack_visual_indexes.len() > self.text_config.num_hidden_layers {
            return Err("config.json: more DeepStack layers than decoder layers".into());
        }
        Ok(())
    }

    /// `mrope_section` of the interleaved multimodal RoPE (the only layout Qwen3-VL uses).
    pub fn rope(&self) -> Result<Vec<usize>, String> {
        let p = &self.text_rope;
        let interleaved = p.get("mrope_interleaved").and_then(|v| v.as_bool()).unwrap_or(true);
        if !interleaved {
            return Err("config.json: only interleaved multimodal RoPE is supported".into());
        }
        let kind =
            p.get("rope_type").or(p.get("type")).and_then(|v| v.as_str()).unwrap_or("default");
        if !matches!(kind, "default" | "mrope") {
            return Err(format!("config.json: text_config rope type `{kind}` is not supported"));
        }
        match p.get("mrope_section").and_then(|v| v.as_array()) {
            Some(s) => s
                .iter()
                .map(|x| x.as_u64().map(|x| x as usize).ok_or("bad mrope_section".to_string()))
                .collect(),
            None => Ok(vec![24, 20, 20]),
        }
    }

    /// For each rotary frequency, the axis whose position turns it (0 temporal, 1 height,
    /// 2 width): height and width take every third frequency from the second and third on, as
    /// far as their sections reach; the temporal axis the rest.
    pub fn rope_axes(&self) -> Result<Vec<usize>, String> {
        let s = self.rope()?;
        let half = self.text_config.head_dim() / 2;
        Ok((0..half)
            .map(|i| match i % 3 {
                1 if i < 3 * s[1] => 1,
                2 if i < 3 * s[2] => 2,
                _ => 0,
            })
            .collect())
    }
}

mod defaults {
    pub fn depth() -> usize {
        27
    }
    pub fn hidden() -> usize {
        1152
    }
    pub fn act() -> String {
        "gelu_pytorch_tanh".into()
    }
    pub fn intermediate() -> usize {
        4304
    }
    pub fn heads() -> usize {
        16
    }
    pub fn channels() -> usize {
        3
    }
    pub fn patch() -> usize {
        16
    }
    pub fn merge() -> usize {
        2
    }
    pub fn temporal() -> usize {
        2
    }
    pub fn out_hidden() -> usize {
        3584
    }
    pub fn positions() -> usize {
        2304
    }
    pub fn deepstack() -> Vec<usize> {
        vec![8, 16, 24]
    }
    pub fn image_token() -> u32 {
        151655
    }
    pub fn vision_start() -> u32 {
        151652
    }
    pub fn vision_end() -> u32 {
        151653
    }
}
