//! `vista demo`: the main job on a built-in sample set.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Folder for the sample set, the model and the outputs.
    #[arg(long, default_value = "vista-demo")]
    dir: PathBuf,
    /// A model directory to use instead of the embedded one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Samples per task.
    #[arg(long, default_value_t = 8)]
    samples_per_task: usize,
    /// Skip the random-weights floor.
    #[arg(long)]
    no_floor: bool,
    /// Also write DIR/report.html: images with predicted boxes and polygons, and the scores.
    #[arg(long)]
    report: bool,
}

/// Runs the demo.
pub(crate) async fn demo(args: DemoArgs) -> Result<ExitCode> {
    vista::demo::run(&vista::demo::DemoOptions {
        dir: args.dir,
        model: args.model,
        samples_per_task: args.samples_per_task,
        floor: !args.no_floor,
        report: args.report,
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}
