//! The files of a model directory: a fresh one (config and tokenizers), one copied from
//! `--init`, and the `checkpoint/` that `--resume` continues from.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::data::Sample;
use super::optim::AdamW;
use super::params::{self, Params};
use super::vocab;
use super::{Size, TrainOptions};

/// What `--resume` needs besides weights and moments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct TrainerState {
    pub(super) stage: u32,
    /// Optimiser steps completed in `stage`.
    pub(super) step: usize,
    pub(super) adam_t: u64,
    /// The options that decide the result; a resume with different ones is refused.
    pub(super) fingerprint: String,
}

// ---------------------------------------------------------------------------------------------
// A fresh model directory
// ---------------------------------------------------------------------------------------------

/// config.json of a fresh model (InstructBLIP layout, LLaMA decoder).
pub fn fresh_config(
    size: Size,
    image_size: usize,
    grid: Option<usize>,
    text_vocab: usize,
    qformer_vocab: usize,
) -> serde_json::Value {
    // (vision d, layers, heads, patch), (qformer d, layers, heads), queries, (text d, layers, heads, mlp)
    let ((vd, vl, vh, patch), (qd, ql, qh), queries, (td, tl, th, ti)) = match size {
        Size::Tiny => ((32, 1, 2, image_size / grid.unwrap_or(2)), (32, 1, 2), 4, (32, 1, 2, 64)),
        Size::Small => {
            ((128, 2, 4, image_size / grid.unwrap_or(8)), (128, 2, 4), 16, (128, 4, 4, 384))
        }
    };
    serde_json::json!({
        "architectures": ["InstructBlipForConditionalGeneration"],
        "model_type": "instructblip",
        "dtype": "float32",
        "image_token_index": null,
        "initializer_factor": 1.0,
        "initializer_range": params::INIT_STD,
        "num_query_tokens": queries,
        "use_decoder_only_language_model": true,
        "vision_config": {
            "model_type": "instructblip_vision_model",
            "hidden_size": vd, "intermediate_size": 2 * vd, "num_hidden_layers": vl,
            "num_attention_heads": vh, "image_size": image_size, "patch_size": patch,
            "hidden_act": "gelu", "layer_norm_eps": 1e-6, "qkv_bias": true,
            "attention_dropout": 0.0, "initializer_range": params::INIT_STD
        },
        "qformer_config": {
            "model_type": "instructblip_qformer",
            "vocab_size": qformer_vocab, "hidden_size": qd, "num_hidden_layers": ql,
            "num_attention_heads": qh, "intermediate_size": 2 * qd, "hidden_act": "gelu",
            "max_position_embeddings": 128, "layer_norm_eps": 1e-12, "pad_token_id": 0,
            "cross_attention_frequency": 1, "encoder_hidden_size": vd,
            "attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0,
            "initializer_range": params::INIT_STD
        },
        "text_config": {
            "model_type": "llama",
            "vocab_size": text_vocab, "hidden_size": td, "intermediate_size": ti,
            "num_hidden_layers": tl, "num_attention_heads": th, "num_key_value_heads": th,
            "head_dim": td / th, "hidden_act": "silu", "rms_norm_eps": 1e-6,
            "max_position_embeddings": 1024, "rope_theta": 10000.0,
            "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
            "initializer_range": params::INIT_STD
        }
    })
}

/// Writes config, tokenizers, processor and generation configs of a fresh model into `dir`.
pub(super) fn write_fresh_model_files(
    opts: &TrainOptions,
    samples: &[Sample],
    dir: &Path,
) -> Result<()> {
    let mut texts: Vec<String> =
        vec![crate::model::prompt::SYSTEM.to_string(), "USER: ASSISTANT:".into()];
    for s in samples {
        texts.push(s.instruction.clone());
        texts.push(s.target.clone());
    }
    let tok = vocab::train_text_tokenizer(&texts, opts.vocab_size).map_err(anyhow::Error::msg)?;
    let qtok = vocab::train_qformer_tokenizer(&texts, 1000).map_err(anyhow::Error::msg)?;
    let mut config = fresh_config(
        opts.size,
        opts.image_size,
        opts.grid,
        tok.get_vocab_size(true),
        qtok.get_vocab_size(true),
    );
    config["image_token_index"] = serde_json::json!(tok.token_to_id("<image>"));
    if let Some(layers) = opts.vision_layers {
        config["vision_config"]["num_hidden_layers"] = serde_json::json!(layers);
    }
    vocab::write_json(&dir.join("config.json"), &config).map_err(anyhow::Error::msg)?;
    vocab::save_text_tokenizer(&tok, dir).map_err(anyhow::Error::msg)?;
    vocab::save_qformer_tokenizer(&qtok, dir).map_err(anyhow::Error::msg)?;
    let processor = serde_json::json!({
        "image_processor": {
            "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "BlipImageProcessor", "resample": 3,
            "rescale_factor": 1.0 / 255.0,
            "size": {"height": opts.image_size, "width": opts.image_size}
        },
        "num_query_tokens": config["num_query_tokens"],
        "processor_class": "InstructBlipProcessor"
    });
    vocab::write_json(&dir.join("processor_config.json"), &processor)
        .map_err(anyhow::Error::msg)?;
    let generation = serde_json::json!({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0});
    vocab::write_json(&dir.join("generation_config.json"), &generation)
        .map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Copies the non-weight files of a checkpoint (config, tokenizers, processor) into `dir`.
pub fn copy_model_files(from: &Path, dir: &Path) -> Result<()> {
    for name in [
        "config.json",
        "generation_config.json",
        "processor_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "qformer_tokenizer/tokenizer.json",
        "qformer_tokenizer/tokenizer_config.json",
        "qformer_tokenizer/vocab.txt",
    ] {
        let src = from.join(name);
        if src.is_file() {
            let dst = dir.join(name);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy '{}'", src.display()))?;
        }
    }
    Ok(())
}

pub(super) fn fingerprint(opts: &TrainOptions) -> String {
    // Everything but paths, the checkpoint interval and verbosity decides the weights.
    let mut o = opts.clone();
    o.out = PathBuf::new();
    o.samples = Vec::new();
    o.checkpoint_every = 0;
    o.stop_after = 0;
    o.quiet = false;
    serde_json::to_string(&o).unwrap_or_default()
}

pub(super) fn write_checkpoint(
    dir: &Path,
    params: &Params,
    opt: &AdamW,
    state: &TrainerState,
) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    params.save(&tmp).map_err(anyhow::Error::msg)?;
    opt.save(&tmp).map_err(anyhow::Error::msg)?;
    std::fs::write(tmp.join("trainer_state.json"), serde_json::to_string_pretty(state)?)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("cannot move the checkpoint to '{}'", dir.display()))?;
    Ok(())
}
