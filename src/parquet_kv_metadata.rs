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
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{DocSection, Documentation, Expr};
use datafusion::parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use vista_udfs::VistaConfig;

pub const NAME: &str = "parquet_kv_metadata";

#[derive(Debug, Default)]
pub struct ParquetKvMetadata;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DocSection { include: true, label: "Vista table functions", description: None },
        "The key-value metadata of a Parquet file, or of every `.parquet` file under a directory \
         (sorted by path), one row per key: `file`, `key`, `value`. The path may be an object store \
         URL (`s3://bucket/out/scores.parquet`, or a prefix). Vista's outputs carry their \
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
        let batch = if crate::object_stores::is_url(&path) {
            let files = read_remote(args.session().runtime_env(), &path)?;
            to_batch(files.iter().map(|(f, meta)| (f.as_str(), meta)))?
        } else {
            read(Path::new(&path))?
        };
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
    let mut metas = Vec::new();
    for f in &files {
        let open = std::fs::File::open(f)
            .map_err(|e| plan_datafusion_err!("{NAME}: cannot open '{}': {e}", f.display()))?;
        let meta = ParquetMetaDataReader::new().parse_and_finish(&open).map_err(|e| {
            plan_datafusion_err!("{NAME}: '{}' is not a readable Parquet file: {e}", f.display())
        })?;
        metas.push((f.display().to_string(), meta));
    }
    to_batch(metas.iter().map(|(f, meta)| (f.as_str(), meta)))
}

/// The rows of the files' key-value metadata.
fn to_batch<'a>(
    files: impl Iterator<Item = (&'a str, &'a ParquetMetaData)>,
) -> Result<RecordBatch> {
    let (mut file_col, mut keys, mut values) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    for (f, meta) in files {
        for kv in meta.file_metadata().key_value_metadata().into_iter().flatten() {
            file_col.append_value(f);
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

/// The footers of the Parquet object `url` names, or of the `.parquet` objects under it (sorted
/// by URL), read with three ranged requests each: the object's size, the footer's length and
/// the metadata.
fn read_remote(runtime: &RuntimeEnv, url: &str) -> Result<Vec<(String, ParquetMetaData)>> {
    use datafusion::object_store::ObjectStoreExt;
    use futures::TryStreamExt;
    let parsed = url::Url::parse(url).map_err(|e| plan_datafusion_err!("{NAME}: '{url}': {e}"))?;
    let root = parsed[..url::Position::BeforePath].to_string();
    let (store, named) = vista_udfs::image::locate(runtime.object_store_registry.as_ref(), &parsed)
        .map_err(|e| plan_datafusion_err!("{NAME}: {e}"))?;
    let work = async move {
        let mut files = vec![named.clone()];
        if !named.as_ref().ends_with(".parquet") {
            let listed: Vec<_> = store.list(Some(&named)).try_collect().await?;
            files = listed.into_iter().map(|o| o.location).collect();
            files.retain(|p| {
                p.filename().is_some_and(|n| n.ends_with(".parquet") && !n.starts_with('.'))
            });
            files.sort();
        }
        let mut out = Vec::new();
        for file in files {
            let size = store.head(&file).await?.size;
            let shown = format!("{root}/{file}");
            let not_parquet = |why: String| datafusion::object_store::Error::Generic {
                store: "parquet_kv_metadata",
                source: format!("'{shown}' is not a readable Parquet file: {why}").into(),
            };
            if size < 12 {
                return Err(not_parquet(format!("{size} bytes")));
            }
            let tail = store.get_range(&file, size - 8..size).await?;
            if &tail[4..] != b"PAR1" {
                return Err(not_parquet("no PAR1 magic at its end".into()));
            }
            let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
            if len + 12 > size {
                return Err(not_parquet(format!("a footer of {len} bytes in {size}")));
            }
            let footer = store.get_range(&file, size - 8 - len..size - 8).await?;
            let meta = ParquetMetaDataReader::decode_metadata(&footer)
                .map_err(|e| not_parquet(e.to_string()))?;
            out.push((shown, meta));
        }
        Ok::<_, datafusion::object_store::Error>(out)
    };
    vista_udfs::image::block_on_io(work).map_err(|e| plan_datafusion_err!("{NAME}: {e}"))?.map_err(
        |e| {
            plan_datafusion_err!(
                "{NAME}: cannot read '{url}': {}",
                crate::engine::one_line(&e.to_string())
            )
        },
    )
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
