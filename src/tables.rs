//! Registering files as tables, and checking tables against the canonical schemas in schemas/.

use std::path::Path;

use anyhow::{bail, Context, Result};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use serde::Deserialize;

/// Registers `path` (a file, or a directory of files of one format; local or an `s3://`, `gs://`
/// or `http(s)://` URL) as table `name`.
pub async fn register(ctx: &SessionContext, name: &str, path: &str) -> Result<()> {
    if crate::object_stores::is_url(path) {
        let (location, ext, array) = remote_layout(ctx, path)
            .await
            .with_context(|| format!("table '{name}': cannot read '{path}'"))?;
        return register_as(ctx, name, &location, ext, array).await;
    }
    let p = Path::new(path);
    if !p.exists() {
        bail!("table '{name}': file '{path}' does not exist");
    }
    let ext = file_format(p).with_context(|| {
        format!("table '{name}': cannot tell the format of '{path}' (expected {FORMATS})")
    })?;
    if ext == "parquet" {
        for file in files_of(p, "parquet")? {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("table '{name}': cannot open '{}'", file.display()))?;
            check_parquet_footer(&f, &file).with_context(|| format!("table '{name}'"))?;
        }
    }
    register_as(ctx, name, path, ext, ext != "parquet" && starts_with_array(p)).await
}

/// The file extensions a table path may have.
const FORMATS: &str = ".parquet, .csv, .json, .ndjson or .jsonl";

/// Registers `path` as table `name` in format `ext`; `array`: a JSON file holding one array.
async fn register_as(
    ctx: &SessionContext,
    name: &str,
    path: &str,
    ext: &str,
    array: bool,
) -> Result<()> {
    let res = match ext {
        "parquet" => ctx.register_parquet(name, path, ParquetReadOptions::default()).await,
        "csv" => ctx.register_csv(name, path, CsvReadOptions::new()).await,
        "json" | "ndjson" | "jsonl" => {
            let file_extension = format!(".{ext}");
            let opts = JsonReadOptions {
                file_extension: &file_extension,
                newline_delimited: !array,
                ..Default::default()
            };
            ctx.register_json(name, path, opts).await
        }
        _ => unreachable!(),
    };
    res.with_context(|| format!("table '{name}': cannot read '{path}'"))
}

/// `p` itself, or the files of directory `p` whose extension is `ext`.
fn files_of(p: &Path, ext: &str) -> Result<Vec<std::path::PathBuf>> {
    if !p.is_dir() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut files = Vec::new();
    for e in std::fs::read_dir(p).with_context(|| format!("cannot list '{}'", p.display()))? {
        let path = e?.path();
        if path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Checks a Parquet file's frame before a reader trusts it: at least the two `PAR1` magics and
/// the footer length, and a footer that fits in the file. An empty file is not an empty table,
/// and a footer length past the start of the file is a truncated or corrupt file (a reader that
/// trusts it computes a range before the file's start).
pub fn check_parquet_footer(file: &std::fs::File, path: &Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let shown = path.display();
    let len = file.metadata().with_context(|| format!("cannot read '{shown}'"))?.len();
    if len < 12 {
        bail!("'{shown}' is not a Parquet file: {len} bytes, fewer than its frame needs (12)");
    }
    let mut tail = [0u8; 8];
    let mut f = file;
    f.seek(SeekFrom::End(-8))?;
    f.read_exact(&mut tail)?;
    f.seek(SeekFrom::Start(0))?;
    if &tail[4..] != b"PAR1" {
        bail!("'{shown}' is not a Parquet file: it does not end with the PAR1 magic");
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer + 12 > len {
        bail!(
            "'{shown}' is a corrupt Parquet file: its footer claims {footer} bytes, the file holds {len}"
        );
    }
    Ok(())
}

/// Whether a JSON file holds one array of objects rather than one object per line.
fn starts_with_array(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(p).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    opens_array(&head[..n])
}

fn opens_array(head: &[u8]) -> bool {
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// The table format a file name's extension names.
fn ext_of(p: &Path) -> Option<&'static str> {
    match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "parquet" => Some("parquet"),
        "csv" => Some("csv"),
        "json" => Some("json"),
        "ndjson" => Some("ndjson"),
        "jsonl" => Some("jsonl"),
        _ => None,
    }
}

/// The format of a file, or of the files in a directory.
fn file_format(p: &Path) -> Option<&'static str> {
    if p.is_dir() {
        std::fs::read_dir(p).ok()?.filter_map(|e| e.ok()).find_map(|e| ext_of(&e.path()))
    } else {
        ext_of(p)
    }
}

/// A remote table's location, format and JSON layout: an object named with its extension, or a
/// prefix ("directory") whose first object with a known extension tells the format.
async fn remote_layout(ctx: &SessionContext, path: &str) -> Result<(String, &'static str, bool)> {
    use datafusion::object_store::ObjectStoreExt;
    use futures::TryStreamExt;
    let url = url::Url::parse(path)?;
    let registry = ctx.runtime_env().object_store_registry.clone();
    let (store, named) =
        vista_udfs::image::locate(registry.as_ref(), &url).map_err(anyhow::Error::msg)?;
    let (location, first, ext) = match ext_of(Path::new(url.path())) {
        Some(ext) => (path.to_string(), named, ext),
        None => {
            let objects: Vec<_> = store.list(Some(&named)).try_collect().await?;
            let (first, ext) = objects
                .into_iter()
                .find_map(|o| Some((o.location.clone(), ext_of(Path::new(o.location.as_ref()))?)))
                .with_context(|| format!("no {FORMATS} objects under it"))?;
            (format!("{}/", path.trim_end_matches('/')), first, ext)
        }
    };
    let array = ext == "json" && {
        let mut chunks = store.get(&first).await?.into_stream();
        opens_array(&chunks.try_next().await?.unwrap_or_default())
    };
    Ok((location, ext, array))
}

/// A canonical table schema (schemas/<name>.json).
#[derive(Debug, Deserialize)]
pub struct TableSchema {
    pub name: String,
    pub description: String,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Debug, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub nullable: bool,
    pub description: String,
}

/// The schemas shipped with vista, embedded so that the binary works from any directory.
pub const SCHEMAS: &[(&str, &str)] = &[
    ("samples", include_str!("../schemas/samples.json")),
    ("images", include_str!("../schemas/images.json")),
    ("predictions", include_str!("../schemas/predictions.json")),
    ("scores", include_str!("../schemas/scores.json")),
    ("instances", include_str!("../schemas/instances.json")),
    ("categories", include_str!("../schemas/categories.json")),
    ("captions", include_str!("../schemas/captions.json")),
];

/// A schema by name (`samples`) or from a JSON file path.
pub fn load_schema(name_or_path: &str) -> Result<TableSchema> {
    let text = match SCHEMAS.iter().find(|(n, _)| *n == name_or_path) {
        Some((_, t)) => t.to_string(),
        None if Path::new(name_or_path).is_file() => std::fs::read_to_string(name_or_path)?,
        None => bail!(
            "unknown schema '{name_or_path}' (known: {})",
            SCHEMAS.iter().map(|s| s.0).collect::<Vec<_>>().join(", ")
        ),
    };
    serde_json::from_str(&text).with_context(|| format!("schema '{name_or_path}' is not valid"))
}

/// Parses the schema type notation: `utf8`, `binary`, `int32`, `int64`, `float32`, `float64`,
/// `boolean`, `list<T>`, `struct<name: T, ...>`.
pub fn parse_type(s: &str) -> Result<DataType> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
        return Ok(DataType::List(Field::new("item", parse_type(inner)?, true).into()));
    }
    if let Some(inner) = s.strip_prefix("struct<").and_then(|r| r.strip_suffix('>')) {
        let mut fields = Vec::new();
        for part in split_top_level(inner) {
            let (n, t) =
                part.split_once(':').with_context(|| format!("bad struct field '{part}'"))?;
            fields.push(Field::new(n.trim(), parse_type(t)?, true));
        }
        return Ok(DataType::Struct(fields.into()));
    }
    Ok(match s {
        "utf8" => DataType::Utf8,
        "binary" => DataType::Binary,
        "boolean" => DataType::Boolean,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        other => bail!("unknown type '{other}' in schema"),
    })
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(s[start..].trim());
    }
    out
}

/// Whether an actual column type satisfies the schema's type. String/binary flavours (view,
/// large) are equivalent, any integer width satisfies an integer column and any float a float
/// column (CSV and JSON readers infer Int64/Float64), an all-NULL column (type Null) satisfies
/// anything, list item names and nullability are ignored, and struct fields are matched by name.
pub fn type_matches(expected: &DataType, actual: &DataType) -> bool {
    use DataType::*;
    match (expected, actual) {
        (_, Null) => true,
        (Utf8, Utf8 | LargeUtf8 | Utf8View) => true,
        (e, a) if e.is_integer() && a.is_integer() => true,
        (e, a) if e.is_floating() && a.is_floating() => true,
        (Binary, Binary | LargeBinary | BinaryView) => true,
        (
            List(e),
            List(a) | LargeList(a) | ListView(a) | LargeListView(a) | FixedSizeList(a, _),
        ) => type_matches(e.data_type(), a.data_type()),
        (Struct(e), Struct(a)) => e.iter().all(|ef| {
            a.iter()
                .any(|af| af.name() == ef.name() && type_matches(ef.data_type(), af.data_type()))
        }),
        (e, a) => e == a,
    }
}

/// Every way `table` (registered in `ctx`) differs from `schema`, one line each.
pub async fn check(ctx: &SessionContext, table: &str, schema: &TableSchema) -> Result<Vec<String>> {
    let actual: Schema = ctx.table(table).await?.schema().as_arrow().clone();
    let mut problems = Vec::new();
    for col in &schema.columns {
        let expected = parse_type(&col.ty)?;
        match actual.field_with_name(&col.name) {
            Err(_) if col.nullable => problems.push(format!(
                "column '{}' ({}) is missing (optional: may be absent, but queries expect it)",
                col.name, col.ty
            )),
            Err(_) => problems.push(format!("column '{}' ({}) is missing", col.name, col.ty)),
            Ok(f) => {
                if !type_matches(&expected, f.data_type()) {
                    problems.push(format!(
                        "column '{}' has type {}, expected {}",
                        col.name,
                        f.data_type(),
                        col.ty
                    ));
                } else if !col.nullable {
                    let sql = format!(
                        "SELECT count(*) FROM {table} WHERE \"{}\" IS NULL",
                        col.name.replace('"', "\"\"")
                    );
                    let nulls = count(ctx, &sql).await?;
                    if nulls > 0 {
                        problems.push(format!(
                            "column '{}' must not be NULL but has {nulls} NULL rows",
                            col.name
                        ));
                    }
                }
            }
        }
    }
    Ok(problems)
}

/// The number a `SELECT count(*) ...` query returns.
pub async fn count(ctx: &SessionContext, sql: &str) -> Result<usize> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let n = batches
        .first()
        .filter(|b| b.num_rows() > 0)
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map(|a| a.value(0))
        })
        .with_context(|| format!("expected one count from: {sql}"))?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_schema_parses() {
        for (name, _) in SCHEMAS {
            let s = load_schema(name).unwrap();
            assert_eq!(&s.name, name);
            for c in &s.columns {
                parse_type(&c.ty).unwrap_or_else(|e| panic!("{name}.{}: {e}", c.name));
            }
        }
    }

    #[test]
    fn view_and_large_types_match_their_base() {
        let t = parse_type("list<struct<size: list<int32>, counts: utf8>>").unwrap();
        let actual = DataType::List(
            Field::new(
                "element",
                DataType::Struct(
                    vec![
                        Field::new("counts", DataType::Utf8View, true),
                        Field::new(
                            "size",
                            DataType::List(Field::new("x", DataType::Int32, true).into()),
                            true,
                        ),
                    ]
                    .into(),
                ),
                true,
            )
            .into(),
        );
        assert!(type_matches(&t, &actual));
        assert!(type_matches(&DataType::Int32, &DataType::Int64));
        assert!(!type_matches(&DataType::Int32, &DataType::Float64));
        assert!(!type_matches(&DataType::Int32, &DataType::Utf8));
        assert!(!type_matches(&parse_type("list<utf8>").unwrap(), &DataType::Utf8));
    }
}
