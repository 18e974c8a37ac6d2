//! `vista demo`: the main job on an embedded default, with no download and no argument. It
//! generates a held-out synthetic sample set, writes the embedded model next to it, runs
//! `queries/demo.sql` as a job (model inference, parsing, contour decoding, scoring) for that
//! model and for the same architecture with random weights (the floor), writes predictions and
//! scores as Parquet and prints both score columns side by side; `--report` also writes an HTML
//! page with images, instructions and the predicted boxes and polygons drawn over them.
//!
//! The embedded model (assets/demo-model) was trained by `vista train` on synthetic data; its
//! command, seed, loss curve and held-out scores are in docs/train.md. The held-out set uses
//! [`DEMO_SEED`], which no training set uses. Pass `--model DIR` to score another model.

mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::session::{self, SessionOptions};

/// The demo job.
pub const DEMO_SQL: &str = include_str!("../queries/demo.sql");

/// Seed of the demo's sample set; training sets must use another one (held-out).
pub const DEMO_SEED: u64 = 20_261_126;

/// Seed of the floor's random weights.
const FLOOR_SEED: u64 = 1;

macro_rules! model_file {
    ($name:literal) => {
        ($name, include_bytes!(concat!("../assets/demo-model/", $name)).as_slice())
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

#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Folder for the sample set, the model and the outputs.
    #[arg(long, default_value = "vista-demo")]
    pub dir: PathBuf,
    /// A model directory to use instead of the embedded one.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Samples per task.
    #[arg(long, default_value_t = 8)]
    pub samples_per_task: usize,
    /// Skip the random-weights floor (the model's architecture with random weights, scored
    /// beside it).
    #[arg(long)]
    pub no_floor: bool,
    /// Also write DIR/report.html: images with predicted boxes and polygons, and the scores.
    #[arg(long)]
    pub report: bool,
    /// How greedy decoding picks a coordinate token (`vista.coord_decode`): `median` of the
    /// distribution over the bins, or `argmax` as transformers (docs/train.md measures both).
    #[arg(long, default_value = "median", value_parser = ["median", "argmax"])]
    pub coord_decode: String,
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
    let samples = synth.out_dir.join("samples");

    let model_dir = match &opts.model {
        Some(m) => m.clone(),
        None => {
            let m = dir.join("model");
            write_embedded_model(&m)?;
            eprintln!("  model: embedded trained checkpoint -> {}", m.display());
            m
        }
    };
    let run_dir = dir.join("run");
    let done = score(&model_dir, &samples, &run_dir, &opts.coord_decode).await?;
    eprintln!("  {done}");
    let floor_scores = if !opts.no_floor {
        let floor_model = dir.join("floor-model");
        write_random_weights(&model_dir, &floor_model)?;
        eprintln!(
            "  floor: the same architecture with random weights -> {}",
            floor_model.display()
        );
        let floor = score(&floor_model, &samples, &dir.join("floor"), &opts.coord_decode).await?;
        eprintln!("  {floor}");
        floor.scores
    } else {
        None
    };

    let scores = done.scores.as_deref().context("the demo job wrote no scores")?;
    let sql = match &floor_scores {
        Some(f) => format!(
            "SELECT m.task, m.metric, m.value AS model, f.value AS random_weights, m.n, m.variant \
             FROM '{}' m LEFT JOIN '{}' f ON m.task = f.task AND m.metric = f.metric \
             AND m.variant = f.variant ORDER BY m.task, m.metric",
            scores.display(),
            f.display()
        ),
        None => format!("SELECT * FROM '{}' ORDER BY task, metric", scores.display()),
    };
    let ctx = session::new_context(&SessionOptions::default())?;
    let mut stdout = std::io::stdout().lock();
    let sink = crate::engine::Sink {
        format: crate::output::Format::Table,
        out: None,
        max_rows: 0,
        quiet: true,
    };
    crate::engine::run_sql(&ctx, &sql, &sink, &mut stdout).await?;
    println!(
        "(held-out synthetic set, seed {DEMO_SEED}; coordinates decoded by the bins' {}; \
         random_weights is the floor a trained model must beat; gt_contour_iou rows score the \
         ground truth's own point sequences)",
        opts.coord_decode
    );
    if opts.report {
        let page = dir.join("report.html");
        report::write(&ctx, &samples, &done.predictions, scores, floor_scores.as_deref(), &page)
            .await?;
        println!("report: {}", page.display());
    }
    Ok(())
}

/// Runs demo.sql with `model` over `samples` into `out`.
async fn score(
    model: &Path,
    samples: &Path,
    out: &Path,
    coord_decode: &str,
) -> Result<crate::jobs::JobSummary> {
    let ctx = session::new_context(&SessionOptions {
        settings: vec![
            ("vista.model".into(), model.to_string_lossy().to_string()),
            ("vista.batch_size".into(), "8".into()),
            // A 32-point mask is 130 tokens; three of them fit.
            ("vista.max_new_tokens".into(), "400".into()),
            ("vista.coord_decode".into(), coord_decode.into()),
            ("vista.on_error".into(), "null".into()),
        ],
        ..Default::default()
    })?;
    let _ = std::fs::remove_dir_all(out);
    let mut job = crate::jobs::JobOptions::new(samples.to_string_lossy().to_string(), out);
    job.chunk_rows = 64;
    let loader = session::model_loader();
    crate::jobs::run_job(&ctx, DEMO_SQL, Some(&loader), &job).await
}

/// A copy of `model`'s configuration and tokenizers with freshly initialised weights.
fn write_random_weights(model: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    crate::train::copy_model_files(model, out)?;
    let (builder, handle) = crate::train::params::Builder::new(None, FLOOR_SEED, |_| false);
    crate::model::VistaModel::load_with(
        out,
        builder.into_var_builder(&candle_core::Device::Cpu),
        "random".into(),
    )
    .map_err(anyhow::Error::msg)?;
    handle.take().save(out).map_err(anyhow::Error::msg)
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
