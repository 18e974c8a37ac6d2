//! How vista writes a file: what DataFusion's `COPY ... OPTIONS (...)` keys and the session's
//! `datafusion.execution.parquet.*` settings ask for, with vista's provenance keys added, so
//! every path (`COPY` to a file, `vista sql --out`, `COPY` to a directory that DataFusion
//! writes) honours the same options DataFusion's own writers do.

use std::collections::HashMap;

use anyhow::{bail, Result};
use datafusion::arrow::csv::WriterBuilder;
use datafusion::common::config::{ConfigFileType, TableOptions};
use datafusion::common::file_options::csv_writer::CsvWriterOptions;
use datafusion::common::parsers::CompressionTypeVariant;
use datafusion::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Value;

use crate::engine::dferr;
use crate::output::Format;

/// Writer settings of one output file.
#[derive(Debug, Clone)]
pub struct FileOptions {
    pub parquet: WriterProperties,
    pub csv: WriterBuilder,
}

impl FileOptions {
    /// The session's settings altered by `options` (`format.*` keys, as `COPY` takes them),
    /// with `metadata` as Parquet key-value metadata. Compressed CSV or JSON is refused: vista
    /// writes those formats itself, uncompressed, to keep the write atomic.
    pub fn new(
        ctx: &SessionContext,
        format: Format,
        options: &HashMap<String, String>,
        metadata: &[(String, String)],
    ) -> Result<FileOptions> {
        let mut table: TableOptions = ctx.state().default_table_options();
        table.set_config_format(match format {
            Format::Parquet => ConfigFileType::PARQUET,
            Format::Csv | Format::Tsv => ConfigFileType::CSV,
            _ => ConfigFileType::JSON,
        });
        if format == Format::Tsv {
            table.csv.delimiter = b'\t';
        }
        table.alter_with_string_hash_map(options).map_err(dferr)?;
        let compressed = match format {
            Format::Csv | Format::Tsv => {
                table.csv.compression != CompressionTypeVariant::UNCOMPRESSED
            }
            Format::Json | Format::Ndjson => {
                table.json.compression != CompressionTypeVariant::UNCOMPRESSED
            }
            _ => false,
        };
        if compressed {
            bail!("format.compression: vista writes CSV and JSON files uncompressed");
        }
        let mut parquet = table.parquet;
        for (k, v) in metadata {
            parquet.key_value_metadata.insert(k.clone(), Some(v.clone()));
        }
        // The Arrow writer stores the Arrow schema itself; the conversion must not ask for it.
        parquet.global.skip_arrow_metadata = true;
        let parquet = WriterPropertiesBuilder::try_from(&parquet).map_err(dferr)?.build();
        let csv = CsvWriterOptions::try_from(&table.csv).map_err(dferr)?.writer_options;
        Ok(FileOptions { parquet, csv })
    }
}

/// `COPY ... OPTIONS` as DataFusion reads them: keys lower-cased, a key without a namespace
/// taken as `format.<key>`, values as their text.
pub fn copy_options(options: &[(String, Value)]) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for (key, value) in options {
        let text = match value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            Value::Boolean(b) => b.to_string(),
            other => bail!("COPY option {key}: unsupported value {other}"),
        };
        let key = if key.contains('.') { key.clone() } else { format!("format.{key}") };
        map.insert(key.to_lowercase(), text);
    }
    Ok(map)
}

/// `metadata` as `format.metadata::<key>` options, the form DataFusion's Parquet writer takes
/// key-value metadata in (for the `COPY` statements DataFusion writes itself: directories,
/// partitioned output).
pub fn metadata_options(metadata: &[(String, String)]) -> Vec<(String, Value)> {
    metadata
        .iter()
        .map(|(k, v)| (format!("format.metadata::{k}"), Value::SingleQuotedString(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::metadata::ParquetMetaDataReader;

    use crate::engine::{run_sql, Sink};
    use crate::output::Format;
    use crate::session::{new_context, SessionOptions};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// Runs `sql` (with `{d}` standing for the temporary directory); returns stdout.
    fn run(dir: &Path, sql: &str, settings: &[(&str, &str)]) -> anyhow::Result<String> {
        let settings = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let ctx = new_context(&SessionOptions { settings, ..Default::default() })?;
        let sink = Sink { format: Format::Csv, out: None, max_rows: 0, quiet: true };
        let mut out = Vec::new();
        let sql = sql.replace("{d}", &dir.display().to_string());
        rt().block_on(run_sql(&ctx, &sql, &sink, &mut out))
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(String::from_utf8(out)?)
    }

    /// The codec of the first column chunk and the key-value keys of a Parquet file.
    fn footer(path: &Path) -> (Compression, Vec<String>) {
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&std::fs::File::open(path).unwrap())
            .unwrap();
        let keys = meta.file_metadata().key_value_metadata().unwrap();
        let keys = keys.iter().map(|kv| kv.key.clone()).collect();
        (meta.row_group(0).column(0).compression(), keys)
    }

    const ROWS: &str = "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS t(x, y)";

    #[test]
    fn copy_options_and_session_settings_choose_the_parquet_codec() {
        let d = tempfile::tempdir().unwrap();
        let p = |name: &str| d.path().join(name);
        run(d.path(), &format!("COPY ({ROWS}) TO '{{d}}/default.parquet'"), &[]).unwrap();
        let copy = format!(
            "COPY ({ROWS}) TO '{{d}}/snappy.parquet' OPTIONS ('format.compression' 'snappy')"
        );
        run(d.path(), &copy, &[]).unwrap();
        let copy = format!("COPY ({ROWS}) TO '{{d}}/gzip.parquet'");
        run(d.path(), &copy, &[("datafusion.execution.parquet.compression", "gzip(6)")]).unwrap();
        let (codec, keys) = footer(&p("default.parquet"));
        // The footer names the codec, not its level.
        assert!(matches!(codec, Compression::ZSTD(_)), "{codec}");
        assert!(keys.contains(&"vista.sql".to_string()), "{keys:?}");
        assert_eq!(footer(&p("snappy.parquet")).0, Compression::SNAPPY);
        assert!(matches!(footer(&p("gzip.parquet")).0, Compression::GZIP(_)));
        let bad =
            format!("COPY ({ROWS}) TO '{{d}}/x.parquet' OPTIONS ('format.compression' 'lzw')");
        let err = run(d.path(), &bad, &[]).unwrap_err().to_string();
        assert!(err.contains("lzw"), "{err}");
        assert!(!p("x.parquet").exists());
    }

    #[test]
    fn copy_options_shape_csv_and_compressed_text_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let copy = format!(
            "COPY ({ROWS}) TO '{{d}}/x.csv' OPTIONS ('format.has_header' 'false', 'format.delimiter' ';')"
        );
        run(d.path(), &copy, &[]).unwrap();
        assert_eq!(std::fs::read_to_string(d.path().join("x.csv")).unwrap(), "1;a\n2;b\n");
        run(d.path(), &format!("COPY ({ROWS}) TO '{{d}}/x.tsv'"), &[]).unwrap();
        let tsv = std::fs::read_to_string(d.path().join("x.tsv")).unwrap();
        assert_eq!(tsv, "x\ty\n1\ta\n2\tb\n");
        let gz = format!("COPY ({ROWS}) TO '{{d}}/y.csv' OPTIONS ('format.compression' 'gzip')");
        let err = run(d.path(), &gz, &[]).unwrap_err().to_string();
        assert!(
            err.ends_with(": format.compression: vista writes CSV and JSON files uncompressed"),
            "{err}"
        );
        assert!(!d.path().join("y.csv").exists());
    }

    #[test]
    fn copy_to_a_directory_keeps_the_provenance_and_sql_reads_it_back() {
        let d = tempfile::tempdir().unwrap();
        let copy = format!("COPY ({ROWS}) TO '{{d}}/dir/' STORED AS PARQUET OPTIONS ('format.metadata::owner' 'me')");
        run(d.path(), &copy, &[]).unwrap();
        let got = run(
            d.path(),
            "SELECT key, value FROM parquet_kv_metadata('{d}/dir') \
             WHERE key IN ('owner', 'vista.version') ORDER BY key",
            &[],
        )
        .unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(got, format!("key,value\nowner,me\nvista.version,{version}\n"));
        let sql = run(
            d.path(),
            "SELECT value FROM parquet_kv_metadata('{d}/dir') WHERE key = 'vista.sql'",
            &[],
        )
        .unwrap();
        assert!(sql.starts_with("value\n\"COPY (SELECT * FROM (VALUES"), "{sql}");
    }

    #[test]
    fn parquet_kv_metadata_example_runs_and_paths_are_confined() {
        let d = tempfile::tempdir().unwrap();
        let doc = crate::parquet_kv_metadata::documentation();
        let example = doc.sql_example.as_deref().unwrap();
        let statements: Vec<&str> = example.lines().filter_map(|l| l.strip_prefix("> ")).collect();
        let sql = statements.join("\n").replace("'one.parquet'", "'{d}/one.parquet'");
        assert_eq!(
            run(d.path(), &sql, &[]).unwrap(),
            "2 rows written to {d}/one.parquet\nkey,value\nowner,me\n"
                .replace("2 rows", "1 rows")
                .replace("{d}", &d.path().display().to_string())
        );
        let inside = d.path().join("base");
        std::fs::create_dir(&inside).unwrap();
        let base = inside.display().to_string();
        let err = run(
            d.path(),
            "SELECT * FROM parquet_kv_metadata('{d}/one.parquet')",
            &[("vista.base_dir", &base)],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("outside vista.base_dir"), "{err}");
        let err =
            run(d.path(), "SELECT * FROM parquet_kv_metadata(1)", &[]).unwrap_err().to_string();
        assert!(err.contains("takes one argument"), "{err}");
    }
}
