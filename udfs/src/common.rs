//! Pieces every vista function shares: argument lists with names and coercion, reading
//! Arrow columns of any string/binary flavour, and the per-row error policy (`on_error`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_datafusion_err, plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, Signature, Volatility,
};

/// What an argument accepts; `coerce` turns the caller's types into the type the code reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arg {
    /// Encoded image bytes: Binary, LargeBinary, BinaryView, or a Hugging Face image
    /// `struct<bytes, path>` (see [`is_image_struct`]); kept as given.
    Image,
    /// Utf8, LargeUtf8 or Utf8View (kept as given).
    Text,
    /// Any integer, coerced to Int64.
    Int,
    /// Any number, coerced to Float64.
    Float,
    /// Boolean.
    Bool,
    /// Anything; the function checks it itself.
    Any,
}

/// A function's parameter list: names (for `f(x, n => 32)`), kinds, and how many are required.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Params {
    pub names: Vec<&'static str>,
    pub kinds: Vec<Arg>,
    pub required: usize,
}

impl Params {
    pub fn new(required: usize, params: &[(&'static str, Arg)]) -> Self {
        Params {
            names: params.iter().map(|p| p.0).collect(),
            kinds: params.iter().map(|p| p.1).collect(),
            required,
        }
    }

    /// Where the `on_error` argument sits: every function that can fail on one row declares it
    /// (last, by convention), and both `OnError::is_report` and `OnError::resolve` take it from
    /// here.
    pub fn on_error(&self) -> usize {
        self.names.iter().position(|n| *n == "on_error").expect("the function declares on_error")
    }

    /// The result field of function `func` returning `value`: `struct<value, error>` instead when
    /// the call's constant `on_error` argument asks for `report`.
    pub fn result_field(&self, func: &str, value: DataType, args: &ReturnFieldArgs) -> FieldRef {
        let report = OnError::is_report(args.scalar_arguments, self.on_error());
        Arc::new(Field::new(func, result_type(value, report), true))
    }

    /// The session's `vista.*` settings and the call's `on_error` policy (its argument, else
    /// `SET vista.on_error`): what every row-wise function reads first.
    pub fn policy(
        &self,
        func: &str,
        args: &ScalarFunctionArgs,
    ) -> Result<(crate::config::VistaConfig, OnError)> {
        let config = crate::config::VistaConfig::from_options(&args.config_options);
        let policy = OnError::resolve(func, &args.args, self.on_error(), &config)?;
        Ok((config, policy))
    }

    /// A user-defined signature with these parameter names (optional parameters trail).
    pub fn signature(&self, volatility: Volatility) -> Signature {
        Signature::user_defined(volatility)
            .with_parameter_names(self.names.clone())
            .expect("user-defined signatures accept parameter names")
    }

    /// Checks arity and kinds, naming the function and the argument on a mismatch.
    pub fn coerce(&self, func: &str, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.len() < self.required || arg_types.len() > self.names.len() {
            return plan_err!(
                "{func}: expected {} to {} arguments ({}), got {}",
                self.required,
                self.names.len(),
                self.names.join(", "),
                arg_types.len()
            );
        }
        arg_types
            .iter()
            .zip(self.kinds.iter().zip(&self.names))
            .map(|(dt, (kind, name))| coerce_one(func, name, *kind, dt))
            .collect()
    }
}

fn coerce_one(func: &str, name: &str, kind: Arg, dt: &DataType) -> Result<DataType> {
    use DataType::*;
    let ok = match (kind, dt) {
        (_, Null) => Some(match kind {
            Arg::Image => Binary,
            Arg::Text => Utf8,
            Arg::Int => Int64,
            Arg::Float => Float64,
            Arg::Bool => Boolean,
            Arg::Any => Null,
        }),
        (Arg::Image, Binary | LargeBinary | BinaryView) => Some(dt.clone()),
        (Arg::Image, Struct(fields)) if is_image_struct(fields) => Some(dt.clone()),
        (Arg::Text, Utf8 | LargeUtf8 | Utf8View) => Some(dt.clone()),
        (Arg::Int, d) if d.is_integer() => Some(Int64),
        (Arg::Float, d) if d.is_numeric() => Some(Float64),
        (Arg::Bool, Boolean) => Some(Boolean),
        (Arg::Any, _) => Some(dt.clone()),
        _ => None,
    };
    match ok {
        Some(t) => Ok(t),
        None => plan_err!("{func}: argument `{name}` must be {}, got {dt}", kind.describe()),
    }
}

impl Arg {
    fn describe(self) -> &'static str {
        match self {
            Arg::Image => "image bytes (binary) or an image struct<bytes, path>",
            Arg::Text => "text",
            Arg::Int => "an integer",
            Arg::Float => "a number",
            Arg::Bool => "a boolean",
            Arg::Any => "any value",
        }
    }
}

/// The value of a constant argument (options such as `n => 32`); `None` when absent or NULL.
pub fn const_arg(args: &[ColumnarValue], idx: usize) -> Option<&ScalarValue> {
    match args.get(idx) {
        Some(ColumnarValue::Scalar(s)) if !s.is_null() => Some(s),
        _ => None,
    }
}

/// A constant text option, e.g. `method => 'uniform'`. Errors when the argument is a column.
pub fn const_str(
    func: &str,
    name: &str,
    args: &[ColumnarValue],
    idx: usize,
) -> Result<Option<String>> {
    match args.get(idx) {
        None => Ok(None),
        Some(ColumnarValue::Scalar(s)) if s.is_null() => Ok(None),
        Some(ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(v))
            | ScalarValue::LargeUtf8(Some(v))
            | ScalarValue::Utf8View(Some(v)),
        )) => Ok(Some(v.clone())),
        Some(other) => Err(exec_datafusion_err!(
            "{func}: option `{name}` must be a constant string, got {}",
            describe(other)
        )),
    }
}

/// A constant integer option, e.g. `n => 32`.
pub fn const_i64(
    func: &str,
    name: &str,
    args: &[ColumnarValue],
    idx: usize,
) -> Result<Option<i64>> {
    match args.get(idx) {
        None => Ok(None),
        Some(ColumnarValue::Scalar(s)) if s.is_null() => Ok(None),
        Some(ColumnarValue::Scalar(s)) => match s.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(v)) => Ok(Some(v)),
            _ => Err(exec_datafusion_err!("{func}: option `{name}` must be an integer")),
        },
        Some(other) => Err(exec_datafusion_err!(
            "{func}: option `{name}` must be a constant integer, got {}",
            describe(other)
        )),
    }
}

fn describe(v: &ColumnarValue) -> String {
    match v {
        ColumnarValue::Scalar(s) => format!("{s:?}"),
        ColumnarValue::Array(a) => format!("a column of {}", a.data_type()),
    }
}

/// Every argument as an array of `rows` rows (constants are repeated).
pub fn to_arrays(args: &[ColumnarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    args.iter().map(|a| a.to_array(rows)).collect()
}

/// Row values of a Binary/LargeBinary/BinaryView (or Utf8 flavour) column as byte slices.
pub fn bytes_values<'a>(func: &str, arr: &'a ArrayRef) -> Result<Vec<Option<&'a [u8]>>> {
    Ok(match arr.data_type() {
        DataType::Binary => arr.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => arr.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => arr.as_binary_view().iter().collect(),
        DataType::Utf8 => arr.as_string::<i32>().iter().map(|s| s.map(str::as_bytes)).collect(),
        DataType::LargeUtf8 => {
            arr.as_string::<i64>().iter().map(|s| s.map(str::as_bytes)).collect()
        }
        DataType::Utf8View => arr.as_string_view().iter().map(|s| s.map(str::as_bytes)).collect(),
        DataType::Null => vec![None; arr.len()],
        other => return Err(exec_datafusion_err!("{func}: expected binary data, got {other}")),
    })
}

/// Whether a struct is an image as Hugging Face `datasets` stores one: a binary-like `bytes`
/// field and optionally a text `path` field, nothing else. (A mask's `struct<size, counts>` is
/// not one.)
pub fn is_image_struct(fields: &Fields) -> bool {
    use DataType::*;
    let bytes = fields.find("bytes").map(|(_, f)| f.data_type());
    let path = fields.find("path").map(|(_, f)| f.data_type());
    matches!(bytes, Some(Binary | LargeBinary | BinaryView | Null))
        && matches!(path, None | Some(Utf8 | LargeUtf8 | Utf8View | Null))
        && fields.len() == 1 + usize::from(path.is_some())
}

/// One row of an image column: `Ok(None)` for NULL, `Err` for a row that has no bytes to read.
pub type ImageRow<'a> = std::result::Result<Option<&'a [u8]>, String>;

/// Row values of an image column: binary, or a Hugging Face `struct<bytes, path>` read through
/// its `bytes` field. A struct row with only a path is an error (the function reads bytes, not
/// files); a NULL struct, or one with neither field set, is NULL.
pub fn image_values<'a>(func: &str, arr: &'a ArrayRef) -> Result<Vec<ImageRow<'a>>> {
    let DataType::Struct(fields) = arr.data_type() else {
        return Ok(bytes_values(func, arr)?.into_iter().map(Ok).collect());
    };
    if !is_image_struct(fields) {
        return Err(exec_datafusion_err!(
            "{func}: expected image bytes or struct<bytes, path>, got {}",
            arr.data_type()
        ));
    }
    let st = arr.as_struct();
    let bytes = bytes_values(func, st.column_by_name("bytes").expect("checked above"))?;
    let paths = match st.column_by_name("path") {
        Some(p) => str_values(func, p)?,
        None => vec![None; st.len()],
    };
    Ok((0..st.len()).map(|i| struct_row(st.is_null(i), bytes[i], paths[i])).collect())
}

fn struct_row<'a>(null: bool, bytes: Option<&'a [u8]>, path: Option<&str>) -> ImageRow<'a> {
    match (null, bytes, path) {
        (true, _, _) | (false, None, None) => Ok(None),
        (false, Some(b), _) => Ok(Some(b)),
        (false, None, Some(p)) => Err(format!(
            "the image struct has only a path ('{p}') and no bytes; read the file with \
             read_bytes(image['path'])"
        )),
    }
}

/// Row values of a Utf8/LargeUtf8/Utf8View column.
pub fn str_values<'a>(func: &str, arr: &'a ArrayRef) -> Result<Vec<Option<&'a str>>> {
    Ok(match arr.data_type() {
        DataType::Utf8 => arr.as_string::<i32>().iter().collect(),
        DataType::LargeUtf8 => arr.as_string::<i64>().iter().collect(),
        DataType::Utf8View => arr.as_string_view().iter().collect(),
        DataType::Null => vec![None; arr.len()],
        other => return Err(exec_datafusion_err!("{func}: expected text, got {other}")),
    })
}

/// The per-row error policy of a function call.
///
/// `fail` stops the query with the first error, naming the function and row; `null` turns the
/// row's result into NULL; `report` returns `struct<value, error>` so the reason is kept next
/// to the NULL. `report` must be spelled in the call (`f(x, on_error => 'report')`) because it
/// changes the result type; `SET vista.on_error = 'null'` changes the default of every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OnError {
    Fail,
    Null,
    Report,
}

impl OnError {
    pub fn parse(func: &str, s: &str) -> Result<OnError> {
        match s.to_ascii_lowercase().as_str() {
            "fail" => Ok(OnError::Fail),
            "null" => Ok(OnError::Null),
            "report" => Ok(OnError::Report),
            other => Err(exec_datafusion_err!(
                "{func}: on_error must be 'fail', 'null' or 'report', got '{other}'"
            )),
        }
    }

    /// The policy for one call: the explicit `on_error` argument, else the session setting.
    pub fn resolve(
        func: &str,
        args: &[ColumnarValue],
        idx: usize,
        config: &crate::config::VistaConfig,
    ) -> Result<OnError> {
        match const_str(func, "on_error", args, idx)? {
            Some(s) => OnError::parse(func, &s),
            None => match OnError::parse(func, &config.on_error)? {
                OnError::Report => Ok(OnError::Null),
                p => Ok(p),
            },
        }
    }

    /// Whether the planner-visible constant `on_error` argument asks for `report`.
    pub fn is_report(scalar_arguments: &[Option<&ScalarValue>], idx: usize) -> bool {
        matches!(
            scalar_arguments.get(idx).copied().flatten(),
            Some(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)))
                if s.eq_ignore_ascii_case("report")
        )
    }
}

/// The result type of a function with an `on_error` argument: the value type, or
/// `struct<value, error>` under `report`.
pub fn result_type(value: DataType, report: bool) -> DataType {
    if report {
        DataType::Struct(report_fields(value))
    } else {
        value
    }
}

fn report_fields(value: DataType) -> Fields {
    Fields::from(vec![Field::new("value", value, true), Field::new("error", DataType::Utf8, true)])
}

/// An error naming the function and the row: 1-based within the batch the function received,
/// which is the row of the input only when the input is one batch. (DataFusion hands a function
/// batches without their position in the input; `vista run` names the chunk's sample ids.)
pub fn row_error(func: &str, row: usize, msg: impl std::fmt::Display) -> DataFusionError {
    exec_datafusion_err!("{func}: row {} of its batch: {msg}", row + 1)
}

/// Applies the policy to a computed column whose failed rows are NULL and described in `errors`.
pub fn finish(
    func: &str,
    policy: OnError,
    values: ArrayRef,
    errors: Vec<Option<String>>,
) -> Result<ColumnarValue> {
    match policy {
        OnError::Fail => {
            if let Some((row, msg)) =
                errors.iter().enumerate().find_map(|(i, e)| e.as_ref().map(|m| (i, m)))
            {
                return Err(row_error(func, row, msg));
            }
            Ok(ColumnarValue::Array(values))
        }
        OnError::Null => Ok(ColumnarValue::Array(values)),
        OnError::Report => {
            let fields = report_fields(values.data_type().clone());
            let errors: ArrayRef = Arc::new(StringArray::from(errors));
            Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
                fields,
                vec![values, errors],
                None,
            )?)))
        }
    }
}

/// Runs `f` on every row, collecting successes into `push` and failures into an error list.
/// NULL inputs (`None` from `input`) give NULL outputs without an error.
pub fn map_rows<I, T>(
    inputs: I,
    mut f: impl FnMut(usize, I::Item) -> std::result::Result<Option<T>, String>,
) -> (Vec<Option<T>>, Vec<Option<String>>)
where
    I: IntoIterator,
{
    let mut values = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in inputs.into_iter().enumerate() {
        match f(i, item) {
            Ok(v) => {
                values.push(v);
                errors.push(None);
            }
            Err(e) => {
                values.push(None);
                errors.push(Some(e));
            }
        }
    }
    (values, errors)
}

/// Whether any argument is an array; otherwise the result can stay a scalar.
pub fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// Turns a one-row array result back into a scalar when every input was a scalar.
pub fn shrink(result: ColumnarValue, scalar_inputs: bool) -> Result<ColumnarValue> {
    match (result, scalar_inputs) {
        (ColumnarValue::Array(a), true) if a.len() == 1 => {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&a, 0)?))
        }
        (r, _) => Ok(r),
    }
}
