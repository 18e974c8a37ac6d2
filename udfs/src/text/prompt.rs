//! (filled in by the prompt work)

use datafusion::logical_expr::ScalarUDF;

pub fn scalar_functions() -> Vec<ScalarUDF> {
    Vec::new()
}
