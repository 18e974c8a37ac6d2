//! An optimizer rule that computes async function calls (`vista_generate`) in a projection below
//! the node that uses them, where DataFusion 55.2 cannot run them in place.
//!
//! Its physical planner runs an async call through an `AsyncFuncExec` below a projection, a
//! filter or an aggregate's arguments; a call in a `GROUP BY` key, an `ORDER BY` or a window's
//! expressions is planned as an ordinary function and fails at run time with "async functions
//! should not be called directly", an internal error that names neither the query nor a way
//! around it. So in
//!
//! ```sql
//! SELECT vista_generate(image, instruction) AS answer, count(*) FROM samples GROUP BY 1
//! ```
//!
//! this rule puts `vista_generate(image, instruction) AS __vista_async_0` in a projection over
//! the aggregate's input and groups by that column, under the call's own name so that the plan
//! above reads the same columns. A sort gets a projection above it too, which drops the column
//! again. Each distinct call is computed once.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::{
    col, Aggregate, Expr, LogicalPlan, Projection, Sort, SortExpr, Window,
};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct AsyncCallsInProjection;

impl OptimizerRule for AsyncCallsInProjection {
    fn name(&self) -> &str {
        "vista_async_calls_in_projection"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Aggregate(agg) if agg.group_expr.iter().any(has_async_call) => {
                let mut calls = Calls::default();
                let group = calls.lift_named(&agg.group_expr)?;
                let input = calls.projection(agg.input)?;
                let agg = Aggregate::try_new(Arc::new(input), group, agg.aggr_expr)?;
                Ok(Transformed::yes(LogicalPlan::Aggregate(agg)))
            }
            LogicalPlan::Window(window) if window.window_expr.iter().any(has_async_call) => {
                let mut calls = Calls::default();
                let exprs = calls.lift_named(&window.window_expr)?;
                let input = Arc::new(calls.projection(window.input.clone())?);
                let lifted = LogicalPlan::Window(Window::try_new(exprs, input)?);
                Ok(Transformed::yes(keep_columns(lifted, &window.schema)?))
            }
            LogicalPlan::Sort(sort) if sort.expr.iter().any(|s| has_async_call(&s.expr)) => {
                let mut calls = Calls::default();
                let exprs = sort
                    .expr
                    .iter()
                    .map(|s| Ok(SortExpr { expr: calls.lift(&s.expr)?, ..s.clone() }))
                    .collect::<Result<Vec<_>>>()?;
                let input = Arc::new(calls.projection(sort.input.clone())?);
                let lifted = LogicalPlan::Sort(Sort { expr: exprs, input, fetch: sort.fetch });
                Ok(Transformed::yes(keep_columns(lifted, sort.input.schema())?))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

fn is_async_call(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.as_async().is_some())
}

fn has_async_call(e: &Expr) -> bool {
    // The closure never fails.
    e.exists(|x| Ok(is_async_call(x))).unwrap_or(false)
}

/// The distinct async calls taken out of a node's expressions, in order.
#[derive(Default)]
struct Calls(Vec<Expr>);

impl Calls {
    /// `e` with each async call replaced by the column that computes it.
    fn lift(&mut self, e: &Expr) -> Result<Expr> {
        let lifted = e.clone().transform_down(|x| {
            if !is_async_call(&x) {
                return Ok(Transformed::no(x));
            }
            let k = match self.0.iter().position(|c| *c == x) {
                Some(k) => k,
                None => {
                    self.0.push(x);
                    self.0.len() - 1
                }
            };
            Ok(Transformed::new(col(column_name(k)), true, TreeNodeRecursion::Jump))
        })?;
        Ok(lifted.data)
    }

    /// [`Calls::lift`] of each of a node's output expressions, named as before, so the node's
    /// output columns keep their names.
    fn lift_named(&mut self, exprs: &[Expr]) -> Result<Vec<Expr>> {
        exprs
            .iter()
            .map(|e| {
                let lifted = self.lift(e)?;
                Ok(match e {
                    _ if lifted == *e => lifted,
                    Expr::Alias(_) => lifted,
                    _ => lifted.alias(e.schema_name().to_string()),
                })
            })
            .collect()
    }

    /// `input`'s columns and then every lifted call as its column.
    fn projection(&self, input: Arc<LogicalPlan>) -> Result<LogicalPlan> {
        let mut exprs: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
        exprs.extend(self.0.iter().enumerate().map(|(k, c)| c.clone().alias(column_name(k))));
        Ok(LogicalPlan::Projection(Projection::try_new(exprs, input)?))
    }
}

fn column_name(k: usize) -> String {
    format!("__vista_async_{k}")
}

/// `lifted` cut back to the columns `schema` of the node it replaces (a sort or a window passes
/// its input's columns through, the lifted calls among them).
fn keep_columns(lifted: LogicalPlan, schema: &DFSchema) -> Result<LogicalPlan> {
    let exprs = schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(lifted))?))
}
