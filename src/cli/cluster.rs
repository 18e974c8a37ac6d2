//! `vista cluster`: a Ballista scheduler or executor with every vista function.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ClusterCommand {
    /// A scheduler: plans queries and hands their tasks to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:50050")]
        bind: std::net::SocketAddr,
        /// Host name executors and clients use for this scheduler.
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat before an executor is lost and its tasks rerun elsewhere.
        #[arg(long, default_value_t = 60)]
        executor_timeout: u64,
    },
    /// An executor: runs tasks (vista functions, the model) for a scheduler.
    Executor {
        /// The scheduler, `host:port`.
        #[arg(long, default_value = "localhost:50050")]
        scheduler: String,
        /// Address of this executor's data (Arrow Flight) service.
        #[arg(long, default_value = "0.0.0.0:50051")]
        bind: std::net::SocketAddr,
        /// Port of its task (gRPC) service; default: the bind port + 1.
        #[arg(long)]
        grpc_port: Option<u16>,
        /// Host name the scheduler and other executors use for this executor (default: the
        /// address its connection to the scheduler comes from).
        #[arg(long)]
        external_host: Option<String>,
        /// Tasks run at once. Default: the CPU cores. A GPU executor: run one per device
        /// (CUDA_VISIBLE_DEVICES) with 1, so tasks queue for the one model worker.
        #[arg(long)]
        concurrent_tasks: Option<usize>,
        /// Directory for shuffle files (default: a temporary one, removed on exit).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler.
        #[arg(long, default_value_t = 10)]
        heartbeat_interval: u64,
        /// The directory `read_bytes` may read from, whatever a client sets (`vista.base_dir`
        /// can narrow it, never leave it). Default: the executor's working directory.
        #[arg(long)]
        root: Option<PathBuf>,
    },
}

#[cfg(not(feature = "cluster"))]
pub(crate) const NO_CLUSTER: &str =
    "this vista binary was built without the `cluster` feature (cargo build --features cluster)";

#[cfg(feature = "cluster")]
pub(crate) async fn cluster(cmd: ClusterCommand) -> Result<ExitCode> {
    use vista::cluster;
    cluster::init_logging(log::LevelFilter::Warn);
    match cmd {
        ClusterCommand::Scheduler { bind, external_host, executor_timeout } => {
            cluster::run_scheduler(&cluster::SchedulerOptions {
                bind,
                external_host,
                executor_timeout_s: executor_timeout,
            })
            .await?
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            grpc_port,
            external_host,
            concurrent_tasks,
            work_dir,
            heartbeat_interval,
            root,
        } => {
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let root = match root {
                Some(r) => r,
                None => std::env::current_dir()?,
            };
            cluster::run_executor(&cluster::ExecutorOptions {
                scheduler,
                bind,
                grpc_port,
                external_host,
                concurrent_tasks: concurrent_tasks.unwrap_or(cores).max(1),
                work_dir,
                heartbeat_interval_s: heartbeat_interval.max(1),
                root,
            })
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "cluster"))]
pub(crate) async fn cluster(_cmd: ClusterCommand) -> Result<ExitCode> {
    anyhow::bail!(NO_CLUSTER)
}
