//! Running async work from Python: on one tokio runtime for the process, with the GIL released,
//! and cancelled when the user presses Ctrl-C.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a waiting call looks for a pending signal (Ctrl-C).
const SIGNAL_POLL: Duration = Duration::from_millis(50);

fn runtime() -> PyResult<&'static Runtime> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    let rt = RUNTIME.get_or_init(|| {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.enable_all().thread_name("vista").build().map_err(|e| e.to_string())
    });
    rt.as_ref()
        .map_err(|e| crate::VistaError::new_err(format!("cannot start the tokio runtime: {e}")))
}

/// Runs `work` to its end without holding the GIL. A signal handler that raises (Python's
/// `KeyboardInterrupt` on SIGINT) aborts the work, which drops the query and stops its
/// partitions, and the exception propagates.
pub fn wait<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let rt = runtime()?;
    let mut task = rt.spawn(work);
    loop {
        // The timer is made inside `block_on`: it needs the runtime's context.
        let step =
            py.detach(|| rt.block_on(async { tokio::time::timeout(SIGNAL_POLL, &mut task).await }));
        match step {
            Ok(Ok(result)) => return result.map_err(crate::error),
            Ok(Err(join)) => {
                return Err(crate::VistaError::new_err(format!("the query's task failed: {join}")))
            }
            Err(_elapsed) => {
                if let Err(interrupted) = py.check_signals() {
                    task.abort();
                    return Err(interrupted);
                }
            }
        }
    }
}
