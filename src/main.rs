//! The `vista` command line: parses the arguments and runs the command on a thread and
//! runtime with stacks deep enough for generated queries (`cli/` holds the commands).

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use vista::engine;

mod cli;

use cli::{Cli, Command};

/// Stack of the thread that parses, plans and drives queries. Planning and dropping an
/// expression recurse once per nesting level, and a generated query can hold a flat chain of
/// thousands of terms (`a + b + c + ...` nests to the left); the memory is reserved, not used,
/// until that depth is reached.
const MAIN_STACK_BYTES: usize = 1 << 30;
/// Stack of the runtime's workers, which evaluate the same expressions.
const WORKER_STACK_BYTES: usize = 256 << 20;

fn main() -> ExitCode {
    let matches = Cli::command().try_get_matches().unwrap_or_else(|e| exit_on_bad_arguments(e));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_on_bad_arguments(e));
    if let (Command::Sql(args), Some(m)) = (&mut cli.command, matches.subcommand_matches("sql")) {
        args.sources = cli::sql::sql_sources(args, m);
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
            runtime.block_on(cli::run(cli))
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

/// Help and version go out as clap writes them; an argument error goes out as one line (clap's
/// message and tip, without the usage block), like every other error of the command.
fn exit_on_bad_arguments(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let rendered = e.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("{}", message.join("; "));
    std::process::exit(e.exit_code());
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
