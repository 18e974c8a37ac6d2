//! The `vista` command line: the grammar (`Cli`, `Command`) and the dispatch to one module per
//! command family.

mod cluster;
mod curate;
mod demo;
mod generate;
mod import;
mod inspect;
mod probe;
mod run;
pub(crate) mod sql;
mod synth;
mod train;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use vista::output::Format;

use cluster::ClusterCommand;
use generate::GenerateArgs;
use import::ImportCommand;
use probe::ProbeArgs;
use run::RunArgs;
use sql::SqlArgs;
use train::TrainArgs;
use vista::curate::CurateOptions;
use vista::demo::DemoOptions;

#[derive(Parser)]
#[command(
    name = "vista",
    version,
    about = "VistaLLM as SQL: run vision-language models, contour sampling and reference-exact metrics over image tables"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    Synth(vista::synth::SynthOptions),
    /// Train a VistaLLM on a sample table: two stages, AdamW, loss curve, resumable (docs/train.md).
    Train(TrainArgs),
    /// How well a stage-0 checkpoint's image tokens locate what each box sample's instruction
    /// names: the box its head reads, scored against the answer per task; with a count head
    /// (`--probe-count`), also how many targets they say there are; and what its encoder's patch
    /// head reads on held-out scenes: each patch's and each object's colour, shape and size
    /// (docs/train.md).
    Probe(ProbeArgs),
    /// Curate instruction samples from an imported COCO-format set (queries/curate_<task>.sql,
    /// docs/curate.md): filters, balancing, sharded Parquet with a manifest, and a report.
    Curate(CurateOptions),
    /// Ask the model one question about one or more images.
    Generate(GenerateArgs),
    /// The main job on a built-in sample set: generate, predict, parse, score; print the scores.
    Demo(DemoOptions),
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

/// Runs one parsed command.
pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sql(args) => sql::sql(args).await,
        Command::Functions { format } => inspect::functions(format),
        Command::Run(args) => run::run_job(args).await,
        Command::Import(cmd) => import::import(cmd),
        Command::Train(args) => train::train(args).await,
        Command::Probe(args) => probe::probe(args).await,
        Command::Synth(args) => synth::synth(args).await,
        Command::Curate(args) => curate::curate(args).await,
        Command::Generate(args) => generate::generate(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Cluster(cmd) => cluster::cluster(cmd).await,
        Command::Check { table, schema } => inspect::check(table, schema).await,
    }
}

pub(crate) fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got '{s}'"))?;
    if k.trim().is_empty() {
        return Err(format!("empty name in '{s}'"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}
