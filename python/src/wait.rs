//! Running async work from Python: on one tokio runtime for the process, with the GIL released,
//! and cancelled when the user presses Ctrl-C.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Mutex, OnceLock, PoisonError};
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
///
/// The wait for the result is the operating system's (a channel with a timeout), not a tokio
/// timer: a timer fires only when a runtime worker turns the time driver, and a query can keep
/// every worker busy for as long as it runs, so Ctrl-C would wait for the query it should stop.
pub fn wait<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let rt = runtime()?;
    let (done, result) = mpsc::sync_channel(1);
    // Only this thread receives; the mutex makes the receiver shareable with `detach`.
    let result = Mutex::new(result);
    let task = rt.spawn(async move {
        // The receiver is gone only when the caller was interrupted and returned.
        let _ = done.send(work.await);
    });
    loop {
        let next = py.detach(|| {
            result.lock().unwrap_or_else(PoisonError::into_inner).recv_timeout(SIGNAL_POLL)
        });
        match next {
            Ok(result) => return result.map_err(crate::error),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(interrupted) = py.check_signals() {
                    task.abort();
                    return Err(interrupted);
                }
            }
            // The task ended without a result: it panicked.
            Err(RecvTimeoutError::Disconnected) => {
                let failure = match py.detach(|| rt.block_on(task)) {
                    Err(join) => join.to_string(),
                    Ok(()) => "it ended without a result".to_string(),
                };
                return Err(crate::VistaError::new_err(format!(
                    "the query's task failed: {failure}"
                )));
            }
        }
    }
}
