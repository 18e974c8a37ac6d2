//! `vista functions`: every vista function with its signature, description and SQL example.

use std::fmt::Write as _;

use datafusion::logical_expr::Documentation;

/// One documented function.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FunctionInfo {
    pub name: String,
    pub kind: &'static str,
    pub section: String,
    pub syntax: String,
    pub description: String,
    pub arguments: Vec<(String, String)>,
    pub example: Option<String>,
}

/// Every vista function, sorted by section then name.
pub fn list() -> Vec<FunctionInfo> {
    let mut out = Vec::new();
    let mut push = |name: &str, kind: &'static str, doc: Option<&Documentation>| {
        let (section, syntax, description, arguments, example) = match doc {
            Some(d) => (
                d.doc_section.label.to_string(),
                d.syntax_example.clone(),
                d.description.clone(),
                d.arguments.clone().unwrap_or_default(),
                d.sql_example.clone(),
            ),
            None => ("Undocumented".into(), name.to_string(), String::new(), vec![], None),
        };
        out.push(FunctionInfo {
            name: name.to_string(),
            kind,
            section,
            syntax,
            description,
            arguments,
            example,
        });
    };
    for f in vista_udfs::scalar_functions() {
        push(f.name(), "scalar", f.documentation());
    }
    for f in vista_udfs::aggregate_functions() {
        push(f.name(), "aggregate", f.documentation());
    }
    // The async wrapper DataFusion puts around the model call drops its documentation.
    push("vista_generate", "scalar (async)", Some(vista_udfs::generate::documentation()));
    push(
        crate::parquet_kv_metadata::NAME,
        "table",
        Some(crate::parquet_kv_metadata::documentation()),
    );
    out.sort_by(|a, b| (&a.section, &a.name).cmp(&(&b.section, &b.name)));
    out
}

/// `vista_functions`: one row per vista function (name, kind, section, syntax, description,
/// example), so that `SHOW FUNCTIONS` and plain SQL can list them.
pub fn table() -> datafusion::common::Result<datafusion::datasource::MemTable> {
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let fns = list();
    let col = |f: &dyn Fn(&FunctionInfo) -> Option<String>| -> ArrayRef {
        Arc::new(fns.iter().map(f).collect::<StringArray>())
    };
    let columns = vec![
        col(&|f| Some(f.name.clone())),
        col(&|f| Some(f.kind.to_string())),
        col(&|f| Some(f.section.clone())),
        col(&|f| Some(f.syntax.clone())),
        col(&|f| Some(f.description.clone())),
        col(&|f| f.example.clone()),
    ];
    let names = [
        "function_name",
        "function_type",
        "section",
        "syntax_example",
        "description",
        "sql_example",
    ];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, *n == "sql_example"))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]])
}

/// A readable listing (markdown-flavoured plain text).
pub fn render_text(fns: &[FunctionInfo]) -> String {
    let mut s = String::new();
    let mut section = "";
    for f in fns {
        if f.section != section {
            section = &f.section;
            let _ = writeln!(s, "## {section}\n");
        }
        let _ =
            writeln!(s, "### {} ({})\n\n    {}\n\n{}\n", f.name, f.kind, f.syntax, f.description);
        for (a, d) in &f.arguments {
            let _ = writeln!(s, "- `{a}`: {d}");
        }
        if !f.arguments.is_empty() {
            s.push('\n');
        }
        if let Some(ex) = &f.example {
            let _ = writeln!(s, "{ex}\n");
        }
    }
    s
}
