//! `vista synth`: a deterministic synthetic sample set.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

#[derive(clap::Args)]
pub(crate) struct SynthArgs {
    /// Output directory (samples/part-*.parquet, raw/*.parquet).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples per task.
    #[arg(long, default_value_t = 16)]
    samples_per_task: usize,
    /// Scenes to draw (default: twice the samples per task, at least 8).
    #[arg(long)]
    images: Option<usize>,
    /// Side of the square images in pixels.
    #[arg(long, default_value_t = 96)]
    image_size: u32,
    /// Objects per scene are drawn from 1 to this (at most 9).
    #[arg(long, default_value_t = 4)]
    max_objects: usize,
    /// Rows per Parquet shard.
    #[arg(long, default_value_t = 1000)]
    shard_size: usize,
    /// Contour points per mask target.
    #[arg(long, default_value_t = 32)]
    points: usize,
    /// Coordinate text style of targets: bins | decimal.
    #[arg(long, default_value = "bins")]
    style: String,
    /// Value of the split column.
    #[arg(long, default_value = "train")]
    split: String,
    /// A curation query to run instead of queries/synth_samples.sql.
    #[arg(long)]
    query: Option<PathBuf>,
}

/// Writes the set and prints the samples per task.
pub(crate) async fn synth(args: SynthArgs) -> Result<ExitCode> {
    let opts = vista::synth::SynthOptions {
        seed: args.seed,
        samples_per_task: args.samples_per_task,
        images: args.images,
        image_size: args.image_size,
        max_objects: args.max_objects,
        shard_size: args.shard_size,
        points: args.points,
        style: args.style,
        split: args.split,
        out_dir: args.out,
        query: args.query,
    };
    let summary = vista::synth::synth_async(&opts).await?;
    for (task, n) in &summary.per_task {
        println!("{task}: {n}");
    }
    println!(
        "{} samples from {} images in {} shard(s) under {}",
        summary.samples,
        summary.images,
        summary.shards.len(),
        opts.out_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
