//! `config.json` of a LLaVA-1.5 checkpoint (`model_type` `llava`) or a LLaVA-NeXT one
//! (`llava_next`, the same keys plus `image_grid_pinpoints`), as `save_pretrained` writes them.
//! Defaults are transformers' own (`LlavaConfig`, `LlavaNextConfig`, `CLIPVisionConfig`), because
//! the llava-hf checkpoints only store what differs from them.

use serde::Deserialize;

use crate::model::config::TextConfig;

/// The CLIP vision tower (`vision_config`, model_type `clip_vision_model`).
#[derive(Debug, Clone, Deserialize)]
pub struct ClipVisionConfig {
    #[serde(default = "defaults::hidden")]
    pub hidden_size: usize,
    #[serde(default = "defaults::intermediate")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::channels")]
    pub num_channels: usize,
    #[serde(default = "defaults::image")]
    pub image_size: usize,
    #[serde(default = "defaults::patch")]
    pub patch_size: usize,
    #[serde(default = "defaults::quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "defaults::eps5")]
    pub layer_norm_eps: f64,
    #[serde(default = "defaults::projection")]
    pub projection_dim: usize,
}

/// Which hidden states of the vision tower feed the projector: one index or several
/// (concatenated along the features), Python-style (negative counts from the end; 0 is the
/// embeddings).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FeatureLayer {
    One(i64),
    Many(Vec<i64>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct LlavaConfig {
    #[serde(default = "defaults::llava")]
    pub model_type: String,
    pub vision_config: ClipVisionConfig,
    pub text_config: TextConfig,
    #[serde(default = "defaults::image_token", alias = "image_token_id")]
    pub image_token_index: u32,
    #[serde(default = "defaults::gelu")]
    pub projector_hidden_act: String,
    #[serde(default = "defaults::feature_layer")]
    pub vision_feature_layer: FeatureLayer,
    #[serde(default = "defaults::strategy")]
    pub vision_feature_select_strategy: String,
    #[serde(default = "defaults::yes")]
    pub multimodal_projector_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// LLaVA-NeXT's tiled resolutions, (height, width) in pixels; `None` under LLaVA-1.5.
    #[serde(default)]
    pub image_grid_pinpoints: Option<Vec<[usize; 2]>>,
}

impl LlavaConfig {
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut cfg: LlavaConfig =
            serde_json::from_str(text).map_err(|e| format!("config.json: {e}"))?;
        // transformers ties the output rows to the embeddings when either level says so.
        cfg.text_config.tie_word_embeddings |= cfg.tie_word_embeddings;
        if cfg.is_next() && cfg.image_grid_pinpoints.is_none() {
            cfg.image_grid_pinpoints = Some(defaults::pinpoints());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects what the model code does not implement, instead of computing something else.
    fn validate(&self) -> Result<(), String> {
        self.text_config.validate()?;
        let v = &self.vision_config;
        if v.hidden_act != "quick_gelu" {
            return Err(format!(
                "config.json: vision_config.hidden_act `{}` is not supported (quick_gelu)",
                v.hidden_act
            ));
        }
        if v.num_attention_heads == 0 || !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(format!(
                "config.json: vision_config.hidden_size {} is not a multiple of num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if v.patch_size == 0 || v.image_size < v.patch_size {
            return Err(format!(
                "config.json: vision_config.image_size {} is smaller than patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if self.projector_hidden_act != "gelu" {
            return Err(format!(
                "config.json: projector_hidden_act `{}` is not supported (gelu)",
                self.projector_hidden_act
            ));
        }
        if !matches!(self.vision_feature_select_strategy.as_str(), "default" | "full") {
            return Err(format!(
                "config.json: vision_feature_select_strategy `{}` is not supported (default, full)",
                self.vision_feature_select_strategy
            ));
        }
        self.feature_layers()?;
        if self.is_next() {
            self.validate_next()?;
        }
        Ok(())
    }

    /// LLaVA-NeXT (`llava_next`): tiled images.
    pub fn is_next(&self) -> bool {
        self.model_type == "llava_next"
    }

    /// What the tiling needs: each resolution a grid of whole tiles, and the class token
    /// dropped (transformers' packing cannot lay out `full` features on the tile grid).
    fn validate_next(&self) -> Result<(), String> {
        if self.vision_feature_select_strategy != "default" {
            return Err(format!(
                "config.json: vision_feature_select_strategy `{}` is not supported for llava_next \
                 (default)",
                self.vision_feature_select_strategy
            ));
        }
        let tile = self.vision_config.image_size;
        let pinpoints = self.image_grid_pinpoints.as_deref().unwrap_or_default();
        if pinpoints.is_empty() {
            return Err("config.json: image_grid_pinpoints is empty".into());
        }
        for &[h, w] in pinpoints {
            if h == 0 || w == 0 || !h.is_multiple_of(tile) || !w.is_multiple_of(tile) {
                return Err(format!(
                    "config.json: image_grid_pinpoints entry [{h}, {w}] is not a grid of \
                     {tile} px tiles (vision_config.image_size)"
                ));
            }
        }
        Ok(())
    }

    /// The selected layers as indices of the encoder layers' outputs (layer k's output is k - 1).
    pub fn feature_layers(&self) -> Result<Vec<usize>, String> {
        let layers = self.vision_config.num_hidden_layers as i64;
        let wanted = match &self.vision_feature_layer {
            FeatureLayer::One(k) => vec![*k],
            FeatureLayer::Many(ks) => ks.clone(),
        };
        if wanted.is_empty() {
            return Err("config.json: vision_feature_layer is an empty list".into());
        }
        wanted
            .into_iter()
            .map(|k| {
                let index = if k < 0 { k + layers + 1 } else { k };
                if index < 1 || index > layers {
                    return Err(format!(
                        "config.json: vision_feature_layer {k} is not supported (a layer of the \
                         {layers}-layer vision tower; 0, the embeddings, is not)"
                    ));
                }
                Ok(index as usize - 1)
            })
            .collect()
    }

    /// Image tokens per image: one per patch, plus the class token with the `full` strategy.
    pub fn tokens_per_image(&self) -> usize {
        let side = self.vision_config.image_size / self.vision_config.patch_size;
        side * side + usize::from(self.vision_feature_select_strategy == "full")
    }
}

mod defaults {
    pub fn hidden() -> usize {
        768
    }
    pub fn intermediate() -> usize {
        3072
    }
    pub fn layers() -> usize {
        12
    }
    pub fn heads() -> usize {
        12
    }
    pub fn channels() -> usize {
        3
    }
    pub fn image() -> usize {
        224
    }
    pub fn patch() -> usize {
        32
    }
    pub fn projection() -> usize {
        512
    }
    pub fn quick_gelu() -> String {
        "quick_gelu".into()
    }
    pub fn eps5() -> f64 {
        1e-5
    }
    pub fn image_token() -> u32 {
        32000
    }
    pub fn gelu() -> String {
        "gelu".into()
    }
    pub fn feature_layer() -> super::FeatureLayer {
        super::FeatureLayer::One(-2)
    }
    pub fn strategy() -> String {
        "default".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn llava() -> String {
        "llava".into()
    }
    /// `LlavaNextConfig`'s, for 336 px tiles.
    pub fn pinpoints() -> Vec<[usize; 2]> {
        vec![[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<LlavaConfig, String> {
        LlavaConfig::from_json(&format!(
            r#"{{"vision_config": {{"num_hidden_layers": 4}}, "text_config": {{}}{extra}}}"#
        ))
    }

    #[test]
    fn defaults_are_llava_1_5() {
        let cfg = config("").unwrap();
        assert_eq!(cfg.image_token_index, 32000);
        assert_eq!(cfg.feature_layers().unwrap(), vec![2]);
        assert_eq!(cfg.tokens_per_image(), 49);
    }

    #[test]
    fn feature_layers_count_from_either_end() {
        let cfg = config(
            r#", "vision_feature_layer": [1, -1], "vision_feature_select_strategy": "full""#,
        )
        .unwrap();
        assert_eq!(cfg.feature_layers().unwrap(), vec![0, 3]);
        assert_eq!(cfg.tokens_per_image(), 50);
        let err = config(r#", "vision_feature_layer": 0"#).unwrap_err();
        assert!(err.contains("vision_feature_layer 0 is not supported"), "{err}");
        let err = config(r#", "vision_feature_layer": -6"#).unwrap_err();
        assert!(err.contains("vision_feature_layer -6"), "{err}");
    }

    #[test]
    fn unsupported_settings_are_named() {
        let err = config(r#", "projector_hidden_act": "relu""#).unwrap_err();
        assert_eq!(err, "config.json: projector_hidden_act `relu` is not supported (gelu)");
        let err = config(r#", "vision_feature_select_strategy": "cls""#).unwrap_err();
        assert!(err.contains("vision_feature_select_strategy `cls`"), "{err}");
    }

    #[test]
    fn llava_next_tiles_must_fit_its_pinpoints() {
        let next = |extra: &str| {
            LlavaConfig::from_json(&format!(
                r#"{{"model_type": "llava_next", "vision_config": {{"image_size": 336}},
                    "text_config": {{}}{extra}}}"#
            ))
        };
        let cfg = next("").unwrap();
        assert!(cfg.is_next());
        assert_eq!(cfg.image_grid_pinpoints.unwrap()[3], [1008, 336]);
        assert!(config("").unwrap().image_grid_pinpoints.is_none());
        let err = next(r#", "image_grid_pinpoints": [[336, 500]]"#).unwrap_err();
        assert!(err.contains("entry [336, 500] is not a grid of 336 px tiles"), "{err}");
        let err = next(r#", "vision_feature_select_strategy": "full""#).unwrap_err();
        assert!(err.contains("`full` is not supported for llava_next"), "{err}");
    }
}
