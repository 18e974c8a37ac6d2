//! Vista's scalar and aggregate functions as objects DataFusion's Python package accepts:
//! `datafusion.udf(f)` / `datafusion.udaf(f)` call `__datafusion_scalar_udf__` /
//! `__datafusion_aggregate_udf__` and read the datafusion-ffi struct from the capsule.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion_ffi::udaf::FFI_AggregateUDF;
use datafusion_ffi::udf::FFI_ScalarUDF;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

/// One vista scalar function, ready for `datafusion.udf(...)`.
#[pyclass(module = "vista._vista", frozen)]
pub struct ScalarFunction {
    udf: Arc<ScalarUDF>,
}

#[pymethods]
impl ScalarFunction {
    #[getter]
    fn name(&self) -> &str {
        self.udf.name()
    }

    /// The capsule DataFusion's Python package reads (`session` is accepted and unused: a
    /// vista function needs nothing from the host session).
    #[pyo3(signature = (session=None))]
    fn __datafusion_scalar_udf__<'py>(
        &self,
        py: Python<'py>,
        session: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = session;
        let udf = Arc::new(ScalarUDF::new_from_impl(ConstantsAsScalars(self.udf.clone())));
        PyCapsule::new_with_value(py, FFI_ScalarUDF::from(udf), c"datafusion_scalar_udf")
    }

    fn __repr__(&self) -> String {
        format!("vista.ScalarFunction({})", self.udf.name())
    }
}

/// A vista scalar function as seen through datafusion-ffi, which hands every argument over as
/// an array: a column holding one value on every row is given back to the function as that
/// constant, so that options (`'pre2021'`, `32`) read as constants do in vista's own session.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConstantsAsScalars(Arc<ScalarUDF>);

impl ScalarUDFImpl for ConstantsAsScalars {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn aliases(&self) -> &[String] {
        self.0.aliases()
    }

    fn signature(&self) -> &Signature {
        self.0.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.0.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.0.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.0.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.0.documentation()
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        for arg in &mut args.args {
            if let ColumnarValue::Array(a) = arg {
                if is_constant(a) {
                    *arg = ColumnarValue::Scalar(ScalarValue::try_from_array(a, 0)?);
                }
            }
        }
        // The function may answer constants with a constant; the caller expects `rows` values.
        let out = self.0.invoke_with_args(args)?;
        Ok(ColumnarValue::Array(out.into_array(rows)?))
    }
}

/// Whether every row of `a` holds the value of its first row (NULLs compare equal: arrow's
/// logical equality), and there is a first row.
fn is_constant(a: &datafusion::arrow::array::ArrayRef) -> bool {
    use datafusion::arrow::array::Array;
    if a.is_empty() {
        return false;
    }
    let first = a.slice(0, 1).to_data();
    (1..a.len()).all(|i| a.slice(i, 1).to_data() == first)
}

/// One vista aggregate function, ready for `datafusion.udaf(...)`.
#[pyclass(module = "vista._vista", frozen)]
pub struct AggregateFunction {
    udaf: Arc<AggregateUDF>,
}

#[pymethods]
impl AggregateFunction {
    #[getter]
    fn name(&self) -> &str {
        self.udaf.name()
    }

    /// The capsule DataFusion's Python package reads (`session` as for scalar functions).
    #[pyo3(signature = (session=None))]
    fn __datafusion_aggregate_udf__<'py>(
        &self,
        py: Python<'py>,
        session: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = session;
        let ffi = FFI_AggregateUDF::from(self.udaf.clone());
        PyCapsule::new_with_value(py, ffi, c"datafusion_aggregate_udf")
    }

    fn __repr__(&self) -> String {
        format!("vista.AggregateFunction({})", self.udaf.name())
    }
}

/// Every vista scalar function that runs in any DataFusion session. `vista_generate` is not
/// among them: it is an async function holding this process's model, which only vista's own
/// session (`vista.Session`) plans.
#[pyfunction]
pub fn scalar_functions() -> Vec<ScalarFunction> {
    vista_udfs::scalar_functions()
        .into_iter()
        .map(|f| ScalarFunction { udf: Arc::new(f) })
        .collect()
}

/// Every vista aggregate function.
#[pyfunction]
pub fn aggregate_functions() -> Vec<AggregateFunction> {
    vista_udfs::aggregate_functions()
        .into_iter()
        .map(|f| AggregateFunction { udaf: Arc::new(f) })
        .collect()
}

/// The documentation of every vista function (what `vista functions` prints): one dict per
/// function with `name`, `kind`, `section`, `syntax`, `description`, `arguments` (a list of
/// `(name, text)`) and `example` (SQL and its printed result, or None).
#[pyfunction]
pub fn documentation(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    vista::functions::list()
        .into_iter()
        .map(|f| {
            let d = PyDict::new(py);
            d.set_item("name", f.name)?;
            d.set_item("kind", f.kind)?;
            d.set_item("section", f.section)?;
            d.set_item("syntax", f.syntax)?;
            d.set_item("description", f.description)?;
            d.set_item("arguments", f.arguments)?;
            d.set_item("example", f.example)?;
            Ok(d)
        })
        .collect()
}
