//! Times vista's contour functions on the 512x512 fixture masks (tests/fixtures/contour/
//! masks.json), single-threaded: mask -> sequence (`adaptive` and `uniform`, n = 32) and
//! sequence -> mask (pycocotools-exact rasterising), per mask, from decoded masks. Then runs
//! `mask_to_sequence` through SQL on many rows with 1, 2, 4, ... partitions to show the scaling.
//! Prints JSON lines; scripts/bench_contour.py runs it next to the OpenCV + NumPy reference.
//!
//!     cargo run --release --example bench_contour -- [ROUNDS] [SQL_ROWS] [MAX_PARTITIONS]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;
use vista_udfs::contour::mask::{decode_counts, encode_counts, rle_array, Mask, Rle};
use vista_udfs::contour::rasterise::polygon_mask;
use vista_udfs::contour::sample::Contour;
use vista_udfs::contour::sequence::{mask_sequence, rle_sequence};
use vista_udfs::contour::{Method, Space};

fn masks() -> Vec<Mask> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/contour/masks.json");
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all.iter()
        .map(|m| {
            let (h, w) = (m["size"][0].as_u64().unwrap(), m["size"][1].as_u64().unwrap());
            Mask::from_rle_string(h as usize, w as usize, m["counts"].as_str().unwrap()).unwrap()
        })
        .collect()
}

fn per_mask_us(rounds: usize, count: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let t = Instant::now();
    for _ in 0..rounds {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / (rounds * count) as f64
}

fn main() -> datafusion::common::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("numbers")).collect();
    let rounds = args.first().copied().unwrap_or(20);
    let sql_rows = args.get(1).copied().unwrap_or(2000);
    let max_partitions = args
        .get(2)
        .copied()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let masks = masks();
    let n = 32;
    for (label, method) in [("adaptive", Method::Adaptive), ("uniform", Method::Uniform)] {
        let to_seq = per_mask_us(rounds, masks.len(), || {
            for m in &masks {
                black_box(mask_sequence(m, n, method, Contour::Boundary, Space::Norm).unwrap());
            }
        });
        let seqs: Vec<Vec<f64>> = masks
            .iter()
            .map(|m| mask_sequence(m, n, method, Contour::Boundary, Space::Norm).unwrap())
            .collect();
        let to_mask = per_mask_us(rounds, masks.len(), || {
            for (m, s) in masks.iter().zip(&seqs) {
                black_box(polygon_mask(s, m.width, m.height, Space::Norm).unwrap());
            }
        });
        // From the stored form: compressed RLE string -> runs -> sequence (the path SQL takes).
        let strings: Vec<(usize, usize, String)> =
            masks.iter().map(|m| (m.height, m.width, encode_counts(&m.counts()))).collect();
        let from_rle = per_mask_us(rounds, masks.len(), || {
            for (h, w, c) in &strings {
                let r = Rle::new(*h, *w, decode_counts(c).unwrap()).unwrap();
                black_box(rle_sequence(&r, n, method, Contour::Boundary, Space::Norm).unwrap());
            }
        });
        println!(
            "{{\"bench\": \"rust\", \"method\": \"{label}\", \"n\": {n}, \"masks\": {}, \
             \"mask_to_sequence_us\": {to_seq:.2}, \"sequence_to_mask_us\": {to_mask:.2}, \
             \"rle_to_sequence_us\": {from_rle:.2}}}",
            masks.len()
        );
    }

    // SQL: the same masks as RLE rows, repeated, in as many partitions as the session uses.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let rle = rle_array((0..sql_rows).map(|i| Some(&masks[i % masks.len()])));
    let schema = Arc::new(Schema::new(vec![Field::new("m", rle.data_type().clone(), true)]));
    let mut base = None;
    let mut p = 1;
    while p <= max_partitions {
        let chunk = sql_rows.div_ceil(p);
        let parts: Vec<Vec<RecordBatch>> = (0..p)
            .map(|k| {
                let (s, e) = ((k * chunk).min(sql_rows), ((k + 1) * chunk).min(sql_rows));
                vec![RecordBatch::try_new(schema.clone(), vec![rle.slice(s, e - s)]).unwrap()]
            })
            .collect();
        let config = SessionConfig::new().with_target_partitions(p).with_batch_size(64);
        let ctx = SessionContext::new_with_config(config);
        vista_udfs::register_all(&ctx)?;
        ctx.register_table("masks", Arc::new(MemTable::try_new(schema.clone(), parts)?))?;
        let secs = rt.block_on(async {
            let q = "SELECT sum(cardinality(mask_to_sequence(m, n => 32))) FROM masks";
            ctx.sql(q).await?.collect().await?; // warm-up
            let t = Instant::now();
            ctx.sql(q).await?.collect().await?;
            Ok::<f64, datafusion::error::DataFusionError>(t.elapsed().as_secs_f64())
        })?;
        let rate = sql_rows as f64 / secs;
        let speedup = rate / *base.get_or_insert(rate);
        println!(
            "{{\"bench\": \"sql\", \"partitions\": {p}, \"rows\": {sql_rows}, \"seconds\": {secs:.4}, \
             \"rows_per_s\": {rate:.1}, \"speedup\": {speedup:.2}}}"
        );
        p *= 2;
    }
    Ok(())
}
