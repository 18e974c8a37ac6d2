//! `vista functions` and `vista check`: what the engine offers and whether a table fits a
//! canonical schema.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use vista::output::Format;
use vista::session::{self, SessionOptions};

/// Lists every vista function, as text or JSON.
pub(crate) fn functions(format: Format) -> Result<ExitCode> {
    let fns = vista::functions::list();
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json | Format::Ndjson => writeln!(out, "{}", serde_json::to_string_pretty(&fns)?)?,
        _ => write!(out, "{}", vista::functions::render_text(&fns))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks `table` against the canonical schema `schema`; a mismatch lists every problem.
pub(crate) async fn check(table: String, schema: String) -> Result<ExitCode> {
    let spec = vista::tables::load_schema(&schema)?;
    let ctx = session::new_context(&SessionOptions::default())?;
    vista::tables::register(&ctx, "checked", &table).await?;
    let problems = vista::tables::check(&ctx, "checked", &spec).await?;
    if problems.is_empty() {
        println!("{table}: matches schema '{}'", spec.name);
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("{table}: {p}");
        }
        eprintln!(
            "error: {table} does not match schema '{}' ({} problems)",
            spec.name,
            problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}
