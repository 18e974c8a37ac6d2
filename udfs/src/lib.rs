//! The vista SQL function library: images, masks and contours, text formats and prompts, and
//! reference-exact metrics, as DataFusion functions. No model code lives here: the model-call
//! function is generic over a trait that the `vista` crate implements.

pub mod common;
pub mod config;
pub mod contour;
pub mod generate;
pub mod image;
pub mod metrics;
pub mod text;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionContext;

pub use config::VistaConfig;

/// Every vista scalar function.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut v = Vec::new();
    v.extend(image::scalar_functions());
    v.extend(contour::scalar_functions());
    v.extend(text::scalar_functions());
    v.extend(metrics::scalar_functions());
    v
}

/// Every vista aggregate function.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    let mut v = contour::aggregate_functions();
    v.extend(metrics::aggregate_functions());
    v
}

/// Registers every vista function on a context (after DataFusion's own).
pub fn register_all(ctx: &SessionContext) -> datafusion::common::Result<()> {
    for f in scalar_functions() {
        ctx.register_udf(f);
    }
    for f in aggregate_functions() {
        ctx.register_udaf(f);
    }
    Ok(())
}

/// Names of every vista function, scalar and aggregate (to tell ours from DataFusion's).
pub fn function_names() -> Vec<String> {
    let mut names: Vec<String> = scalar_functions().iter().map(|f| f.name().to_string()).collect();
    names.extend(aggregate_functions().iter().map(|f| f.name().to_string()));
    names.sort();
    names
}

#[cfg(test)]
pub(crate) mod test_util;

#[cfg(test)]
mod doc_tests {
    use super::*;

    /// Every public function is documented, and its SQL example prints exactly what it shows.
    #[test]
    fn every_function_has_a_running_sql_example() {
        let ctx = test_util::ctx();
        let mut docs = Vec::new();
        for f in scalar_functions() {
            docs.push((f.name().to_string(), f.documentation().cloned()));
        }
        for f in aggregate_functions() {
            docs.push((f.name().to_string(), f.documentation().cloned()));
        }
        assert!(!docs.is_empty());
        for (name, doc) in docs {
            let doc = doc.unwrap_or_else(|| panic!("{name} has no documentation"));
            let example = doc.sql_example.unwrap_or_else(|| panic!("{name} has no SQL example"));
            let (query, expected) = test_util::parse_example(&example)
                .unwrap_or_else(|| panic!("{name}: example is not ```sql > query; table```"));
            assert!(query.contains(&name), "{name}: example does not call the function");
            let got = test_util::run(&ctx, &query).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got.trim_end(), expected, "{name}: example output differs");
        }
    }
}
