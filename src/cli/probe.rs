//! `vista probe`: what a stage-0 checkpoint's image tokens say about where the named object is,
//! and, with a count head, how many of them there are; and what its encoder's patch tokens say
//! about the object under each patch.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{ArrayRef, Float32Array, Float64Array, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use vista::train::{PatchLine, ProbedBox, ProbedCounts};

#[derive(clap::Args)]
pub(crate) struct ProbeArgs {
    /// A `vista train` output whose checkpoint was written in stage 0 (a run stopped there with
    /// `--stop-after`, or still in it): stage 1 drops the box head.
    #[arg(long)]
    model: PathBuf,
    /// Sample tables (Parquet files or directories), as `vista train --samples` reads them.
    #[arg(long, required = true, num_args = 1..)]
    samples: Vec<PathBuf>,
    /// Probe at most N box samples, in table order (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Scenes drawn for the encoder's patch head (0 = none).
    #[arg(long, default_value_t = 256)]
    scenes: usize,
    /// Seed of those scenes' stream; a seed the probed run did not train with keeps them held
    /// out.
    #[arg(long, default_value_t = 20261126)]
    scene_seed: u64,
    /// Also write every probed sample (row, task, answer box, head box, IoU) to this Parquet
    /// file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Probes and prints per task how often the head's box matches the answer's, and how often the
/// count head's number of targets does.
pub(crate) async fn probe(args: ProbeArgs) -> Result<ExitCode> {
    type Probed = (Vec<ProbedBox>, Option<Vec<ProbedCounts>>, Vec<PatchLine>, ProbeArgs);
    let (rows, counts, patches, args) = tokio::task::spawn_blocking(move || -> Result<Probed> {
        let samples = vista::train::read_samples(&args.samples)?;
        let probe = vista::train::Stage0Probe::open(&args.model)?;
        let rows = probe.boxes(&samples, args.limit, args.batch_size)?;
        let counts = probe.counts(&samples, args.batch_size)?;
        let patches = match args.scenes {
            0 => Vec::new(),
            n => probe.patches(args.scene_seed, n, args.batch_size)?,
        };
        Ok((rows, counts, patches, args))
    })
    .await??;
    println!("task\tsamples\tacc@0.5\tcentre inside");
    for (task, n, acc, inside) in vista::train::probe_summary(&rows) {
        println!("{task}\t{n}\t{acc:.3}\t{inside:.3}");
    }
    // A stage 0 trained with `--probe-count`: how many targets the image tokens say there are.
    if let Some(counts) = counts {
        println!("\ntask\tsamples\tcount accuracy\tno-target accuracy");
        for c in counts {
            let (acc, none) = (c.accuracy, c.no_target_accuracy);
            println!("{}\t{}\t{acc:.3}\t{none:.3}", c.task, c.samples);
        }
    }
    // What the encoder itself sees, before the image tokenizer picks from it.
    if !patches.is_empty() {
        println!("\npatch head ({} held-out scenes)\tscored\taccuracy", args.scenes);
        for l in patches {
            println!("{}\t{}\t{:.3}", l.what, l.scored, l.accuracy);
        }
    }
    if let Some(out) = &args.out {
        let coord = |k: usize, name: &str, of: fn(&ProbedBox) -> [f32; 4]| -> (Field, ArrayRef) {
            let v: Float32Array = rows.iter().map(|r| Some(of(r)[k])).collect();
            (Field::new(name, DataType::Float32, false), Arc::new(v))
        };
        let mut cols: Vec<(Field, ArrayRef)> = vec![
            (
                Field::new("row", DataType::UInt64, false),
                Arc::new(rows.iter().map(|r| Some(r.index as u64)).collect::<UInt64Array>()),
            ),
            (
                Field::new("task", DataType::Utf8, false),
                Arc::new(rows.iter().map(|r| Some(r.task.as_str())).collect::<StringArray>()),
            ),
        ];
        for (k, side) in ["x0", "y0", "x1", "y1"].iter().enumerate() {
            cols.push(coord(k, &format!("target_{side}"), |r| r.target));
        }
        for (k, side) in ["x0", "y0", "x1", "y1"].iter().enumerate() {
            cols.push(coord(k, &format!("probe_{side}"), |r| r.probe));
        }
        cols.push((
            Field::new("iou", DataType::Float64, false),
            Arc::new(rows.iter().map(|r| Some(r.iou())).collect::<Float64Array>()),
        ));
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = cols.into_iter().unzip();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        vista::output::write_parquet_atomic(out, &[batch], schema, &[])?;
        println!("{} rows in {}", rows.len(), out.display());
    }
    Ok(ExitCode::SUCCESS)
}
