//! The same SQL on an Apache DataFusion Ballista 55 cluster (docs/cluster.md): a scheduler and
//! executors started from the `vista` binary with every vista function, and a client context
//! for `vista sql --cluster df://host:port`.
//!
//! What has to agree across the three processes:
//! - functions: Ballista sends scalar and aggregate functions by name (its codecs carry no
//!   function state), so the scheduler's sessions ([`scheduler_session`]), the executors'
//!   registry ([`executor_registry`]) and the client ([`remote_context`]) each register every
//!   vista function and `vista_generate` with their own process's lazily loaded model;
//! - settings: the client sends every configuration entry of its session, `vista.*` included;
//!   the scheduler and the executors only keep the entries their own configuration knows, so
//!   both build theirs with the `vista` extension ([`cluster_config`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use ballista::prelude::SessionContextExt;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, SessionConfigExt,
};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::{FunctionRegistry, SessionState, SessionStateBuilder};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::session::{self, SessionOptions};

/// Default scheduler port (Ballista's).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// Every vista scalar function, `vista_generate` (this process's model loader) included.
fn vista_scalars() -> Vec<Arc<ScalarUDF>> {
    let mut v: Vec<Arc<ScalarUDF>> =
        vista_udfs::scalar_functions().into_iter().map(Arc::new).collect();
    v.push(Arc::new(vista_udfs::generate::vista_generate_udf(session::model_loader())));
    v
}

fn vista_aggregates() -> Vec<Arc<AggregateUDF>> {
    vista_udfs::aggregate_functions().into_iter().map(Arc::new).collect()
}

/// The configuration every cluster process starts from: Ballista's, plus the `vista.*`
/// extension and vista's optimizer choices, so that `vista.*` entries sent by a client are
/// accepted rather than dropped (Ballista ignores unknown keys with a log line).
pub fn cluster_config() -> SessionConfig {
    session::session_config(SessionConfig::new_with_ballista(), &SessionOptions::default())
        .expect("default settings are valid")
}

/// The scheduler's session for a client's configuration: Ballista's default session, every
/// vista function on top (the scheduler decodes the client's logical plan by function name and
/// plans it physically, async `vista_generate` included).
pub fn scheduler_session(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    // Planning lists the files of `s3://` and other remote tables: the same stores as vista.
    let state = default_session_builder(config)?;
    let mut state = SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(crate::object_stores::runtime_env(None)?)
        .build();
    for f in vista_scalars() {
        state.register_udf(f)?;
    }
    for f in vista_aggregates() {
        state.register_udaf(f)?;
    }
    Ok(state)
}

/// The executors' function registry: Ballista's (DataFusion's scalar, nested, aggregate and
/// window functions) and every vista function; task plans resolve functions by name here.
///
/// An executor is shared by every client of its scheduler, and clients choose their own
/// settings: its `read_bytes` is confined to `root`, which no setting can widen.
pub fn executor_registry(root: &Path) -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in ballista_scalar_functions().into_iter().chain(vista_scalars()) {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    let confined = ScalarUDF::new_from_impl(vista_udfs::image::ReadBytesFunc::with_root(root));
    registry.scalar_functions.insert(confined.name().to_string(), Arc::new(confined));
    for f in ballista_aggregate_functions().into_iter().chain(vista_aggregates()) {
        registry.aggregate_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// A client context whose queries run on the scheduler at `url` (`df://host:port`), with
/// vista's settings (`opts`) and functions. Ballista's upgrade of a session replaces its
/// function lists with Ballista's own, so ours are registered again afterwards.
pub async fn remote_context(url: &str, opts: &SessionOptions) -> Result<SessionContext> {
    let config = session::session_config(SessionConfig::new_with_ballista(), opts)?;
    let runtime = crate::object_stores::runtime_env(None)?;
    let state = session::state_builder(config).with_runtime_env(runtime).build();
    let ctx = SessionContext::remote_with_state(url, state)
        .await
        .map_err(|e| anyhow!("cannot use scheduler '{url}': {}", e.strip_backtrace()))?
        .enable_url_table();
    session::register_functions(&ctx)?;
    Ok(ctx)
}

/// `vista cluster scheduler` settings.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub bind: SocketAddr,
    /// Host name executors and clients reach this scheduler by (default: the bind address,
    /// or `localhost` for an unspecified one).
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor counts as lost and its tasks are
    /// scheduled again elsewhere.
    pub executor_timeout_s: u64,
}

/// Runs a scheduler until the process is stopped.
pub async fn run_scheduler(opts: &SchedulerOptions) -> Result<()> {
    let external_host = opts.external_host.clone().unwrap_or_else(|| {
        let ip = opts.bind.ip();
        if ip.is_unspecified() {
            "localhost".to_string()
        } else {
            ip.to_string()
        }
    });
    let config = SchedulerConfig {
        bind_host: opts.bind.ip().to_string(),
        bind_port: opts.bind.port(),
        external_host,
        executor_timeout_seconds: opts.executor_timeout_s,
        expire_dead_executor_interval_seconds: (opts.executor_timeout_s / 4).clamp(1, 15),
        no_executors_grace_period_seconds: opts.executor_timeout_s,
        ..SchedulerConfig::default()
    }
    .with_override_config_producer(Arc::new(cluster_config))
    .with_override_session_builder(Arc::new(scheduler_session));
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(ballista_err)?;
    eprintln!("vista scheduler listening on {}", opts.bind);
    start_server(cluster, opts.bind, Arc::new(config)).await.map_err(ballista_err)
}

/// `vista cluster executor` settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Scheduler `host:port`.
    pub scheduler: String,
    /// Address of the executor's Arrow Flight service (shuffle data, results).
    pub bind: SocketAddr,
    /// Port of its gRPC service (task launches); default: the Flight port + 1.
    pub grpc_port: Option<u16>,
    /// Host name the scheduler and other executors reach it by (default: the address the
    /// scheduler sees its connection come from).
    pub external_host: Option<String>,
    /// Tasks run at once (Ballista's vcores).
    pub concurrent_tasks: usize,
    /// Shuffle files; default a fresh directory under the system temp dir, removed on exit.
    pub work_dir: Option<PathBuf>,
    pub heartbeat_interval_s: u64,
    /// The directory `read_bytes` is confined to on this executor.
    pub root: PathBuf,
}

/// Runs an executor until the process is stopped (SIGTERM, Ctrl-C or the scheduler).
pub async fn run_executor(opts: &ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) = split_host_port(&opts.scheduler)?;
    let (work_dir, temporary) = match &opts.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "vista-executor-{}-{}",
                opts.bind.port(),
                std::process::id()
            )),
            true,
        ),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create work dir '{}'", work_dir.display()))?;
    let config = ExecutorProcessConfig {
        bind_host: opts.bind.ip().to_string(),
        port: opts.bind.port(),
        grpc_port: opts.grpc_port.unwrap_or(opts.bind.port().wrapping_add(1)),
        external_host: opts.external_host.clone(),
        scheduler_host,
        scheduler_port,
        vcores: opts.concurrent_tasks,
        work_dir: Some(work_dir.to_string_lossy().into_owned()),
        executor_heartbeat_interval_seconds: opts.heartbeat_interval_s,
        override_function_registry: Some(Arc::new(executor_registry(&opts.root))),
        override_config_producer: Some(Arc::new(cluster_config)),
        // Tasks read remote tables through the same stores as vista (Ballista's default
        // runtime knows local files only); spills go to the work directory, as by default.
        override_runtime_producer: Some({
            let spills = work_dir.clone();
            Arc::new(move |_: &SessionConfig| crate::object_stores::runtime_env(Some(&spills)))
        }),
        ..ExecutorProcessConfig::default()
    };
    eprintln!(
        "vista executor on {} (gRPC port {}), {} concurrent tasks, scheduler {}",
        opts.bind, config.grpc_port, opts.concurrent_tasks, opts.scheduler
    );
    let result = start_executor_process(Arc::new(config)).await.map_err(ballista_err);
    if temporary {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    result
}

/// `host:port`, `df://host:port` or `host` (port 50050).
pub fn split_host_port(s: &str) -> Result<(String, u16)> {
    let s = s.trim().trim_start_matches("df://").trim_start_matches("http://");
    let s = s.trim_end_matches('/');
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => {
            let port = p.parse().with_context(|| format!("invalid port in '{s}'"))?;
            Ok((h.trim_matches(|c| c == '[' || c == ']').to_string(), port))
        }
        _ if !s.is_empty() && !s.contains(':') => Ok((s.to_string(), DEFAULT_SCHEDULER_PORT)),
        _ => Err(anyhow!("expected HOST:PORT, got '{s}'")),
    }
}

/// The scheduler URL Ballista's client takes (`df://host:port`).
pub fn scheduler_url(s: &str) -> Result<String> {
    let (h, p) = split_host_port(s)?;
    Ok(format!("df://{h}:{p}"))
}

fn ballista_err(e: ballista_core::error::BallistaError) -> anyhow::Error {
    anyhow!("{}", crate::engine::one_line(&e.to_string()))
}

/// Ballista logs through the `log` crate: `default` and above (or `VISTA_LOG=info|debug|...`)
/// go to stderr, one line each. Servers log warnings; the client nothing (its errors reach the
/// user as vista's one-line error).
pub fn init_logging(default: log::LevelFilter) {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) {
                eprintln!("{} {}: {}", r.level(), r.target(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let level = match std::env::var("VISTA_LOG").ok().as_deref() {
        Some("debug") => log::LevelFilter::Debug,
        Some("info") => log::LevelFilter::Info,
        Some("error") => log::LevelFilter::Error,
        Some("warn") => log::LevelFilter::Warn,
        Some("off") => log::LevelFilter::Off,
        _ => default,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("a:1").unwrap(), ("a".into(), 1));
        assert_eq!(split_host_port("df://a:7").unwrap(), ("a".into(), 7));
        assert_eq!(split_host_port("a").unwrap(), ("a".into(), 50050));
        assert!(split_host_port("a:x").is_err());
        assert_eq!(scheduler_url("h:5").unwrap(), "df://h:5");
    }

    #[test]
    fn every_vista_function_resolves_on_executors() {
        let r = executor_registry(Path::new("."));
        for name in vista_udfs::function_names() {
            assert!(
                r.scalar_functions.contains_key(&name) || r.aggregate_functions.contains_key(&name),
                "{name} missing"
            );
        }
        assert!(r.scalar_functions.contains_key("vista_generate"));
        assert!(r.scalar_functions.contains_key("make_array"));
    }

    #[test]
    fn vista_settings_survive_the_wire() {
        use ballista_core::extension::SessionConfigHelperExt;
        let mut client = cluster_config();
        client.options_mut().set("vista.base_dir", "/data/x").unwrap();
        let props = client.to_key_value_pairs();
        let executor = cluster_config().update_from_key_value_pair(&props);
        let v = vista_udfs::VistaConfig::from_options(executor.options());
        assert_eq!(v.base_dir, "/data/x");
    }
}
