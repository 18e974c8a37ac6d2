//! Object stores for remote tables and `read_bytes` URLs, made on first use from the URL and the
//! usual environment variables, so `s3://bucket/x.parquet` works without registering anything.
//!
//! | scheme | store | configuration |
//! |---|---|---|
//! | `s3://`, `s3a://` | Amazon S3 or an S3-compatible server | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (a MinIO or other server), `AWS_ALLOW_HTTP=true` (a plain-HTTP endpoint), `AWS_SKIP_SIGNATURE=true` (public buckets) |
//! | `gs://` | Google Cloud Storage | `GOOGLE_SERVICE_ACCOUNT` (a key file), `GOOGLE_APPLICATION_CREDENTIALS` |
//! | `http://`, `https://` | a web server (GET with ranges) | none |
//!
//! Every store retries failed requests with exponential backoff (object_store's default: up to
//! 10 retries within 3 minutes). One store is made per bucket or host and kept for the session.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::object_store::aws::AmazonS3Builder;
use datafusion::object_store::gcp::GoogleCloudStorageBuilder;
use datafusion::object_store::http::HttpBuilder;
use datafusion::object_store::{ClientOptions, ObjectStore};
use url::Url;

/// DataFusion's registry (local files, stores registered by hand) that makes a store for an
/// `s3://`, `gs://` or `http(s)://` URL the first time one is asked for.
#[derive(Debug, Default)]
pub struct RemoteStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for RemoteStores {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let store = store_for(url)?;
        // Two threads may make the same store at once; either one serves.
        self.known.register_store(url, store.clone());
        Ok(store)
    }
}

/// The process's registry, shared by the sessions a cluster process makes (each Ballista task
/// gets a runtime of its own; its stores and their connection pools outlive it here).
pub fn shared() -> Arc<RemoteStores> {
    static SHARED: std::sync::OnceLock<Arc<RemoteStores>> = std::sync::OnceLock::new();
    SHARED.get_or_init(Default::default).clone()
}

/// A runtime whose object stores are the process's [`shared`] registry, temporary files under
/// `temp_dir` when given.
pub fn runtime_env(
    temp_dir: Option<&std::path::Path>,
) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>> {
    let mut builder = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_object_store_registry(shared());
    if let Some(dir) = temp_dir {
        builder = builder.with_temp_file_path(dir);
    }
    builder.build_arc()
}

/// A new store for `url`'s bucket or host.
fn store_for(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let root = &url[..url::Position::BeforePath];
    let made: std::result::Result<Arc<dyn ObjectStore>, _> = match url.scheme() {
        "s3" | "s3a" => {
            AmazonS3Builder::from_env().with_url(root).build().map(|s| Arc::new(s) as _)
        }
        "gs" => {
            GoogleCloudStorageBuilder::from_env().with_url(root).build().map(|s| Arc::new(s) as _)
        }
        scheme @ ("http" | "https") => HttpBuilder::new()
            .with_url(root)
            .with_client_options(ClientOptions::new().with_allow_http(scheme == "http"))
            .build()
            .map(|s| Arc::new(s) as _),
        other => {
            return Err(DataFusionError::Configuration(format!(
                "no object store for '{url}': vista reads local files and s3://, s3a://, gs://, \
                 http:// and https:// URLs, not {other}://"
            )))
        }
    };
    made.map_err(|e| {
        DataFusionError::Configuration(format!("cannot open the store for '{root}': {e}"))
    })
}

/// Whether `path` names an object by URL (`s3://b/k`) rather than a local file. `file://` URLs
/// are local.
pub fn is_url(path: &str) -> bool {
    vista_udfs::image::remote_url(path).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_made_per_bucket_and_kept() {
        let stores = RemoteStores::default();
        let a = stores.get_store(&Url::parse("s3://bucket-a/x/y.parquet").unwrap()).unwrap();
        let again = stores.get_store(&Url::parse("s3://bucket-a/other").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "one store per bucket");
        let b = stores.get_store(&Url::parse("s3://bucket-b/x").unwrap()).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(stores.get_store(&Url::parse("https://example.org/a.png").unwrap()).is_ok());
        assert!(stores.get_store(&Url::parse("file:///tmp").unwrap()).is_ok());
        let e = stores.get_store(&Url::parse("ftp://host/x").unwrap()).unwrap_err().to_string();
        assert!(e.contains("not ftp://"), "{e}");
    }

    #[test]
    fn urls_are_told_from_local_paths() {
        assert!(is_url("s3://b/k.png") && is_url("https://h/p") && is_url("gs://b/o"));
        assert!(!is_url("images/a.png") && !is_url("/abs/a.png") && !is_url("file:///a.png"));
        assert!(!is_url("C:/x") && !is_url("a://"), "not a scheme://authority URL");
    }
}
