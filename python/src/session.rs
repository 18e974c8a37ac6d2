//! `vista.Session`: vista's own DataFusion session (every function, `vista_generate` with this
//! process's model, `vista.*` settings, vista's atomic `COPY`, the job runner) with Arrow in
//! and out.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vista::session::{self, SessionOptions};

use crate::arrow_stream::{self, ArrowResult};
use crate::wait::wait;

#[pyclass(module = "vista._vista", frozen)]
pub struct Session {
    ctx: SessionContext,
}

#[pymethods]
impl Session {
    /// `settings`: `vista.*` or `datafusion.*` settings as `(key, value)` pairs (a key without a
    /// dot means `vista.<key>`); `target_partitions`: partitions per scan (default: the number
    /// of cores); `memory_limit`: bytes operators may hold before they spill.
    #[new]
    #[pyo3(signature = (settings=Vec::new(), target_partitions=None, memory_limit=None))]
    fn new(
        settings: Vec<(String, String)>,
        target_partitions: Option<usize>,
        memory_limit: Option<usize>,
    ) -> PyResult<Self> {
        let opts = SessionOptions { settings, target_partitions, memory_limit };
        let ctx = session::new_context(&opts).map_err(crate::error)?;
        Ok(Session { ctx })
    }

    /// Runs every statement of `query`; returns the last query's result (an Arrow stream for
    /// `pyarrow.table`), or None when `query` holds no query (only `SET`, `CREATE`, `COPY`).
    fn sql(&self, py: Python<'_>, query: String) -> PyResult<Option<ArrowResult>> {
        let ctx = self.ctx.clone();
        let result = wait(py, async move { vista::engine::run_sql_batches(&ctx, &query).await })?;
        Ok(result.map(|(schema, batches)| ArrowResult::new(schema, batches)))
    }

    /// Registers a file or directory (Parquet, CSV, JSON, Arrow; a URL) as table `name`, as
    /// `vista sql --table name=path` does.
    fn register_path(&self, py: Python<'_>, name: String, path: String) -> PyResult<()> {
        let ctx = self.ctx.clone();
        wait(py, async move { vista::tables::register(&ctx, &name, &path).await })
    }

    /// Registers anything that exports an Arrow stream (`__arrow_c_stream__`: a pyarrow Table or
    /// RecordBatchReader, a polars DataFrame, ...) as in-memory table `name`, replacing a table
    /// of that name.
    fn register_arrow(&self, name: String, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let (schema, batches) = arrow_stream::read(data, &format!("table '{name}'"))?;
        let table = MemTable::try_new(schema, vec![batches])
            .map_err(|e| crate::error(vista::engine::dferr(e)))?;
        self.ctx
            .deregister_table(name.as_str())
            .map_err(|e| crate::error(vista::engine::dferr(e)))?;
        self.ctx
            .register_table(name.as_str(), Arc::new(table))
            .map_err(|e| crate::error(vista::engine::dferr(e)))?;
        Ok(())
    }

    /// Drops table `name` (nothing happens when there is none).
    fn deregister(&self, name: &str) -> PyResult<()> {
        self.ctx.deregister_table(name).map_err(|e| crate::error(vista::engine::dferr(e)))?;
        Ok(())
    }

    /// Names of the tables registered in the default schema, sorted.
    fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .ctx
            .catalog("datafusion")
            .and_then(|c| c.schema("public"))
            .map(|s| s.table_names())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Runs (or resumes) an eval job file over a samples table, as `vista run` does; returns
    /// the job's summary as a dict.
    #[pyo3(signature = (job_file, samples, out, resume=true, chunk_rows=256, drop_unreadable=false))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments, one each
    fn run<'py>(
        &self,
        py: Python<'py>,
        job_file: PathBuf,
        samples: String,
        out: PathBuf,
        resume: bool,
        chunk_rows: usize,
        drop_unreadable: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let sql = std::fs::read_to_string(&job_file).map_err(|e| {
            crate::error(anyhow::anyhow!("cannot read job file '{}': {e}", job_file.display()))
        })?;
        let mut opts = vista::jobs::JobOptions::new(samples, out);
        opts.resume = resume;
        opts.chunk_rows = chunk_rows;
        opts.drop_unreadable = drop_unreadable;
        opts.progress = false;
        let ctx = self.ctx.clone();
        let s = wait(py, async move {
            let loader = session::model_loader();
            vista::jobs::run_job(&ctx, &sql, Some(&loader), &opts).await
        })?;
        let d = PyDict::new(py);
        d.set_item("fingerprint", s.fingerprint)?;
        d.set_item("total", s.total)?;
        d.set_item("resumed", s.resumed)?;
        d.set_item("computed", s.computed)?;
        d.set_item("failed", s.failed)?;
        d.set_item("predictions", s.predictions)?;
        d.set_item("scores", s.scores)?;
        Ok(d)
    }
}
