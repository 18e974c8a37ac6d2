//! Times vista's caption metrics on a JSON evaluation set (written by scripts/bench_metrics.py):
//! `[{"id", "pred", "refs": [...], "pred_tok", "refs_tok": [...]}, ...]`.
//!
//! Prints one JSON line: seconds for the raw-string query (PTB tokenisation included) and for
//! the pre-tokenized query, the scores, and the peak resident memory.
//!
//!     cargo run --release --example bench_metrics -- data.json

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{
    ArrayRef, AsArray, Int64Array, ListBuilder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

fn strings(rows: &[Value], key: &str) -> ArrayRef {
    let mut b = StringBuilder::new();
    for r in rows {
        b.append_value(r[key].as_str().unwrap());
    }
    Arc::new(b.finish())
}

fn lists(rows: &[Value], key: &str) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in rows {
        for s in r[key].as_array().unwrap() {
            b.values().append_value(s.as_str().unwrap());
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> datafusion::common::Result<()> {
    let path = std::env::args().nth(1).expect("usage: bench_metrics DATA.json");
    let rows: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&path)?).expect("valid JSON");
    let ids: ArrayRef =
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r["id"].as_i64().unwrap())));
    let cols = vec![
        ("id", ids),
        ("pred", strings(&rows, "pred")),
        ("refs", lists(&rows, "refs")),
        ("pred_tok", strings(&rows, "pred_tok")),
        ("refs_tok", lists(&rows, "refs_tok")),
    ];
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), cols.into_iter().map(|c| c.1).collect())?;
    let parts = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = batch.num_rows().div_ceil(parts);
    let partitions: Vec<Vec<RecordBatch>> = (0..parts)
        .map(|p| {
            let lo = (p * chunk).min(batch.num_rows());
            let hi = ((p + 1) * chunk).min(batch.num_rows());
            vec![batch.slice(lo, hi - lo)]
        })
        .collect();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new()
            .with_option_extension(vista_udfs::VistaConfig::default())
            .with_target_partitions(parts),
    );
    vista_udfs::register_all(&ctx)?;
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, partitions)?))?;

    // one pass for all three metrics, as COCOEvalCap.evaluate (tokenize once, then score)
    let query = |p: &str, r: &str, tok: bool| {
        format!(
            "SELECT s['cider_d'], s['bleu_4'], s['rouge_l'] \
             FROM (SELECT caption_scores({p}, {r}, NULL, {tok}) AS s FROM t)"
        )
    };
    let mut report = serde_json::Map::new();
    for (name, sql) in [
        ("raw", query("pred", "refs", true)),
        ("pretokenized", query("pred_tok", "refs_tok", false)),
    ] {
        let t = Instant::now();
        let out = ctx.sql(&sql).await?.collect().await?;
        let secs = t.elapsed().as_secs_f64();
        let get = |c: usize| out[0].column(c).as_primitive::<Float64Type>().value(0);
        report.insert(
            name.to_string(),
            serde_json::json!({"seconds": secs, "cider_d": get(0), "bleu_4": get(1), "rouge_l": get(2)}),
        );
    }
    report.insert("images".into(), rows.len().into());
    report.insert("partitions".into(), parts.into());
    report.insert("peak_rss_mib".into(), peak_rss_mib().into());
    println!("{}", Value::Object(report));
    Ok(())
}
