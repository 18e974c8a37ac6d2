//! `parquet_kv_metadata('path')`: the key-value metadata of a Parquet file, or of every
//! Parquet file under a directory, as a table `(file, key, value)`. Vista writes its
//! provenance there (`vista.sql`, `vista.model`, ...); this reads it back in SQL.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_datafusion_err, plan_err, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{DocSection, Documentation, Expr};
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use vista_udfs::VistaConfig;

pub const NAME: &str = "parquet_kv_metadata";

#[derive(Debug, Default)]
pub struct ParquetKvMetadata;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection { include: true, label: "Vista table functions", description: None },
        "The key-value metadata of a Parquet file, or of every `.parquet` file under a directory \
         (sorted by path), one row per key: `file`, `key`, `value`. Vista's outputs carry their \
         provenance there (`vista.sql`, `vista.model`, `vista.limit.*`, ...). Paths are confined \
         to `vista.base_dir` when it is set.",
        "parquet_kv_metadata(path)",
    )
    .with_argument("path", "A Parquet file or a directory of them (a string literal).")
    .with_sql_example(
        "```sql\n> COPY (SELECT 1 AS x) TO 'one.parquet' OPTIONS ('format.metadata::owner' 'me');\n\
         > SELECT key, value FROM parquet_kv_metadata('one.parquet') WHERE key = 'owner';\n\
         +-------+-------+\n| key   | value |\n+-------+-------+\n| owner | me    |\n+-------+-------+\n```",
    )
    .build()
});

pub fn documentation() -> &'static Documentation {
    &DOC
}

impl TableFunctionImpl for ParquetKvMetadata {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let path = match args.exprs() {
            [Expr::Literal(
                ScalarValue::Utf8(Some(p))
                | ScalarValue::Utf8View(Some(p))
                | ScalarValue::LargeUtf8(Some(p)),
                _,
            )] => p.clone(),
            _ => {
                return plan_err!("{NAME} takes one argument: a file or directory path as a string")
            }
        };
        let base = VistaConfig::from_options(args.session().config_options()).base_dir.clone();
        if !base.is_empty() {
            crate::confine::check_location(&base, &path)
                .map_err(|e| plan_datafusion_err!("{NAME}: {e}"))?;
        }
        let batch = read(Path::new(&path))?;
        Ok(Arc::new(MemTable::try_new(schema(), vec![vec![batch]])?))
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("file", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]))
}

/// One row per key of every Parquet file at `path`.
fn read(path: &Path) -> Result<RecordBatch> {
    let files = if path.is_dir() {
        let mut files = Vec::new();
        parquet_files(path, &mut files)?;
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let (mut file_col, mut keys, mut values) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    for f in &files {
        let open = std::fs::File::open(f)
            .map_err(|e| plan_datafusion_err!("{NAME}: cannot open '{}': {e}", f.display()))?;
        let meta = ParquetMetaDataReader::new().parse_and_finish(&open).map_err(|e| {
            plan_datafusion_err!("{NAME}: '{}' is not a readable Parquet file: {e}", f.display())
        })?;
        for kv in meta.file_metadata().key_value_metadata().into_iter().flatten() {
            file_col.append_value(f.display().to_string());
            keys.append_value(&kv.key);
            values.append_option(kv.value.as_deref());
        }
    }
    let columns = vec![
        Arc::new(file_col.finish()) as _,
        Arc::new(keys.finish()) as _,
        Arc::new(values.finish()) as _,
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// The `.parquet` files under `dir`, hidden entries (temporaries being written) left out.
fn parquet_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| plan_datafusion_err!("{NAME}: cannot list '{}': {e}", dir.display()))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            parquet_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "parquet") {
            out.push(p);
        }
    }
    Ok(())
}
