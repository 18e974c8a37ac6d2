//! `vista demo`: the main job on a built-in sample set.

use std::process::ExitCode;

use anyhow::Result;
use vista::demo::DemoOptions;

/// Runs the demo.
pub(crate) async fn demo(opts: DemoOptions) -> Result<ExitCode> {
    vista::demo::run(&opts).await?;
    Ok(ExitCode::SUCCESS)
}
