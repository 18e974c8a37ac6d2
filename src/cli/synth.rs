//! `vista synth`: a deterministic synthetic sample set.

use std::process::ExitCode;

use anyhow::Result;
use vista::synth::SynthOptions;

/// Writes the set and prints the samples per task.
pub(crate) async fn synth(opts: SynthOptions) -> Result<ExitCode> {
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
