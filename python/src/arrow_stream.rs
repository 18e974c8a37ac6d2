//! Tables in and out through the Arrow PyCapsule interface (`__arrow_c_stream__`): what
//! pyarrow, pandas and polars exchange tables with, zero-copy. pyo3 stays out of the arrow
//! crates, so an interpreter change rebuilds only this crate.

use arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

const STREAM: &std::ffi::CStr = c"arrow_array_stream";

/// A query result waiting to be read once through `__arrow_c_stream__` (`pyarrow.table(r)`,
/// `polars.from_arrow(r)`).
#[pyclass(module = "vista._vista")]
pub struct ArrowResult {
    taken: Option<(SchemaRef, Vec<RecordBatch>)>,
}

impl ArrowResult {
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        ArrowResult { taken: Some((schema, batches)) }
    }
}

#[pymethods]
impl ArrowResult {
    /// The rows as an Arrow C stream capsule. `requested_schema` is not supported (None).
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &mut self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        if requested_schema.is_some_and(|s| !s.is_none()) {
            return Err(pyo3::exceptions::PyNotImplementedError::new_err(
                "a vista result is exported in its own schema (requested_schema must be None)",
            ));
        }
        let (schema, batches) = self.taken.take().ok_or_else(|| {
            crate::VistaError::new_err(
                "this result was read already (an Arrow stream is read once)",
            )
        })?;
        let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        // The consumer moves the stream out (leaving `release` null); one never consumed is
        // released when the capsule is dropped.
        PyCapsule::new_with_value(py, stream, STREAM)
    }
}

/// Every batch of an object exporting `__arrow_c_stream__`, with its schema.
pub fn read(data: &Bound<'_, PyAny>, what: &str) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    let capsule = data.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "{what}: __arrow_c_stream__ did not return a capsule"
        ))
    })?;
    let ptr = capsule.pointer_checked(Some(STREAM))?;
    // SAFETY: a capsule named `arrow_array_stream` holds an `ArrowArrayStream` (the PyCapsule
    // interface); `from_raw` moves it out and marks the capsule's copy released.
    let stream = unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr().cast()) };
    let reader = ArrowArrayStreamReader::try_new(stream)
        .map_err(|e| crate::VistaError::new_err(format!("{what}: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| crate::VistaError::new_err(format!("{what}: {e}")))?;
    Ok((schema, batches))
}
