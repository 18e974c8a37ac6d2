//! `vista train`: VistaLLM's two-stage recipe on an instruction table (schemas/samples.json).
//!
//! - Stage 0 (optional, `--pretrain-steps`) teaches the image side to see: the encoder on
//!   synthetic scenes with per-patch labels, the image tokenizer to carry each sample's answer
//!   (src/train/pretrain.rs); its heads are dropped afterwards.
//! - Stage 1 trains everything but the image encoder on single-image samples.
//! - Stage 2 trains the image tokenizer (query tokens, Q-Former, projection) on multi-image
//!   samples, with the language model frozen.
//!
//! The loss is the cross-entropy of the answer tokens only (the target text and `</s>`), averaged
//! per sample so that a two-token VQA answer weighs as much as a 130-token mask. AdamW with
//! warm-up and cosine decay per stage, gradient accumulation, global-norm clipping.
//!
//! The output directory is a Hugging Face InstructBLIP checkpoint that `vista_generate` loads
//! (config.json, model.safetensors, both tokenizers, processor and generation configs), plus
//! `loss.csv`, `loss.png`, `train_report.json` and `checkpoint/` (weights, optimiser moments and
//! the trainer state) from which `--resume` continues. A fresh run learns its tokenizers from the
//! training texts and initialises the weights from the seed; the data order is a function of the
//! seed, the stage and the epoch, so a resumed run takes the same batches as an uninterrupted one.

mod checkpoint;
mod coords;
pub mod curve;
mod data;
mod loss;
pub mod optim;
pub mod params;
mod pretrain;
mod probe;
pub mod vocab;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::generate::SplitMix64;
use crate::model::VistaModel;
pub use checkpoint::{copy_model_files, fresh_config};
use checkpoint::{fingerprint, write_checkpoint, write_fresh_model_files, TrainerState};
use curve::Point;
use data::{batch_indices, encode, Encoded};
pub use data::{read_samples, Sample};
pub use loss::answer_loss;
use loss::batch_loss;
use optim::{schedule, AdamW, AdamWConfig};
use params::{Builder, Params};
pub use probe::{probe_summary, PatchLine, ProbedBox, ProbedCounts, Stage0Probe};

/// Architecture presets for a fresh model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// Well under a million parameters (mostly the coordinate-token embeddings): for tests.
    Tiny,
    /// About 2.25M parameters: the shipped demo model.
    Small,
}

/// How stages 1 and 2 average the answer tokens' cross-entropy over a batch (`--answer-loss`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AnswerLoss {
    /// Each sample's mean, then the mean over samples: every answer counts once whatever its
    /// length.
    #[default]
    Sample,
    /// The mean over every answer token of the batch, as transformers' language-model loss.
    Token,
}

impl Size {
    pub fn parse(s: &str) -> Result<Size> {
        match s {
            "tiny" => Ok(Size::Tiny),
            "small" => Ok(Size::Small),
            other => bail!("--size {other}: expected tiny or small"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct TrainOptions {
    /// Sample tables (Parquet files or directories, searched recursively), e.g. the output of
    /// `vista synth`.
    #[arg(long, required = true, num_args = 1..)]
    pub samples: Vec<PathBuf>,
    /// Output model directory (a Hugging Face InstructBLIP checkpoint).
    #[arg(long)]
    pub out: PathBuf,
    /// Start from this checkpoint (its tokenizers and architecture) instead of a fresh model;
    /// the fresh-model options (`--size`, `--image-size`, `--grid`, `--coord-init`,
    /// `--vision-position-std`, `--vocab-size`) are refused beside it.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Architecture of a fresh model: tiny | small.
    #[arg(long, default_value = "small", value_parser = Size::parse, conflicts_with = "init")]
    pub size: Size,
    /// Side of the model's square input images (fresh models).
    #[arg(long, default_value_t = 96, conflicts_with = "init")]
    pub image_size: usize,
    /// Patches per side of a fresh model's image encoder (default: 8 for small, 2 for tiny);
    /// must divide `--image-size`. A finer grid gives the encoder more, smaller patches to place
    /// an object's edges with, at about the square of the ratio in encoder compute.
    #[arg(long, conflicts_with = "init")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grid: Option<usize>,
    /// Transformer layers of a fresh model's image encoder (default: 2 for small, 1 for tiny).
    #[arg(long, conflicts_with = "init")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision_layers: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Optimiser steps of stage 0: the image encoder learns what lies under each patch of
    /// synthetic scenes drawn on the fly (colour, shape, size, background, the object's box) and
    /// the image tokenizer to carry each sample's answer (its box or its words); the encoder then
    /// stays frozen unless `--train-vision` (0 = no stage 0).
    #[arg(long, default_value_t = 0)]
    pub pretrain_steps: usize,
    /// Scenes and probe samples per stage-0 step.
    #[arg(long, default_value_t = 32)]
    pub pretrain_batch: usize,
    /// Scenes per stage-0 step, where they differ from `--pretrain-batch`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_scenes: Option<usize>,
    /// Samples whose answer is one box or one mask added to every stage-0 step with
    /// `--probe-attention` (default: half of `--pretrain-batch`).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrain_box: Option<usize>,
    /// Peak learning rate of stage 0.
    #[arg(long, default_value_t = 2e-3)]
    pub lr_pretrain: f64,
    /// Weight of a stage-0 loss on where the Q-Former looks: for samples whose answer is one
    /// box or one mask, -log of the share of its cross-attention that falls inside that box
    /// (0 = off).
    #[arg(long, default_value_t = 0.0)]
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probe_attention: f64,
    /// With `--probe-attention`, pay -log of the share inside the box for every Q-Former layer,
    /// head and query on its own (their mean), not for their average attention: no query may
    /// read outside the named object while the others read inside it.
    #[arg(long, requires = "probe_attention")]
    #[serde(default, skip_serializing_if = "is_false")]
    pub probe_attention_each: bool,
    /// Stage 0's patch head averages the colour, shape and size cross-entropies over the patches
    /// an object covers and over the others apart, and adds the two: about one patch in eight
    /// lies on an object, so the plain mean over all patches weighs what the objects are an
    /// eighth as much as that the background is none of them.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub patch_balance: bool,
    /// Stage 0 reads scenes alone: the encoder learns what lies under its patches without the
    /// probe samples, whose read-out losses reach it through the image tokenizer and pull it
    /// towards what they need first (the colour and place of the named object). A run with this
    /// is a first stage 0 for the next one to start from (`--init`); the image tokenizer is
    /// left as it was.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub scenes_only: bool,
    /// Weight of a stage-0 loss on how many boxes or masks the answer holds (none, one, two,
    /// three or more), read from the mean image token, for the samples of every task whose
    /// answers hold a varying number of them (GREC and GRES): the image tokens must carry
    /// whether the named objects are there and how many, which "no target" answers and
    /// several-box answers need and the one-box probe never asks. Half a probe batch of them
    /// joins every stage-0 step (0 = off).
    #[arg(long, default_value_t = 0.0)]
    #[serde(default, skip_serializing_if = "is_zero")]
    pub probe_count: f64,
    /// Optimiser steps of stage 1 (single-image tasks, all but the image encoder).
    #[arg(long, default_value_t = 1000)]
    pub stage1_steps: usize,
    /// Optimiser steps of stage 2 (multi-image tasks, the image tokenizer only).
    #[arg(long, default_value_t = 200)]
    pub stage2_steps: usize,
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate of stage 1.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Peak learning rate of stage 2.
    #[arg(long, default_value_t = 1e-3)]
    pub lr_stage2: f64,
    /// Fraction of stage 2's batches drawn from the single-image samples, so that retraining
    /// the image tokenizer for several images does not undo what it learnt for one (0 = the
    /// paper's stage 2, multi-image only).
    #[arg(long, default_value_t = 0.0)]
    pub stage2_single: f64,
    /// Fraction of stage 1's batches drawn from the multi-image samples, so that the decoder
    /// has seen their answer words (true/false, several masks) before stage 2 freezes it
    /// (0 = the paper's stage 1, single-image only).
    #[arg(long, default_value_t = 0.0)]
    pub stage1_multi: f64,
    /// How many times each sample of a task counts in stage 1's pool, as `TASK=N` pairs
    /// (`rec=2,res=2`), to shift stage 1's steps between tasks (unlisted tasks count once;
    /// 0 drops a task; docs/train.md measures `rec=2,res=2`).
    #[arg(long, value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage1_task_weight: Vec<String>,
    /// Initial coordinate-token rows of a fresh decoder: `cosine` or `quadratic` (neighbouring
    /// `<bin_k>` start close, see docs/train.md) or `independent` (every row on its own).
    #[arg(
        long,
        default_value = "cosine",
        value_parser = ["cosine", "quadratic", "independent"],
        conflicts_with = "init"
    )]
    pub coord_init: String,
    /// Weight of an L1 loss, in stages 1 and 2, on the coordinate each `<bin_k>` answer token's
    /// distribution over the bins expects (in image sides), beside the cross-entropy that scores
    /// every wrong bin alike (0 = off; docs/train.md measures it).
    #[arg(long, default_value_t = 0.0)]
    #[serde(default, skip_serializing_if = "is_zero")]
    pub coord_loss: f64,
    /// How stages 1 and 2 average the answer tokens' cross-entropy over a batch. Per token, a
    /// long answer counts in proportion to its tokens, and the choice between "no target" and a
    /// first box weighs as any other token (docs/train.md measures both).
    #[arg(long, value_enum, default_value_t = AnswerLoss::Sample)]
    #[serde(default, skip_serializing_if = "is_sample_loss")]
    pub answer_loss: AnswerLoss,
    /// Standard deviation of a fresh image encoder's position and class embeddings (the patch
    /// embeddings they are added to have unit scale; transformers uses 0.02).
    #[arg(long, default_value_t = 0.02, conflicts_with = "init")]
    pub vision_position_std: f64,
    /// Warm-up steps per stage (at most a fifth of the stage).
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Skip samples whose prompt and answer exceed this many decoder tokens (counted).
    #[arg(long, default_value_t = 400)]
    pub max_tokens: usize,
    /// Also train the image encoder in stage 1 (the recipe freezes a *pretrained* encoder).
    #[arg(long)]
    pub train_vision: bool,
    /// Keep the image tokenizer (query tokens, Q-Former) frozen in stage 1, as stage 0 left
    /// it: stage 1 trains the projection and the decoder to read it, stage 2 adapts it.
    #[arg(long)]
    pub freeze_tokenizer: bool,
    /// Write a resumable checkpoint every N steps.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// BPE vocabulary size of a fresh decoder tokenizer (the 1,014 task and bin tokens come on
    /// top).
    #[arg(long, default_value_t = 800, conflicts_with = "init")]
    pub vocab_size: usize,
    /// Stop after N optimiser steps in this invocation, with a checkpoint written, so a long
    /// run can be done in slices with `--resume` (0 = run to the end).
    #[arg(long, default_value_t = 0)]
    pub stop_after: usize,
    #[arg(long)]
    pub quiet: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            samples: Vec::new(),
            out: PathBuf::from("model"),
            init: None,
            size: Size::Small,
            image_size: 96,
            grid: None,
            seed: 0,
            pretrain_steps: 0,
            pretrain_batch: 32,
            pretrain_scenes: None,
            pretrain_box: None,
            lr_pretrain: 2e-3,
            probe_attention: 0.0,
            probe_attention_each: false,
            patch_balance: false,
            scenes_only: false,
            vision_layers: None,
            probe_count: 0.0,
            stage1_steps: 1000,
            stage2_steps: 200,
            batch_size: 16,
            grad_accum: 1,
            lr: 2e-3,
            lr_stage2: 1e-3,
            stage2_single: 0.0,
            stage1_multi: 0.0,
            stage1_task_weight: Vec::new(),
            coord_init: "cosine".into(),
            coord_loss: 0.0,
            answer_loss: AnswerLoss::Sample,
            vision_position_std: 0.02,
            warmup: 50,
            weight_decay: 0.01,
            max_tokens: 400,
            train_vision: false,
            freeze_tokenizer: false,
            checkpoint_every: 100,
            vocab_size: 800,
            stop_after: 0,
            quiet: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    pub samples: usize,
    pub skipped_too_long: usize,
    pub stage1_samples: usize,
    pub stage2_samples: usize,
    pub parameters: usize,
    pub stage0_trained_parameters: usize,
    pub stage1_trained_parameters: usize,
    pub stage2_trained_parameters: usize,
    pub steps: usize,
    pub seconds: f64,
    pub first_loss: Option<f64>,
    pub final_loss_stage0: Option<f64>,
    pub final_loss_stage1: Option<f64>,
    pub final_loss_stage2: Option<f64>,
    /// `stop_after` ended this invocation; `--resume` continues.
    pub stopped_early: bool,
}

/// Which tensors a stage trains: 0 the image encoder and tokenizer, 1 all but the encoder
/// (unless `train_vision`; nor the query tokens and Q-Former under `freeze_tokenizer`), 2 the
/// image tokenizer.
fn trains(stage: u32, opts: &TrainOptions) -> impl Fn(&str) -> bool + Send + Sync + 'static {
    let (train_vision, freeze_tokenizer) = (opts.train_vision, opts.freeze_tokenizer);
    move |name: &str| match stage {
        0 => {
            name.starts_with("vision_model.")
                || name.starts_with("qformer.")
                || name.starts_with("query_tokens")
                || name.starts_with("language_projection.")
        }
        1 => {
            let tokenizer = name.starts_with("qformer.") || name.starts_with("query_tokens");
            (train_vision || !name.starts_with("vision_model.")) && !(freeze_tokenizer && tokenizer)
        }
        _ => {
            name.starts_with("qformer.")
                || name.starts_with("query_tokens")
                || name.starts_with("language_projection.")
        }
    }
}

/// Builds the model of `dir` with `source` weights (or a seeded init) and the stage's vars;
/// stage 0 adds its heads (from `source` when it has them).
fn build(
    dir: &Path,
    source: Option<HashMap<String, Tensor>>,
    seed: u64,
    stage: u32,
    opts: &TrainOptions,
) -> Result<(VistaModel, Params)> {
    let head_source = source.as_ref().filter(|s| s.contains_key(pretrain::HEAD_WEIGHT)).cloned();
    let (builder, handle) = Builder::new(source, seed, trains(stage, opts));
    let model =
        VistaModel::load_with(dir, builder.into_var_builder(&Device::Cpu), "training".into())
            .map_err(anyhow::Error::msg)?;
    let mut params = handle.take();
    if stage == 0 {
        let (vision, text) =
            (model.config.vision_config.hidden_size, model.config.text_config.hidden_size);
        let vocab = model.config.text_config.vocab_size;
        let count = opts.probe_count > 0.0;
        pretrain::add_heads(&mut params, head_source.as_ref(), (vision, text, vocab), count, seed)?;
    }
    Ok((model, params))
}

/// A fresh model's weights, with the coordinate rows of `--coord-init`.
fn fresh_weights(opts: &TrainOptions) -> Result<HashMap<String, Tensor>> {
    let (model, params) = build(&opts.out, None, opts.seed, 1, opts)?;
    let mut tensors = params.tensors();
    let bins = model.text.bin_ids();
    match opts.coord_init.as_str() {
        "cosine" => coords::cosine_rows(&mut tensors, bins, opts.seed)?,
        "quadratic" => coords::quadratic_rows(&mut tensors, bins, opts.seed)?,
        _ => {}
    }
    // Drawn at the embeddings' N(0, 0.02), rescaled to `--vision-position-std`.
    for name in ["position_embedding", "class_embedding"] {
        let key = format!("vision_model.embeddings.{name}");
        if let Some(t) = tensors.get_mut(&key) {
            *t = (&*t * (opts.vision_position_std / params::INIT_STD))?;
        }
    }
    Ok(tensors)
}

/// Runs (or resumes) training; returns what it did.
pub fn train(opts: &TrainOptions, resume: bool) -> Result<TrainSummary> {
    crate::model::keep_training_memory();
    if opts.batch_size == 0
        || opts.grad_accum == 0
        || opts.pretrain_batch == 0
        || opts.pretrain_scenes == Some(0)
        || opts.pretrain_box == Some(0)
    {
        bail!(
            "--batch-size, --pretrain-batch, --pretrain-scenes, --pretrain-box and --grad-accum must be at least 1"
        );
    }
    if let Some(g) = opts.grid {
        if opts.init.is_some() {
            bail!("--grid {g}: only a fresh model takes a grid; --init keeps its checkpoint's");
        }
        if g == 0 || !opts.image_size.is_multiple_of(g) {
            bail!("--grid {g}: must be at least 1 and divide --image-size {}", opts.image_size);
        }
    }
    match opts.vision_layers {
        Some(0) => bail!("--vision-layers 0: the image encoder needs at least one layer"),
        Some(l) if opts.init.is_some() => {
            bail!("--vision-layers {l}: only a fresh model takes a depth; --init keeps its checkpoint's")
        }
        _ => {}
    }
    let task_weights = parse_task_weights(&opts.stage1_task_weight)?;
    let started = Instant::now();
    let out = &opts.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create '{}'", out.display()))?;
    let ckpt_dir = out.join("checkpoint");
    let state = if resume { Some(load_state(opts, &ckpt_dir)?) } else { None };
    let samples = read_samples(&opts.samples)?;
    if samples.is_empty() {
        bail!("--samples: the table has no rows");
    }
    let first_stage = if opts.pretrain_steps > 0 { 0 } else { 1 };
    let start_stage = state.as_ref().map_or(first_stage, |s| s.stage);
    let source = match model_source(opts, state.is_some(), &samples)? {
        Some(s) => s,
        None => fresh_weights(opts)?,
    };
    let (mut model, mut params) = build(out, Some(source), opts.seed, start_stage, opts)?;

    let (mut encoded, lengths, skipped) = encode_all(&model, &samples, opts.max_tokens)?;
    let counted = counted_pool(&mut encoded);
    let single: Vec<usize> = (0..encoded.len()).filter(|&i| encoded[i].images.len() <= 1).collect();
    let multi: Vec<usize> = (0..encoded.len()).filter(|&i| encoded[i].images.len() > 1).collect();
    let tasks: Vec<&str> = encoded.iter().map(|e| e.task.as_str()).collect();
    let stage1 = weighted_pool(&tasks, &single, &task_weights)?;
    let probed: Vec<usize> = (0..encoded.len())
        .filter(|&i| encoded[i].box_target.is_some() || encoded[i].text_answer)
        .collect();
    let grounded: Vec<usize> =
        (0..encoded.len()).filter(|&i| encoded[i].input_box.is_some()).collect();
    let mut summary = TrainSummary {
        samples: samples.len(),
        skipped_too_long: skipped,
        stage1_samples: single.len(),
        stage2_samples: multi.len(),
        // The model's own tensors: stage 0's heads are not part of it.
        parameters: params.total_count()
            - params
                .trained
                .iter()
                .filter(|(k, _)| k.starts_with(pretrain::PREFIX))
                .map(|(_, v)| v.elem_count())
                .sum::<usize>(),
        stage0_trained_parameters: 0,
        stage1_trained_parameters: 0,
        stage2_trained_parameters: 0,
        steps: 0,
        seconds: 0.0,
        first_loss: None,
        final_loss_stage0: None,
        final_loss_stage1: None,
        final_loss_stage2: None,
        stopped_early: false,
    };
    drop(samples);
    let csv_path = out.join("loss.csv");
    let points = if resume { curve::read_csv(&csv_path) } else { Vec::new() };
    let mut run = Run { opts, ckpt_dir, csv_path, state, points };
    for stage in [0u32, 1, 2] {
        if stage < start_stage {
            continue;
        }
        if stage > start_stage {
            let mut source = params.tensors();
            source.retain(|k, _| !k.starts_with(pretrain::PREFIX));
            (model, params) = build(out, Some(source), opts.seed, stage, opts)?;
        }
        let trained = params.trained_count();
        match stage {
            0 => summary.stage0_trained_parameters = trained,
            1 => summary.stage1_trained_parameters = trained,
            _ => summary.stage2_trained_parameters = trained,
        }
        let data = StepData {
            encoded: &encoded,
            lengths: &lengths,
            single: &single,
            stage1: &stage1,
            multi: &multi,
            probed: &probed,
            grounded: &grounded,
            counted: &counted,
        };
        if run.stage(&model, &params, &data, stage, &mut summary)? {
            summary.stopped_early = true;
            summary.seconds = started.elapsed().as_secs_f64();
            return Ok(summary);
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    finish(opts, &params, &run.points, summary)
}

/// The weights a run starts from: its checkpoint (a resume), `--init`, or none (fresh weights,
/// whose config and tokenizers are written to the output here). A new run copies or writes the
/// model files first.
fn model_source(
    opts: &TrainOptions,
    resuming: bool,
    samples: &[Sample],
) -> Result<Option<HashMap<String, Tensor>>> {
    let load = |dir: &Path| Builder::load_source(dir, &Device::Cpu).map_err(anyhow::Error::msg);
    if resuming {
        return load(&opts.out.join("checkpoint")).map(Some);
    }
    match &opts.init {
        Some(init) => {
            copy_model_files(init, &opts.out)?;
            load(init).map(Some)
        }
        None => {
            write_fresh_model_files(opts, samples, &opts.out)?;
            Ok(None)
        }
    }
}

/// One invocation of `vista train`: its options, where checkpoints and the loss curve go, the
/// state it resumed from, and the curve so far.
struct Run<'a> {
    opts: &'a TrainOptions,
    ckpt_dir: PathBuf,
    csv_path: PathBuf,
    state: Option<TrainerState>,
    points: Vec<Point>,
}

impl Run<'_> {
    /// Runs `stage`'s optimiser steps (from the resumed step, if the run resumed in this stage),
    /// with checkpoints; true when `--stop-after` stopped the run.
    fn stage(
        &mut self,
        model: &VistaModel,
        params: &Params,
        data: &StepData,
        stage: u32,
        summary: &mut TrainSummary,
    ) -> Result<bool> {
        let opts = self.opts;
        let (steps, peak) = match stage {
            0 => (opts.pretrain_steps, opts.lr_pretrain),
            1 => (opts.stage1_steps, opts.lr),
            _ => (opts.stage2_steps, opts.lr_stage2),
        };
        if steps == 0 {
            return Ok(false);
        }
        if stage > 0 && data.pool(stage).is_empty() {
            eprintln!("vista train: stage {stage}: no samples for this stage; skipped");
            return Ok(false);
        }
        let mut opt = AdamW::new(AdamWConfig {
            lr: peak,
            weight_decay: opts.weight_decay,
            ..Default::default()
        });
        let mut first_step = 0;
        if let Some(st) = self.state.as_ref().filter(|s| s.stage == stage) {
            opt.load(&self.ckpt_dir, st.adam_t, &Device::Cpu).map_err(anyhow::Error::msg)?;
            first_step = st.step;
            self.points.retain(|p| p.stage < stage || p.step < first_step);
        }
        let warmup = opts.warmup.min(steps / 5).max(1);
        let t0 = Instant::now();
        for step in first_step..steps {
            let lr = schedule(step, steps, warmup, peak, 0.1);
            let (grads, loss_sum) = accumulate(model, params, data, stage, step, opts)?;
            let grad_norm = opt.step(&params.trained, &grads, opts.grad_accum as f64, lr)?;
            let loss = loss_sum / opts.grad_accum as f64;
            if !loss.is_finite() {
                bail!(
                    "stage {stage} step {}: the loss is not finite ({loss}); lower --lr",
                    step + 1
                );
            }
            let seconds = t0.elapsed().as_secs_f64();
            self.points.push(Point { stage, step, loss, lr, grad_norm, seconds });
            summary.steps += 1;
            let done = step + 1;
            if !opts.quiet && (done % 10 == 0 || done == steps) {
                eprintln!(
                    "stage {stage} step {done}/{steps}  loss {loss:.4}  lr {lr:.2e}  |g| {grad_norm:.3}  {seconds:.1}s"
                );
            }
            let stopping = opts.stop_after > 0 && summary.steps >= opts.stop_after;
            let every = opts.checkpoint_every > 0 && done % opts.checkpoint_every == 0;
            if every || done == steps || stopping {
                let fingerprint = fingerprint(opts);
                let st = TrainerState { stage, step: done, adam_t: opt.t, fingerprint };
                write_checkpoint(&self.ckpt_dir, params, &opt, &st)?;
                curve::write_csv(&self.csv_path, &self.points)?;
            }
            if stopping {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The checkpoint state a resumed run continues from; it must come from the same options.
fn load_state(opts: &TrainOptions, ckpt_dir: &Path) -> Result<TrainerState> {
    let path = ckpt_dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("--resume: no checkpoint at '{}'", path.display()))?;
    let st: TrainerState =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid", path.display()))?;
    if st.fingerprint != fingerprint(opts) {
        bail!(
            "--resume: '{}' was written by a run with other options; resume with the same ones",
            opts.out.display()
        );
    }
    Ok(st)
}

/// Every sample as token pieces, with its length; samples longer than `max_tokens` are left
/// out and counted.
fn encode_all(
    model: &VistaModel,
    samples: &[Sample],
    max_tokens: usize,
) -> Result<(Vec<Encoded>, Vec<usize>, usize)> {
    let (mut encoded, mut lengths, mut skipped) = (Vec::new(), Vec::new(), 0);
    let q = model.num_query_tokens();
    for (i, s) in samples.iter().enumerate() {
        let e = encode(model, s).map_err(|e| anyhow!("sample {} ({}): {e}", i + 1, s.task))?;
        let len = e.prompt.len(q) + e.answer.len();
        if len > max_tokens {
            skipped += 1;
            continue;
        }
        encoded.push(e);
        lengths.push(len);
    }
    Ok((encoded, lengths, skipped))
}

/// What a step draws its micro-batches from.
struct StepData<'a> {
    encoded: &'a [Encoded],
    lengths: &'a [usize],
    /// Single-image samples, mixed into stage 2 at `stage2_single`.
    single: &'a [usize],
    /// Stage 1's pool: the single-image samples, each repeated by its task's weight.
    stage1: &'a [usize],
    /// Multi-image samples: stage 2's pool, mixed into stage 1 at `stage1_multi`.
    multi: &'a [usize],
    /// Single-image samples whose answer is one box or mask, or text: stage 0's probe batches.
    probed: &'a [usize],
    /// Probed samples with a box in the model's input frame: with `--probe-attention`, half a
    /// probe batch of them joins every stage-0 step.
    grounded: &'a [usize],
    /// Single-image samples of the tasks whose answers hold none, one or several boxes or
    /// masks: with `--probe-count`, half a probe batch of them joins every stage-0 step.
    counted: &'a [usize],
}

impl StepData<'_> {
    fn pool(&self, stage: u32) -> &[usize] {
        if stage == 1 {
            self.stage1
        } else {
            self.multi
        }
    }
}

/// The samples stage 0's count probe reads: those with a count target, of the tasks where the
/// count varies; the others' count targets are cleared, since a task whose answers are always
/// one box (REC) or one mask (RES) would teach the head the instruction's wording, not what the
/// image holds.
fn counted_pool(encoded: &mut [Encoded]) -> Vec<usize> {
    let varying: std::collections::HashSet<String> = encoded
        .iter()
        .filter(|e| e.count_target.is_some_and(|c| c != 1))
        .map(|e| e.task.clone())
        .collect();
    for e in encoded.iter_mut().filter(|e| !varying.contains(&e.task)) {
        e.count_target = None;
    }
    (0..encoded.len()).filter(|&i| encoded[i].count_target.is_some()).collect()
}

/// `--stage1-task-weight`'s `TASK=N` pairs.
fn parse_task_weights(pairs: &[String]) -> Result<Vec<(String, usize)>> {
    let mut weights: Vec<(String, usize)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let parsed = pair
            .split_once('=')
            .and_then(|(t, n)| Some((t.trim(), n.trim().parse::<usize>().ok()?)))
            .filter(|(t, _)| !t.is_empty());
        let Some((task, n)) = parsed else {
            bail!("--stage1-task-weight: '{pair}' is not TASK=N with N a whole number (rec=2)");
        };
        if weights.iter().any(|(t, _)| t == task) {
            bail!("--stage1-task-weight: task '{task}' is given twice");
        }
        weights.push((task.to_string(), n));
    }
    Ok(weights)
}

/// Stage 1's pool: each of `single` (indices into `tasks`, the task of every sample) repeated by
/// its task's weight (1 when unlisted). A weighted task no single-image sample has is an error,
/// since a misspelt name would otherwise silently train the unweighted mixture.
fn weighted_pool(
    tasks: &[&str],
    single: &[usize],
    weights: &[(String, usize)],
) -> Result<Vec<usize>> {
    for (task, _) in weights {
        if !single.iter().any(|&i| tasks[i] == task) {
            let mut known: Vec<&str> = single.iter().map(|&i| tasks[i]).collect();
            known.sort_unstable();
            known.dedup();
            bail!(
                "--stage1-task-weight: no single-image sample has task '{task}' (tasks: {})",
                known.join(", ")
            );
        }
    }
    let weight = |task: &str| weights.iter().find(|(t, _)| t == task).map_or(1, |(_, n)| *n);
    Ok(single.iter().flat_map(|&i| std::iter::repeat_n(i, weight(tasks[i]))).collect())
}

/// Options added after a run's fingerprint was defined stay out of it while unset, so runs
/// without them resume as before.
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn is_sample_loss(v: &AnswerLoss) -> bool {
    *v == AnswerLoss::Sample
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// The loss of one micro-batch: stage 0's scenes, or a stage's samples (with the other pool's
/// share of batches mixed in).
fn micro_loss(
    model: &VistaModel,
    params: &Params,
    data: &StepData,
    stage: u32,
    step: usize,
    micro: usize,
    opts: &TrainOptions,
) -> Result<Tensor> {
    let m = step * opts.grad_accum + micro;
    if stage == 0 {
        let n_scenes = opts.pretrain_scenes.unwrap_or(opts.pretrain_batch);
        let index = (m * n_scenes) as u64;
        let (scenes, [classes, patch_box]) =
            pretrain::scene_loss(model, params, opts.seed, index, n_scenes, opts.patch_balance)?;
        let (loss, parts) = if data.probed.is_empty() || opts.scenes_only {
            (scenes, [f64::NAN; 5])
        } else {
            let mut idx = batch_indices(
                data.probed,
                Some(data.lengths),
                opts.seed,
                0,
                m,
                opts.pretrain_batch,
            );
            // Length-sorted probe batches hold box answers in few steps (3 of the 16 steps
            // printed in a 800-step run); the attention loss needs them in every step.
            if opts.probe_attention > 0.0 && !data.grounded.is_empty() {
                let n_box = opts.pretrain_box.unwrap_or(opts.pretrain_batch.div_ceil(2));
                idx.extend(batch_indices(
                    data.grounded,
                    Some(data.lengths),
                    opts.seed,
                    5,
                    m,
                    n_box,
                ));
            }
            // Unsorted: a length-sorted draw would hold one number of targets per step (a
            // no-target answer is the shortest).
            if opts.probe_count > 0.0 && !data.counted.is_empty() {
                let n = opts.pretrain_batch.div_ceil(2);
                idx.extend(batch_indices(data.counted, None, opts.seed, 6, m, n));
            }
            let batch: Vec<&Encoded> = idx.iter().map(|&i| &data.encoded[i]).collect();
            let (probes, parts) = pretrain::probe_loss(
                model,
                params,
                &batch,
                opts.probe_attention,
                opts.probe_attention_each,
                opts.probe_count,
            )?;
            ((scenes + probes)?, parts)
        };
        if !opts.quiet && micro == 0 && (step + 1).is_multiple_of(50) {
            let [probe_box, words, inside, count, count_acc] = parts;
            let counted = if opts.probe_count > 0.0 {
                format!(", probe count {count:.3} (cross-entropy; accuracy {count_acc:.2})")
            } else {
                String::new()
            };
            eprintln!(
                "stage 0 step {}: patch classes {classes:.3} (cross-entropy, 4 groups), patch box {patch_box:.3}, probe box {probe_box:.3} (L1, image sides), probe words {words:.3}, attention inside the box {inside:.3}{counted}",
                step + 1
            );
        }
        return Ok(loss);
    }
    let (share, other) = if stage == 1 {
        (opts.stage1_multi, data.multi)
    } else {
        (opts.stage2_single, data.single)
    };
    let mixed = !other.is_empty()
        && share > 0.0
        && SplitMix64::new(opts.seed ^ 0x5eed ^ (m as u64).wrapping_mul(0x9e37_79b9)).unit()
            < share;
    let idx = if mixed {
        // Its own order (stage 3 + the stage of the shuffle), independent of the stage's pool.
        let order = if stage == 1 { 4 } else { 3 };
        batch_indices(other, Some(data.lengths), opts.seed, order, m, opts.batch_size)
    } else {
        batch_indices(data.pool(stage), Some(data.lengths), opts.seed, stage, m, opts.batch_size)
    };
    let batch: Vec<&Encoded> = idx.iter().map(|&i| &data.encoded[i]).collect();
    Ok(batch_loss(model, &batch, opts.coord_loss, opts.answer_loss)?)
}

/// The summed gradients of one optimiser step's micro-batches and their summed loss.
fn accumulate(
    model: &VistaModel,
    params: &Params,
    data: &StepData,
    stage: u32,
    step: usize,
    opts: &TrainOptions,
) -> Result<(HashMap<String, Tensor>, f64)> {
    let mut grads: HashMap<String, Tensor> = HashMap::new();
    let mut loss_sum = 0.0;
    for micro in 0..opts.grad_accum {
        let loss = micro_loss(model, params, data, stage, step, micro, opts)?;
        loss_sum += loss.to_scalar::<f32>()? as f64;
        let store = loss.backward()?;
        for (name, var) in &params.trained {
            if let Some(g) = store.get(var.as_tensor()) {
                let g = g.to_dtype(DType::F32)?;
                let sum = match grads.remove(name) {
                    Some(prev) => (prev + g)?,
                    None => g,
                };
                grads.insert(name.clone(), sum);
            }
        }
    }
    Ok((grads, loss_sum))
}

/// Writes the final weights next to the config (the directory is then a loadable checkpoint),
/// the loss curve and chart, and train_report.json.
fn finish(
    opts: &TrainOptions,
    params: &Params,
    points: &[Point],
    mut summary: TrainSummary,
) -> Result<TrainSummary> {
    let out = &opts.out;
    params.save(out).map_err(anyhow::Error::msg)?;
    curve::write_csv(&out.join("loss.csv"), points)?;
    curve::write_png(&out.join("loss.png"), points)?;
    let last = |stage: u32| {
        let s: Vec<f64> = points.iter().filter(|p| p.stage == stage).map(|p| p.loss).collect();
        let tail = &s[s.len().saturating_sub(20)..];
        (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64)
    };
    summary.first_loss = points.first().map(|p| p.loss);
    summary.final_loss_stage0 = last(0);
    summary.final_loss_stage1 = last(1);
    summary.final_loss_stage2 = last(2);
    let report = serde_json::json!({ "options": opts, "summary": summary });
    crate::output::write_json_atomic(&out.join("train_report.json"), &report)?;
    Ok(summary)
}

#[cfg(test)]
pub(crate) mod test_model {
    use super::*;

    /// A fresh tiny model (48 px images, 300 tokens) under `dir/m`, written from a synthetic
    /// set of `samples_per_task` samples per task under `dir/data` (seed 2), with the options
    /// `tweak` sets: the options and the samples it was written from.
    pub(crate) fn tiny_fresh_model(
        dir: &Path,
        samples_per_task: usize,
        tweak: impl FnOnce(&mut TrainOptions),
    ) -> (TrainOptions, Vec<Sample>) {
        let synth = crate::synth::SynthOptions {
            seed: 2,
            samples_per_task,
            image_size: 48,
            out_dir: dir.join("data"),
            ..Default::default()
        };
        crate::synth::synth(&synth).unwrap();
        let mut opts = TrainOptions {
            samples: vec![dir.join("data/samples")],
            out: dir.join("m"),
            size: Size::Tiny,
            image_size: 48,
            vocab_size: 300,
            ..TrainOptions::default()
        };
        tweak(&mut opts);
        let samples = read_samples(&opts.samples).unwrap();
        std::fs::create_dir_all(&opts.out).unwrap();
        write_fresh_model_files(&opts, &samples, &opts.out).unwrap();
        (opts, samples)
    }
}

#[cfg(test)]
mod tests {
    use super::test_model::tiny_fresh_model;
    use super::*;

    /// `TrainOptions::default()` (what library callers start from) and `vista train`'s defaults
    /// are the same options.
    #[test]
    fn library_and_command_line_defaults_agree() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            opts: TrainOptions,
        }
        let parsed =
            <Cli as clap::Parser>::parse_from(["train", "--samples", "s", "--out", "model"]);
        let defaults = TrainOptions { samples: vec!["s".into()], ..TrainOptions::default() };
        let json = |o: &TrainOptions| serde_json::to_string(o).unwrap();
        assert_eq!(json(&parsed.opts), json(&defaults));
    }

    /// Stage 1's pool repeats each sample by its task's weight; malformed, repeated or unknown
    /// tasks are errors that name the option.
    #[test]
    fn task_weights_repeat_a_tasks_samples() {
        let pairs = |s: &[&str]| s.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let w = parse_task_weights(&pairs(&["rec=2", " res = 3", "vqa=0"])).unwrap();
        assert_eq!(w, vec![("rec".into(), 2), ("res".into(), 3), ("vqa".into(), 0)]);
        let tasks = ["rec", "vqa", "res", "caption", "nlvr"];
        // Sample 4 is multi-image: not in `single`.
        let pool = weighted_pool(&tasks, &[0, 1, 2, 3], &w).unwrap();
        assert_eq!(pool, vec![0, 0, 2, 2, 2, 3]);
        assert_eq!(weighted_pool(&tasks, &[0, 1, 2, 3], &[]).unwrap(), vec![0, 1, 2, 3]);
        for bad in ["rec", "rec=x", "=2", "rec=-1", "rec=1.5"] {
            let e = parse_task_weights(&pairs(&[bad])).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "--stage1-task-weight: '{bad}' is not TASK=N with N a whole number (rec=2)"
                )
            );
        }
        let e = parse_task_weights(&pairs(&["rec=1", "rec=2"])).unwrap_err().to_string();
        assert_eq!(e, "--stage1-task-weight: task 'rec' is given twice");
        let w = parse_task_weights(&pairs(&["nlvr=2"])).unwrap();
        let e = weighted_pool(&tasks, &[0, 1, 2, 3], &w).unwrap_err().to_string();
        assert_eq!(
            e,
            "--stage1-task-weight: no single-image sample has task 'nlvr' (tasks: caption, rec, res, vqa)"
        );
    }

    /// Every parameter a stage trains gets a gradient from its loss: the image pathway (encoder,
    /// queries, Q-Former, projection) included, and stage 0's heads.
    #[test]
    fn every_trained_parameter_gets_a_gradient() {
        let tmp = tempfile::tempdir().unwrap();
        let (opts, samples) = tiny_fresh_model(tmp.path(), 2, |o| {
            o.train_vision = true;
            o.probe_count = 1.0;
        });
        for stage in [0u32, 1, 2] {
            let (model, params) = build(&opts.out, None, 3, stage, &opts).unwrap();
            let grads = if stage == 0 {
                // Scenes through the patch head; a box answer, a text answer and a GREC
                // answer through the probe heads.
                let mut encoded: Vec<Encoded> = samples
                    .iter()
                    .filter(|s| s.images.len() == 1)
                    .map(|s| encode(&model, s).unwrap())
                    .collect();
                let counted = counted_pool(&mut encoded);
                let tasks: std::collections::BTreeSet<&str> =
                    counted.iter().map(|&i| encoded[i].task.as_str()).collect();
                assert_eq!(tasks.into_iter().collect::<Vec<_>>(), ["grec", "gres"]);
                let probe: Vec<&Encoded> = [
                    encoded.iter().find(|e| e.box_target.is_some()),
                    encoded.iter().find(|e| e.text_answer),
                    encoded.iter().find(|e| e.task == "grec"),
                ]
                .into_iter()
                .map(Option::unwrap)
                .collect();
                let scenes = pretrain::scene_loss(&model, &params, 5, 0, 2, false).unwrap().0;
                let (probes, parts) =
                    pretrain::probe_loss(&model, &params, &probe, 1.0, false, 1.0).unwrap();
                assert!(parts[2] > 0.0 && parts[2] < 1.0, "attention inside the box {}", parts[2]);
                // One GREC row read by the count head: its accuracy is 0 or 1, its
                // cross-entropy near -ln(1/4) at the random start.
                assert!(parts[4] == 0.0 || parts[4] == 1.0, "count accuracy {}", parts[4]);
                assert!(parts[3] > 0.3 && parts[3] < 4.0, "count cross-entropy {}", parts[3]);
                // Paid per head and query, the attention loss is the mean of -log share, at
                // least -log of the mean share (Jensen), with the same parts reported.
                let (each, each_parts) =
                    pretrain::probe_loss(&model, &params, &probe, 1.0, true, 1.0).unwrap();
                assert_eq!(parts.map(f64::to_bits), each_parts.map(f64::to_bits));
                let scalar = |t: &Tensor| t.to_scalar::<f32>().unwrap();
                assert!(scalar(&each) > scalar(&probes), "{} {}", scalar(&each), scalar(&probes));
                // The recorded cross-attention path gives the image tokens of the fused one, and
                // each layer's probabilities are distributions over the class token and patches.
                let (pixels, qids, qmask) =
                    loss::image_inputs(&model, &probe).unwrap().expect("images");
                let fused = model.net.image_tokens(&pixels, &qids, &qmask).unwrap();
                let feats = model.net.vision.forward(&pixels).unwrap();
                let (recorded, cross) =
                    model.net.image_tokens_with_cross_attention(&feats, &qids, &qmask).unwrap();
                let diff = (fused - recorded).unwrap().abs().unwrap().max_all().unwrap();
                assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
                assert_eq!(cross.len(), model.config.qformer_config.num_hidden_layers);
                for p in &cross {
                    let sums = p.sum(candle_core::D::Minus1).unwrap().flatten_all().unwrap();
                    for s in sums.to_vec1::<f32>().unwrap() {
                        assert!((s - 1.0).abs() < 1e-5, "{s}");
                    }
                }
                (scenes + probes).unwrap().backward().unwrap()
            } else {
                let batch: Vec<Encoded> = samples
                    .iter()
                    .filter(|s| (s.images.len() > 1) == (stage == 2))
                    .take(4)
                    .map(|s| encode(&model, s).unwrap())
                    .collect();
                let refs: Vec<&Encoded> = batch.iter().collect();
                // Per sample, the batch's loss is the mean of its samples' own losses; per
                // token, their mean weighted by answer length.
                let loss = |rows: &[&Encoded], mode: AnswerLoss| {
                    batch_loss(&model, rows, 0.0, mode).unwrap().to_scalar::<f32>().unwrap() as f64
                };
                let alone: Vec<(f64, f64)> = refs
                    .iter()
                    .map(|e| (loss(&[*e], AnswerLoss::Sample), e.answer.len() as f64))
                    .collect();
                let tokens: f64 = alone.iter().map(|a| a.1).sum();
                let by_sample = alone.iter().map(|a| a.0).sum::<f64>() / alone.len() as f64;
                let by_token = alone.iter().map(|(l, n)| l * n).sum::<f64>() / tokens;
                assert!((loss(&refs, AnswerLoss::Sample) - by_sample).abs() < 1e-4, "{by_sample}");
                assert!((loss(&refs, AnswerLoss::Token) - by_token).abs() < 1e-4, "{by_token}");
                assert!((by_sample - by_token).abs() > 1e-3, "answers of one length");
                batch_loss(&model, &refs, 1.0, AnswerLoss::Sample).unwrap().backward().unwrap()
            };
            // The text tokens' feed-forward block of the Q-Former's last layer feeds nothing
            // (only the query outputs leave the Q-Former): no gradient there, as in transformers.
            let last = format!(
                "qformer.encoder.layer.{}.",
                model.config.qformer_config.num_hidden_layers - 1
            );
            let unused = |k: &str| {
                k.strip_prefix(&last)
                    .is_some_and(|r| r.starts_with("intermediate.") || r.starts_with("output."))
            };
            let missing: Vec<&String> = params
                .trained
                .iter()
                .filter(|(k, _)| !unused(k))
                .filter(|(_, v)| {
                    grads.get(v.as_tensor()).is_none_or(|g| {
                        g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() == 0.0
                    })
                })
                .map(|(k, _)| k)
                .collect();
            assert!(missing.is_empty(), "stage {stage}: no gradient for {missing:?}");
        }
    }

    /// What each stage trains, by checkpoint name.
    #[test]
    fn stages_train_their_parts() {
        let names = [
            "vision_model.encoder.layers.0.mlp.fc1.weight",
            "query_tokens",
            "qformer.encoder.layer.0.attention.attention.query.weight",
            "language_projection.weight",
            "language_model.lm_head.weight",
        ];
        let trained = |stage: u32, opts: &TrainOptions| -> Vec<bool> {
            let f = trains(stage, opts);
            names.iter().map(|n| f(n)).collect()
        };
        let d = TrainOptions::default();
        assert_eq!(trained(0, &d), [true, true, true, true, false]);
        assert_eq!(trained(1, &d), [false, true, true, true, true]);
        assert_eq!(trained(2, &d), [false, true, true, true, false]);
        let frozen = TrainOptions { freeze_tokenizer: true, ..TrainOptions::default() };
        assert_eq!(trained(1, &frozen), [false, false, false, true, true]);
        let vision = TrainOptions { train_vision: true, ..TrainOptions::default() };
        assert_eq!(trained(1, &vision), [true, true, true, true, true]);
    }
}
