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
use datafusion::parquet::arrow::ArrowWriter;
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

/// Rows handed to the Parquet writer per call. The writer checks page sizes at points that
/// depend on how its input is cut, so the input is re-cut into fixed chunks: the same rows give
/// the same bytes whatever batch size the query ran with.
const WRITE_CHUNK_ROWS: usize = 1024;

/// Cuts a stream of batches into shards of `shard_rows` rows, streaming each into its file:
/// memory holds one chunk of rows and the open shard's encoded pages, not the shard's rows.
pub struct ShardWriter {
    dir: PathBuf,
    shard_rows: usize,
    schema: SchemaRef,
    metadata: Vec<(String, String)>,
    /// Rows of the open shard not yet given to its writer (fewer than a chunk, or the tail).
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    open: Option<OpenShard>,
    shards: Vec<Shard>,
}

struct OpenShard {
    file: String,
    /// Writes through a second handle of `out`'s file, closed before `out` is committed.
    writer: ArrowWriter<std::fs::File>,
    out: output::AtomicFile,
    rows: usize,
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
            open: None,
            shards: Vec::new(),
        }
    }

    pub fn push(&mut self, mut batch: RecordBatch) -> Result<()> {
        while batch.num_rows() > 0 {
            let in_shard = self.open.as_ref().map_or(0, |o| o.rows) + self.pending_rows;
            let take = (self.shard_rows - in_shard).min(batch.num_rows());
            self.pending.push(batch.slice(0, take));
            self.pending_rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if in_shard + take == self.shard_rows {
                self.write_pending(true)?;
                self.close_shard()?;
            } else if self.pending_rows >= WRITE_CHUNK_ROWS {
                self.write_pending(false)?;
            }
        }
        Ok(())
    }

    /// Gives the pending rows to the open shard's writer in whole chunks, and the remainder too
    /// when `all` (the shard's end).
    fn write_pending(&mut self, all: bool) -> Result<()> {
        if self.open.is_none() {
            self.open_shard()?;
        }
        let rows = concat_batches(&self.schema, &self.pending)?;
        let whole = if all {
            rows.num_rows()
        } else {
            rows.num_rows() / WRITE_CHUNK_ROWS * WRITE_CHUNK_ROWS
        };
        let open = self.open.as_mut().expect("opened above");
        let mut at = 0;
        while at < whole {
            let n = WRITE_CHUNK_ROWS.min(whole - at);
            open.writer
                .write(&rows.slice(at, n))
                .with_context(|| format!("writing shard '{}'", open.file))?;
            at += n;
        }
        open.rows += whole;
        self.pending_rows = rows.num_rows() - whole;
        self.pending = if self.pending_rows > 0 {
            // A copy, so the chunk just written is freed.
            vec![concat_batches(&self.schema, &[rows.slice(whole, self.pending_rows)])?]
        } else {
            Vec::new()
        };
        Ok(())
    }

    fn open_shard(&mut self) -> Result<()> {
        let file = format!("part-{:05}.parquet", self.shards.len());
        let mut out = output::AtomicFile::create(&self.dir.join(&file))?;
        let handle = out.file().try_clone()?;
        let writer = ArrowWriter::try_new(
            handle,
            self.schema.clone(),
            Some(output::parquet_properties(&self.metadata)?),
        )?;
        self.open = Some(OpenShard { file, writer, out, rows: 0 });
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        open.writer.close().with_context(|| format!("writing shard '{}'", open.file))?;
        open.out.commit()?;
        let path = self.dir.join(&open.file);
        self.shards.push(Shard { file: open.file, rows: open.rows, sha256: sha256_file(&path)? });
        Ok(())
    }

    /// Writes the last, short shard (an empty result gets one empty shard, so readers see the
    /// schema) and removes shards a previous, larger run left behind.
    pub fn finish(mut self) -> Result<Vec<Shard>> {
        if self.pending_rows > 0 || (self.open.is_none() && self.shards.is_empty()) {
            self.write_pending(true)?;
        }
        self.close_shard()?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let text: Vec<String> =
            (from..to).map(|i| format!("row {} {}", i, "x".repeat((i % 97) as usize))).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..to)),
                Arc::new(StringArray::from(text)),
            ],
        )
        .unwrap()
    }

    /// Writes rows 0..total cut into batches of `cut` rows; returns the shards.
    fn write(dir: &Path, total: i64, cut: i64, shard_rows: usize) -> Vec<Shard> {
        let mut w = ShardWriter::new(dir, shard_rows, rows(0, 0).schema(), vec![]);
        let mut at = 0;
        while at < total {
            w.push(rows(at, (at + cut).min(total))).unwrap();
            at += cut;
        }
        w.finish().unwrap()
    }

    #[test]
    fn shards_do_not_depend_on_how_the_input_is_batched() {
        let tmp = tempfile::tempdir().unwrap();
        let one = write(&tmp.path().join("one"), 5000, 5000, 2300);
        let small = write(&tmp.path().join("small"), 5000, 7, 2300);
        let odd = write(&tmp.path().join("odd"), 5000, 1500, 2300);
        assert_eq!(one.iter().map(|s| s.rows).collect::<Vec<_>>(), [2300, 2300, 400]);
        assert_eq!(one, small);
        assert_eq!(one, odd);
        // The rows are all there, in order.
        let file = std::fs::File::open(tmp.path().join("small/part-00001.parquet")).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 4096)
                .unwrap();
        let read: Vec<i64> = reader
            .flat_map(|b| {
                b.unwrap()
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(read, (2300..4600).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_result_is_one_empty_shard_and_a_shorter_rerun_removes_stale_shards() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(write(tmp.path(), 3000, 1000, 1000).len(), 3);
        let empty = write(tmp.path(), 0, 1, 1000);
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].rows, 0);
        let names: Vec<_> =
            std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["part-00000.parquet"]);
    }
}
