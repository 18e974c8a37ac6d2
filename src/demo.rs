//! `vista demo`: the main job on an embedded default, with no download and no argument. It
//! generates a held-out synthetic sample set, writes the embedded model next to it, runs
//! `queries/demo.sql` as a job (model inference, parsing, contour decoding, scoring), writes
//! predictions and scores as Parquet and prints the score table.
//!
//! The embedded model is the tiny random-weight InstructBLIP checkpoint of the parity tests
//! (tests/fixtures/model/tiny_xattn1_mha_coords, with the coordinate vocabulary): its scores
//! are the floor that a trained model must beat. Pass `--model DIR` to score another model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::session::{self, SessionOptions};

/// The demo job.
pub const DEMO_SQL: &str = include_str!("../queries/demo.sql");

/// Seed of the demo's sample set; training sets must use another one (held-out).
pub const DEMO_SEED: u64 = 20_261_126;

macro_rules! model_file {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../tests/fixtures/model/tiny_xattn1_mha_coords/", $name))
                .as_slice(),
        )
    };
}

/// The embedded model's files, by path inside the model directory.
const MODEL_FILES: &[(&str, &[u8])] = &[
    model_file!("config.json"),
    model_file!("generation_config.json"),
    model_file!("model.safetensors"),
    model_file!("processor_config.json"),
    model_file!("tokenizer.json"),
    model_file!("tokenizer_config.json"),
    model_file!("qformer_tokenizer/tokenizer.json"),
    model_file!("qformer_tokenizer/tokenizer_config.json"),
];

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    pub model: Option<PathBuf>,
    pub samples_per_task: usize,
}

/// Runs the demo and prints where everything went and the score table.
pub async fn run(opts: &DemoOptions) -> Result<()> {
    let dir = &opts.dir;
    eprintln!("vista demo: working in {}", dir.display());
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;

    let synth = crate::synth::SynthOptions {
        seed: DEMO_SEED,
        samples_per_task: opts.samples_per_task,
        split: "test".to_string(),
        out_dir: dir.join("samples"),
        ..Default::default()
    };
    // A fresh set each run: the folder is the demo's own.
    let _ = std::fs::remove_dir_all(&synth.out_dir);
    let summary = crate::synth::synth_async(&synth).await?;
    eprintln!(
        "  samples: {} over {} tasks, {} images -> {}",
        summary.samples,
        summary.per_task.len(),
        summary.images,
        synth.out_dir.join("samples").display()
    );

    let model_dir = match &opts.model {
        Some(m) => m.clone(),
        None => {
            let m = dir.join("model");
            write_embedded_model(&m)?;
            eprintln!("  model: embedded tiny random-weight checkpoint -> {}", m.display());
            m
        }
    };

    let ctx = session::new_context(&SessionOptions {
        settings: vec![
            ("vista.model".into(), model_dir.to_string_lossy().to_string()),
            ("vista.batch_size".into(), "8".into()),
            ("vista.max_new_tokens".into(), "48".into()),
            ("vista.on_error".into(), "null".into()),
        ],
        ..Default::default()
    })?;
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    let samples = synth.out_dir.join("samples").to_string_lossy().to_string();
    let mut job = crate::jobs::JobOptions::new(samples, &run_dir);
    job.chunk_rows = 64;
    let loader = session::model_loader();
    let done = crate::jobs::run_job(&ctx, DEMO_SQL, Some(&loader), &job).await?;
    eprintln!("  {done}");

    let scores = done.scores.as_deref().context("the demo job wrote no scores")?;
    let sql = format!("SELECT * FROM '{}' ORDER BY task, metric", scores.display());
    let mut stdout = std::io::stdout().lock();
    let sink =
        crate::engine::Sink { format: crate::output::Format::Table, out: None, progress: false };
    crate::engine::run_sql(&ctx, &sql, &sink, &mut stdout).await?;
    if opts.model.is_none() {
        println!(
            "(random weights: these scores are the floor a trained model must beat; \
             gt_contour_iou rows score the ground truth's own point sequences)"
        );
    }
    Ok(())
}

fn write_embedded_model(dir: &Path) -> Result<()> {
    for (name, bytes) in MODEL_FILES {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("model files are inside the folder"))?;
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write '{}'", path.display()))?;
    }
    Ok(())
}
