//! Resumable evaluation jobs: an `eval_<task>.sql` file run over a samples table in chunks, each
//! chunk's predictions committed atomically, so a job killed at any point (kill -9) resumes
//! without recomputing finished rows, duplicating or losing any.
//!
//! The SQL file stays plain SQL. Its contract (docs/eval.md):
//! - `SET ...` statements (model, generation settings) run first;
//! - `CREATE [OR REPLACE] VIEW predictions AS <query>` reads a table named `samples` and returns
//!   one row per sample with a `sample_id` column (the resume key);
//! - optionally `CREATE [OR REPLACE] VIEW scores AS <query>` reads `predictions` and `samples`;
//! - other queries (e.g. `SELECT * FROM scores`, for `vista sql -f`) are ignored by the runner.
//!
//! The runner streams the samples once, skips ids already committed, registers each chunk of
//! the rest as `samples`, runs the predictions query on it and writes
//! `OUT/chunks/chunk-NNNNNN.parquet` (temporary name + fsync + rename). A chunk file is the
//! commit: it carries the job fingerprint in its metadata and its rows' `sample_id`s are the
//! finished ids. `OUT/manifest.json` is an index rebuilt from the chunks. At the end the chunks
//! are merged into `OUT/predictions.parquet` and the scores query writes `OUT/scores.parquet`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use vista_udfs::generate::{self, CoordDecode, ModelLoader};
use vista_udfs::seeded::{fnv1a, FNV_OFFSET};
use vista_udfs::VistaConfig;

use crate::engine::dferr as df;
use crate::file_options::FileOptions;
use crate::output;

/// Name under which the whole samples file is registered while chunks run as `samples`.
const ALL_SAMPLES: &str = "__vista_job_samples";
const FINGERPRINT_KEY: &str = "vista.job.fingerprint";

/// How to run a job.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The samples table (a Parquet file or directory, or anything `tables::register` reads).
    pub samples: String,
    /// Output directory: `chunks/`, `manifest.json`, `predictions.parquet`, `scores.parquet`.
    pub out_dir: PathBuf,
    /// Continue a job whose chunks are in `out_dir`; without it, such a directory is an error.
    pub resume: bool,
    /// Samples per committed chunk.
    pub chunk_rows: usize,
    /// Progress line on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Move committed chunks that cannot be read to `OUT/dropped/` and recompute their rows,
    /// instead of stopping at the first one.
    pub drop_unreadable: bool,
}

impl JobOptions {
    pub fn new(samples: impl Into<String>, out_dir: impl Into<PathBuf>) -> JobOptions {
        JobOptions {
            samples: samples.into(),
            out_dir: out_dir.into(),
            resume: false,
            chunk_rows: 256,
            progress: true,
            drop_unreadable: false,
        }
    }
}

/// What a job did.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub fingerprint: String,
    /// Samples in the samples table.
    pub total: usize,
    /// Samples found committed by an earlier run and not recomputed.
    pub resumed: usize,
    /// Samples computed by this run.
    pub computed: usize,
    /// Prediction rows with a non-NULL `error` (rows the model or a parser could not handle).
    pub failed: usize,
    pub predictions: PathBuf,
    pub scores: Option<PathBuf>,
}

impl std::fmt::Display for JobSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} samples: {} computed, {} resumed, {} failed; predictions in {}",
            self.total,
            self.computed,
            self.resumed,
            self.failed,
            self.predictions.display()
        )?;
        if let Some(s) = &self.scores {
            write!(f, ", scores in {}", s.display())?;
        }
        Ok(())
    }
}

/// The parts of a job file the runner uses.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSql {
    pub settings: Vec<String>,
    pub predictions: String,
    pub scores: Option<String>,
}

/// Splits a job file per the contract above, with a clear error when it does not follow it.
pub fn parse_job_sql(sql: &str) -> Result<JobSql> {
    let mut settings = Vec::new();
    let mut predictions = None;
    let mut scores = None;
    for stmt in crate::engine::parse(sql)? {
        let text = stmt.to_string();
        match &stmt {
            Statement::Statement(s) => match s.as_ref() {
                datafusion::sql::sqlparser::ast::Statement::CreateView(v) => {
                    let name = v.name.to_string().to_ascii_lowercase();
                    let query = v.query.to_string();
                    match name.as_str() {
                        "predictions" => predictions = Some(query),
                        "scores" => scores = Some(query),
                        other => bail!(
                            "job SQL: only the views `predictions` and `scores` may be created \
                             (found view `{other}`); inline helpers as CTEs"
                        ),
                    }
                }
                datafusion::sql::sqlparser::ast::Statement::Set(_) => settings.push(text),
                datafusion::sql::sqlparser::ast::Statement::Query(_) => {}
                _ => bail!(
                    "job SQL: unsupported statement for a job: {}",
                    crate::engine::one_line(&text)
                ),
            },
            Statement::CopyTo(_) | Statement::Explain(_) => {}
            _ => bail!(
                "job SQL: unsupported statement for a job: {}",
                crate::engine::one_line(&text)
            ),
        }
    }
    let predictions = predictions.context(
        "job SQL: no `CREATE VIEW predictions AS ...` statement (it must read table `samples` \
         and return one row per sample with a `sample_id` column)",
    )?;
    Ok(JobSql { settings, predictions, scores })
}

/// What makes two runs' predictions interchangeable; any difference means a different job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FingerprintParts {
    pub model: String,
    pub model_dir: String,
    pub device: String,
    pub dtype: String,
    pub prompt_template: String,
    pub generation: String,
    pub sql: String,
}

impl FingerprintParts {
    pub fn digest(&self) -> String {
        let text = serde_json::to_string(self).expect("strings serialise");
        // Two FNV-1a passes (different offsets) give 128 bits, stable across builds.
        let fnv = |basis: u64| fnv1a(text.as_bytes(), basis);
        format!("{:016x}{:016x}", fnv(FNV_OFFSET), fnv(0x8422_2325_cbf2_9ce4))
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    fingerprint: String,
    parts: FingerprintParts,
    total: usize,
    /// The highest chunk number committed so far.
    #[serde(default)]
    next_seq: usize,
    chunks: Vec<ChunkEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkEntry {
    file: String,
    rows: usize,
}

/// A committed chunk read back.
struct Chunk {
    file: String,
    fingerprint: Option<String>,
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
}

/// Runs (or resumes) a job on `ctx`, which must have vista's functions registered.
/// `loader` fingerprints the model named by `vista.model` (sharing the loaded model with
/// `vista_generate`); `None` skips the model part of the fingerprint.
///
/// One job at a time may use an output directory: a second one is refused while the first
/// holds the directory's lock (released by the system when its process ends, however it ends).
/// A job that fails before committing anything leaves no output directory behind it.
pub async fn run_job(
    ctx: &SessionContext,
    sql: &str,
    loader: Option<&ModelLoader>,
    opts: &JobOptions,
) -> Result<JobSummary> {
    ensure!(opts.chunk_rows > 0, "chunk_rows must be at least 1");
    let job = parse_job_sql(sql)?;
    let created = !opts.out_dir.exists();
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("cannot create '{}'", opts.out_dir.display()))?;
    let result = match crate::dir_lock::DirLock::acquire(&opts.out_dir) {
        Ok(_lock) => run_locked(ctx, sql, &job, loader, opts).await,
        Err(e) => return Err(e),
    };
    if result.is_err() && created && !has_chunks(&opts.out_dir) {
        let _ = std::fs::remove_dir_all(&opts.out_dir);
    }
    result
}

async fn run_locked(
    ctx: &SessionContext,
    sql: &str,
    job: &JobSql,
    loader: Option<&ModelLoader>,
    opts: &JobOptions,
) -> Result<JobSummary> {
    let base_dir = VistaConfig::from_options(ctx.state().config_options()).base_dir.clone();
    for s in &job.settings {
        ctx.sql(s).await.map_err(df)?.collect().await.map_err(df)?;
    }
    check_base_dir_not_widened(ctx, &base_dir)?;
    let parts = fingerprint_parts(ctx, job, loader).await?;
    let fingerprint = parts.digest();
    output::remove_stale_temporaries(&opts.out_dir);
    let chunk_dir = opts.out_dir.join("chunks");
    std::fs::create_dir_all(&chunk_dir)
        .with_context(|| format!("cannot create '{}'", chunk_dir.display()))?;

    let mut committed = Committed::read(opts, &fingerprint, &parts)?;
    crate::tables::register(ctx, ALL_SAMPLES, &opts.samples).await?;
    let total = count_rows(ctx, ALL_SAMPLES).await?;
    let mut manifest = Manifest {
        fingerprint: fingerprint.clone(),
        parts: parts.clone(),
        total,
        next_seq: committed.next_seq.saturating_sub(1),
        chunks: std::mem::take(&mut committed.entries),
    };
    write_manifest(&opts.out_dir, &manifest)?;

    let meta = output_metadata(ctx, sql, &fingerprint, &parts);
    let run = ChunkRun { ctx, job, opts, chunk_dir: &chunk_dir, meta: &meta };
    let resumed = committed.done.len();
    let (seen, computed) = run.compute(&committed, total, &mut manifest).await?;

    // Merge the committed chunks (this run's and earlier runs') and score them, after checking
    // that each belongs to this job, is the one the manifest lists, and holds only samples of
    // the samples table, each once.
    let chunks = read_chunks(&opts.out_dir, false)?;
    verify_chunks(&chunks, &manifest, &fingerprint)?;
    let merged = merge_chunks(&chunks)?;
    let failed = check_merged(&merged.1, &seen)?;
    let (predictions, scores) = write_results(ctx, job, opts, merged, &meta).await?;
    let _ = ctx.deregister_table(ALL_SAMPLES)?;
    Ok(JobSummary { fingerprint, total, resumed, computed, failed, predictions, scores })
}

/// What earlier runs committed: the sample ids done, the manifest entries, and the number the
/// next chunk takes.
struct Committed {
    done: HashSet<String>,
    entries: Vec<ChunkEntry>,
    next_seq: usize,
}

impl Committed {
    /// Reads the committed chunks, refusing ones of another job or with repeated samples.
    fn read(opts: &JobOptions, fingerprint: &str, parts: &FingerprintParts) -> Result<Committed> {
        let chunks = read_chunks(&opts.out_dir, opts.drop_unreadable)?;
        if !chunks.is_empty() && !opts.resume {
            bail!(
                "'{}' already holds {} committed chunks; pass --resume to continue that job, or use a new output directory",
                opts.out_dir.display(),
                chunks.len()
            );
        }
        let mut done: HashSet<String> = HashSet::new();
        let mut entries = Vec::new();
        for c in &chunks {
            if c.fingerprint.as_deref() != Some(fingerprint) {
                bail!("{}", mismatch(&opts.out_dir, c, parts));
            }
            for id in chunk_ids(c)? {
                if !done.insert(id.clone()) {
                    bail!(
                        "chunk {} repeats sample_id '{id}' committed by an earlier chunk",
                        c.file
                    );
                }
            }
            entries.push(ChunkEntry {
                file: c.file.clone(),
                rows: c.batches.iter().map(|b| b.num_rows()).sum(),
            });
        }
        // A name is never reused, even when a chunk in the middle is gone: the next number
        // follows the highest committed one and the highest the manifest has seen.
        let next_seq = chunks
            .iter()
            .filter_map(|c| chunk_seq(&c.file))
            .chain(read_manifest(&opts.out_dir).map(|m| m.next_seq))
            .map(|n| n + 1)
            .max()
            .unwrap_or(0);
        Ok(Committed { done, entries, next_seq })
    }
}

/// The key-value metadata of every file the job writes: provenance, the job fingerprint, the
/// limits in force and, when the model ran, which model wrote the answers under which rules (its
/// fingerprint and family, the prompt template and coordinate style).
fn output_metadata(
    ctx: &SessionContext,
    sql: &str,
    fingerprint: &str,
    parts: &FingerprintParts,
) -> Vec<(String, String)> {
    let mut extra = vec![(FINGERPRINT_KEY.to_string(), fingerprint.to_string())];
    let config = VistaConfig::from_options(ctx.state().config_options());
    extra.extend(vista_udfs::limits::Limits::from_config(&config).metadata());
    if !parts.model.is_empty() {
        // Model fingerprints are `{model_type}-{digest}`.
        let family = parts.model.rsplit_once('-').map_or(parts.model.as_str(), |(f, _)| f);
        for (k, v) in [
            ("model_fingerprint", parts.model.as_str()),
            ("model_type", family),
            ("prompt_template", config.prompt_template.as_str()),
            ("coord_style", config.coord_style.as_str()),
        ] {
            extra.push((format!("vista.{k}"), v.to_string()));
        }
    }
    output::provenance(Some(sql), &extra)
}

/// One run's chunk loop: what it reads, runs and writes.
struct ChunkRun<'a> {
    ctx: &'a SessionContext,
    job: &'a JobSql,
    opts: &'a JobOptions,
    chunk_dir: &'a Path,
    meta: &'a [(String, String)],
}

impl ChunkRun<'_> {
    /// Streams the samples, skips the committed ones, and commits the rest chunk by chunk;
    /// returns every sample id of the table and the rows computed.
    async fn compute(
        &self,
        committed: &Committed,
        total: usize,
        manifest: &mut Manifest,
    ) -> Result<(HashSet<String>, usize)> {
        let (ctx, opts) = (self.ctx, self.opts);
        let progress = crate::progress::RowsBar::new(opts.progress, total, committed.done.len());
        // Encoded images in flight stay bounded: the scan hands over at most one chunk of
        // samples per record batch (the default 8192 rows of images could be gigabytes).
        let scan_rows =
            ctx.state().config_options().execution.batch_size.get().min(opts.chunk_rows).max(1);
        let set = format!("SET datafusion.execution.batch_size = {scan_rows}");
        ctx.sql(&set).await.map_err(df)?.collect().await.map_err(df)?;
        let query = format!("SELECT * FROM {ALL_SAMPLES}");
        let mut stream = ctx.sql(&query).await.map_err(df)?.execute_stream().await.map_err(df)?;
        let samples_schema = stream.schema();
        let mut seen: HashSet<String> = HashSet::new();
        let mut pending: Vec<RecordBatch> = Vec::new();
        let (mut pending_rows, mut computed, mut exhausted) = (0, 0, false);
        let mut next_seq = committed.next_seq;
        while !exhausted || pending_rows > 0 {
            if !exhausted && pending_rows < opts.chunk_rows {
                match stream.next().await {
                    Some(batch) => {
                        let batch = new_samples(batch.map_err(df)?, &mut seen, &committed.done)?;
                        pending_rows += batch.num_rows();
                        if batch.num_rows() > 0 {
                            pending.push(batch);
                        }
                    }
                    None => exhausted = true,
                }
                continue;
            }
            let all = concat_batches(&samples_schema, &pending)?;
            let take = opts.chunk_rows.min(all.num_rows());
            let rest = all.slice(take, all.num_rows() - take);
            pending_rows = rest.num_rows();
            pending = if pending_rows > 0 { vec![rest] } else { Vec::new() };
            let rows = self.commit(&all.slice(0, take), next_seq, manifest).await?;
            next_seq += 1;
            computed += rows;
            progress.advance(rows);
        }
        progress.finish();
        Ok((seen, computed))
    }

    /// Runs the predictions on one chunk and commits it as chunk number `seq`.
    async fn commit(
        &self,
        chunk: &RecordBatch,
        seq: usize,
        manifest: &mut Manifest,
    ) -> Result<usize> {
        let (schema, batches) = predict_chunk(self.ctx, &self.job.predictions, chunk).await?;
        let file = format!("chunk-{seq:06}.parquet");
        output::write_parquet_atomic(&self.chunk_dir.join(&file), &batches, schema, self.meta)?;
        manifest.next_seq = seq;
        manifest.chunks.push(ChunkEntry { file, rows: chunk.num_rows() });
        write_manifest(&self.opts.out_dir, manifest)?;
        Ok(chunk.num_rows())
    }
}

/// The rows of a samples batch not yet committed; a sample id seen twice is an error.
fn new_samples(
    batch: RecordBatch,
    seen: &mut HashSet<String>,
    done: &HashSet<String>,
) -> Result<RecordBatch> {
    let ids = sample_ids(&batch, "samples")?;
    let mut keep = Vec::with_capacity(ids.len());
    for id in ids {
        if !seen.insert(id.clone()) {
            bail!("samples: sample_id '{id}' occurs more than once");
        }
        keep.push(!done.contains(&id));
    }
    Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
}

/// Checks that the merged predictions hold every sample of the table once; returns the rows
/// with an error.
fn check_merged(batches: &[RecordBatch], seen: &HashSet<String>) -> Result<usize> {
    let mut failed = 0;
    let mut ids = HashSet::new();
    for b in batches {
        for id in sample_ids(b, "predictions")? {
            ensure!(
                seen.contains(&id),
                "committed chunks hold sample_id '{id}', which is not in the samples table"
            );
            if !ids.insert(id.clone()) {
                bail!("committed chunks hold sample_id '{id}' twice");
            }
        }
        if let Some(e) = b.column_by_name("error") {
            failed += e.len() - e.null_count();
        }
    }
    ensure!(
        ids.len() == seen.len(),
        "committed chunks hold {} samples, the samples table {}",
        ids.len(),
        seen.len()
    );
    Ok(failed)
}

/// Writes predictions.parquet from the merged chunks and scores.parquet from the job's scores
/// view; returns their paths.
async fn write_results(
    ctx: &SessionContext,
    job: &JobSql,
    opts: &JobOptions,
    merged: (SchemaRef, Vec<RecordBatch>),
    meta: &[(String, String)],
) -> Result<(PathBuf, Option<PathBuf>)> {
    let _ = ctx.deregister_table("predictions")?;
    ctx.register_table("predictions", Arc::new(MemTable::try_new(merged.0, vec![merged.1])?))?;
    let predictions_path = opts.out_dir.join("predictions.parquet");
    write_query(ctx, "SELECT * FROM predictions ORDER BY sample_id", &predictions_path, meta)
        .await?;
    let scores_path = match &job.scores {
        Some(q) => {
            let _ = ctx.deregister_table("samples")?;
            crate::tables::register(ctx, "samples", &opts.samples).await?;
            let path = opts.out_dir.join("scores.parquet");
            write_query(ctx, q, &path, meta).await?;
            Some(path)
        }
        None => None,
    };
    Ok((predictions_path, scores_path))
}

async fn fingerprint_parts(
    ctx: &SessionContext,
    job: &JobSql,
    loader: Option<&ModelLoader>,
) -> Result<FingerprintParts> {
    let c = VistaConfig::from_options(ctx.state().config_options());
    let uses_model = job.predictions.to_ascii_lowercase().contains("vista_generate");
    let model = match loader {
        Some(loader) if uses_model && !c.model.trim().is_empty() => {
            let spec = generate::model_spec(&c).map_err(df)?;
            generate::model_fingerprint(loader, &spec)
                .await
                .map_err(|e| anyhow::anyhow!("cannot load model '{}': {e}", spec.dir))?
        }
        _ => String::new(),
    };
    let g = generate::settings(&c).map_err(df)?;
    Ok(FingerprintParts {
        model,
        model_dir: c.model.clone(),
        device: c.device.clone(),
        dtype: c.dtype.clone(),
        // The coordinate style changes the instructions of coordinate tasks.
        prompt_template: format!("{} coord_style={}", g.prompt_template, c.coord_style),
        // The image limit decides which rows fail, so it is part of the finished rows.
        // A minimum length and a coordinate rule are named only when set, so jobs without them
        // keep their fingerprint.
        generation: format!(
            "max_new_tokens={}{}{} num_beams={} temperature={} top_p={} seed={} max_image_pixels={}",
            g.max_new_tokens,
            match g.min_new_tokens {
                0 => String::new(),
                n => format!(" min_new_tokens={n}"),
            },
            match g.coord_decode {
                CoordDecode::Argmax => String::new(),
                other => format!(" coord_decode={}", other.name()),
            },
            g.num_beams,
            g.temperature,
            g.top_p,
            g.seed,
            g.max_image_pixels
        ),
        sql: std::iter::once(job.predictions.as_str())
            .chain(job.settings.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(";\n"),
    })
}

/// A job file may narrow `vista.base_dir` (a subdirectory) but not widen it: the directory a
/// job's caller confined it to stays its limit.
fn check_base_dir_not_widened(ctx: &SessionContext, before: &str) -> Result<()> {
    if before.is_empty() {
        return Ok(());
    }
    let after = VistaConfig::from_options(ctx.state().config_options()).base_dir.clone();
    if after == before {
        return Ok(());
    }
    let inside = match (Path::new(before).canonicalize(), Path::new(&after).canonicalize()) {
        (Ok(b), Ok(a)) => !after.is_empty() && a.starts_with(b),
        _ => false,
    };
    ensure!(
        inside,
        "job SQL: SET vista.base_dir = '{after}' leaves the base directory '{before}' the job was started with"
    );
    Ok(())
}

fn read_manifest(out: &Path) -> Option<Manifest> {
    std::fs::read_to_string(out.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Manifest>(&t).ok())
}

fn mismatch(out: &Path, chunk: &Chunk, parts: &FingerprintParts) -> String {
    let old = read_manifest(out).map(|m| m.parts);
    let what = match old {
        Some(old) => {
            let mut diffs = Vec::new();
            for (name, a, b) in [
                ("model fingerprint", &old.model, &parts.model),
                ("model directory", &old.model_dir, &parts.model_dir),
                ("device", &old.device, &parts.device),
                ("dtype", &old.dtype, &parts.dtype),
                ("prompt template", &old.prompt_template, &parts.prompt_template),
                ("generation settings", &old.generation, &parts.generation),
                ("SQL", &old.sql, &parts.sql),
            ] {
                if a != b {
                    diffs.push(format!("{name} ('{a}' then, '{b}' now)"));
                }
            }
            diffs.join(", ")
        }
        None => "the fingerprint".to_string(),
    };
    format!(
        "cannot resume: chunk {} in '{}' belongs to a different job ({what} differ); use a new output directory",
        chunk.file,
        out.display()
    )
}

/// Runs the predictions query on one chunk registered as `samples`.
async fn predict_chunk(
    ctx: &SessionContext,
    query: &str,
    chunk: &RecordBatch,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let _ = ctx.deregister_table("samples")?;
    let table = MemTable::try_new(chunk.schema(), vec![vec![chunk.clone()]])?;
    ctx.register_table("samples", Arc::new(table))?;
    let frame = ctx.sql(query).await.map_err(df)?;
    crate::confine::check_plan(ctx, frame.logical_plan())?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let want: Vec<String> = sample_ids(chunk, "samples")?;
    let batches = frame.collect().await.map_err(|e| {
        let (first, last) =
            (want.first().map_or("", |s| s.as_str()), want.last().map_or("", |s| s.as_str()));
        anyhow::anyhow!(
            "predictions, in the chunk of {} samples from sample_id '{first}' to '{last}': {}",
            want.len(),
            df_text(e)
        )
    })?;
    let _ = ctx.deregister_table("samples")?;

    let want: HashSet<&String> = want.iter().collect();
    let mut got = HashSet::new();
    for b in &batches {
        for id in sample_ids(b, "predictions")? {
            if !want.contains(&id) {
                bail!("predictions: returned sample_id '{id}', which is not in its input chunk");
            }
            if !got.insert(id.clone()) {
                bail!("predictions: returned sample_id '{id}' twice; it must return one row per sample");
            }
        }
    }
    if got.len() != want.len() {
        let missing = want.iter().find(|id| !got.contains(**id)).map(|s| s.as_str()).unwrap_or("");
        bail!("predictions: returned no row for sample_id '{missing}'; it must return one row per sample");
    }
    Ok((schema, batches))
}

fn sample_ids(batch: &RecordBatch, table: &str) -> Result<Vec<String>> {
    let col: &ArrayRef = batch
        .column_by_name("sample_id")
        .with_context(|| format!("{table}: no `sample_id` column"))?;
    let values = vista_udfs::common::str_values(table, col).map_err(df)?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.map(str::to_string)
                .with_context(|| format!("{table}: sample_id is NULL (row {})", i + 1))
        })
        .collect()
}

fn chunk_ids(c: &Chunk) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for b in &c.batches {
        ids.extend(sample_ids(b, &c.file)?);
    }
    Ok(ids)
}

/// The number in a chunk's name (`chunk-000042.parquet` -> 42).
fn chunk_seq(file: &str) -> Option<usize> {
    file.strip_prefix("chunk-")?.strip_suffix(".parquet")?.parse().ok()
}

fn has_chunks(out: &Path) -> bool {
    std::fs::read_dir(out.join("chunks"))
        .map(|d| {
            d.filter_map(|e| e.ok()).any(|e| chunk_seq(&e.file_name().to_string_lossy()).is_some())
        })
        .unwrap_or(false)
}

/// Committed chunks of `OUT/chunks/` in commit order. Temporary files of a killed run are
/// removed. A chunk that cannot be read stops the job naming it, or with `drop_unreadable` is
/// moved to `OUT/dropped/` so that its rows are computed again.
fn read_chunks(out: &Path, drop_unreadable: bool) -> Result<Vec<Chunk>> {
    let dir = out.join("chunks");
    let mut names = Vec::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot list '{}'", dir.display()))?
    {
        let name = entry?.file_name().to_string_lossy().to_string();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(dir.join(&name));
        } else if chunk_seq(&name).is_some() {
            names.push(name);
        }
    }
    names.sort();
    let mut chunks = Vec::with_capacity(names.len());
    for file in names {
        let path = dir.join(&file);
        match read_chunk(&path) {
            Ok((fingerprint, schema, batches)) => {
                chunks.push(Chunk { file, fingerprint, batches, schema })
            }
            Err(e) if drop_unreadable => {
                let dropped = out.join("dropped");
                std::fs::create_dir_all(&dropped)?;
                std::fs::rename(&path, dropped.join(&file))
                    .with_context(|| format!("cannot move '{}' aside", path.display()))?;
                eprintln!("dropped unreadable chunk {file} ({e:#}); its rows are computed again");
            }
            Err(e) => bail!(
                "{e:#}; rerun with --resume --drop-unreadable to move it to '{}' and compute its rows again",
                out.join("dropped").display()
            ),
        }
    }
    Ok(chunks)
}

fn read_chunk(path: &Path) -> Result<(Option<String>, SchemaRef, Vec<RecordBatch>)> {
    let unreadable = || format!("'{}' is not a readable Parquet chunk", path.display());
    let f =
        std::fs::File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    crate::tables::check_parquet_footer(&f, path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).with_context(unreadable)?;
    let fingerprint = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == FINGERPRINT_KEY))
        .and_then(|k| k.value.clone());
    let schema = builder.schema().clone();
    let batches = builder
        .build()
        .with_context(unreadable)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .with_context(unreadable)?;
    Ok((fingerprint, schema, batches))
}

/// Every chunk carries this job's fingerprint and is the chunk the manifest lists, with the
/// same number of rows.
fn verify_chunks(chunks: &[Chunk], manifest: &Manifest, fingerprint: &str) -> Result<()> {
    for c in chunks {
        ensure!(
            c.fingerprint.as_deref() == Some(fingerprint),
            "chunk {} belongs to a different job (fingerprint {}, this job {fingerprint}); \
             another process wrote into this output directory",
            c.file,
            c.fingerprint.as_deref().unwrap_or("none")
        );
        let rows: usize = c.batches.iter().map(|b| b.num_rows()).sum();
        match manifest.chunks.iter().find(|e| e.file == c.file) {
            Some(e) if e.rows == rows => {}
            Some(e) => bail!("chunk {} holds {rows} rows, the manifest {}", c.file, e.rows),
            None => bail!("chunk {} is not in the manifest; another process wrote it", c.file),
        }
    }
    ensure!(
        chunks.len() == manifest.chunks.len(),
        "the manifest lists {} chunks, {} are on disk",
        manifest.chunks.len(),
        chunks.len()
    );
    Ok(())
}

fn merge_chunks(chunks: &[Chunk]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let first = chunks.first().context("no committed chunks (is the samples table empty?)")?;
    let schema = first.schema.clone();
    let mut batches = Vec::new();
    for c in chunks {
        ensure!(
            c.schema.fields() == schema.fields(),
            "chunk {} has a different schema from {}",
            c.file,
            first.file
        );
        batches.extend(
            c.batches
                .iter()
                .map(|b| b.clone().with_schema(schema.clone()))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        );
    }
    Ok((schema, batches))
}

async fn count_rows(ctx: &SessionContext, table: &str) -> Result<usize> {
    crate::tables::count(ctx, &format!("SELECT count(*) AS n FROM {table}"))
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::engine::one_line(&format!("{e:#}"))))
}

async fn write_query(
    ctx: &SessionContext,
    sql: &str,
    path: &Path,
    meta: &[(String, String)],
) -> Result<()> {
    let frame = ctx.sql(sql).await.map_err(df)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(df)?;
    // The results users read honour the session's `datafusion.execution.parquet.*` settings.
    let options = FileOptions::new(ctx, output::Format::Parquet, &Default::default(), meta)?;
    output::write_parquet_with(path, &batches, schema, options.parquet)
}

fn write_manifest(out: &Path, m: &Manifest) -> Result<()> {
    output::write_json_atomic(&out.join("manifest.json"), m)
}

fn df_text(e: datafusion::common::DataFusionError) -> String {
    crate::engine::one_line(&e.strip_backtrace())
}
