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

/// The cells of a pretty-printed table, row by row (header excluded).
pub fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(1)
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .collect()
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

/// One row of a Hugging Face image column: `None` for a NULL struct, else (bytes, path).
pub type HfImage<'a> = Option<(Option<&'a [u8]>, Option<&'a str>)>;

/// A Hugging Face `datasets` image column, `struct<bytes: binary, path: string>`.
pub fn hf_images(rows: &[HfImage]) -> datafusion::arrow::array::StructArray {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, BinaryArray, StringArray, StructArray};
    use datafusion::arrow::buffer::NullBuffer;
    use datafusion::arrow::datatypes::{DataType, Field};

    let bytes: BinaryArray = rows.iter().map(|r| r.and_then(|r| r.0)).collect();
    let paths: StringArray = rows.iter().map(|r| r.and_then(|r| r.1)).collect();
    let fields =
        vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)];
    let columns: Vec<ArrayRef> = vec![Arc::new(bytes), Arc::new(paths)];
    let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    StructArray::try_new(fields.into(), columns, Some(nulls)).unwrap()
}
