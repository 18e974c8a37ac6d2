//! The network as `LlavaForConditionalGeneration` lays it out: the CLIP vision tower, the
//! two-layer GELU projector and the LLaMA decoder (`LlavaNextForConditionalGeneration` adds
//! `image_newline`). The tower is our ViT (`model::vision`) with CLIP's layout:
//! candle-transformers' `clip::vision_model` computes the same features, but with candle's
//! single-threaded softmax and QuickGELU a batch of 8 took ~0.95 s of LLaVA's 2.1 s against
//! transformers' 0.6 s (scripts/bench_model.sh, docs/model.md).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::LlavaConfig;
use crate::model::llama::Llama;
use crate::model::nn::{gelu_erf, linear_b, Linear};
use crate::model::vision::{ClipShape, VisionModel};

pub struct Llava {
    vision: VisionModel,
    /// Indices into the encoder layers' outputs, concatenated in this order.
    feature_layers: Vec<usize>,
    drop_class_token: bool,
    linear_1: Linear,
    linear_2: Linear,
    /// LLaVA-NeXT's `image_newline` [text_hidden], closing each row of an image's tile features.
    pub image_newline: Option<Tensor>,
    pub llm: Llama,
}

/// Where a checkpoint keeps each part: the llava-hf checkpoints, transformers 5's and
/// transformers 4's own saves name them differently.
const VISION_PREFIXES: [&str; 4] = [
    "vision_tower.vision_model",
    "vision_tower",
    "model.vision_tower.vision_model",
    "model.vision_tower",
];
const PROJECTOR_PREFIXES: [&str; 2] = ["multi_modal_projector", "model.multi_modal_projector"];
const NEWLINE_NAMES: [&str; 2] = ["image_newline", "model.image_newline"];

fn find_prefix<'a>(vb: &VarBuilder, prefixes: &[&'a str], probe: &str) -> Result<&'a str> {
    prefixes.iter().copied().find(|p| vb.contains_tensor(&format!("{p}.{probe}"))).ok_or_else(
        || {
            candle_core::Error::Msg(format!(
                "no tensor `{probe}` under any of {}",
                prefixes.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
            ))
        },
    )
}

impl Llava {
    pub fn new(cfg: &LlavaConfig, vb: VarBuilder) -> Result<Self> {
        let v = &cfg.vision_config;
        let vision_vb = vb.pp(find_prefix(&vb, &VISION_PREFIXES, "embeddings.class_embedding")?);
        let shape = ClipShape {
            hidden_size: v.hidden_size,
            intermediate_size: v.intermediate_size,
            layers: v.num_hidden_layers,
            heads: v.num_attention_heads,
            channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
            layer_norm_eps: v.layer_norm_eps,
        };
        let vision = VisionModel::clip(&shape, vision_vb)?;
        let feature_layers = cfg.feature_layers().map_err(candle_core::Error::Msg)?;
        let proj = vb.pp(find_prefix(&vb, &PROJECTOR_PREFIXES, "linear_1.weight")?);
        let text_hidden = cfg.text_config.hidden_size;
        let in_dim = v.hidden_size * feature_layers.len();
        let bias = cfg.multimodal_projector_bias;
        let linear_1 = linear_b(in_dim, text_hidden, bias, proj.pp("linear_1"))?;
        let linear_2 = linear_b(text_hidden, text_hidden, bias, proj.pp("linear_2"))?;
        let llm = if vb.contains_tensor("language_model.model.embed_tokens.weight") {
            Llama::new(&cfg.text_config, vb.pp("language_model"))?
        } else {
            Llama::from_parts(&cfg.text_config, vb.pp("model").pp("language_model"), vb.clone())?
        };
        let image_newline = if cfg.is_next() {
            let name =
                NEWLINE_NAMES.iter().find(|n| vb.contains_tensor(n)).unwrap_or(&NEWLINE_NAMES[0]);
            Some(vb.get(text_hidden, name)?)
        } else {
            None
        };
        Ok(Llava {
            vision,
            feature_layers,
            drop_class_token: cfg.vision_feature_select_strategy == "default",
            linear_1,
            linear_2,
            image_newline,
            llm,
        })
    }

    /// The selected vision features [n, T, vision_hidden * layers] of pixel_values [n, 3, S, S].
    pub fn vision_features(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let mut wanted = self.feature_layers.clone();
        wanted.sort_unstable();
        wanted.dedup();
        let states = self.vision.hidden_states(pixel_values, &wanted)?;
        let picked = self
            .feature_layers
            .iter()
            .map(|k| {
                let s = &states[wanted.binary_search(k).expect("a wanted layer")];
                if self.drop_class_token {
                    s.narrow(1, 1, s.dim(1)? - 1)
                } else {
                    Ok(s.clone())
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&picked, 2)
    }

    /// Image tokens for the language model [n, T, text_hidden]. On the CPU the tower runs 4
    /// images at a time, as InstructBLIP's does: the activations of a whole micro-batch would
    /// otherwise dominate memory, and GEMMs of 4 x 577 rows already run at full speed.
    pub fn image_tokens(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let n = pixel_values.dim(0)?;
        let chunk = if pixel_values.device().is_cpu() { 4 } else { n.max(1) };
        let mut parts = Vec::with_capacity(n.div_ceil(chunk));
        for start in (0..n).step_by(chunk) {
            let px = pixel_values.narrow(0, start, chunk.min(n - start))?;
            let x = self.linear_1.forward(&self.vision_features(&px)?)?;
            parts.push(self.linear_2.forward(&gelu_erf(&x)?)?);
        }
        Tensor::cat(&parts, 0)
    }
}
