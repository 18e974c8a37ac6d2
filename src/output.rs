//! Writing results: atomic files (temporary name, fsync, rename) with provenance metadata,
//! and the machine-readable output formats of `vista sql`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;

/// Output formats of `vista sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table (the terminal default).
    Table,
    Csv,
    /// Tab separated, with a header line (CSV's quoting for values that hold a tab).
    Tsv,
    /// One JSON array of objects, one object per row.
    Json,
    /// One JSON object per line.
    Ndjson,
    Parquet,
}

impl Format {
    /// The format a file name asks for (`.parquet`, `.csv`, `.tsv`, `.json`, `.ndjson`/`.jsonl`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }
}

/// Key-value metadata every vista file carries: the vista version and the SQL that made it,
/// then whatever the functions used report (model fingerprint, metric variants).
pub fn provenance(sql: Option<&str>, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut kv = vec![("vista.version".to_string(), env!("CARGO_PKG_VERSION").to_string())];
    if let Some(sql) = sql {
        kv.push(("vista.sql".to_string(), sql.trim().to_string()));
    }
    kv.extend(extra.iter().cloned());
    kv
}

/// A file that appears under its final name only when committed: the data goes to a hidden
/// temporary file in the same directory, is fsynced, then renamed. Dropping it uncommitted
/// (an error, a panic) removes the temporary file; a killed process leaves only a `.tmp` file
/// that no `*.parquet` glob matches.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        if path.is_dir() {
            bail!("output path '{}' is a directory; name a file", path.display());
        }
        let tmp = temp_path(path)?;
        if let Some(dir) = tmp.parent() {
            remove_stale_temporaries_of(dir, path.file_name().and_then(|n| n.to_str()));
        }
        let file =
            File::create(&tmp).with_context(|| format!("cannot create '{}'", tmp.display()))?;
        Ok(AtomicFile { path: path.to_path_buf(), tmp, file: Some(file) })
    }

    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is open until commit")
    }

    /// Syncs the data and moves the file to its final name.
    pub fn commit(mut self) -> Result<()> {
        let mut file = self.file.take().expect("file is open until commit");
        file.flush()?;
        file.sync_all()?;
        drop(file);
        if let Err(e) = std::fs::rename(&self.tmp, &self.path) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e).with_context(|| {
                format!("cannot move '{}' to '{}'", self.tmp.display(), self.path.display())
            });
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable only once the directory entry is.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes the temporary files (`.NAME.PID.tmp`) that killed writers left in `dir`: those of
/// processes that no longer run. A live process's file is another writer's work in progress.
pub fn remove_stale_temporaries(dir: &Path) {
    remove_stale_temporaries_of(dir, None);
}

/// [`remove_stale_temporaries`], limited to the temporaries of the file `name` when given.
fn remove_stale_temporaries_of(dir: &Path, name: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(|e| e.ok()) {
        let file = entry.file_name().to_string_lossy().to_string();
        let Some((stem, pid)) = temp_parts(&file) else { continue };
        if name.is_some_and(|n| n != stem) || pid == std::process::id() || process_runs(pid) {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
}

/// `.NAME.PID.tmp` -> (NAME, PID).
fn temp_parts(file: &str) -> Option<(&str, u32)> {
    let inner = file.strip_prefix('.')?.strip_suffix(".tmp")?;
    let (stem, pid) = inner.rsplit_once('.')?;
    Some((stem, pid.parse().ok()?))
}

fn process_runs(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // Signal 0 checks existence only; EPERM means it exists under another user.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("output path '{}' has no file name", path.display()))?
        .to_string_lossy()
        .to_string();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create directory '{}'", dir.display()))?;
    Ok(dir.join(format!(".{name}.{}.tmp", std::process::id())))
}

/// Parquet writer properties with the provenance metadata.
pub fn parquet_properties(metadata: &[(String, String)]) -> Result<WriterProperties> {
    parquet_properties_rows(metadata, 1024 * 1024)
}

/// [`parquet_properties`] with row groups of at most `rows` rows. Row groups are the unit a
/// reader splits a file by, so a table of heavy rows (masks, images) that later feeds expensive
/// functions is written in small groups: every core gets a share.
pub fn parquet_properties_rows(
    metadata: &[(String, String)],
    rows: usize,
) -> Result<WriterProperties> {
    let kv = metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect::<Vec<_>>();
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_key_value_metadata(Some(kv))
        .set_max_row_group_row_count(Some(rows.max(1)))
        .build())
}

/// Writes `batches` to `path` in `format`, atomically (see [`AtomicFile`]).
pub fn write_atomic(
    path: &Path,
    format: Format,
    schema: SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(String, String)],
) -> Result<()> {
    if format == Format::Parquet {
        return write_parquet_with(path, batches, schema, parquet_properties(metadata)?);
    }
    let mut out = AtomicFile::create(path)?;
    write_text(out.file(), format, &schema, batches)
        .with_context(|| format!("writing '{}'", path.display()))?;
    out.commit()
}

/// Bytes (CSV, PNG, HTML), atomically (see [`AtomicFile`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    std::io::Write::write_all(f.file(), bytes)
        .with_context(|| format!("writing '{}'", path.display()))?;
    f.commit()
}

/// Pretty JSON, atomically (see [`AtomicFile`]): manifests and reports.
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    serde_json::to_writer_pretty(f.file(), value)
        .with_context(|| format!("writing '{}'", path.display()))?;
    f.commit()
}

/// Parquet written with `properties`, atomically (see [`AtomicFile`]).
pub fn write_parquet_with(
    path: &Path,
    batches: &[RecordBatch],
    schema: SchemaRef,
    properties: WriterProperties,
) -> Result<()> {
    let mut out = AtomicFile::create(path)?;
    (|| -> Result<()> {
        let mut writer = ArrowWriter::try_new(out.file(), schema, Some(properties))?;
        for b in batches {
            writer.write(b)?;
        }
        writer.close()?;
        Ok(())
    })()
    .with_context(|| format!("writing '{}'", path.display()))?;
    out.commit()
}

/// Parquet with provenance metadata, atomically (see [`AtomicFile`]).
pub fn write_parquet_atomic(
    path: &Path,
    batches: &[RecordBatch],
    schema: SchemaRef,
    metadata: &[(String, String)],
) -> Result<()> {
    write_atomic(path, Format::Parquet, schema, batches, metadata)
}

/// Streams a query result into `path` atomically with the writer settings of `options`
/// (Parquet properties and key-value metadata, CSV header and delimiter); returns the number
/// of rows written.
pub async fn write_stream_atomic(
    path: &Path,
    format: Format,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    options: &crate::file_options::FileOptions,
) -> Result<usize> {
    use futures::StreamExt;
    let schema = stream.schema();
    let mut out = AtomicFile::create(path)?;
    let mut rows = 0;
    match format {
        Format::Parquet => {
            let mut writer =
                ArrowWriter::try_new(out.file(), schema, Some(options.parquet.clone()))?;
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                writer.write(&b)?;
            }
            writer.close()?;
        }
        other => {
            // Text formats are small by nature; buffering keeps one writer per format.
            let mut batches = Vec::new();
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows();
                batches.push(b);
            }
            match other {
                Format::Csv | Format::Tsv => {
                    write_csv(out.file(), options.csv.clone(), &schema, &batches)?
                }
                _ => write_text(out.file(), other, &schema, &batches)?,
            }
        }
    }
    out.commit()?;
    Ok(rows)
}

/// Writes batches as text (table, csv, tsv, json, ndjson) to a stream such as stdout.
pub fn write_text<W: Write + ?Sized>(
    out: &mut W,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let empty = RecordBatch::new_empty(schema.clone());
                writeln!(
                    out,
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(&[empty])?
                )?;
            } else {
                writeln!(
                    out,
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(batches)?
                )?;
            }
        }
        Format::Csv => write_csv(out, delimited(b','), schema, batches)?,
        Format::Tsv => write_csv(out, delimited(b'\t'), schema, batches)?,
        Format::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                write!(out, "[]")?;
            }
            writeln!(out)?;
        }
        Format::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        Format::Parquet => bail!("parquet output needs a file: use --out FILE.parquet"),
    }
    Ok(())
}

/// A CSV writer with a header line and `delimiter` (`,` for CSV, a tab for TSV).
fn delimited(delimiter: u8) -> datafusion::arrow::csv::WriterBuilder {
    datafusion::arrow::csv::WriterBuilder::new().with_header(true).with_delimiter(delimiter)
}

/// Batches as CSV or TSV written by `builder` (header, delimiter, quoting); nested values as
/// text.
fn write_csv<W: Write + ?Sized>(
    out: &mut W,
    builder: datafusion::arrow::csv::WriterBuilder,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<()> {
    let mut w = builder.build(&mut *out);
    if batches.is_empty() {
        w.write(&flatten_nested(&RecordBatch::new_empty(schema.clone()))?)?;
    }
    for b in batches {
        w.write(&flatten_nested(b)?)?;
    }
    Ok(())
}

/// CSV and TSV have no nested values: lists and structs become their display text (`[1, 2]`,
/// `{a: 1}`).
fn flatten_nested(batch: &RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    use std::sync::Arc;
    if !batch.schema().fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if f.data_type().is_nested() {
            let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())?;
            let text: StringArray =
                (0..col.len()).map(|i| col.is_valid(i).then(|| fmt.value(i).to_string())).collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(f.as_ref().clone());
            columns.push(col.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int32Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn parquet_is_written_atomically_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(vec![1, 2]))])
                .unwrap();
        let meta = provenance(Some("SELECT 1"), &[("k".into(), "v".into())]);
        write_parquet_atomic(&path, &[batch], schema, &meta).unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.parquet")], "no temporary file left");
        let reader = datafusion::parquet::file::reader::SerializedFileReader::new(
            File::open(&path).unwrap(),
        )
        .unwrap();
        use datafusion::parquet::file::reader::FileReader;
        let kv = reader.metadata().file_metadata().key_value_metadata().unwrap().clone();
        let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
        assert_eq!(get("vista.sql").as_deref(), Some("SELECT 1"));
        assert_eq!(get("k").as_deref(), Some("v"));
        assert_eq!(get("vista.version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        // pid_max is at most 2^22 on Linux: this process cannot exist.
        let dead = dir.path().join(".x.parquet.4194305.tmp");
        let live = dir.path().join(format!(".y.parquet.{}.tmp", std::process::id()));
        let other = dir.path().join(".y.parquet.4194305.tmp");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        write_bytes_atomic(&path, b"done").unwrap();
        assert!(!dead.exists(), "a dead writer's temporary of the same file is removed");
        assert!(live.exists() && other.exists(), "other files' temporaries are left alone");
        remove_stale_temporaries(dir.path());
        assert!(!other.exists() && live.exists());
    }

    #[test]
    fn a_directory_is_not_an_output_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_bytes_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary file left");
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int32, false)]));
        let other = Arc::new(Schema::new(vec![Field::new("b", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            other,
            vec![Arc::new(datafusion::arrow::array::StringArray::from(vec!["x"]))],
        )
        .unwrap();
        // The batch does not match the declared schema: the writer fails midway.
        assert!(write_parquet_atomic(&path, &[batch], schema, &[]).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no file, complete or partial"
        );
    }
}
