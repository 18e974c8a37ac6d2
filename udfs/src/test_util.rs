//! Test helpers: a context with every vista function, SQL to pretty text, and the check that
//! every function's documented SQL example runs and prints what the documentation shows.

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::config::VistaConfig;

pub fn ctx() -> SessionContext {
    let config = SessionConfig::new().with_option_extension(VistaConfig::default());
    let ctx = SessionContext::new_with_config(config);
    crate::register_all(&ctx).unwrap();
    ctx
}

/// Runs the statements of `sql` (`;`-separated) and returns the last one's result as a table.
pub fn run(ctx: &SessionContext, sql: &str) -> datafusion::common::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut out = String::new();
        for stmt in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let batches = ctx.sql(stmt).await?.collect().await?;
            out = pretty_format_batches(&batches)?.to_string();
        }
        Ok(out)
    })
}

/// Splits a documented example (```sql\n> QUERY;\nTABLE\n```) into its query and expected table.
pub fn parse_example(example: &str) -> Option<(String, String)> {
    let body = example.trim().strip_prefix("```sql")?.strip_suffix("```")?.trim();
    let mut query = String::new();
    let mut table = String::new();
    for line in body.lines() {
        if let Some(q) = line.strip_prefix("> ") {
            query.push_str(q);
            query.push('\n');
        } else if !line.trim().is_empty() {
            table.push_str(line.trim_end());
            table.push('\n');
        }
    }
    Some((query, table.trim_end().to_string()))
}

/// A seeded xorshift64 stream for randomised tests (no dependency, same numbers everywhere).
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
