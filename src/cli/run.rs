//! `vista run`: an eval job file over a samples table, in resumable chunks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use vista::session::{self, SessionOptions};

use super::parse_pair;

#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The job file (e.g. queries/eval_rec.sql).
    file: PathBuf,
    /// The samples table (Parquet file or directory; schemas/samples.json layout).
    #[arg(long)]
    samples: String,
    /// Output directory: chunks/, manifest.json, predictions.parquet, scores.parquet.
    #[arg(long)]
    out: PathBuf,
    /// Continue a job killed earlier, without recomputing its committed rows.
    #[arg(long)]
    resume: bool,
    /// Samples per committed chunk.
    #[arg(long, default_value_t = 256)]
    chunk_rows: usize,
    /// With --resume: move committed chunks that cannot be read to OUT/dropped/ and compute
    /// their rows again.
    #[arg(long, requires = "resume")]
    drop_unreadable: bool,
    /// A setting: `--set model=DIR` (`vista.` is implied).
    #[arg(long = "set", value_parser = parse_pair)]
    settings: Vec<(String, String)>,
    /// Base directory for relative image paths.
    #[arg(long)]
    base_dir: Option<String>,
}

pub(crate) async fn run_job(args: RunArgs) -> Result<ExitCode> {
    let mut settings = args.settings.clone();
    if let Some(b) = &args.base_dir {
        settings.push(("vista.base_dir".into(), b.clone()));
    }
    let ctx = session::new_context(&SessionOptions { settings, ..Default::default() })?;
    let sql = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read job file '{}'", args.file.display()))?;
    let mut opts = vista::jobs::JobOptions::new(args.samples, args.out);
    opts.resume = args.resume;
    opts.chunk_rows = args.chunk_rows;
    opts.drop_unreadable = args.drop_unreadable;
    let loader = session::model_loader();
    let summary = vista::jobs::run_job(&ctx, &sql, Some(&loader), &opts).await?;
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}
