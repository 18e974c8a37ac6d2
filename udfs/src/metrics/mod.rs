//! (filled in by the metrics work)

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

pub fn scalar_functions() -> Vec<ScalarUDF> {
    Vec::new()
}

pub fn aggregate_functions() -> Vec<AggregateUDF> {
    Vec::new()
}
