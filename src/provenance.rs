//! What a query's functions report into the metadata of the files it writes: which vista
//! functions ran, the constant options they were called with (metric variants, sampling
//! method, output style), and the model settings when the model ran.

use std::collections::{BTreeMap, HashSet};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::prelude::SessionContext;
use vista_udfs::VistaConfig;

type Used = BTreeMap<String, BTreeMap<String, String>>;

/// Metadata entries for a planned query.
pub fn of_plan(ctx: &SessionContext, plan: &LogicalPlan) -> Vec<(String, String)> {
    let mut ours: HashSet<String> = vista_udfs::function_names().into_iter().collect();
    // Registered by the session with the model loader, so not in the library's own list.
    ours.insert("vista_generate".to_string());
    let mut used = Used::new();
    collect(plan, &ours, &mut used);
    let mut kv = Vec::new();
    if !used.is_empty() {
        kv.push((
            "vista.functions".to_string(),
            used.keys().cloned().collect::<Vec<_>>().join(","),
        ));
    }
    for (name, options) in &used {
        for (p, v) in options {
            kv.push((format!("vista.function.{name}.{p}"), v.clone()));
        }
        // Metrics name the reference and definition they follow, defaults included.
        let args: Vec<(&str, &str)> =
            options.iter().map(|(p, v)| (p.as_str(), v.as_str())).collect();
        if let Some(variant) = vista_udfs::metrics::variant_of(name, &args) {
            kv.push((format!("vista.variant.{name}"), variant));
        }
    }
    if !used.is_empty() {
        let c = VistaConfig::from_options(ctx.state().config_options());
        kv.extend(vista_udfs::limits::Limits::from_config(&c).metadata());
    }
    if used.contains_key("vista_generate") {
        let c = VistaConfig::from_options(ctx.state().config_options());
        for (k, v) in [
            ("model", c.model.clone()),
            ("device", c.device.clone()),
            ("dtype", c.dtype.clone()),
            ("batch_size", c.batch_size.to_string()),
            ("max_new_tokens", c.max_new_tokens.to_string()),
            ("min_new_tokens", c.min_new_tokens.to_string()),
            ("num_beams", c.num_beams.to_string()),
            ("coord_decode", c.coord_decode.clone()),
            ("temperature", c.temperature.to_string()),
            ("top_p", c.top_p.to_string()),
            ("seed", c.seed.to_string()),
            ("prompt_template", c.prompt_template.clone()),
            ("coord_style", c.coord_style.clone()),
        ] {
            kv.push((format!("vista.{k}"), v));
        }
        // The model family (config.json's `model_type`): which prompt and answer rules apply.
        if let Some(family) = model_type(&c.model) {
            kv.push(("vista.model_type".to_string(), family));
        }
    }
    kv
}

fn model_type(dir: &str) -> Option<String> {
    let text = std::fs::read_to_string(std::path::Path::new(dir).join("config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("model_type")?.as_str().map(str::to_string)
}

fn collect(plan: &LogicalPlan, ours: &HashSet<String>, used: &mut Used) {
    let _ = plan.apply(|node| {
        let _ = node.apply_expressions(|e| {
            e.apply(|e| {
                record(e, ours, used);
                Ok(TreeNodeRecursion::Continue)
            })
        });
        let _ = node.apply_subqueries(|sub| {
            collect(sub, ours, used);
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(TreeNodeRecursion::Continue)
    });
}

/// Notes a vista function call and its constant options, by parameter name.
fn record(e: &Expr, ours: &HashSet<String>, used: &mut Used) {
    let (name, params, args) = match e {
        Expr::ScalarFunction(f) => {
            (f.func.name(), f.func.signature().parameter_names.clone(), &f.args)
        }
        Expr::AggregateFunction(f) => {
            (f.func.name(), f.func.signature().parameter_names.clone(), &f.params.args)
        }
        _ => return,
    };
    if !ours.contains(name) {
        return;
    }
    let options = used.entry(name.to_string()).or_default();
    for (i, arg) in args.iter().enumerate().skip(1) {
        if let Expr::Literal(v, _) = arg {
            if !v.is_null() {
                let pname =
                    params.as_ref().and_then(|p| p.get(i).cloned()).unwrap_or(format!("arg{i}"));
                options.insert(pname, v.to_string());
            }
        }
    }
}
