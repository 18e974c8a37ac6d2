//! Meta-commands of `vista sql`: `\d`, `.tables`, `\d NAME`, `\?`, `\q`. A prompt line or a
//! `-c` text that starts with `\` or `.` is one (no SQL starts so) and needs no `;`; it becomes
//! SQL over `information_schema` or an action.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use datafusion::common::{ResolvedTableReference, TableReference};
use datafusion::prelude::SessionContext;

use crate::engine::{self, Sink};

/// A parsed meta-command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meta {
    /// `\q`, `.quit`, `.exit`.
    Quit,
    /// `\?`, `.help`: the list of meta-commands.
    Help,
    /// `\d`, `.tables`: every table outside `information_schema`.
    Tables,
    /// `\d NAME`: the columns of one table; `name` as typed, for messages.
    Describe { name: String, table: TableReference },
}

/// What the caller does after a text ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The text `\?` prints.
pub const HELP: &str = "\
\\d, .tables        list tables (catalog, schema, table, type)
\\d NAME            columns of a table (name, type, nullable)
\\?, .help          this list
\\q, .quit, .exit   quit
";

/// `\d`: tables from `information_schema`, its own views left out.
pub const TABLES_SQL: &str = "SELECT table_catalog, table_schema, table_name, table_type \
     FROM information_schema.tables WHERE table_schema <> 'information_schema' \
     ORDER BY table_catalog, table_schema, table_name";

/// `None` when `text` is not a meta-command (it is SQL); otherwise the command or why it is
/// not one vista knows. A trailing `;` is allowed.
pub fn parse(text: &str) -> Option<Result<Meta>> {
    let t = text.trim();
    if !t.starts_with('\\') && !t.starts_with('.') {
        return None;
    }
    let t = t.trim_end_matches(';').trim_end();
    let (cmd, arg) = match t.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim()),
        None => (t, ""),
    };
    Some(match (cmd, arg) {
        ("\\q" | ".quit" | ".exit", "") => Ok(Meta::Quit),
        ("\\?" | ".help", "") => Ok(Meta::Help),
        ("\\d" | ".tables", "") => Ok(Meta::Tables),
        ("\\d", name) => {
            Ok(Meta::Describe { name: name.to_string(), table: TableReference::parse_str(name) })
        }
        ("\\q" | ".quit" | ".exit" | "\\?" | ".help" | ".tables", _) => {
            Err(anyhow!("'{cmd}' takes no argument"))
        }
        _ => Err(anyhow!("unknown command '{cmd}' (\\? lists the commands)")),
    })
}

/// `\d NAME`: the columns of a resolved table in their order.
pub fn describe_sql(table: &ResolvedTableReference) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
         WHERE table_catalog = {} AND table_schema = {} AND table_name = {} \
         ORDER BY ordinal_position",
        quote(&table.catalog),
        quote(&table.schema),
        quote(&table.table)
    )
}

impl Meta {
    /// Whether the command prints a result (one `--out` can take).
    pub fn is_query(&self) -> bool {
        matches!(self, Meta::Tables | Meta::Describe { .. })
    }
}

/// Runs a meta-command; results go to `sink` like a query's.
pub async fn run(
    ctx: &SessionContext,
    meta: &Meta,
    sink: &Sink,
    stdout: &mut dyn Write,
) -> Result<Flow> {
    let sql = match meta {
        Meta::Quit => return Ok(Flow::Quit),
        Meta::Help => {
            write!(stdout, "{HELP}")?;
            return Ok(Flow::Continue);
        }
        Meta::Tables => TABLES_SQL.to_string(),
        Meta::Describe { name, table } => {
            // A catalog or schema that does not exist is an error here; either way no table.
            if !ctx.table_exist(table.clone()).unwrap_or(false) {
                bail!("no table '{name}'");
            }
            let state = ctx.state();
            let defaults = &state.config_options().catalog;
            describe_sql(
                &table.clone().resolve(&defaults.default_catalog, &defaults.default_schema),
            )
        }
    };
    engine::run_sql(ctx, &sql, sink, stdout).await?;
    Ok(Flow::Continue)
}

/// Runs one `-c` text or prompt entry: a meta-command or SQL statements.
pub async fn run_text(
    ctx: &SessionContext,
    text: &str,
    sink: &Sink,
    stdout: &mut dyn Write,
) -> Result<Flow> {
    match parse(text) {
        Some(meta) => run(ctx, &meta?, sink, stdout).await,
        None => engine::run_sql(ctx, text, sink, stdout).await.map(|()| Flow::Continue),
    }
}

/// Whether [`run_text`] of `text` prints a result (one `--out` can take).
pub fn has_query(text: &str) -> Result<bool> {
    match parse(text) {
        Some(meta) => Ok(meta?.is_query()),
        None => engine::has_query(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(text: &str) -> Meta {
        parse(text).expect("a meta-command").unwrap()
    }

    fn error(text: &str) -> String {
        parse(text).expect("a meta-command").unwrap_err().to_string()
    }

    #[test]
    fn sql_is_not_a_meta_command() {
        assert!(parse("SELECT 1").is_none());
        assert!(parse("  -- \\d\nSELECT 1").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn commands_and_their_aliases() {
        for q in ["\\q", ".quit", ".exit", "  \\q  ", "\\q;"] {
            assert_eq!(meta(q), Meta::Quit, "{q}");
        }
        assert_eq!(meta("\\?"), Meta::Help);
        assert_eq!(meta(".help"), Meta::Help);
        assert_eq!(meta("\\d"), Meta::Tables);
        assert_eq!(meta(".tables;\n"), Meta::Tables);
    }

    #[test]
    fn describe_takes_a_table_name_as_sql_spells_it() {
        assert_eq!(
            meta("\\d Samples;"),
            Meta::Describe { name: "Samples".into(), table: TableReference::bare("samples") }
        );
        assert_eq!(
            meta("\\d  s.\"My T\""),
            Meta::Describe {
                name: "s.\"My T\"".into(),
                table: TableReference::partial("s", "My T")
            }
        );
        assert_eq!(
            meta("\\d c.s.t"),
            Meta::Describe { name: "c.s.t".into(), table: TableReference::full("c", "s", "t") }
        );
    }

    #[test]
    fn unknown_commands_and_extra_arguments_are_errors() {
        assert_eq!(error("\\x"), "unknown command '\\x' (\\? lists the commands)");
        assert_eq!(error(".schema t"), "unknown command '.schema' (\\? lists the commands)");
        assert_eq!(error("\\q now"), "'\\q' takes no argument");
        assert_eq!(error(".tables t"), "'.tables' takes no argument");
    }

    #[test]
    fn describe_sql_quotes_names() {
        let t = TableReference::bare("it's").resolve("datafusion", "public");
        assert_eq!(
            describe_sql(&t),
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_catalog = 'datafusion' AND table_schema = 'public' \
             AND table_name = 'it''s' ORDER BY ordinal_position"
        );
    }

    #[test]
    fn only_listings_are_queries() {
        assert!(meta("\\d").is_query() && meta("\\d t").is_query());
        assert!(!meta("\\q").is_query() && !meta("\\?").is_query());
    }
}
