//! `vista train`: the two VistaLLM stages on a samples table.

use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    #[command(flatten)]
    opts: vista::train::TrainOptions,
    /// Continue from OUT/checkpoint (same options).
    #[arg(long)]
    resume: bool,
}

/// Trains (or resumes) and prints the run summary.
pub(crate) async fn train(args: TrainArgs) -> Result<ExitCode> {
    let opts = args.opts;
    let s = tokio::task::spawn_blocking(move || {
        vista::train::train(&opts, args.resume).map(|s| (s, opts.out))
    })
    .await??;
    let (s, out) = s;
    if s.stopped_early {
        println!("stopped after {} steps ({:.0}s); continue with --resume", s.steps, s.seconds);
        return Ok(ExitCode::SUCCESS);
    }
    let loss = |l: Option<f64>| l.map_or("-".to_string(), |l| format!("{l:.3}"));
    println!(
        "trained {} steps in {:.0}s on {} samples ({} too long, skipped): loss {} -> {} (stage 0), {} (stage 1), {} (stage 2); model in {}",
        s.steps,
        s.seconds,
        s.samples,
        s.skipped_too_long,
        loss(s.first_loss),
        loss(s.final_loss_stage0),
        loss(s.final_loss_stage1),
        loss(s.final_loss_stage2),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
