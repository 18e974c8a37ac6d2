//! `vista train`: a tiny model trained on a tiny synthetic set learns (the loss falls), its
//! output directory is a checkpoint the model loader reads and generates with, a run cut into
//! slices with `--resume` ends with the same weights as an uninterrupted one, and bad input gets
//! one-line errors.

use std::path::{Path, PathBuf};

use vista::synth::{synth, SynthOptions};
use vista::train::{train, Size, TrainOptions};

fn samples(dir: &Path) -> PathBuf {
    let opts = SynthOptions {
        seed: 3,
        samples_per_task: 6,
        image_size: 48,
        out_dir: dir.to_path_buf(),
        ..SynthOptions::default()
    };
    synth(&opts).unwrap_or_else(|e| panic!("synth failed: {e:#}"));
    dir.join("samples")
}

fn options(samples: &Path, out: &Path) -> TrainOptions {
    TrainOptions {
        samples: vec![samples.to_path_buf()],
        out: out.to_path_buf(),
        size: Size::Tiny,
        image_size: 48,
        seed: 11,
        pretrain_steps: 6,
        pretrain_batch: 4,
        stage1_steps: 24,
        stage2_steps: 4,
        batch_size: 4,
        lr: 3e-3,
        stage2_single: 0.5,
        stage1_multi: 0.25,
        warmup: 4,
        max_tokens: 300,
        vocab_size: 300,
        checkpoint_every: 0,
        quiet: true,
        ..TrainOptions::default()
    }
}

fn losses(out: &Path) -> Vec<(u32, f64)> {
    let text = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(vista::train::curve::CSV_HEADER));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn trains_learns_and_writes_a_loadable_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = samples(&tmp.path().join("data"));
    let out = tmp.path().join("model");
    let opts = TrainOptions { stage1_steps: 40, ..options(&data, &out) };
    let summary = train(&opts, false).unwrap_or_else(|e| panic!("train failed: {e:#}"));
    assert_eq!(summary.steps, 50);
    assert!(summary.stage1_samples > 0 && summary.stage2_samples > 0, "{summary:?}");
    // Stage 0 trains the image tokenizer (stage 2's parameters) plus the encoder and its heads;
    // stage 2 the image tokenizer only.
    assert!(summary.stage0_trained_parameters > summary.stage2_trained_parameters);
    assert!(summary.stage2_trained_parameters < summary.stage1_trained_parameters);

    let curve = losses(&out);
    assert_eq!(curve.len(), 50);
    assert_eq!(curve.iter().filter(|(s, _)| *s == 0).count(), 6);
    assert_eq!(curve.iter().filter(|(s, _)| *s == 2).count(), 4);
    let stage1: Vec<f64> = curve.iter().filter(|(s, _)| *s == 1).map(|(_, l)| *l).collect();
    let head = stage1[..5].iter().sum::<f64>() / 5.0;
    let tail = stage1[stage1.len() - 5..].iter().sum::<f64>() / 5.0;
    assert!(tail < head * 0.8, "the loss did not fall: {head:.3} -> {tail:.3}");

    let png = image::open(out.join("loss.png")).unwrap();
    assert_eq!((png.width(), png.height()), (720, 380));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("train_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["steps"], 50);

    // The directory is a checkpoint: the loader reads it and the model answers.
    let model = vista::model::VistaModel::load(&out, "cpu", "f32").unwrap();
    assert!(model.text.tokenizer.token_to_id("<bin_1000>").is_some());
    let settings =
        vista_udfs::generate::GenerateSettings { max_new_tokens: 8, ..Default::default() };
    let png = {
        let mut buf = Vec::new();
        image::DynamicImage::new_rgb8(32, 32)
            .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        buf
    };
    let req = vista_udfs::generate::GenerateRequest {
        images: vec![png.into()],
        instruction: "What color is the circle? Answer about <image>.".into(),
    };
    use vista_udfs::generate::VisionLanguageModel;
    let out_text = model.generate(std::slice::from_ref(&req), &settings).pop().unwrap();
    assert!(out_text.is_ok(), "{out_text:?}");
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = samples(&tmp.path().join("data"));
    let whole = tmp.path().join("whole");
    train(&options(&data, &whole), false).unwrap();

    // The same run in three slices: one inside stage 0, the next across the boundary into
    // stage 1, the last across the boundary into stage 2.
    let sliced = tmp.path().join("sliced");
    let first = TrainOptions { stop_after: 4, ..options(&data, &sliced) };
    let s = train(&first, false).unwrap();
    assert!(s.stopped_early && s.steps == 4);
    assert!(!sliced.join("model.safetensors").exists(), "a stopped run is not a final model");
    let second = TrainOptions { stop_after: 16, ..options(&data, &sliced) };
    assert_eq!(train(&second, true).unwrap().steps, 16);
    assert_eq!(train(&options(&data, &sliced), true).unwrap().steps, 14);

    let a = std::fs::read(whole.join("model.safetensors")).unwrap();
    let b = std::fs::read(sliced.join("model.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run's");
    assert_eq!(losses(&whole), losses(&sliced));
    for f in ["tokenizer.json", "config.json", "qformer_tokenizer/tokenizer.json"] {
        assert_eq!(
            std::fs::read(whole.join(f)).unwrap(),
            std::fs::read(sliced.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn fine_tunes_an_existing_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = samples(&tmp.path().join("data"));
    let out = tmp.path().join("tuned");
    let init =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model/tiny_xattn1_mha_coords");
    let opts = TrainOptions {
        init: Some(init.clone()),
        pretrain_steps: 0,
        stage1_steps: 3,
        stage2_steps: 1,
        max_tokens: 2000,
        ..options(&data, &out)
    };
    let s = train(&opts, false).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(s.steps, 4);
    // Same architecture and tokenizer as the starting point, new weights.
    assert_eq!(
        std::fs::read(init.join("tokenizer.json")).unwrap(),
        std::fs::read(out.join("tokenizer.json")).unwrap()
    );
    assert_ne!(
        std::fs::read(init.join("model.safetensors")).unwrap(),
        std::fs::read(out.join("model.safetensors")).unwrap()
    );
    vista::model::VistaModel::load(&out, "cpu", "f32").unwrap();
}

#[test]
fn bad_input_gets_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |opts: &TrainOptions, resume: bool| {
        let e = format!("{:#}", train(opts, resume).unwrap_err());
        assert!(!e.contains('\n'), "{e}");
        e
    };
    let missing = tmp.path().join("nope");
    let e = err(&options(&missing, &tmp.path().join("m")), false);
    assert!(e.contains("--samples") && e.contains("nope"), "{e}");

    let data = samples(&tmp.path().join("data"));
    let e = err(&options(&data, &tmp.path().join("fresh")), true);
    assert!(e.contains("--resume") && e.contains("no checkpoint"), "{e}");

    let out = tmp.path().join("m2");
    train(&TrainOptions { stop_after: 2, ..options(&data, &out) }, false).unwrap();
    let e = err(&TrainOptions { lr: 1e-2, ..options(&data, &out) }, true);
    assert!(e.contains("other options"), "{e}");

    let e = err(&TrainOptions { batch_size: 0, ..options(&data, &out) }, false);
    assert!(e.contains("--batch-size"), "{e}");
}
