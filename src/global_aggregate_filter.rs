//! An optimizer rule that keeps a filter from being lost below an aggregate without GROUP BY.
//!
//! DataFusion 55.2's filter pushdown moves a predicate below an aggregate when every column it
//! names is a grouping column, which is vacuously true for a predicate that names none. So in
//!
//! ```sql
//! SELECT * FROM (SELECT 'a' AS m, count(*) AS c FROM t
//!                UNION ALL SELECT 'b', count(*) FROM t) WHERE m = 'b'
//! ```
//!
//! the branch of `'a'` becomes `'a' = 'b'` (no column) below its `count(*)`, which then counts
//! nothing and still returns its one row: `('a', 0)` comes back beside `('b', 2)`. Every scores
//! view of the eval jobs has this shape (a literal `metric` over a global aggregate, branches
//! joined by UNION ALL), so `SELECT * FROM scores WHERE metric = 'cider_d'` would show the
//! other metrics with wrong values.
//!
//! This rule runs before the pushdown. For each filter it follows the plan below it through
//! aliases, unions and projections (writing the predicate in the expressions each one computes)
//! to the aggregates without GROUP BY; where the predicate has become a constant false or NULL
//! there, it replaces that aggregate by an empty relation of the same schema. The filter itself
//! stays, so nothing else changes.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{EmptyRelation, Expr, LogicalPlan};
use datafusion::optimizer::optimizer::ApplyOrder;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct GlobalAggregateFilter;

impl OptimizerRule for GlobalAggregateFilter {
    fn name(&self) -> &str {
        "vista_global_aggregate_filter"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Filter(mut filter) = plan else {
            return Ok(Transformed::no(plan));
        };
        let input = Arc::unwrap_or_clone(filter.input);
        let pruned = prune(input, &filter.predicate)?;
        filter.input = Arc::new(pruned.data);
        Ok(Transformed::new_transformed(LogicalPlan::Filter(filter), pruned.transformed))
    }
}

/// `plan` with the global-aggregate branches that `predicate` (over `plan`'s schema) rejects
/// whatever their data replaced by empty relations.
fn prune(plan: LogicalPlan, predicate: &Expr) -> Result<Transformed<LogicalPlan>> {
    match plan {
        LogicalPlan::SubqueryAlias(mut alias) => {
            let inner = by_position(predicate, &alias.schema, alias.input.schema())?;
            let child = prune(Arc::unwrap_or_clone(alias.input), &inner)?;
            alias.input = Arc::new(child.data);
            Ok(Transformed::new_transformed(LogicalPlan::SubqueryAlias(alias), child.transformed))
        }
        LogicalPlan::Union(mut union) => {
            let mut changed = false;
            let mut inputs = Vec::with_capacity(union.inputs.len());
            for input in union.inputs {
                let inner = by_position(predicate, &union.schema, input.schema())?;
                let child = prune(Arc::unwrap_or_clone(input), &inner)?;
                changed |= child.transformed;
                inputs.push(Arc::new(child.data));
            }
            union.inputs = inputs;
            Ok(Transformed::new_transformed(LogicalPlan::Union(union), changed))
        }
        LogicalPlan::Projection(mut projection) => {
            let by_name: HashMap<Column, Expr> = projection
                .schema
                .columns()
                .into_iter()
                .zip(projection.expr.iter().map(|e| e.clone().unalias()))
                .collect();
            let inner = substitute(predicate, &by_name)?;
            let child = prune(Arc::unwrap_or_clone(projection.input), &inner)?;
            projection.input = Arc::new(child.data);
            Ok(Transformed::new_transformed(LogicalPlan::Projection(projection), child.transformed))
        }
        LogicalPlan::Aggregate(agg)
            if agg.group_expr.is_empty() && always_rejects(predicate, agg.input.schema())? =>
        {
            let empty = EmptyRelation { produce_one_row: false, schema: agg.schema.clone() };
            Ok(Transformed::yes(LogicalPlan::EmptyRelation(empty)))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// `predicate` over `outer`'s columns rewritten to the columns of `inner` in the same position.
fn by_position(predicate: &Expr, outer: &DFSchema, inner: &DFSchema) -> Result<Expr> {
    let map: HashMap<Column, Expr> =
        outer.columns().into_iter().zip(inner.columns().into_iter().map(Expr::Column)).collect();
    substitute(predicate, &map)
}

/// `predicate` with every column `map` names replaced by its expression.
fn substitute(predicate: &Expr, map: &HashMap<Column, Expr>) -> Result<Expr> {
    Ok(predicate
        .clone()
        .transform(|e| match e {
            Expr::Column(c) => match map.get(&c) {
                Some(x) => Ok(Transformed::yes(x.clone())),
                None => Ok(Transformed::no(Expr::Column(c))),
            },
            other => Ok(Transformed::no(other)),
        })?
        .data)
}

/// Whether `predicate`, naming no column, is false or NULL; a predicate that names a column
/// (an aggregate's value) or does not fold to a constant is not judged.
fn always_rejects(predicate: &Expr, schema: &Arc<DFSchema>) -> Result<bool> {
    if !predicate.column_refs().is_empty() || predicate.is_volatile() {
        return Ok(false);
    }
    let context = SimplifyContext::builder().with_schema(schema.clone()).build();
    match ExprSimplifier::new(context).simplify(predicate.clone()) {
        Ok(Expr::Literal(ScalarValue::Boolean(b), _)) => Ok(b != Some(true)),
        Ok(Expr::Literal(v, _)) => Ok(v.is_null()),
        // A predicate the simplifier cannot fold (or fails on) is left to execution.
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    async fn rows(sql: &str) -> Vec<String> {
        let ctx = crate::session::new_context(&Default::default()).unwrap();
        ctx.sql("CREATE TABLE t AS VALUES (1), (2)").await.unwrap().collect().await.unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap();
        text.to_string().lines().map(str::to_string).collect()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    const UNION: &str = "(SELECT 'a' AS m, count(*) AS c FROM t \
                         UNION ALL SELECT 'b', count(*) FROM t \
                         UNION ALL SELECT 'c', avg(column1) FROM t)";

    #[test]
    fn a_filter_on_a_literal_column_keeps_only_the_matching_branches() {
        let got = rt().block_on(rows(&format!("SELECT m, c FROM {UNION} AS s WHERE m = 'b'")));
        assert_eq!(
            got,
            ["+---+-----+", "| m | c   |", "+---+-----+", "| b | 2.0 |", "+---+-----+"]
        );
        let got = rt().block_on(rows(&format!(
            "SELECT m FROM {UNION} AS s WHERE m IN ('a', 'c') ORDER BY m"
        )));
        assert_eq!(got, ["+---+", "| m |", "+---+", "| a |", "| c |", "+---+"]);
    }

    #[test]
    fn a_view_over_global_aggregates_is_filtered_exactly() {
        let got = rt().block_on(async {
            let ctx = crate::session::new_context(&Default::default()).unwrap();
            for sql in [
                "CREATE TABLE t AS VALUES (1), (2)",
                "CREATE VIEW scores AS SELECT 'n' AS metric, CAST(count(*) AS DOUBLE) AS value FROM t \
                 UNION ALL SELECT 'mean', avg(column1) FROM t",
            ] {
                ctx.sql(sql).await.unwrap().collect().await.unwrap();
            }
            let n = |sql: &'static str, ctx: SessionContext| async move {
                ctx.sql(sql).await.unwrap().count().await.unwrap()
            };
            (
                n("SELECT * FROM scores WHERE metric = 'mean'", ctx.clone()).await,
                n("SELECT * FROM scores WHERE metric = 'none'", ctx.clone()).await,
                n("SELECT * FROM scores WHERE value > 1.6", ctx.clone()).await,
            )
        });
        assert_eq!(got, (1, 0, 1));
    }

    #[test]
    fn global_aggregate_alone_returns_no_row_for_a_false_literal_filter() {
        let sql = "SELECT * FROM (SELECT 'a' AS m, count(*) AS c FROM t) AS s WHERE m = 'b'";
        assert_eq!(rt().block_on(rows(sql)), ["++", "++"]);
        let sql = "SELECT * FROM (SELECT 'a' AS m, count(*) AS c FROM t) AS s WHERE m = 'a'";
        assert_eq!(
            rt().block_on(rows(sql)),
            ["+---+---+", "| m | c |", "+---+---+", "| a | 2 |", "+---+---+"]
        );
    }
}
