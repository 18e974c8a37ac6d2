//! `vista curate`: instruction samples from an imported COCO-format set.

use std::process::ExitCode;

use anyhow::Result;
use vista::curate::CurateOptions;

/// Runs the curation job and prints its summary.
pub(crate) async fn curate(opts: CurateOptions) -> Result<ExitCode> {
    println!("{}", vista::curate::curate_async(&opts).await?);
    Ok(ExitCode::SUCCESS)
}
