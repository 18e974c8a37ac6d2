//! `vista sql`: `-c`/`-f` sources in command-line order, the interactive prompt with its
//! meta-commands, and the session (local or on a cluster) they run in.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use datafusion::prelude::SessionContext;
use vista::engine::{self, Sink};
use vista::meta::{self, Flow};
use vista::output::Format;
use vista::session::{self, SessionOptions};

use super::parse_pair;

#[derive(clap::Args)]
pub(crate) struct SqlArgs {
    /// SQL text to run (several statements separated by `;`), or a meta-command such as `\d`
    /// (`\?` lists them). Repeatable; `-c` and `-f` run in the order given.
    #[arg(short = 'c', long = "command")]
    pub(crate) command: Vec<String>,
    /// A SQL file to run. Repeatable.
    #[arg(short = 'f', long = "file")]
    pub(crate) file: Vec<PathBuf>,
    /// The `-c` texts and `-f` files in command-line order (filled in by `main`).
    #[arg(skip)]
    pub(crate) sources: Vec<Source>,
    /// Output format of query results (default: table).
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    /// Write the last query's result to this file (.parquet, .csv, .tsv, .json, .ndjson),
    /// atomically.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Table output shows at most N rows of each result and how many it has; 0 = all. Default:
    /// 40 at the interactive prompt, all with -c/-f.
    #[arg(long, value_name = "N")]
    pub(crate) maxrows: Option<usize>,
    /// Results only: no progress line or status messages on stderr (errors still go there).
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
    /// Register a file as a table: `--table name=path` (repeatable).
    #[arg(long = "table", value_parser = parse_pair)]
    pub(crate) tables: Vec<(String, String)>,
    /// A setting: `--set batch_size=16` (`vista.` is implied) or `--set datafusion.x=y`.
    #[arg(long = "set", value_parser = parse_pair)]
    pub(crate) settings: Vec<(String, String)>,
    /// Base directory for relative image paths (same as `SET vista.base_dir`).
    #[arg(long)]
    pub(crate) base_dir: Option<String>,
    /// Run on a Ballista cluster: the scheduler's `df://host:port` (docs/cluster.md).
    #[arg(long, value_name = "df://HOST:PORT")]
    pub(crate) cluster: Option<String>,
}

/// One `-c` text or `-f` file of `vista sql`.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Command(String),
    File(PathBuf),
}

/// `-c` and `-f` values in the order they stand on the command line (clap keeps each
/// argument's values apart; their indices tell the order).
pub(crate) fn sql_sources(args: &SqlArgs, m: &clap::ArgMatches) -> Vec<Source> {
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

pub(crate) async fn sql_context(
    opts: &SessionOptions,
    cluster: Option<&str>,
) -> Result<SessionContext> {
    match cluster {
        None => session::new_context(opts),
        #[cfg(feature = "cluster")]
        Some(url) => {
            vista::cluster::init_logging(log::LevelFilter::Off);
            vista::cluster::remote_context(&vista::cluster::scheduler_url(url)?, opts).await
        }
        #[cfg(not(feature = "cluster"))]
        Some(_) => bail!(super::cluster::NO_CLUSTER),
    }
}

pub(crate) async fn sql(args: SqlArgs) -> Result<ExitCode> {
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
