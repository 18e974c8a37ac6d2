//! The vista SQL function library: images, masks and contours, text formats and prompts, and
//! reference-exact metrics, as DataFusion functions. No model code lives here: the model-call
//! function is generic over a trait that the `vista` crate implements.

pub mod common;
pub mod config;
pub mod contour;
pub mod generate;
pub mod image;
pub mod limits;
pub mod metrics;
pub mod seeded;
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
    // read_bytes reads URLs through the object stores registered on this context.
    let stores = ctx.runtime_env().object_store_registry.clone();
    let read_bytes = image::ReadBytesFunc::new().with_stores(stores);
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(read_bytes));
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
mod parser_properties;
#[cfg(test)]
mod test_invoke;
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
        // Every failure is listed, not just the first.
        let mut failures = Vec::new();
        for (name, doc) in docs {
            let Some(doc) = doc else {
                failures.push(format!("{name}: no documentation"));
                continue;
            };
            let Some(example) = doc.sql_example else {
                failures.push(format!("{name}: no SQL example"));
                continue;
            };
            let Some((query, expected)) = test_util::parse_example(&example) else {
                failures.push(format!("{name}: example is not ```sql > query; table```"));
                continue;
            };
            if !query.contains(&name) {
                failures.push(format!("{name}: example does not call the function"));
            }
            match test_util::run(&ctx, &query) {
                Err(e) => failures.push(format!("{name}: {e}")),
                Ok(got) if got.trim_end() != expected => {
                    failures.push(format!("{name}: printed\n{got}\ninstead of\n{expected}"))
                }
                Ok(_) => {}
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
