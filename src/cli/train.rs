//! `vista train`: the two VistaLLM stages on a samples table.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// Sample tables (Parquet files or directories), e.g. the output of `vista synth`.
    #[arg(long, required = true, num_args = 1..)]
    samples: Vec<PathBuf>,
    /// Output model directory (a Hugging Face InstructBLIP checkpoint).
    #[arg(long)]
    out: PathBuf,
    /// Start from this checkpoint instead of a fresh model.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Architecture of a fresh model: tiny | small.
    #[arg(long, default_value = "small")]
    size: String,
    /// Input image side of a fresh model.
    #[arg(long, default_value_t = 96)]
    image_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Optimiser steps of stage 1 (single-image tasks, all but the image encoder).
    #[arg(long, default_value_t = 1000)]
    stage1_steps: usize,
    /// Optimiser steps of stage 2 (multi-image tasks, the image tokenizer only).
    #[arg(long, default_value_t = 200)]
    stage2_steps: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate of stage 1.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Peak learning rate of stage 2.
    #[arg(long, default_value_t = 1e-3)]
    lr_stage2: f64,
    /// Fraction of stage 2's batches drawn from single-image samples (0 = multi-image only).
    #[arg(long, default_value_t = 0.0)]
    stage2_single: f64,
    /// Warm-up steps per stage (at most a fifth of the stage).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Skip samples longer than this many decoder tokens.
    #[arg(long, default_value_t = 400)]
    max_tokens: usize,
    /// Also train the image encoder in stage 1.
    #[arg(long)]
    train_vision: bool,
    /// Write a resumable checkpoint every N steps.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// BPE vocabulary size of a fresh tokenizer (task and bin tokens come on top).
    #[arg(long, default_value_t = 800)]
    vocab_size: usize,
    /// Stop after N optimiser steps in this invocation (a checkpoint is written; --resume goes on).
    #[arg(long, default_value_t = 0)]
    stop_after: usize,
    /// Continue from OUT/checkpoint (same options).
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    quiet: bool,
}

/// Trains (or resumes) and prints the run summary.
pub(crate) async fn train(args: TrainArgs) -> Result<ExitCode> {
    let opts = vista::train::TrainOptions {
        samples: args.samples,
        out: args.out,
        init: args.init,
        size: vista::train::Size::parse(&args.size)?,
        image_size: args.image_size,
        seed: args.seed,
        stage1_steps: args.stage1_steps,
        stage2_steps: args.stage2_steps,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        lr: args.lr,
        lr_stage2: args.lr_stage2,
        stage2_single: args.stage2_single,
        warmup: args.warmup,
        weight_decay: args.weight_decay,
        max_tokens: args.max_tokens,
        train_vision: args.train_vision,
        checkpoint_every: args.checkpoint_every,
        vocab_size: args.vocab_size,
        stop_after: args.stop_after,
        quiet: args.quiet,
    };
    let s = tokio::task::spawn_blocking(move || {
        vista::train::train(&opts, args.resume).map(|s| (s, opts.out))
    })
    .await??;
    let (s, out) = s;
    if s.stopped_early {
        println!("stopped after {} steps ({:.0}s); continue with --resume", s.steps, s.seconds);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
            "trained {} steps in {:.0}s on {} samples ({} too long, skipped): loss {:.3} -> {:.3} (stage 1), {} (stage 2); model in {}",
            s.steps,
            s.seconds,
            s.samples,
            s.skipped_too_long,
            s.first_loss.unwrap_or(f64::NAN),
            s.final_loss_stage1.unwrap_or(f64::NAN),
            s.final_loss_stage2.map_or("-".to_string(), |l| format!("{l:.3}")),
            out.display()
        );
    Ok(ExitCode::SUCCESS)
}
