//! `vista._vista`: the Rust half of the `vista` Python package. Vista's SQL functions travel to
//! DataFusion's own Python `SessionContext` through datafusion-ffi capsules (`functions`);
//! vista's session (every function, `vista_generate`, the job runner) runs queries here and
//! hands results over as Arrow (`session`). The Python half (`vista/`) holds the thin wrappers.

mod arrow_stream;
mod functions;
mod session;
mod wait;

use pyo3::prelude::*;

pyo3::create_exception!(
    _vista,
    VistaError,
    pyo3::exceptions::PyException,
    "A vista error: the same one-line message the `vista` command prints."
);

/// An error chain as one line, as the `vista` command prints it.
pub(crate) fn error(e: anyhow::Error) -> PyErr {
    VistaError::new_err(vista::engine::one_line(&format!("{e:#}")))
}

#[pymodule]
fn _vista(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VistaError", m.py().get_type::<VistaError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<functions::ScalarFunction>()?;
    m.add_class::<functions::AggregateFunction>()?;
    m.add_class::<session::Session>()?;
    m.add_class::<arrow_stream::ArrowResult>()?;
    m.add_function(wrap_pyfunction!(functions::scalar_functions, m)?)?;
    m.add_function(wrap_pyfunction!(functions::aggregate_functions, m)?)?;
    m.add_function(wrap_pyfunction!(functions::documentation, m)?)?;
    Ok(())
}
