//! The `vista` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use datafusion::prelude::SessionContext;
use vista::engine::{self, Sink};
use vista::meta::{self, Flow};
use vista::output::Format;
use vista::session::{self, SessionOptions};

#[derive(Parser)]
#[command(
    name = "vista",
    version,
    about = "VistaLLM as SQL: run vision-language models, contour sampling and reference-exact metrics over image tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL: `-c "..."` and `-f FILE.sql` (repeatable, run in the order given), or an
    /// interactive prompt with neither.
    Sql(SqlArgs),
    /// List every vista function with its signature, description and a SQL example.
    Functions {
        /// `table` (readable text) or `json`.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Run an eval job file over a samples table, in resumable chunks (docs/eval.md).
    Run(RunArgs),
    /// Convert public annotation formats to the samples layout (Parquet).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Generate a deterministic synthetic CoinIt-style sample set (docs/synth.md).
    Synth(SynthArgs),
    /// Train a VistaLLM on a sample table: two stages, AdamW, loss curve, resumable (docs/train.md).
    Train(TrainArgs),
    /// Curate instruction samples from an imported COCO-format set (queries/curate_<task>.sql,
    /// docs/curate.md): filters, balancing, sharded Parquet with a manifest, and a report.
    Curate(CurateArgs),
    /// Ask the model one question about one or more images.
    Generate(GenerateArgs),
    /// The main job on a built-in sample set: generate, predict, parse, score; print the scores.
    Demo(DemoArgs),
    /// Run a Ballista scheduler or executor with every vista function (docs/cluster.md; needs a
    /// binary built with `--features cluster`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Check a table file against a canonical schema (samples, images, predictions, scores).
    Check {
        /// A Parquet, CSV or NDJSON file (or a directory of them).
        table: String,
        /// Schema name or path to a schema JSON file.
        #[arg(long)]
        schema: String,
    },
}

#[derive(clap::Args)]
struct SqlArgs {
    /// SQL text to run (several statements separated by `;`), or a meta-command such as `\d`
    /// (`\?` lists them). Repeatable; `-c` and `-f` run in the order given.
    #[arg(short = 'c', long = "command")]
    command: Vec<String>,
    /// A SQL file to run. Repeatable.
    #[arg(short = 'f', long = "file")]
    file: Vec<PathBuf>,
    /// The `-c` texts and `-f` files in command-line order (filled in by `main`).
    #[arg(skip)]
    sources: Vec<Source>,
    /// Output format of query results (default: table).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write the last query's result to this file (.parquet, .csv, .tsv, .json, .ndjson),
    /// atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Table output shows at most N rows of each result and how many it has; 0 = all. Default:
    /// 40 at the interactive prompt, all with -c/-f.
    #[arg(long, value_name = "N")]
    maxrows: Option<usize>,
    /// Results only: no progress line or status messages on stderr (errors still go there).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Register a file as a table: `--table name=path` (repeatable).
    #[arg(long = "table", value_parser = parse_pair)]
    tables: Vec<(String, String)>,
    /// A setting: `--set batch_size=16` (`vista.` is implied) or `--set datafusion.x=y`.
    #[arg(long = "set", value_parser = parse_pair)]
    settings: Vec<(String, String)>,
    /// Base directory for relative image paths (same as `SET vista.base_dir`).
    #[arg(long)]
    base_dir: Option<String>,
    /// Run on a Ballista cluster: the scheduler's `df://host:port` (docs/cluster.md).
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

/// One `-c` text or `-f` file of `vista sql`.
#[derive(Debug, Clone)]
enum Source {
    Command(String),
    File(PathBuf),
}

/// `-c` and `-f` values in the order they stand on the command line (clap keeps each
/// argument's values apart; their indices tell the order).
fn sql_sources(args: &SqlArgs, m: &clap::ArgMatches) -> Vec<Source> {
    let at = |id: &str, k: usize| m.indices_of(id).and_then(|mut i| i.nth(k)).unwrap_or(usize::MAX);
    let commands = args
        .command
        .iter()
        .enumerate()
        .map(|(k, c)| (at("command", k), Source::Command(c.clone())));
    let files = args.file.iter().enumerate().map(|(k, f)| (at("file", k), Source::File(f.clone())));
    let mut all: Vec<_> = commands.chain(files).collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// A scheduler: plans queries and hands their tasks to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: std::net::SocketAddr,
        /// Host name executors and clients use for this scheduler.
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat before an executor is lost and its tasks rerun elsewhere.
        #[arg(long, default_value_t = 60)]
        executor_timeout: u64,
    },
    /// An executor: runs tasks (vista functions, the model) for a scheduler.
    Executor {
        /// The scheduler, `host:port`.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        /// Address of this executor's data (Arrow Flight) service.
        #[arg(long, default_value = "0.0.0.0:50051")]
        bind: std::net::SocketAddr,
        /// Port of its task (gRPC) service; default: the bind port + 1.
        #[arg(long)]
        grpc_port: Option<u16>,
        /// Host name the scheduler and other executors use for this executor (default: the
        /// address its connection to the scheduler comes from).
        #[arg(long)]
        external_host: Option<String>,
        /// Tasks run at once. Default: the CPU cores. A GPU executor: run one per device
        /// (CUDA_VISIBLE_DEVICES) with 1, so tasks queue for the one model worker.
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Directory for shuffle files (default: a temporary one, removed on exit).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 10)]
        heartbeat_interval: u64,
        /// The directory `read_bytes` may read from, whatever a client sets (`vista.base_dir`
        /// can narrow it, never leave it). Default: the executor's working directory.
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The job file (e.g. queries/eval_rec.sql).
    file: PathBuf,
    /// The samples table (Parquet file or directory; schemas/samples.json layout).
    #[arg(long)]
    samples: String,
    /// Output directory: chunks/, manifest.json, predictions.parquet, scores.parquet.
    #[arg(long)]
    out: PathBuf,
    /// Continue a job killed earlier, without recomputing its committed rows.
    #[arg(long)]
    resume: bool,
    /// Samples per committed chunk.
    #[arg(long, default_value_t = 256)]
    chunk_rows: usize,
    /// With --resume: move committed chunks that cannot be read to OUT/dropped/ and compute
    /// their rows again.
    #[arg(long, requires = "resume")]
    drop_unreadable: bool,
    /// A setting: `--set model=DIR` (`vista.` is implied).
    #[arg(long = "set", value_parser = parse_pair)]
    settings: Vec<(String, String)>,
    /// Base directory for relative image paths.
    #[arg(long)]
    base_dir: Option<String>,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// COCO captions (captions_*.json) -> one caption sample per image.
    CocoCaptions {
        annotations: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// VQAv2 questions (+ annotations) -> one vqa sample per question.
    Vqav2 {
        questions: PathBuf,
        #[arg(long)]
        annotations: Option<PathBuf>,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// COCO instances (instances_*.json) -> images, categories and instances tables (Parquet,
    /// streamed), for the curation queries; malformed records are skipped and counted.
    CocoInstances {
        annotations: PathBuf,
        /// Directory of the image files (COCO file names are relative to it).
        #[arg(long)]
        images: Option<PathBuf>,
        /// A COCO captions file of the same images, written as captions.parquet.
        #[arg(long)]
        captions: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Print nothing about skipped records (they are still counted in import_report.json).
        #[arg(long)]
        quiet: bool,
    },
    /// RefCOCO/+/g refs (JSON conversion of refs(unc).p) or gRefCOCO grefs JSON, with the COCO
    /// instances file they index -> rec/res/grec/gres samples.
    Refs {
        refs: PathBuf,
        #[arg(long)]
        instances: PathBuf,
        /// rec | res | grec | gres
        #[arg(long)]
        task: String,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// POPE question file (JSON lines: question_id, image, text, label) -> one vqa sample per
    /// question, for queries/eval_pope.sql; malformed lines are skipped and counted.
    Pope {
        questions: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// PointQA Local / LookTwice-QA / Visual7W pointing (Shikra's JSON lines: file_path,
    /// question(s), answer, bbox, point, candidates) -> pointqa samples (a question about a
    /// point or box) and pointing samples (pick one of the candidate boxes), for
    /// queries/eval_pointqa.sql; malformed lines are skipped and counted.
    Pointqa {
        questions: PathBuf,
        /// point | box: the region a PointQA question is asked about
        #[arg(long, default_value = "point")]
        query: vista::import::Query,
        /// object | super | general: which LookTwice-QA phrasing to ask
        #[arg(long, default_value = "general")]
        question: vista::import::Phrasing,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// Karpathy split file (dataset_coco.json, dataset_flickr30k.json) -> one caption sample per
    /// image (--split test keeps the Karpathy test split); malformed images skipped and counted.
    Karpathy {
        dataset: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// NLVR2 statements (dev.json, test1.json, train.json) + their image pairs under --images ->
    /// one nlvr sample per statement, images embedded; malformed lines skipped and counted.
    Nlvr2 {
        statements: PathBuf,
        #[arg(long)]
        images: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// Visual Genome region_descriptions.json -> one region_caption sample per region
    /// (streamed); malformed regions skipped and counted.
    VgRegions {
        regions: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// Co-segmentation groups: --images DIR/<group>/<image> with --masks DIR/<group>/<stem>.png
    /// (iCoSeg's layout) -> coseg samples of --group-size images; unusable images skipped.
    Coseg {
        #[arg(long)]
        images: PathBuf,
        #[arg(long)]
        masks: PathBuf,
        #[arg(long, default_value_t = 2)]
        group_size: usize,
        #[command(flatten)]
        common: ImportCommon,
    },
    /// RefCOCOg refs (JSON dump of refs(umd).p) + COCO instances -> one region_caption sample
    /// per ref, its sentences as references.
    RefsRegions {
        refs: PathBuf,
        #[arg(long)]
        instances: PathBuf,
        #[command(flatten)]
        common: ImportCommon,
    },
}

#[derive(clap::Args)]
struct ImportCommon {
    /// Output Parquet file.
    #[arg(long)]
    out: PathBuf,
    /// Prefix put before COCO file names in image_path (e.g. `val2014/`).
    #[arg(long, default_value = "")]
    images_prefix: String,
    /// Keep only this split (refs) / value of the split column.
    #[arg(long)]
    split: Option<String>,
    /// Value of the source column and sample id prefix.
    #[arg(long)]
    source: Option<String>,
}

#[derive(clap::Args)]
struct SynthArgs {
    /// Output directory (samples/part-*.parquet, raw/*.parquet).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Samples per task.
    #[arg(long, default_value_t = 16)]
    samples_per_task: usize,
    /// Scenes to draw (default: twice the samples per task, at least 8).
    #[arg(long)]
    images: Option<usize>,
    /// Side of the square images in pixels.
    #[arg(long, default_value_t = 96)]
    image_size: u32,
    /// Objects per scene are drawn from 1 to this (at most 9).
    #[arg(long, default_value_t = 4)]
    max_objects: usize,
    /// Rows per Parquet shard.
    #[arg(long, default_value_t = 1000)]
    shard_size: usize,
    /// Contour points per mask target.
    #[arg(long, default_value_t = 32)]
    points: usize,
    /// Coordinate text style of targets: bins | decimal.
    #[arg(long, default_value = "bins")]
    style: String,
    /// Value of the split column.
    #[arg(long, default_value = "train")]
    split: String,
    /// A curation query to run instead of queries/synth_samples.sql.
    #[arg(long)]
    query: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CurateArgs {
    /// rec | res | grec | gres | caption | vqa | attcoseg, or the path of an edited .sql copy.
    task: String,
    /// Directory written by `vista import coco-instances`.
    #[arg(long)]
    input: PathBuf,
    /// Output directory (samples/part-*.parquet, manifest.json, report/).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Coordinate text of targets: bins | decimal.
    #[arg(long, default_value = "decimal")]
    style: String,
    /// Contour points per mask target.
    #[arg(long, default_value_t = 32)]
    points: i64,
    /// Drop mask targets whose polygon redraws the mask with a lower IoU.
    #[arg(long, default_value_t = 0.5)]
    min_iou: f64,
    /// Objects with a smaller COCO area are `tiny` (dropped).
    #[arg(long, default_value_t = 16.0)]
    min_area: f64,
    /// Drop images within this pHash Hamming distance of an earlier one; -1 = no de-duplication.
    #[arg(long, default_value_t = 4, allow_negative_numbers = true)]
    phash_distance: i64,
    /// Keep at most this many samples per class (category, answer, ...); 0 = no cap.
    #[arg(long, default_value_t = 0)]
    max_per_class: i64,
    /// No-target samples (absent categories) per image for grec/gres/vqa.
    #[arg(long, default_value_t = 1)]
    negatives_per_image: i64,
    #[arg(long, default_value = "train")]
    split: String,
    /// Rows per Parquet shard.
    #[arg(long, default_value_t = 10000)]
    shard_rows: usize,
    /// Directory relative image paths are resolved against (vista.base_dir).
    #[arg(long)]
    base_dir: Option<String>,
    /// Memory the job's operators may hold before sorts spill to the temporary directory:
    /// 256M, 2G, ...; 0 = no limit (memory then grows with the candidates, ~2.5 KB each).
    #[arg(long, default_value = "256M", value_parser = parse_bytes)]
    memory_limit: usize,
}

/// `512`, `64K`, `256M`, `2G` (powers of 1024).
fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&t[..i], t[i..].trim().to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let scale: usize = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("'{s}': expected a size such as 256M or 2G")),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("'{s}': expected a size such as 256M or 2G"))
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Model directory (Hugging Face InstructBLIP layout).
    #[arg(long)]
    model: PathBuf,
    /// An image file; repeat for multi-image prompts (one `<image>` marker each).
    #[arg(long = "image", required = true)]
    images: Vec<PathBuf>,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 1)]
    num_beams: usize,
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// vicuna_v1 | raw
    #[arg(long, default_value = "vicuna_v1")]
    template: String,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Sample tables (Parquet files or directories), e.g. the output of `vista synth`.
    #[arg(long, required = true, num_args = 1..)]
    samples: Vec<PathBuf>,
    /// Output model directory (a Hugging Face InstructBLIP checkpoint).
    #[arg(long)]
    out: PathBuf,
    /// Start from this checkpoint instead of a fresh model.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Architecture of a fresh model: tiny | small.
    #[arg(long, default_value = "small")]
    size: String,
    /// Input image side of a fresh model.
    #[arg(long, default_value_t = 96)]
    image_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Optimiser steps of stage 1 (single-image tasks, all but the image encoder).
    #[arg(long, default_value_t = 1000)]
    stage1_steps: usize,
    /// Optimiser steps of stage 2 (multi-image tasks, the image tokenizer only).
    #[arg(long, default_value_t = 200)]
    stage2_steps: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate of stage 1.
    #[arg(long, default_value_t = 2e-3)]
    lr: f64,
    /// Peak learning rate of stage 2.
    #[arg(long, default_value_t = 1e-3)]
    lr_stage2: f64,
    /// Fraction of stage 2's batches drawn from single-image samples (0 = multi-image only).
    #[arg(long, default_value_t = 0.0)]
    stage2_single: f64,
    /// Warm-up steps per stage (at most a fifth of the stage).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Skip samples longer than this many decoder tokens.
    #[arg(long, default_value_t = 400)]
    max_tokens: usize,
    /// Also train the image encoder in stage 1.
    #[arg(long)]
    train_vision: bool,
    /// Write a resumable checkpoint every N steps.
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// BPE vocabulary size of a fresh tokenizer (task and bin tokens come on top).
    #[arg(long, default_value_t = 800)]
    vocab_size: usize,
    /// Stop after N optimiser steps in this invocation (a checkpoint is written; --resume goes on).
    #[arg(long, default_value_t = 0)]
    stop_after: usize,
    /// Continue from OUT/checkpoint (same options).
    #[arg(long)]
    resume: bool,
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Folder for the sample set, the model and the outputs.
    #[arg(long, default_value = "vista-demo")]
    dir: PathBuf,
    /// A model directory to use instead of the embedded one.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Samples per task.
    #[arg(long, default_value_t = 8)]
    samples_per_task: usize,
    /// Skip the random-weights floor.
    #[arg(long)]
    no_floor: bool,
    /// Also write DIR/report.html: images with predicted boxes and polygons, and the scores.
    #[arg(long)]
    report: bool,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got '{s}'"))?;
    if k.trim().is_empty() {
        return Err(format!("empty name in '{s}'"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// Stack of the thread that parses, plans and drives queries. Planning and dropping an
/// expression recurse once per nesting level, and a generated query can hold a flat chain of
/// thousands of terms (`a + b + c + ...` nests to the left); the memory is reserved, not used,
/// until that depth is reached.
const MAIN_STACK_BYTES: usize = 1 << 30;
/// Stack of the runtime's workers, which evaluate the same expressions.
const WORKER_STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Command::Sql(args), Some(m)) = (&mut cli.command, matches.subcommand_matches("sql")) {
        args.sources = sql_sources(args, m);
    }
    install_panic_hook();
    let worker = std::thread::Builder::new().name("vista-main".into()).stack_size(MAIN_STACK_BYTES);
    let joined = worker.spawn(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(WORKER_STACK_BYTES)
                .build()
                .context("cannot start the runtime")?;
            runtime.block_on(run(cli))
        }))
    });
    let result = match joined.map(|h| h.join()) {
        Ok(Ok(Ok(r))) => r,
        Ok(Ok(Err(_))) | Ok(Err(_)) => Err(anyhow::anyhow!("internal error: {}", panic_message())),
        Err(e) => Err(anyhow::anyhow!("cannot start the main thread: {e}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", engine::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// The first panic of the process, as one line, for the error `main` prints. A panic in a
/// dependency (a reader meeting a corrupt file) ends the command with that line and a non-zero
/// status instead of a multi-line report; committed output stays as it is.
static PANIC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at =
            info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let _ = PANIC.set(format!("{}{at}", engine::one_line(&msg)));
    }));
}

fn panic_message() -> String {
    PANIC.get().cloned().unwrap_or_else(|| "a thread panicked".to_string())
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sql(args) => sql(args).await,
        Command::Functions { format } => {
            let fns = vista::functions::list();
            let mut out = std::io::stdout().lock();
            match format {
                Format::Json | Format::Ndjson => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&fns)?)?
                }
                _ => write!(out, "{}", vista::functions::render_text(&fns))?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run_job(args).await,
        Command::Import(cmd) => import(cmd),
        Command::Train(args) => {
            let opts = vista::train::TrainOptions {
                samples: args.samples,
                out: args.out,
                init: args.init,
                size: vista::train::Size::parse(&args.size)?,
                image_size: args.image_size,
                seed: args.seed,
                stage1_steps: args.stage1_steps,
                stage2_steps: args.stage2_steps,
                batch_size: args.batch_size,
                grad_accum: args.grad_accum,
                lr: args.lr,
                lr_stage2: args.lr_stage2,
                stage2_single: args.stage2_single,
                warmup: args.warmup,
                weight_decay: args.weight_decay,
                max_tokens: args.max_tokens,
                train_vision: args.train_vision,
                checkpoint_every: args.checkpoint_every,
                vocab_size: args.vocab_size,
                stop_after: args.stop_after,
                quiet: args.quiet,
            };
            let s = tokio::task::spawn_blocking(move || {
                vista::train::train(&opts, args.resume).map(|s| (s, opts.out))
            })
            .await??;
            let (s, out) = s;
            if s.stopped_early {
                println!(
                    "stopped after {} steps ({:.0}s); continue with --resume",
                    s.steps, s.seconds
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "trained {} steps in {:.0}s on {} samples ({} too long, skipped): loss {:.3} -> {:.3} (stage 1), {} (stage 2); model in {}",
                s.steps,
                s.seconds,
                s.samples,
                s.skipped_too_long,
                s.first_loss.unwrap_or(f64::NAN),
                s.final_loss_stage1.unwrap_or(f64::NAN),
                s.final_loss_stage2.map_or("-".to_string(), |l| format!("{l:.3}")),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Synth(args) => {
            let opts = vista::synth::SynthOptions {
                seed: args.seed,
                samples_per_task: args.samples_per_task,
                images: args.images,
                image_size: args.image_size,
                max_objects: args.max_objects,
                shard_size: args.shard_size,
                points: args.points,
                style: args.style,
                split: args.split,
                out_dir: args.out,
                query: args.query,
            };
            let summary = vista::synth::synth_async(&opts).await?;
            for (task, n) in &summary.per_task {
                println!("{task}: {n}");
            }
            println!(
                "{} samples from {} images in {} shard(s) under {}",
                summary.samples,
                summary.images,
                summary.shards.len(),
                opts.out_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Curate(a) => {
            let opts = vista::curate::CurateOptions {
                task: a.task,
                input: a.input,
                out_dir: a.out,
                seed: a.seed,
                style: a.style,
                points: a.points,
                min_iou: a.min_iou,
                min_area: a.min_area,
                phash_distance: a.phash_distance,
                max_per_class: a.max_per_class,
                negatives_per_image: a.negatives_per_image,
                split: a.split,
                shard_rows: a.shard_rows,
                base_dir: a.base_dir,
                memory_limit: (a.memory_limit > 0).then_some(a.memory_limit),
            };
            println!("{}", vista::curate::curate_async(&opts).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(a) => {
            // The same checks as `SET vista.*` (a beam width of 0, a top_p of 2 are refused).
            let mut config = vista_udfs::VistaConfig::default();
            for (k, v) in [
                ("max_new_tokens", a.max_new_tokens.to_string()),
                ("num_beams", a.num_beams.to_string()),
                ("temperature", a.temperature.to_string()),
                ("top_p", a.top_p.to_string()),
                ("seed", a.seed.to_string()),
                ("prompt_template", a.template.clone()),
            ] {
                datafusion::config::ExtensionOptions::set(&mut config, k, &v)
                    .map_err(|e| anyhow::anyhow!("{}", e.strip_backtrace()))?;
            }
            let settings = vista_udfs::generate::settings(&config)
                .map_err(|e| anyhow::anyhow!("{}", e.strip_backtrace()))?;
            let text = tokio::task::spawn_blocking(move || {
                vista::model::generate_cli(
                    &a.model, &a.device, &a.dtype, &a.images, &a.prompt, &settings,
                )
            })
            .await??;
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            vista::demo::run(&vista::demo::DemoOptions {
                dir: args.dir,
                model: args.model,
                samples_per_task: args.samples_per_task,
                floor: !args.no_floor,
                report: args.report,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(cmd) => cluster(cmd).await,
        Command::Check { table, schema } => {
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
    }
}

async fn run_job(args: RunArgs) -> Result<ExitCode> {
    let mut settings = args.settings.clone();
    if let Some(b) = &args.base_dir {
        settings.push(("vista.base_dir".into(), b.clone()));
    }
    let ctx = session::new_context(&SessionOptions { settings, ..Default::default() })?;
    let sql = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read job file '{}'", args.file.display()))?;
    let mut opts = vista::jobs::JobOptions::new(args.samples, args.out);
    opts.resume = args.resume;
    opts.chunk_rows = args.chunk_rows;
    opts.drop_unreadable = args.drop_unreadable;
    let loader = session::model_loader();
    let summary = vista::jobs::run_job(&ctx, &sql, Some(&loader), &opts).await?;
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

fn import(cmd: ImportCommand) -> Result<ExitCode> {
    use vista::import::{self, ImportOptions, RefTask};
    let opts = |c: &ImportCommon| ImportOptions {
        images_prefix: c.images_prefix.clone(),
        split: c.split.clone(),
        source: c.source.clone(),
    };
    if let ImportCommand::CocoInstances { annotations, images, captions, out, quiet } = &cmd {
        let opts = import::InstancesOptions {
            images_dir: images.clone(),
            captions: captions.clone(),
            verbose: !quiet,
        };
        let report = import::import_coco_instances(annotations, &opts, out)?;
        println!("{report}; written to {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (n, out) = match &cmd {
        ImportCommand::CocoCaptions { annotations, common } => {
            (import::import_coco_captions(annotations, &opts(common), &common.out)?, &common.out)
        }
        ImportCommand::Vqav2 { questions, annotations, common } => (
            import::import_vqav2(questions, annotations.as_deref(), &opts(common), &common.out)?,
            &common.out,
        ),
        ImportCommand::CocoInstances { .. } => unreachable!("handled above"),
        ImportCommand::Pope { questions, common } => {
            let report = import::import_pope(questions, &opts(common), &common.out)?;
            report.print_skipped();
            (report.samples, &common.out)
        }
        ImportCommand::Pointqa { questions, query, question, common } => {
            let pq = import::PointQaOptions { query: *query, phrasing: *question };
            let report = import::import_pointqa(questions, pq, &opts(common), &common.out)?;
            report.print_skipped();
            (report.samples, &common.out)
        }
        ImportCommand::Karpathy { dataset, common } => {
            let report = import::import_karpathy(dataset, &opts(common), &common.out)?;
            report.print_skipped();
            (report.samples, &common.out)
        }
        ImportCommand::Nlvr2 { statements, images, common } => {
            let report = import::import_nlvr2(statements, images, &opts(common), &common.out)?;
            report.print_skipped();
            (report.samples, &common.out)
        }
        ImportCommand::VgRegions { regions, common } => {
            let report = import::import_vg_regions(regions, &opts(common), &common.out)?;
            report.print_skipped();
            (report.samples, &common.out)
        }
        ImportCommand::Coseg { images, masks, group_size, common } => {
            let report =
                import::import_coseg(images, masks, *group_size, &opts(common), &common.out)?;
            report.print_skipped();
            (report.samples, &common.out)
        }
        ImportCommand::RefsRegions { refs, instances, common } => {
            (import::import_refs_regions(refs, instances, &opts(common), &common.out)?, &common.out)
        }
        ImportCommand::Refs { refs, instances, task, common } => (
            import::import_refs(
                refs,
                instances,
                RefTask::parse(task)?,
                &opts(common),
                &common.out,
            )?,
            &common.out,
        ),
    };
    println!("{n} samples written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cluster"))]
const NO_CLUSTER: &str =
    "this vista binary was built without the `cluster` feature (cargo build --features cluster)";

#[cfg(feature = "cluster")]
async fn cluster(cmd: ClusterCommand) -> Result<ExitCode> {
    use vista::cluster;
    cluster::init_logging(log::LevelFilter::Warn);
    match cmd {
        ClusterCommand::Scheduler { bind, external_host, executor_timeout } => {
            cluster::run_scheduler(&cluster::SchedulerOptions {
                bind,
                external_host,
                executor_timeout_s: executor_timeout,
            })
            .await?
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            external_host,
            concurrent_tasks,
            work_dir,
            heartbeat_interval,
            root,
        } => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let root = match root {
                Some(r) => r,
                None => std::env::current_dir()?,
            };
            cluster::run_executor(&cluster::ExecutorOptions {
                scheduler,
                bind,
                grpc_port,
                external_host,
                concurrent_tasks: concurrent_tasks.unwrap_or(cores).max(1),
                work_dir,
                heartbeat_interval_s: heartbeat_interval.max(1),
                root,
            })
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cluster"))]
async fn cluster(_cmd: ClusterCommand) -> Result<ExitCode> {
    bail!(NO_CLUSTER)
}

async fn sql_context(opts: &SessionOptions, cluster: Option<&str>) -> Result<SessionContext> {
    match cluster {
        None => session::new_context(opts),
        #[cfg(feature = "cluster")]
        Some(url) => {
            vista::cluster::init_logging(log::LevelFilter::Off);
            vista::cluster::remote_context(&vista::cluster::scheduler_url(url)?, opts).await
        }
        #[cfg(not(feature = "cluster"))]
        Some(_) => bail!(NO_CLUSTER),
    }
}

async fn sql(args: SqlArgs) -> Result<ExitCode> {
    let mut settings = args.settings.clone();
    if let Some(b) = &args.base_dir {
        settings.push(("vista.base_dir".into(), b.clone()));
    }
    let opts = SessionOptions { settings, ..Default::default() };
    let ctx = sql_context(&opts, args.cluster.as_deref()).await?;
    for (name, path) in &args.tables {
        vista::tables::register(&ctx, name, path).await?;
    }
    let format = args.format.unwrap_or(Format::Table);
    if format == Format::Parquet && args.out.is_none() {
        bail!("--format parquet needs --out FILE.parquet");
    }
    let interactive = args.sources.is_empty();
    let max_rows = args.maxrows.unwrap_or(if interactive { REPL_MAX_ROWS } else { 0 });
    let sink = Sink { format, out: args.out.clone(), max_rows, quiet: args.quiet };
    if interactive {
        return repl(&ctx, &sink).await;
    }
    run_sources(&ctx, &args.sources, &sink).await?;
    Ok(ExitCode::SUCCESS)
}

/// Rows a table shows at the prompt without `--maxrows`.
const REPL_MAX_ROWS: usize = 40;

/// Runs `-c` texts and `-f` files in order, in one session; `--out` takes the last query of
/// all of them. `\q` ends the run.
async fn run_sources(ctx: &SessionContext, sources: &[Source], sink: &Sink) -> Result<()> {
    let mut texts = Vec::new();
    for source in sources {
        texts.push(match source {
            Source::Command(c) => (c.clone(), None),
            Source::File(f) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read SQL file '{}'", f.display()))?;
                (text, Some(f))
            }
        });
    }
    // Files hold SQL only: a line starting with `.` can continue a statement there.
    let has_query = |text: &str, file: Option<&PathBuf>| match file {
        Some(_) => engine::has_query(text).unwrap_or(false),
        None => meta::has_query(text).unwrap_or(false),
    };
    let last_query = texts.iter().rposition(|(text, file)| has_query(text, *file));
    let mut stdout = std::io::stdout().lock();
    for (i, (text, file)) in texts.iter().enumerate() {
        let sink = Sink { out: sink.out.clone().filter(|_| last_query == Some(i)), ..sink.clone() };
        let flow = match file {
            Some(f) => engine::run_sql(ctx, text, &sink, &mut stdout)
                .await
                .with_context(|| f.display().to_string())
                .map(|()| Flow::Continue)?,
            None => meta::run_text(ctx, text, &sink, &mut stdout).await?,
        };
        if flow == Flow::Quit {
            break;
        }
    }
    Ok(())
}

/// The interactive prompt: statements end with `;`, a line starting with `\` or `.` is a
/// meta-command (`\?` lists them); history in ~/.vista_history.
async fn repl(ctx: &SessionContext, sink: &Sink) -> Result<ExitCode> {
    let mut rl = rustyline::DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".vista_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "vista> " } else { "  ...> " };
        match rl.readline(prompt) {
            Ok(line) => {
                buffer.push_str(&line);
                buffer.push('\n');
                if buffer.trim().is_empty() {
                    buffer.clear();
                    continue;
                }
                let is_meta = meta::parse(&buffer).is_some();
                if !is_meta && !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = rl.add_history_entry(buffer.trim());
                let mut stdout = std::io::stdout().lock();
                let flow = meta::run_text(ctx, &buffer, sink, &mut stdout).await;
                buffer.clear();
                match flow {
                    Ok(Flow::Quit) => break,
                    Ok(Flow::Continue) => {}
                    Err(e) => eprintln!("error: {}", engine::one_line(&format!("{e:#}"))),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(ExitCode::SUCCESS)
}
