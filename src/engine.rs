//! Running SQL text: statement splitting, vista's own handling of `COPY ... TO` (atomic files
//! with provenance metadata), result output, and progress.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{CopyToSource, CopyToStatement, DFParser, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::StreamExt;

use crate::file_options::{self, FileOptions};
use crate::output::{self, Format};
use crate::progress::Progress;

/// Where the results of queries go.
#[derive(Debug, Clone)]
pub struct Sink {
    pub format: Format,
    /// Write the last query's result to this file instead of stdout.
    pub out: Option<PathBuf>,
    /// Table output shows at most this many rows of each result, then a line saying how many
    /// the result has; 0 shows all. Other formats always write every row.
    pub max_rows: usize,
    /// Results only: no progress line and no `N rows written to FILE` on stderr.
    pub quiet: bool,
}

/// Splits SQL text into statements (comments and `;` handled by DataFusion's parser).
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    let stmts = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| anyhow::anyhow!("SQL syntax error: {}", one_line(&e.to_string())))?;
    Ok(stmts.into_iter().collect())
}

/// Whether `sql` holds a statement that returns rows (the one `--out` would take).
pub fn has_query(sql: &str) -> Result<bool> {
    Ok(parse(sql)?.iter().any(is_query))
}

/// Runs every statement of `sql`; query results go to `sink` (stdout or `--out`).
pub async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    sink: &Sink,
    stdout: &mut dyn Write,
) -> Result<()> {
    let stmts = parse(sql)?;
    let last_query = stmts.iter().rposition(is_query);
    for (i, stmt) in stmts.into_iter().enumerate() {
        let text = stmt.to_string();
        let out_file = if Some(i) == last_query { sink.out.as_deref() } else { None };
        let query = is_query(&stmt);
        run_statement(ctx, stmt, &text, query, sink, out_file, stdout)
            .await
            .with_context(|| format!("statement {}: {}", i + 1, abbreviate(&text)))?;
    }
    Ok(())
}

fn is_query(s: &Statement) -> bool {
    matches!(s, Statement::Statement(st) if matches!(**st,
        datafusion::sql::sqlparser::ast::Statement::Query(_)
        | datafusion::sql::sqlparser::ast::Statement::ShowFunctions { .. }
        | datafusion::sql::sqlparser::ast::Statement::ShowTables { .. }
        | datafusion::sql::sqlparser::ast::Statement::ShowColumns { .. }
        | datafusion::sql::sqlparser::ast::Statement::ShowVariable { .. }))
        || matches!(s, Statement::Explain(_))
}

/// Generic over the writer so that a caller with a `Send` writer (`run_sql_batches`) gets a
/// future it can spawn.
async fn run_statement<W: Write + ?Sized>(
    ctx: &SessionContext,
    stmt: Statement,
    text: &str,
    query: bool,
    sink: &Sink,
    out_file: Option<&Path>,
    stdout: &mut W,
) -> Result<()> {
    let mut stmt = stmt;
    if let Statement::CopyTo(copy) = &mut stmt {
        let own = own_copy_target(copy);
        // DataFusion writes the others (a directory, partitions, another format); its Parquet
        // writer takes the provenance keys as options.
        let stored_as = copy.stored_as.as_deref().map(str::to_ascii_lowercase);
        let parquet =
            stored_as.as_deref().map_or(copy.target.ends_with(".parquet"), |f| f == "parquet");
        if own.is_none() && !parquet {
            return run_planned(ctx, stmt, text, query, sink, out_file, stdout).await;
        }
        let source_sql = match &copy.source {
            CopyToSource::Relation(name) => format!("SELECT * FROM {name}"),
            CopyToSource::Query(q) => q.to_string(),
        };
        let plan = plan_sql(ctx, &source_sql).await?;
        if let Some((path, format)) = own {
            crate::confine::check_plan(ctx, &plan)?;
            if let Some(base) = crate::confine::base_dir(ctx) {
                crate::confine::check_location(&base, &path.to_string_lossy())?;
            }
            let options = file_options::copy_options(&copy.options)?;
            let rows = write_plan(ctx, plan, &path, format, &options, text, !sink.quiet).await?;
            writeln!(stdout, "{rows} rows written to {}", path.display())?;
            return Ok(());
        }
        let meta = output::provenance(Some(text), &crate::provenance::of_plan(ctx, &plan));
        copy.options.extend(file_options::metadata_options(&meta));
    }
    run_planned(ctx, stmt, text, query, sink, out_file, stdout).await
}

/// Plans and runs any statement but vista's own `COPY` files.
async fn run_planned<W: Write + ?Sized>(
    ctx: &SessionContext,
    stmt: Statement,
    text: &str,
    query: bool,
    sink: &Sink,
    out_file: Option<&Path>,
    stdout: &mut W,
) -> Result<()> {
    let plan = plan_statement(ctx, stmt).await?;
    match out_file {
        Some(path) => write_out_file(ctx, plan, path, text, sink).await,
        None => print_result(ctx, plan, query, sink, stdout).await,
    }
}

/// A statement's plan (`SHOW FUNCTIONS` lists vista's functions), refused when it reads
/// outside `vista.base_dir`.
async fn plan_statement(ctx: &SessionContext, stmt: Statement) -> Result<LogicalPlan> {
    let plan = match show_functions_sql(&stmt) {
        Some(sql) => plan_sql(ctx, &sql).await?,
        None => ctx.state().statement_to_plan(stmt).await.map_err(dferr)?,
    };
    crate::confine::check_plan(ctx, &plan)?;
    Ok(plan)
}

/// Runs every statement of `sql` as `run_sql` does, printing nothing, and returns the last
/// query's schema and rows (`None` when `sql` holds no query): for callers that want Arrow.
pub async fn run_sql_batches(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
    let stmts = parse(sql)?;
    let last_query = stmts.iter().rposition(is_query);
    let quiet = Sink { format: Format::Table, out: None, max_rows: 0, quiet: true };
    let mut result = None;
    for (i, stmt) in stmts.into_iter().enumerate() {
        let text = stmt.to_string();
        let step = async {
            if Some(i) != last_query {
                let query = is_query(&stmt);
                return run_statement(ctx, stmt, &text, query, &quiet, None, &mut std::io::sink())
                    .await;
            }
            let df = ctx.execute_logical_plan(plan_statement(ctx, stmt).await?).await;
            let df = df.map_err(dferr)?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let physical = df.create_physical_plan().await.map_err(dferr)?;
            result = Some((schema, collect(ctx, physical, false, None).await?.0));
            Ok(())
        };
        step.await.with_context(|| format!("statement {}: {}", i + 1, abbreviate(&text)))?;
    }
    Ok(result)
}

/// `--out FILE`: the result in the format the file name (or `--format`) asks for.
async fn write_out_file(
    ctx: &SessionContext,
    plan: LogicalPlan,
    path: &Path,
    text: &str,
    sink: &Sink,
) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!("--out '{}' is a directory; name a file", path.display());
    }
    let format = match (Format::from_path(path), sink.format) {
        (Some(f), _) => f,
        (None, Format::Table) => anyhow::bail!(
            "--out '{}': cannot tell the format from the file name (use .parquet, .csv, .tsv, \
             .json, .ndjson or .jsonl, or --format)",
            path.display()
        ),
        (None, f) => f,
    };
    let no_options = Default::default();
    let rows = write_plan(ctx, plan, path, format, &no_options, text, !sink.quiet).await?;
    if !sink.quiet {
        eprintln!("{rows} rows written to {}", path.display());
    }
    Ok(())
}

/// A statement's result on stdout; a table cut to `sink.max_rows` rows says how many it has.
async fn print_result<W: Write + ?Sized>(
    ctx: &SessionContext,
    plan: LogicalPlan,
    query: bool,
    sink: &Sink,
    stdout: &mut W,
) -> Result<()> {
    let df = ctx.execute_logical_plan(plan).await.map_err(dferr)?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let physical = df.create_physical_plan().await.map_err(dferr)?;
    let keep = (sink.format == Format::Table && sink.max_rows > 0).then_some(sink.max_rows);
    let (batches, rows) = collect(ctx, physical, !sink.quiet, keep).await?;
    // A query prints its header even with no rows; DDL and SET print nothing.
    if !batches.is_empty() || query {
        output::write_text(&mut *stdout, sink.format, &schema, &batches)?;
    }
    if let Some(shown) = keep.filter(|&k| rows > k) {
        writeln!(stdout, "{shown} rows shown of {rows}")?;
    }
    Ok(())
}

/// `SHOW FUNCTIONS [LIKE 'p']` lists vista's functions first (DataFusion's own listing drops
/// functions whose argument types it cannot enumerate, which is all of ours), then DataFusion's.
fn show_functions_sql(stmt: &Statement) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{ShowStatementFilter, Statement as Sql};
    let Statement::Statement(s) = stmt else { return None };
    let Sql::ShowFunctions { filter } = s.as_ref() else { return None };
    let pattern = match filter {
        None => "%".to_string(),
        Some(ShowStatementFilter::Like(p) | ShowStatementFilter::NoKeyword(p)) => p.clone(),
        Some(_) => return None,
    };
    let pattern = pattern.replace('\'', "''");
    Some(format!(
        "SELECT function_name, function_type, syntax_example, description FROM (\
           SELECT function_name, function_type, syntax_example, description, 0 AS o FROM vista_functions \
           UNION ALL \
           SELECT DISTINCT routine_name, lower(function_type), syntax_example, description, 1 AS o \
           FROM information_schema.routines \
           WHERE routine_name NOT IN (SELECT function_name FROM vista_functions)) \
         WHERE function_name LIKE '{pattern}' ORDER BY o, function_name"
    ))
}

/// COPY statements vista writes itself: one local file of a format it knows, no partitioning.
/// (An object store's upload is atomic already: DataFusion writes `s3://` and other URLs.)
fn own_copy_target(copy: &CopyToStatement) -> Option<(PathBuf, Format)> {
    if !copy.partitioned_by.is_empty() || crate::object_stores::is_url(&copy.target) {
        return None;
    }
    let path = PathBuf::from(&copy.target);
    let format = match copy.stored_as.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("parquet") => Format::Parquet,
        Some("csv") => Format::Csv,
        Some("tsv") => Format::Tsv,
        Some("json") => Format::Ndjson,
        Some(_) => return None,
        None => Format::from_path(&path)?,
    };
    if copy.target.ends_with('/') {
        return None;
    }
    Some((path, format))
}

pub async fn plan_sql(ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
    let mut stmts = parse(sql)?;
    anyhow::ensure!(stmts.len() == 1, "expected one statement");
    ctx.state().statement_to_plan(stmts.remove(0)).await.map_err(dferr)
}

/// Executes a plan into a file atomically, with provenance metadata and the session's writer
/// settings altered by `options` (`COPY ... OPTIONS`); returns rows written.
pub async fn write_plan(
    ctx: &SessionContext,
    plan: LogicalPlan,
    path: &Path,
    format: Format,
    options: &HashMap<String, String>,
    sql: &str,
    progress: bool,
) -> Result<usize> {
    let meta = output::provenance(Some(sql), &crate::provenance::of_plan(ctx, &plan));
    let file_options = FileOptions::new(ctx, format, options, &meta)?;
    let df = ctx.execute_logical_plan(plan).await.map_err(dferr)?;
    let physical = df.create_physical_plan().await.map_err(dferr)?;
    let _progress = Progress::start(physical.clone(), progress);
    let stream = execute_stream(physical, ctx.task_ctx()).map_err(dferr)?;
    output::write_stream_atomic(path, format, stream, &file_options).await
}

/// Runs a plan to the end; returns its first `keep` rows (all with `None`) and its row count.
async fn collect(
    ctx: &SessionContext,
    physical: Arc<dyn ExecutionPlan>,
    progress: bool,
    keep: Option<usize>,
) -> Result<(Vec<RecordBatch>, usize)> {
    let _progress = Progress::start(physical.clone(), progress);
    let mut stream = execute_stream(physical, ctx.task_ctx()).map_err(dferr)?;
    let mut batches = Vec::new();
    let mut rows = 0;
    while let Some(b) = stream.next().await {
        let b = b.map_err(dferr)?;
        let room = keep.map_or(b.num_rows(), |k| k.saturating_sub(rows));
        rows += b.num_rows();
        if room >= b.num_rows() {
            batches.push(b);
        } else if room > 0 {
            batches.push(b.slice(0, room));
        }
    }
    Ok((batches, rows))
}

/// A DataFusion error as one line, without a backtrace.
pub fn dferr(e: DataFusionError) -> anyhow::Error {
    anyhow::anyhow!("{}", one_line(&e.strip_backtrace()))
}

/// Error text on one line (DataFusion sometimes nests context with newlines).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn abbreviate(sql: &str) -> String {
    let s = one_line(sql);
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{new_context, SessionOptions};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    /// Every statement runs in order (vista's own `COPY` writes its file), and the last query's
    /// rows come back; text without a query gives nothing; a failing statement is named.
    #[tokio::test]
    async fn run_sql_batches_returns_the_last_query() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = new_context(&SessionOptions::default()).unwrap();
        let out = dir.path().join("t.parquet");
        let sql = format!(
            "CREATE TABLE t AS VALUES (1), (2), (3); COPY t TO '{0}'; \
             SELECT sum(column1) AS s FROM t; SELECT count(*) AS n FROM '{0}'",
            out.display()
        );
        let (schema, batches) = run_sql_batches(&ctx, &sql).await.unwrap().unwrap();
        assert_eq!(schema.field(0).name(), "n");
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 3);
        assert!(run_sql_batches(&ctx, "SET vista.max_new_tokens = 3").await.unwrap().is_none());
        let err = run_sql_batches(&ctx, "SELECT 1; SELECT * FROM missing").await.unwrap_err();
        let msg = one_line(&format!("{err:#}"));
        assert!(msg.starts_with("statement 2: SELECT * FROM missing:"), "{msg}");
    }
}
