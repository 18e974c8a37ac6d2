//! The `vista` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use vista::engine::{self, Sink};
use vista::output::Format;
use vista::session::{self, SessionOptions};

#[derive(Parser)]
#[command(name = "vista", version, about = "VistaLLM as SQL: run vision-language models, contour sampling and reference-exact metrics over image tables")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL: `-c "..."`, `-f FILE.sql`, or an interactive prompt with neither.
    Sql(SqlArgs),
    /// List every vista function with its signature, description and a SQL example.
    Functions {
        /// `table` (readable text) or `json`.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
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
    /// SQL text to run (several statements separated by `;`).
    #[arg(short = 'c', long = "command", conflicts_with = "file")]
    command: Option<String>,
    /// A SQL file to run.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Output format of query results (default: table).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write the last query's result to this file (.parquet, .csv, .json, .ndjson), atomically.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Register a file as a table: `--table name=path` (repeatable).
    #[arg(long = "table", value_parser = parse_pair)]
    tables: Vec<(String, String)>,
    /// A setting: `--set batch_size=16` (`vista.` is implied) or `--set datafusion.x=y`.
    #[arg(long = "set", value_parser = parse_pair)]
    settings: Vec<(String, String)>,
    /// Base directory for relative image paths (same as `SET vista.base_dir`).
    #[arg(long)]
    base_dir: Option<String>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("expected NAME=VALUE, got '{s}'"))?;
    if k.trim().is_empty() {
        return Err(format!("empty name in '{s}'"));
    }
    Ok((k.trim().to_string(), v.trim().to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", engine::one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sql(args) => sql(args).await,
        Command::Functions { format } => {
            let fns = vista::functions::list();
            let mut out = std::io::stdout().lock();
            match format {
                Format::Json | Format::Ndjson => writeln!(out, "{}", serde_json::to_string_pretty(&fns)?)?,
                _ => write!(out, "{}", vista::functions::render_text(&fns))?,
            }
            Ok(ExitCode::SUCCESS)
        }
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
                eprintln!("error: {table} does not match schema '{}' ({} problems)", spec.name, problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

async fn sql(args: SqlArgs) -> Result<ExitCode> {
    let mut settings = args.settings.clone();
    if let Some(b) = &args.base_dir {
        settings.push(("vista.base_dir".into(), b.clone()));
    }
    let ctx = session::new_context(&SessionOptions { settings, ..Default::default() })?;
    for (name, path) in &args.tables {
        vista::tables::register(&ctx, name, path).await?;
    }
    let format = args.format.unwrap_or(Format::Table);
    if format == Format::Parquet && args.out.is_none() {
        bail!("--format parquet needs --out FILE.parquet");
    }
    let sink = Sink { format, out: args.out.clone(), progress: true };
    let text = match (&args.command, &args.file) {
        (Some(c), _) => c.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("cannot read SQL file '{}'", f.display()))?,
        (None, None) => return repl(&ctx, &sink).await,
    };
    let mut stdout = std::io::stdout().lock();
    engine::run_sql(&ctx, &text, &sink, &mut stdout).await?;
    Ok(ExitCode::SUCCESS)
}

/// The interactive prompt: statements end with `;`, history in ~/.vista_history.
async fn repl(ctx: &datafusion::prelude::SessionContext, sink: &Sink) -> Result<ExitCode> {
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
                if !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = rl.add_history_entry(buffer.trim());
                let mut stdout = std::io::stdout().lock();
                if let Err(e) = engine::run_sql(ctx, &buffer, sink, &mut stdout).await {
                    eprintln!("error: {}", engine::one_line(&format!("{e:#}")));
                }
                buffer.clear();
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
