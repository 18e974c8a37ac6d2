//! The one place that builds a `SessionContext`: configuration, every vista function, the
//! model loader, and file paths usable as tables.

use anyhow::{Context, Result};
use datafusion::prelude::{SessionConfig, SessionContext};
use vista_udfs::VistaConfig;

/// How to build a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// `vista.*` or `datafusion.*` settings applied before any statement (`--set k=v`).
    pub settings: Vec<(String, String)>,
    /// Partitions per scan; `None` = DataFusion's default (the number of cores).
    pub target_partitions: Option<usize>,
}

/// A context with DataFusion's functions, every vista function, `information_schema` (for
/// `SHOW FUNCTIONS`) and URL tables (`SELECT * FROM 'x.parquet'`).
pub fn new_context(opts: &SessionOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_option_extension(VistaConfig::default());
    if let Some(n) = opts.target_partitions {
        config = config.with_target_partitions(n);
    }
    for (k, v) in &opts.settings {
        let key = if k.contains('.') { k.clone() } else { format!("vista.{k}") };
        config
            .options_mut()
            .set(&key, v)
            .with_context(|| format!("invalid setting {key} = '{v}'"))?;
    }
    let ctx = SessionContext::new_with_config(config).enable_url_table();
    vista_udfs::register_all(&ctx)?;
    Ok(ctx)
}
