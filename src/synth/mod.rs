//! `vista synth`: a deterministic generator of CoinIt-style samples on images of simple scenes.
//!
//! Two steps, so that curation stays relational: Rust draws the scenes and writes raw tables
//! (`images`, `scenes`, `objects`, `vocab`); `queries/synth_samples.sql` shapes them into the
//! samples layout of `schemas/samples.json` for every task. The same seed gives byte-identical
//! shards (our own PRNG, fixed encoder settings, a total order in the query).

pub mod scene;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::MemTable;
use futures::StreamExt;

use crate::session::{self, SessionOptions};
use crate::{output, script};

/// The curation query, embedded so that the binary works from any directory.
pub const SAMPLES_SQL: &str = include_str!("../../queries/synth_samples.sql");

/// Every task the query produces, in output order.
pub const TASKS: &[&str] =
    &["caption", "vqa", "rec", "res", "grec", "gres", "region_caption", "pointqa", "nlvr", "coseg"];

/// What `vista synth` draws and writes; its fields are the command's flags.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct SynthOptions {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per task (fewer only when the scenes cannot supply them).
    #[arg(long, default_value_t = 16)]
    pub samples_per_task: usize,
    /// Scenes to draw (default: twice the samples per task, at least 8).
    #[arg(long)]
    pub images: Option<usize>,
    /// Side of the square images in pixels (48 to 1024).
    #[arg(long, default_value_t = 96)]
    pub image_size: u32,
    /// Objects per scene are drawn from 1 to this (at most 9).
    #[arg(long, default_value_t = 4)]
    pub max_objects: usize,
    /// Contour points per mask in RES/GRES/co-segmentation targets.
    #[arg(long, default_value_t = 32)]
    pub points: usize,
    /// Coordinate text style of targets: bins (VistaLLM's tokens) | decimal.
    #[arg(long, default_value = "bins")]
    pub style: String,
    /// Value of the split column.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Rows per Parquet shard.
    #[arg(long, default_value_t = 1000)]
    pub shard_size: usize,
    /// Output directory (samples/part-*.parquet, raw/*.parquet).
    #[arg(long = "out", value_name = "OUT")]
    pub out_dir: PathBuf,
    /// A curation query to run instead of queries/synth_samples.sql.
    #[arg(long)]
    pub query: Option<PathBuf>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 0,
            samples_per_task: 16,
            images: None,
            image_size: 96,
            max_objects: 4,
            points: 32,
            style: "bins".to_string(),
            split: "train".to_string(),
            shard_size: 1000,
            out_dir: PathBuf::from("synth"),
            query: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    pub images: usize,
    pub objects: usize,
    pub samples: usize,
    /// Samples written per task.
    pub per_task: BTreeMap<String, usize>,
    /// The sample shards, in order.
    pub shards: Vec<PathBuf>,
    /// Directory of the raw tables.
    pub raw_dir: PathBuf,
}

/// Generates the scenes, writes the raw tables and the sample shards (see [`SynthOptions`]).
/// Builds its own async runtime; from async code call [`synth_async`].
pub fn synth(opts: &SynthOptions) -> Result<SynthSummary> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(synth_async(opts))
}

pub async fn synth_async(opts: &SynthOptions) -> Result<SynthSummary> {
    check(opts)?;
    let n_images = image_count(opts);
    let scenes: Vec<scene::Scene> = (0..n_images)
        .map(|i| scene::generate(opts.seed, i as u64, opts.image_size, opts.max_objects))
        .collect();
    let raw = tables::raw_tables(opts.seed, &scenes)?;
    let raw_dir = opts.out_dir.join("raw");
    let meta = metadata(opts, None);
    let named = [
        ("images", &raw.images),
        ("scenes", &raw.scenes),
        ("objects", &raw.objects),
        ("vocab", &raw.vocab),
    ];
    for (name, batch) in named {
        output::write_parquet_atomic(
            &raw_dir.join(format!("{name}.parquet")),
            std::slice::from_ref(batch),
            batch.schema(),
            &meta,
        )?;
    }

    let sql = match &opts.query {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read query '{}'", p.display()))?,
        None => SAMPLES_SQL.to_string(),
    };
    let settings = [
        // Sorting union branches separately and merging them trips DataFusion 55's sanity check
        // when branches have different constant columns; sort the union as a whole instead.
        ("datafusion.optimizer.repartition_sorts", "false"),
        // The samples layout stores text as Utf8.
        ("datafusion.sql_parser.map_string_types_to_utf8view", "false"),
    ];
    let ctx = session::new_context(&SessionOptions {
        settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        // One partition: the same plan, hence the same output, on every machine.
        target_partitions: Some(1),
        memory_limit: None,
    })?;
    for (name, batch) in named {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch.clone()]])?;
        ctx.register_table(name, Arc::new(table))?;
    }
    let params = query_params(opts);
    let df = script::run_script(&ctx, &sql, &params, "synth").await?;
    let mut stream = df.execute_stream().await.context("synth: the curation query failed")?;
    let samples_dir = opts.out_dir.join("samples");
    let mut shards = script::ShardWriter::new(
        &samples_dir,
        opts.shard_size,
        stream.schema(),
        metadata(opts, Some(&sql)),
    );
    let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
    let mut samples = 0;
    while let Some(b) =
        stream.next().await.transpose().context("synth: the curation query failed")?
    {
        count_tasks(&b, &mut per_task)?;
        samples += b.num_rows();
        shards.push(b)?;
    }
    let written = shards.finish()?;
    output::write_json_atomic(&opts.out_dir.join("manifest.json"), &written)?;
    let shards = written.iter().map(|s| samples_dir.join(&s.file)).collect();
    Ok(SynthSummary {
        images: n_images,
        objects: raw.objects.num_rows(),
        samples,
        per_task,
        shards,
        raw_dir,
    })
}

fn check(opts: &SynthOptions) -> Result<()> {
    if !(48..=1024).contains(&opts.image_size) {
        bail!("synth: image_size must be 48 to 1024 pixels, got {}", opts.image_size);
    }
    if !(1..=9).contains(&opts.max_objects) {
        bail!("synth: max_objects must be 1 to 9, got {}", opts.max_objects);
    }
    if opts.samples_per_task == 0 || opts.shard_size == 0 {
        bail!("synth: samples_per_task and shard_size must be positive");
    }
    if opts.images == Some(0) {
        bail!("synth: images must be positive");
    }
    if !(3..=256).contains(&opts.points) {
        bail!("synth: points must be 3 to 256, got {}", opts.points);
    }
    if !["bins", "decimal"].contains(&opts.style.as_str()) {
        bail!("synth: style must be 'bins' or 'decimal', got '{}'", opts.style);
    }
    Ok(())
}

/// Values of the query's `$name` parameters.
fn query_params(opts: &SynthOptions) -> ParamValues {
    let values = [
        ("seed", ScalarValue::Int64(Some(opts.seed as i64))),
        ("n", ScalarValue::Int64(Some(opts.samples_per_task as i64))),
        ("points", ScalarValue::Int64(Some(opts.points as i64))),
        ("style", ScalarValue::Utf8(Some(opts.style.clone()))),
        ("split", ScalarValue::Utf8(Some(opts.split.clone()))),
        ("source", ScalarValue::Utf8(Some(format!("vista-synth seed={}", opts.seed)))),
    ];
    ParamValues::Map(HashMap::from_iter(values.map(|(k, v)| (k.to_string(), v.into()))))
}

fn metadata(opts: &SynthOptions, sql: Option<&str>) -> Vec<(String, String)> {
    let described = format!(
        "seed={} samples_per_task={} images={} image_size={} max_objects={} points={} style={} split={}",
        opts.seed,
        opts.samples_per_task,
        image_count(opts),
        opts.image_size,
        opts.max_objects,
        opts.points,
        opts.style,
        opts.split
    );
    output::provenance(sql, &[("vista.synth".to_string(), described)])
}

fn image_count(opts: &SynthOptions) -> usize {
    opts.images.unwrap_or((2 * opts.samples_per_task).max(8))
}

fn count_tasks(batch: &RecordBatch, per_task: &mut BTreeMap<String, usize>) -> Result<()> {
    let col = batch.column_by_name("task").context("synth: the query has no `task` column")?;
    let col = datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8)?;
    for t in col.as_string::<i32>().iter() {
        *per_task.entry(t.unwrap_or("").to_string()).or_default() += 1;
    }
    Ok(())
}
