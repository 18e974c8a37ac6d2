//! Calling a function's `invoke_with_args` directly in unit tests, as the planner would.

use std::sync::Arc;

use datafusion::arrow::datatypes::Field;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl};

use crate::config::VistaConfig;

/// Invokes `f` on `args` (`rows` rows), with the return field the planner would compute and
/// the default vista settings.
pub fn invoke(
    f: &dyn ScalarUDFImpl,
    args: Vec<ColumnarValue>,
    rows: usize,
) -> Result<ColumnarValue> {
    let arg_fields: Vec<_> = args
        .iter()
        .enumerate()
        .map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true)))
        .collect();
    let scalars: Vec<Option<&ScalarValue>> = args
        .iter()
        .map(|a| match a {
            ColumnarValue::Scalar(s) => Some(s),
            ColumnarValue::Array(_) => None,
        })
        .collect();
    let return_field = f.return_field_from_args(ReturnFieldArgs {
        arg_fields: &arg_fields,
        scalar_arguments: &scalars,
    })?;
    let mut options = ConfigOptions::new();
    options.extensions.insert(VistaConfig::default());
    f.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields,
        number_rows: rows,
        return_field,
        config_options: Arc::new(options),
    })
}
