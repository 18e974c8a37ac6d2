//! Objects named by URL (`s3://bucket/key`, `gs://...`, `https://host/path`) for `read_bytes`,
//! fetched through the session's object store registry.
//!
//! A scalar function runs synchronously on one of DataFusion's threads, so the URLs of a batch are
//! fetched together on a small runtime of vista's own (several requests in flight, `SET
//! vista.remote_concurrency`) while that thread waits; the stores' clients retry failed requests
//! themselves.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::object_store::{self, path::Path as ObjectPath, ObjectStore, ObjectStoreExt};
use futures::StreamExt;
use url::Url;

/// The URL `path` names, when it names a remote object: a `scheme://host/...` URL other than
/// `file://`. Local paths (`a/b.png`, `/a/b.png`, `C:/a.png`) are `None`.
pub fn remote_url(path: &str) -> Option<Url> {
    if !path.contains("://") {
        return None;
    }
    let url = Url::parse(path).ok()?;
    (url.scheme() != "file" && url.host_str().is_some_and(|h| !h.is_empty())).then_some(url)
}

/// The local path a `file://` URL names (`file:///data/a.png` is `/data/a.png`).
pub fn file_url_path(path: &str) -> Option<std::path::PathBuf> {
    path.starts_with("file://").then(|| Url::parse(path).ok()?.to_file_path().ok()).flatten()
}

/// The store that holds the object (or prefix) `url` names, made on first use by `stores`, and
/// the object's path in it; the error is one line naming the URL.
pub fn locate(
    stores: &dyn ObjectStoreRegistry,
    url: &Url,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath), String> {
    let cannot =
        |e: &dyn std::fmt::Display| format!("cannot read '{url}': {}", one_line(&e.to_string()));
    let store = stores.get_store(url).map_err(|e| cannot(&e))?;
    let location = ObjectPath::from_url_path(url.path()).map_err(|e| cannot(&e))?;
    Ok((store, location))
}

/// One object to fetch: its row, its URL, and the store that holds it.
struct Fetch {
    row: usize,
    url: String,
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
}

/// Fetches the objects `urls` name (row, URL) through `stores`, at most `concurrency` requests
/// at a time; each row gets its bytes or a one-line reason naming the URL.
pub fn fetch_all(
    stores: &dyn ObjectStoreRegistry,
    urls: Vec<(usize, Url)>,
    max_bytes: u64,
    concurrency: usize,
) -> HashMap<usize, Result<Vec<u8>, String>> {
    let mut out = HashMap::new();
    let mut jobs = Vec::new();
    for (row, url) in urls {
        match locate(stores, &url) {
            Ok((store, location)) => {
                jobs.push(Fetch { row, url: url.to_string(), store, location })
            }
            Err(e) => {
                out.insert(row, Err(e));
            }
        }
    }
    if jobs.is_empty() {
        return out;
    }
    let rows: Vec<usize> = jobs.iter().map(|j| j.row).collect();
    let fetched = futures::stream::iter(jobs)
        .map(move |job| async move { (job.row, fetch(&job, max_bytes).await) })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>();
    match block_on_io(fetched) {
        Ok(results) => out.extend(results),
        Err(e) => out.extend(rows.into_iter().map(|r| (r, Err(e.clone())))),
    }
    out
}

/// Runs `work` (object store requests) to completion on the remote-read runtime and waits for
/// it: how synchronous code (a scalar function, a table function's planning) reads remote
/// objects.
pub fn block_on_io<F>(work: F) -> Result<F::Output, String>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = io_runtime()?;
    futures::executor::block_on(runtime.spawn(work))
        .map_err(|e| format!("remote reads stopped: {e}"))
}

async fn fetch(job: &Fetch, max_bytes: u64) -> Result<Vec<u8>, String> {
    let url = &job.url;
    let got = job.store.get(&job.location).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => format!("cannot read '{url}': not found"),
        e => format!("cannot read '{url}': {}", one_line(&e.to_string())),
    })?;
    // The size comes with the response headers: a too-large object is refused before its body.
    if got.meta.size > max_bytes {
        return Err(format!(
            "'{url}' holds {} bytes, more than vista.max_file_bytes = {max_bytes}",
            got.meta.size
        ));
    }
    let bytes = got
        .bytes()
        .await
        .map_err(|e| format!("cannot read '{url}': {}", one_line(&e.to_string())))?;
    Ok(bytes.to_vec())
}

/// The runtime remote reads run on: two threads, made on the first remote read and kept for the
/// process (a store's pooled connections belong to the runtime that opened them).
fn io_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vista-remote-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the remote-read runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Object store errors carry their cause chain across lines; a row error is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::object_store::DefaultObjectStoreRegistry;
    use datafusion::object_store::memory::InMemory;
    use datafusion::object_store::PutPayload;

    #[test]
    fn urls_and_local_paths_are_told_apart() {
        assert_eq!(remote_url("s3://b/k.png").unwrap().host_str(), Some("b"));
        assert!(remote_url("https://h:8080/p/q.jpg").is_some());
        for local in ["a/b.png", "/a/b.png", "C:/a.png", "file:///a.png", "a://", "x:y"] {
            assert!(remote_url(local).is_none(), "{local}");
        }
        assert_eq!(
            file_url_path("file:///data/a.png").unwrap(),
            std::path::Path::new("/data/a.png")
        );
        assert!(file_url_path("/data/a.png").is_none());
    }

    #[test]
    fn objects_are_fetched_per_row_with_reasons() {
        let stores = DefaultObjectStoreRegistry::new();
        let mem = Arc::new(InMemory::new());
        let bucket = Url::parse("s3://bucket").unwrap();
        stores.register_store(&bucket, mem.clone());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            mem.put(&ObjectPath::from("a/x.bin"), PutPayload::from(vec![1u8, 2, 3])).await.unwrap();
            mem.put(&ObjectPath::from("big.bin"), PutPayload::from(vec![0u8; 10])).await.unwrap();
        });
        let u = |s: &str| Url::parse(s).unwrap();
        let urls = vec![
            (0, u("s3://bucket/a/x.bin")),
            (2, u("s3://bucket/missing.bin")),
            (3, u("s3://bucket/big.bin")),
            (5, u("gs://nobody/x")),
        ];
        let got = fetch_all(&stores, urls, 5, 2);
        assert_eq!(got[&0], Ok(vec![1, 2, 3]));
        assert_eq!(got[&2], Err("cannot read 's3://bucket/missing.bin': not found".into()));
        assert_eq!(
            got[&3],
            Err("'s3://bucket/big.bin' holds 10 bytes, more than vista.max_file_bytes = 5".into())
        );
        let e = got[&5].as_ref().unwrap_err();
        assert!(e.starts_with("cannot read 'gs://nobody/x': ") && !e.contains('\n'), "{e}");
        assert_eq!(got.len(), 4);
    }
}
