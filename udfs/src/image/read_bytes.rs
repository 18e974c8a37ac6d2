use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, BinaryArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::remote;
use crate::common::{self, Arg, Params};
use crate::limits::{Limits, MAX_BINARY_BATCH_BYTES};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Reads a whole regular file, or an object named by URL, as bytes. URLs (`s3://bucket/key`, \
         `gs://...`, `https://host/path`) are read through the session's object stores (in \
         vista: made from the URL and the usual `AWS_*` / `GOOGLE_*` environment variables), \
         `vista.remote_concurrency` at a time, with retries; `file://` URLs are local paths. \
         With `SET vista.base_dir`, paths resolve inside it: relative paths are joined onto it, and \
         a path that leaves it (absolute, `..`, a symlink, a URL) is refused. Files over \
         `vista.max_file_bytes` and non-regular files (devices, pipes) are refused. A missing or \
         unreadable file fails the query naming the path, or gives NULL under \
         `on_error => 'null'` (`'report'` adds the reason).",
        "read_bytes(path [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("path", "File path or object URL (text).")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT read_bytes('Cargo.toml') IS NOT NULL AS ok;\n+------+\n| ok   |\n+------+\n| true |\n+------+\n```",
    )
    .build()
});

/// `read_bytes(path)`: file contents as Binary.
#[derive(Debug)]
pub struct ReadBytesFunc {
    signature: Signature,
    params: Params,
    /// A directory no read may leave, whatever the session sets (a shared executor's root).
    root: Option<PathBuf>,
    /// Where URLs are read from: the session's registry (`with_stores`), or local files only.
    stores: Arc<dyn ObjectStoreRegistry>,
}

impl PartialEq for ReadBytesFunc {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params
            && self.root == other.root
            && Arc::ptr_eq(&self.stores, &other.stores)
    }
}

impl Eq for ReadBytesFunc {}

impl std::hash::Hash for ReadBytesFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.params.hash(state);
        self.root.hash(state);
    }
}

impl Default for ReadBytesFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadBytesFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("path", Arg::Text), ("on_error", Arg::Text)]);
        // Volatile: a file may change between queries, so the planner must not fold it.
        let stores = Arc::new(DefaultObjectStoreRegistry::new());
        Self { signature: params.signature(Volatility::Volatile), params, root: None, stores }
    }

    /// A `read_bytes` that reads URLs through `stores` (a session's object store registry).
    pub fn with_stores(self, stores: Arc<dyn ObjectStoreRegistry>) -> Self {
        Self { stores, ..self }
    }

    /// A `read_bytes` confined to `root`: `vista.base_dir` may narrow it (a relative base
    /// directory is taken inside the root) but never leave it.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: Some(root.into()), ..Self::new() }
    }

    /// The rows of `paths` that are URLs, fetched; refused where reads are `confined` to a
    /// directory (a base directory or root admits local files inside it only).
    fn fetch_urls(
        &self,
        paths: &[Option<&str>],
        limits: &Limits,
        concurrency: usize,
        confined: bool,
    ) -> HashMap<usize, Result<Vec<u8>, String>> {
        let urls: Vec<(usize, url::Url)> = paths
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((i, remote::remote_url((*p)?)?)))
            .collect();
        if confined {
            let refused = |u| format!("'{u}' is a URL: reads are confined to a base directory");
            return urls.into_iter().map(|(i, u)| (i, Err(refused(u)))).collect();
        }
        remote::fetch_all(self.stores.as_ref(), urls, limits.max_file_bytes, concurrency)
    }

    /// The directory paths resolve against and may not leave, if any.
    fn confinement(&self, base_dir: &str) -> Result<Option<String>, String> {
        let Some(root) = &self.root else {
            return Ok((!base_dir.is_empty()).then(|| base_dir.to_string()));
        };
        let root_s = root.to_string_lossy().to_string();
        if base_dir.is_empty() {
            return Ok(Some(root_s));
        }
        resolve_path(&root_s, base_dir).map(|p| Some(p.to_string_lossy().to_string()))
    }
}

/// The file a path names. Without a base directory, the path as given. With one (`SET
/// vista.base_dir`), the path joined onto it and resolved (`..`, symlinks) must stay inside it:
/// an absolute path or an escape through `..` or a link is refused.
pub fn resolve_path(base_dir: &str, path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if base_dir.is_empty() {
        return Ok(p.to_path_buf());
    }
    let base = Path::new(base_dir)
        .canonicalize()
        .map_err(|e| format!("base directory '{base_dir}' cannot be resolved: {e}"))?;
    let joined = base.join(p);
    let full =
        joined.canonicalize().map_err(|e| format!("cannot read '{}': {e}", joined.display()))?;
    if !full.starts_with(&base) {
        return Err(format!(
            "'{path}' resolves to '{}', outside the base directory '{}'",
            full.display(),
            base.display()
        ));
    }
    Ok(full)
}

/// Reads a regular file of at most `max_bytes`. Devices and pipes are refused before they are
/// opened (reading `/dev/zero` never ends; opening a FIFO blocks until a writer comes).
pub fn read_limited(path: &Path, max_bytes: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read '{shown}': {e}"))?;
    if !meta.is_file() {
        return Err(format!("cannot read '{shown}': not a regular file"));
    }
    if meta.len() > max_bytes {
        return Err(format!(
            "'{shown}' holds {} bytes, more than vista.max_file_bytes = {max_bytes}",
            meta.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read '{shown}': {e}"))?;
    // The file may grow between the check and the read: never take more than the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read '{shown}': {e}"))?;
    if bytes.len() as u64 > max_bytes {
        return Err(format!("'{shown}' grew past vista.max_file_bytes = {max_bytes} while read"));
    }
    Ok(bytes)
}

impl ScalarUDFImpl for ReadBytesFunc {
    fn name(&self) -> &str {
        "read_bytes"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Binary, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (config, policy) = self.params.policy(self.name(), &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..1], args.number_rows)?;
        let paths = common::str_values(self.name(), &arrays[0])?;
        let limits = Limits::from_config(&config);
        // One Binary column's offsets are 32-bit: a row that would push the batch past them is
        // a row error (a smaller `datafusion.execution.batch_size` keeps such files apart).
        let mut batch_bytes = 0u64;
        let base = self.confinement(&config.base_dir);
        let confined = !matches!(base, Ok(None));
        let mut remote = self.fetch_urls(&paths, &limits, config.remote_concurrency, confined);
        let (values, errors) = common::map_rows(paths, |i, path| match path {
            None => Ok(None),
            Some(p) => {
                let bytes = match remote.remove(&i) {
                    Some(fetched) => fetched?,
                    None => {
                        let local = remote::file_url_path(p).unwrap_or_else(|| PathBuf::from(p));
                        let full = match base.clone()? {
                            Some(b) => resolve_path(&b, &local.to_string_lossy())?,
                            None => local,
                        };
                        read_limited(&full, limits.max_file_bytes)?
                    }
                };
                batch_bytes += bytes.len() as u64;
                if batch_bytes > MAX_BINARY_BATCH_BYTES {
                    batch_bytes -= bytes.len() as u64;
                    return Err(format!(
                        "'{p}' does not fit in this batch: one batch of read_bytes holds at most \
                         2 GiB (lower datafusion.execution.batch_size)"
                    ));
                }
                Ok(Some(bytes))
            }
        });
        let array: ArrayRef = Arc::new(BinaryArray::from_iter(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined(dir: &Path) -> String {
        dir.to_string_lossy().to_string()
    }

    #[test]
    fn paths_resolve_inside_the_base_directory_only() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("images");
        std::fs::create_dir_all(base.join("a")).unwrap();
        std::fs::write(base.join("a/x.png"), b"x").unwrap();
        std::fs::write(tmp.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), base.join("link")).unwrap();
        let b = confined(&base);
        assert!(resolve_path(&b, "a/x.png").unwrap().ends_with("images/a/x.png"));
        assert!(resolve_path(&b, "a/../a/x.png").is_ok(), "`..` that stays inside is fine");
        for escape in ["../secret", "link", "/etc/passwd", "a/../../secret"] {
            let e = resolve_path(&b, escape).unwrap_err();
            assert!(e.contains("outside the base directory"), "{escape}: {e}");
        }
    }

    #[test]
    fn a_root_confines_whatever_the_session_sets() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("sub")).unwrap();
        let f = ReadBytesFunc::with_root(tmp.path());
        let root = tmp.path().canonicalize().unwrap();
        assert_eq!(f.confinement("").unwrap(), Some(confined(&root)));
        assert_eq!(f.confinement("sub").unwrap(), Some(confined(&root.join("sub"))));
        assert!(f.confinement("/").unwrap_err().contains("outside the base directory"));
        assert!(f.confinement("..").unwrap_err().contains("outside the base directory"));
    }

    #[test]
    fn only_regular_files_within_the_size_limit_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f.bin");
        std::fs::write(&file, vec![7u8; 100]).unwrap();
        assert_eq!(read_limited(&file, 100).unwrap().len(), 100);
        assert_eq!(
            read_limited(&file, 99).unwrap_err(),
            format!("'{}' holds 100 bytes, more than vista.max_file_bytes = 99", file.display())
        );
        assert!(read_limited(Path::new("/dev/zero"), u64::MAX)
            .unwrap_err()
            .ends_with("not a regular file"));
        assert!(read_limited(tmp.path(), u64::MAX).unwrap_err().ends_with("not a regular file"));
        let fifo = tmp.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
        // Reading a FIFO with no writer would block forever: it is refused before opening.
        if unsafe { libc_mkfifo(c.as_ptr(), 0o600) } == 0 {
            assert!(read_limited(&fifo, u64::MAX).unwrap_err().ends_with("not a regular file"));
        }
    }

    extern "C" {
        #[link_name = "mkfifo"]
        fn libc_mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    }
}
