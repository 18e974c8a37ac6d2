//! Parameterised SQL scripts and the sharded output they feed — what `vista synth` and
//! `vista curate` share.
//!
//! A script is plain SQL: earlier statements materialise intermediate tables (`CREATE TABLE
//! ... AS`) or views, and the last statement returns the result. `$name` placeholders are bound
//! from a parameter map before each statement runs, so a parameter can appear anywhere a
//! literal can, including the constant arguments of vista functions.
//!
//! Results are written as `part-NNNNN.parquet` shards of a fixed row count, each atomically,
//! and listed with their row counts and SHA-256 in a manifest, so a curator can verify a copy
//! and two runs can be compared shard by shard.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::output;

/// Runs every statement of `sql` with `params` bound; returns the last one's result.
/// `what` names the script in errors (e.g. `curate_res.sql`).
pub async fn run_script(
    ctx: &SessionContext,
    sql: &str,
    params: &ParamValues,
    what: &str,
) -> Result<DataFrame> {
    let mut statements =
        DFParser::parse_sql(sql).with_context(|| format!("{what}: the SQL does not parse"))?;
    let last = statements.pop_back().with_context(|| format!("{what}: the script is empty"))?;
    for statement in statements {
        run_statement(ctx, statement, params, what).await?.collect().await.map_err(|e| {
            anyhow::anyhow!("{what}: {}", crate::engine::one_line(&e.strip_backtrace()))
        })?;
    }
    run_statement(ctx, last, params, what).await
}

async fn run_statement(
    ctx: &SessionContext,
    statement: Statement,
    params: &ParamValues,
    what: &str,
) -> Result<DataFrame> {
    let shown = statement.to_string();
    let head: String = shown.chars().take(60).collect();
    let planned = async {
        let plan = ctx.state().statement_to_plan(statement).await?;
        ctx.execute_logical_plan(plan.with_param_values(params.clone())?).await
    };
    planned.await.map_err(|e| {
        anyhow::anyhow!(
            "{what}: the statement `{head}...` failed: {}",
            crate::engine::one_line(&e.strip_backtrace())
        )
    })
}

/// One written shard, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shard {
    /// File name inside the shard directory.
    pub file: String,
    pub rows: usize,
    /// SHA-256 of the file's bytes, lower-case hex (what `sha256sum` prints).
    pub sha256: String,
}

/// Cuts a stream of batches into shards of `shard_rows` rows.
pub struct ShardWriter {
    dir: PathBuf,
    shard_rows: usize,
    schema: SchemaRef,
    metadata: Vec<(String, String)>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    shards: Vec<Shard>,
}

impl ShardWriter {
    pub fn new(
        dir: &Path,
        shard_rows: usize,
        schema: SchemaRef,
        metadata: Vec<(String, String)>,
    ) -> ShardWriter {
        ShardWriter {
            dir: dir.to_path_buf(),
            shard_rows: shard_rows.max(1),
            schema,
            metadata,
            pending: Vec::new(),
            pending_rows: 0,
            shards: Vec::new(),
        }
    }

    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        while self.pending_rows >= self.shard_rows {
            self.flush(self.shard_rows)?;
        }
        Ok(())
    }

    fn flush(&mut self, take: usize) -> Result<()> {
        let all = concat_batches(&self.schema, &self.pending)?;
        let file = format!("part-{:05}.parquet", self.shards.len());
        let path = self.dir.join(&file);
        output::write_parquet_atomic(
            &path,
            &[all.slice(0, take)],
            self.schema.clone(),
            &self.metadata,
        )?;
        self.shards.push(Shard { file, rows: take, sha256: sha256_file(&path)? });
        self.pending = vec![all.slice(take, all.num_rows() - take)];
        self.pending_rows -= take;
        Ok(())
    }

    /// Writes the last, short shard (an empty result gets one empty shard, so readers see the
    /// schema) and removes shards a previous, larger run left behind.
    pub fn finish(mut self) -> Result<Vec<Shard>> {
        if self.pending_rows > 0 || self.shards.is_empty() {
            self.flush(self.pending_rows)?;
        }
        remove_stale_shards(&self.dir, self.shards.len())?;
        Ok(self.shards)
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("cannot read '{}' back", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Removes `part-NNNNN.parquet` shards numbered `written` and above.
fn remove_stale_shards(dir: &Path, written: usize) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let idx = name
            .strip_prefix("part-")
            .and_then(|r| r.strip_suffix(".parquet"))
            .and_then(|n| n.parse::<usize>().ok());
        if idx.is_some_and(|i| i >= written) {
            std::fs::remove_file(e.path())?;
        }
    }
    Ok(())
}
