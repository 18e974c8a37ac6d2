//! PNG masks from files: decoding alone, and the whole SQL pipeline
//! `rle_encode(read_bytes(p))` -> `mask_to_sequence(m, 32, 'adaptive')` -> `polygon_to_mask` ->
//! `mask_iou`. Prints JSON lines; scripts/bench_contour.py runs it next to OpenCV + NumPy.
//!
//!     cargo run --release --example bench_png -- decode DIR [ROUNDS]
//!     cargo run --release --example bench_png -- pipeline DIR PARTITIONS
//!
//! `decode` times `Mask::from_png` per file, reading the file included, single-threaded.
//! `pipeline` runs the query once over every `*.png` in DIR split into PARTITIONS; the script
//! times the whole process from outside.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use vista_udfs::contour::mask::Mask;

fn pngs(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path().to_string_lossy().into_owned()))
        .filter(|p| p.ends_with(".png"))
        .collect();
    v.sort();
    v
}

fn main() -> datafusion::common::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, dir) = (args.first().map(String::as_str), args.get(1).expect("DIR"));
    let files = pngs(dir);
    match mode {
        Some("decode") => {
            let rounds: usize = args.get(2).map_or(5, |r| r.parse().expect("ROUNDS"));
            let once = || {
                for f in &files {
                    black_box(Mask::from_png(&std::fs::read(f).unwrap()).unwrap());
                }
            };
            once();
            let t = Instant::now();
            for _ in 0..rounds {
                once();
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / (rounds * files.len()) as f64;
            println!(
                "{{\"bench\": \"decode\", \"files\": {}, \"us_per_file\": {us:.2}}}",
                files.len()
            );
        }
        Some("pipeline") => {
            let p: usize = args.get(2).map_or(1, |r| r.parse().expect("PARTITIONS"));
            let schema = Arc::new(Schema::new(vec![Field::new("p", DataType::Utf8, false)]));
            let chunk = files.len().div_ceil(p);
            let parts: Vec<Vec<RecordBatch>> = files
                .chunks(chunk.max(1))
                .map(|c| {
                    let col = Arc::new(StringArray::from(c.to_vec()));
                    vec![RecordBatch::try_new(schema.clone(), vec![col]).unwrap()]
                })
                .collect();
            let config = SessionConfig::new().with_target_partitions(p).with_batch_size(64);
            let ctx = SessionContext::new_with_config(config);
            vista_udfs::register_all(&ctx)?;
            ctx.register_table("files", Arc::new(MemTable::try_new(schema, parts)?))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(p)
                .enable_all()
                .build()
                .unwrap();
            let q = "SELECT count(*) AS masks, avg(mask_iou(m, polygon_to_mask(\
                     mask_to_sequence(m, 32, 'adaptive'), m['size'][2], m['size'][1]))) AS iou \
                     FROM (SELECT rle_encode(read_bytes(p)) AS m FROM files)";
            let t = Instant::now();
            let batches = rt.block_on(async { ctx.sql(q).await?.collect().await })?;
            let secs = t.elapsed().as_secs_f64();
            let b = &batches[0];
            let iou = b.column(1).as_any().downcast_ref::<datafusion::arrow::array::Float64Array>();
            println!(
                "{{\"bench\": \"pipeline\", \"partitions\": {p}, \"files\": {}, \"query_s\": {secs:.4}, \
                 \"mean_iou\": {:.6}}}",
                files.len(),
                iou.map_or(f64::NAN, |a| a.value(0))
            );
        }
        _ => panic!("usage: bench_png decode|pipeline DIR [ROUNDS|PARTITIONS]"),
    }
    Ok(())
}
