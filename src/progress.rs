//! Progress on stderr, drawn by indicatif and only on a terminal: for statements that run
//! longer than a couple of seconds, rows read by the scans so far, rows/s and elapsed time
//! ([`Progress`]); for jobs, rows done of the total, rows/s and the time left ([`RowsBar`]).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::physical_plan::ExecutionPlan;

/// Shown only after this long, so quick statements print nothing.
const DELAY: Duration = Duration::from_secs(2);

pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts watching `plan` (already executing); does nothing unless stderr is a terminal.
    pub fn start(plan: Arc<dyn ExecutionPlan>, enabled: bool) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { task: None };
        }
        let task = tokio::spawn(async move {
            let start = Instant::now();
            tokio::time::sleep(DELAY).await;
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            loop {
                let rows = rows_read(&plan);
                let secs = start.elapsed().as_secs_f64();
                let rate = rows as f64 / secs.max(1e-9);
                bar.set_message(format!("{rows} rows read, {rate:.0} rows/s, {secs:.1}s elapsed"));
                bar.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Progress { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            // Clear the line the bar drew.
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K");
            }
        }
    }
}

/// Rows produced so far by the plan's leaves (the scans).
fn rows_read(plan: &Arc<dyn ExecutionPlan>) -> usize {
    if plan.children().is_empty() {
        return plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0);
    }
    plan.children().iter().map(|c| rows_read(c)).sum()
}

/// A job's bar: rows done of `total` (resumed rows count as done), the rate of this run and
/// the time left; redrawn as chunks finish.
pub struct RowsBar(Option<indicatif::ProgressBar>);

impl RowsBar {
    pub fn new(enabled: bool, total: usize, done: usize) -> RowsBar {
        if !enabled || !std::io::stderr().is_terminal() {
            return RowsBar(None);
        }
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::stderr(),
        );
        let style = indicatif::ProgressStyle::with_template(
            "{pos}/{len} rows, {per_sec}, ETA {eta} [{wide_bar}]",
        )
        .expect("a valid template");
        bar.set_style(style);
        // Resumed rows are done before this run starts: they move the bar, not the rate.
        bar.set_position(done as u64);
        bar.reset_eta();
        RowsBar(Some(bar))
    }

    pub fn advance(&self, rows: usize) {
        if let Some(bar) = &self.0 {
            bar.inc(rows as u64);
        }
    }

    /// Clears the bar: the job's summary line follows on stdout.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
