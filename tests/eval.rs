//! End-to-end tests of the evaluation side: the importers against pycocotools-made expectations,
//! every `queries/eval_*.sql` job on a small fixture set with a tiny checkpoint, `on_error`
//! through a job, and resuming a job killed with SIGKILL mid-run.
//!
//! Fixtures: tests/fixtures/eval (scripts/make_eval_fixtures.py) and the tiny checkpoint in
//! tests/fixtures/model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::SessionContext;
use serde_json::Value;
use vista::import::{self, ImportOptions, Phrasing, PointQaOptions, Query, RefTask, Sample};
use vista::jobs::{run_job, JobOptions, JobSummary};
use vista::session::SessionOptions;
use vista_udfs::generate::{
    GenerateRequest, GenerateSettings, Generation, ModelLoader, ModelSpec, VisionLanguageModel,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
fn fixtures() -> PathBuf {
    root().join("tests/fixtures/eval")
}
fn model_dir() -> PathBuf {
    root().join("tests/fixtures/model/tiny_xattn1_mha_coords")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A session as `vista run` builds it, with the model function and the tiny checkpoint.
fn context() -> SessionContext {
    let settings = [
        ("model", model_dir().display().to_string()),
        ("base_dir", fixtures().join("images").display().to_string()),
        ("max_new_tokens", "12".to_string()),
        ("batch_size", "4".to_string()),
        ("on_error", "null".to_string()),
    ];
    session(&settings, vista::model::loader())
}

/// A session as `vista run` builds it, with `settings` and `vista_generate` on `loader`.
fn session(settings: &[(&str, String)], loader: ModelLoader) -> SessionContext {
    let opts = SessionOptions {
        settings: settings.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        target_partitions: Some(2),
        memory_limit: None,
    };
    let ctx = vista::session::new_context(&opts).unwrap();
    ctx.register_udf(vista_udfs::generate::vista_generate_udf(loader));
    ctx
}

fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// `column` of a Parquet file by `sample_id` (strings; NULL as None).
fn column_by_id(path: &Path, column: &str) -> HashMap<String, Option<String>> {
    let mut out = HashMap::new();
    for b in read_parquet(path) {
        let ids = b.column_by_name("sample_id").unwrap();
        let ids =
            datafusion::arrow::compute::cast(ids, &datafusion::arrow::datatypes::DataType::Utf8)
                .unwrap();
        let col = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        let col =
            datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8)
                .unwrap();
        for i in 0..b.num_rows() {
            let v = (!col.is_null(i)).then(|| col.as_string::<i32>().value(i).to_string());
            assert!(
                out.insert(ids.as_string::<i32>().value(i).to_string(), v).is_none(),
                "duplicate id"
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Importers

fn as_json(s: &Sample) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("sample_id".into(), s.sample_id.clone().into());
    m.insert("task".into(), s.task.clone().into());
    m.insert("image_id".into(), s.image_id.clone().into());
    m.insert("image_path".into(), s.image_path.clone().into());
    m.insert("instruction".into(), s.instruction.clone().into());
    if let Some(w) = s.width {
        m.insert("width".into(), w.into());
    }
    if let Some(h) = s.height {
        m.insert("height".into(), h.into());
    }
    if let Some(t) = &s.target {
        m.insert("target".into(), t.clone().into());
    }
    if let Some(a) = &s.answers {
        m.insert("answers".into(), a.clone().into());
    }
    if let Some(b) = &s.boxes {
        m.insert("boxes".into(), serde_json::to_value(b).unwrap());
    }
    if let Some(ms) = &s.masks {
        let v: Vec<Value> =
            ms.iter().map(|(h, w, c)| serde_json::json!({"size": [h, w], "counts": c})).collect();
        m.insert("masks".into(), v.into());
    }
    if let Some(sp) = &s.split {
        m.insert("split".into(), sp.clone().into());
    }
    Value::Object(m)
}

fn expected(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_samples(got: &[Sample], want: &[Value]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(&as_json(g), w, "sample {}", g.sample_id);
    }
}

#[test]
fn coco_captions_import_matches_reference() {
    let got =
        import::coco_captions_samples(&fixtures().join("captions.json"), &ImportOptions::default())
            .unwrap();
    assert_samples(&got, &expected("expected_captions.json"));
}

#[test]
fn vqav2_import_matches_reference() {
    let f = fixtures();
    let got = import::vqav2_samples(
        &f.join("vqa_questions.json"),
        Some(&f.join("vqa_annotations.json")),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_samples(&got, &expected("expected_vqa.json"));
}

#[test]
fn refcoco_import_matches_pycocotools() {
    let f = fixtures();
    let opts = ImportOptions { split: Some("val".into()), ..Default::default() };
    for (task, want) in [
        (RefTask::Rec, "expected_refcoco_rec_val.json"),
        (RefTask::Res, "expected_refcoco_res_val.json"),
    ] {
        let got =
            import::refs_samples(&f.join("refs.json"), &f.join("instances.json"), task, &opts)
                .unwrap();
        assert_samples(&got, &expected(want));
    }
}

#[test]
fn grefcoco_import_matches_pycocotools() {
    let f = fixtures();
    for (task, want) in [
        (RefTask::Grec, "expected_grefcoco_grec.json"),
        (RefTask::Gres, "expected_grefcoco_gres.json"),
    ] {
        let got = import::refs_samples(
            &f.join("grefs.json"),
            &f.join("instances.json"),
            task,
            &ImportOptions::default(),
        )
        .unwrap();
        assert_samples(&got, &expected(want));
        assert!(got.iter().any(|s| s.boxes.as_ref().unwrap().is_empty()), "a no-target sample");
    }
}

#[test]
fn pope_import_reads_json_lines_and_skips_malformed_ones() {
    let path = fixtures().join("pope_questions.json");
    let opts = ImportOptions { images_prefix: "val2014/".into(), ..Default::default() };
    let (got, skipped) = import::pope_samples(&path, &opts).unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.sample_id.as_str()).collect();
    let want: Vec<String> = (1..=11).map(|q| format!("pope-{q}")).collect();
    assert_eq!(ids, want);
    assert_eq!(
        got[1],
        Sample {
            sample_id: "pope-2".into(),
            task: "vqa".into(),
            image_id: Some("COCO_val2014_000000000001".into()),
            image_path: Some("val2014/COCO_val2014_000000000001.jpg".into()),
            instruction: "Is there a dog in the image?".into(),
            target: Some("no".into()),
            answers: Some(vec!["no".into()]),
            source: Some("pope".into()),
            ..Default::default()
        }
    );
    let at = |line: usize| format!("{} line {line}: ", path.display());
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert_eq!(skipped[0], format!("{}question 12: label must be yes or no, got \"maybe\"", at(5)));
    assert_eq!(skipped[1], format!("{}question 13: no text", at(6)));
    assert!(skipped[2].starts_with(&format!("{}not JSON (", at(12))), "{}", skipped[2]);
    assert_eq!(skipped[3], format!("{}question 1: duplicate question_id", at(16)));
}

/// The three PointQA fixtures as the eval job reads them: Local with point queries, LookTwice
/// with box queries and the object phrasing, Visual7W pointing.
fn pointqa_fixture_samples() -> (Vec<Sample>, Vec<String>) {
    let f = fixtures();
    let (mut all, mut skipped) = (Vec::new(), Vec::new());
    for (file, source, query, phrasing) in [
        ("pointqa_local.jsonl", "pointqa-local", Query::Point, Phrasing::General),
        ("pointqa_twice.jsonl", "looktwice", Query::Box, Phrasing::Object),
        ("v7w_pointing.jsonl", "v7w", Query::Point, Phrasing::General),
    ] {
        let opts = ImportOptions { source: Some(source.into()), ..Default::default() };
        let pq = PointQaOptions { query, phrasing };
        let (samples, skips) = import::pointqa_samples(&f.join(file), pq, &opts).unwrap();
        all.extend(samples);
        skipped.extend(skips);
    }
    (all, skipped)
}

#[test]
fn pointqa_import_reads_local_looktwice_and_visual7w_lines() {
    let (got, skipped) = pointqa_fixture_samples();
    let ids: Vec<&str> = got.iter().map(|s| s.sample_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "pointqa-local-1",
            "pointqa-local-2",
            "pointqa-local-4",
            "pointqa-local-6",
            "pointqa-local-7",
            "looktwice-1",
            "looktwice-2",
            "looktwice-3",
            "v7w-1",
            "v7w-2",
            "v7w-3"
        ]
    );
    let image = |k: u32| format!("COCO_val2014_{k:012}");
    assert_eq!(
        got[0],
        Sample {
            sample_id: "pointqa-local-1".into(),
            task: "pointqa".into(),
            image_id: Some(image(1)),
            image_path: Some(format!("{}.jpg", image(1))),
            instruction: "What color is this object?".into(),
            target: Some("red".into()),
            answers: Some(vec!["red".into()]),
            points: Some(vec![12.0, 11.0]),
            source: Some("pointqa-local".into()),
            ..Default::default()
        }
    );
    // LookTwice with --query box --question object: the object phrasing and the box.
    assert_eq!(got[5].instruction, "What color is this box?");
    assert_eq!(got[5].points, Some(vec![5.0, 5.0, 30.0, 30.0]));
    // Visual7W: the candidates in the id-derived order, the answer's 1-based position.
    let v7w = &got[8];
    assert_eq!((v7w.task.as_str(), v7w.instruction.as_str()), ("pointing", "Which object is red?"));
    let boxes = v7w.boxes.as_ref().unwrap();
    let position: Vec<usize> =
        got[8..].iter().map(|s| s.answers.as_ref().unwrap()[0].parse().unwrap()).collect();
    assert_eq!(position, [3, 3, 2]);
    assert_eq!(boxes[position[0] - 1], [4.0, 5.0, 20.0, 18.0]);
    assert_eq!(boxes.len(), 4);
    let at = |file: &str, line: usize| format!("{} line {line}: ", fixtures().join(file).display());
    assert_eq!(
        skipped,
        [
            format!("{}point must be 2 finite numbers, got [1]", at("pointqa_local.jsonl", 3)),
            format!("{}no question", at("pointqa_local.jsonl", 5)),
            format!(
                "{}bbox [9,9,1,1] is not [x0, y0, x1, y1] with x0 <= x1, y0 <= y1",
                at("pointqa_twice.jsonl", 4)
            ),
            format!("{}the answer box is not one of the candidates", at("v7w_pointing.jsonl", 4)),
        ]
    );
}

#[test]
fn karpathy_import_keeps_a_split_and_skips_images_without_sentences() {
    let path = fixtures().join("karpathy_coco.json");
    let test = ImportOptions { split: Some("test".into()), ..Default::default() };
    let (got, skipped) = import::karpathy_samples(&path, &test).unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.sample_id.as_str()).collect();
    assert_eq!(ids, ["karpathy-1", "karpathy-2"]);
    assert_eq!(
        got[0],
        Sample {
            sample_id: "karpathy-1".into(),
            task: "caption".into(),
            image_id: Some("1".into()),
            image_path: Some("val2014/COCO_val2014_000000000001.jpg".into()),
            answers: Some(vec!["A red square on a table.".into(), "Two shapes near a box.".into()]),
            split: Some("test".into()),
            source: Some("karpathy".into()),
            ..Default::default()
        }
    );
    assert_eq!(got[1].answers.as_ref().unwrap().len(), 3);
    let bad = format!("{} image #4: COCO_val2014_000000000005.jpg: no sentences", path.display());
    assert_eq!(skipped, std::slice::from_ref(&bad));
    let (all, skipped) = import::karpathy_samples(&path, &ImportOptions::default()).unwrap();
    let splits: Vec<&str> = all.iter().map(|s| s.split.as_deref().unwrap()).collect();
    assert_eq!(splits, ["test", "test", "val", "restval"]);
    assert_eq!(skipped, [bad]);
}

#[test]
fn nlvr2_import_embeds_the_image_pairs_and_skips_bad_lines() {
    let f = fixtures();
    let path = f.join("nlvr2_dev.json");
    let (got, skipped) =
        import::nlvr2_samples(&path, &f.join("nlvr2"), &ImportOptions::default()).unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.sample_id.as_str()).collect();
    assert_eq!(ids, ["nlvr2-dev-100-0-0", "nlvr2-dev-101-0-1", "nlvr2-dev-102-0-0"]);
    let img = |n: &str| std::fs::read(f.join("nlvr2").join(n)).unwrap();
    assert_eq!(
        got[1],
        Sample {
            sample_id: "nlvr2-dev-101-0-1".into(),
            task: "nlvr".into(),
            image_id: Some("dev-101-0".into()),
            images: Some(vec![img("dev-101-0-img0.png"), img("dev-101-0-img1.png")]),
            instruction: "Statement 1 about two images.".into(),
            target: Some("true".into()),
            split: Some("dev".into()),
            source: Some("nlvr2".into()),
            ..Default::default()
        }
    );
    let at = |line: usize| format!("{} line {line}: ", path.display());
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert_eq!(
        skipped[0],
        format!("{}dev-100-0-3: label must be True or False, got \"maybe\"", at(3))
    );
    assert!(skipped[1].starts_with(&format!("{}not JSON (", at(5))), "{}", skipped[1]);
    let missing =
        format!("{}dev-103-0-1: image {}", at(6), f.join("nlvr2/dev-103-0-img0.png").display());
    assert!(skipped[2].starts_with(&missing), "{}", skipped[2]);
}

#[test]
fn vg_regions_import_streams_regions_and_skips_malformed_ones() {
    let path = fixtures().join("vg_regions.json");
    let opts = ImportOptions { images_prefix: "VG_100K/".into(), ..Default::default() };
    let (got, skipped) = import::vg_region_samples(&path, &opts).unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.sample_id.as_str()).collect();
    assert_eq!(ids, ["vg-501", "vg-503", "vg-505"]);
    assert_eq!(
        got[1],
        Sample {
            sample_id: "vg-503".into(),
            task: "region_caption".into(),
            image_id: Some("1".into()),
            image_path: Some("VG_100K/1.jpg".into()),
            points: Some(vec![12.0, 10.0, 32.0, 22.0]),
            target: Some("the blue box".into()),
            answers: Some(vec!["the blue box".into()]),
            source: Some("vg".into()),
            ..Default::default()
        }
    );
    let p = path.display();
    assert_eq!(
        skipped,
        [
            format!("{p} image #0 region #1: region 502: empty box 0 x 8"),
            format!("{p} image #1 region #0: region 504: no phrase"),
        ]
    );
}

#[test]
fn refs_regions_import_gives_one_sample_per_ref() {
    let f = fixtures();
    let got = import::refs_region_samples(
        &f.join("refs_regions.json"),
        &f.join("instances.json"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(got.len(), 6);
    let inst: Value =
        serde_json::from_str(&std::fs::read_to_string(f.join("instances.json")).unwrap()).unwrap();
    let ann = inst["annotations"].as_array().unwrap().iter().find(|a| a["id"] == 101).unwrap();
    let b: Vec<f64> = ann["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(
        got[0],
        Sample {
            sample_id: "refcocog-600".into(),
            task: "region_caption".into(),
            image_id: Some("1".into()),
            image_path: Some("COCO_val2014_000000000001.jpg".into()),
            width: Some(40),
            height: Some(30),
            points: Some(vec![b[0], b[1], b[0] + b[2], b[1] + b[3]]),
            target: Some("a red square on the left".into()),
            answers: Some(vec!["a red square on the left".into(), "the small red box".into()]),
            split: Some("val".into()),
            source: Some("refcocog".into()),
            ..Default::default()
        }
    );
}

#[test]
fn coseg_import_groups_images_with_their_masks() {
    let f = fixtures();
    let (images, masks) = (f.join("coseg/images"), f.join("coseg/masks"));
    let (got, skipped) =
        import::coseg_samples(&images, &masks, 2, &ImportOptions::default()).unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.sample_id.as_str()).collect();
    assert_eq!(ids, ["coseg-bear-1", "coseg-kite-1"]);
    // bear: b1, b2 and b3 (a last sample of one image joins the one before); b4 has no mask.
    let bear = &got[0];
    assert_eq!(bear.task, "coseg");
    assert_eq!(bear.image_id.as_deref(), Some("bear"));
    let img = |g: &str, n: &str| std::fs::read(images.join(g).join(n)).unwrap();
    assert_eq!(
        bear.images.as_ref().unwrap(),
        &[img("bear", "b1.png"), img("bear", "b2.png"), img("bear", "b3.png")]
    );
    assert_eq!((bear.width, bear.height), (Some(30), Some(20)));
    // b1's mask: the box x 5..18, y 4..15 of a 30 x 20 image, as COCO RLE.
    let b1 = &bear.masks.as_ref().unwrap()[0];
    assert_eq!((b1.0, b1.1), (20, 30));
    let m = vista_udfs::contour::mask::Mask::from_rle_string(20, 30, &b1.2).unwrap();
    assert_eq!(m.area(), 13 * 11);
    assert!(m.get(5, 4) && m.get(17, 14) && !m.get(18, 14) && !m.get(5, 3));
    assert_eq!(got[1].images.as_ref().unwrap().len(), 2);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let b4 = images.join("bear/b4.png");
    assert!(skipped[0].starts_with(&format!("{}: no mask ", b4.display())), "{}", skipped[0]);
    let k3 = format!(
        "{}: mask {} is 20x21, the image 20x20",
        images.join("kite/k3.png").display(),
        masks.join("kite/k3.png").display()
    );
    assert_eq!(skipped[1], k3);
}

#[test]
fn imported_parquet_matches_the_samples_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("refs.parquet");
    let f = fixtures();
    let n = import::import_refs(
        &f.join("grefs.json"),
        &f.join("instances.json"),
        RefTask::Gres,
        &ImportOptions::default(),
        &out,
    )
    .unwrap();
    assert_eq!(n, 6);
    let rt = runtime();
    rt.block_on(async {
        let ctx = context();
        vista::tables::register(&ctx, "s", out.to_str().unwrap()).await.unwrap();
        let spec = vista::tables::load_schema("samples").unwrap();
        let problems = vista::tables::check(&ctx, "s", &spec).await.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    });
}

#[test]
fn bad_import_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"images\": 3}").unwrap();
    let err = import::coco_captions_samples(&bad, &ImportOptions::default()).unwrap_err();
    assert!(format!("{err:#}").contains("is not in the expected format"), "{err:#}");
    let f = fixtures();
    let err = import::refs_samples(
        &f.join("grefs.json"),
        &f.join("instances.json"),
        RefTask::Rec,
        &ImportOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("target objects; use grec/gres")
            || err.to_string().contains("no target object"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sample tables for the jobs

fn image_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("images").join(name)).unwrap()
}

/// Writes the samples table of `task` under `dir`; returns its path and row count.
fn samples_for(task: &str, dir: &Path) -> (PathBuf, usize) {
    let path = dir.join(format!("{task}_samples.parquet"));
    let n = import::write_samples(&path, samples_of(task)).unwrap();
    (path, n)
}

/// The fixture samples of `task`.
fn samples_of(task: &str) -> Vec<Sample> {
    let f = fixtures();
    let opts = ImportOptions::default();
    let val = ImportOptions { split: Some("val".into()), ..Default::default() };
    let samples: Vec<Sample> = match task {
        "caption" => import::coco_captions_samples(&f.join("captions.json"), &opts).unwrap(),
        "vqa" => import::vqav2_samples(
            &f.join("vqa_questions.json"),
            Some(&f.join("vqa_annotations.json")),
            &opts,
        )
        .unwrap(),
        "rec" => import::refs_samples(
            &f.join("refs.json"),
            &f.join("instances.json"),
            RefTask::Rec,
            &val,
        )
        .unwrap(),
        "res" => import::refs_samples(
            &f.join("refs.json"),
            &f.join("instances.json"),
            RefTask::Res,
            &val,
        )
        .unwrap(),
        "grec" => import::refs_samples(
            &f.join("grefs.json"),
            &f.join("instances.json"),
            RefTask::Grec,
            &opts,
        )
        .unwrap(),
        "gres" => import::refs_samples(
            &f.join("grefs.json"),
            &f.join("instances.json"),
            RefTask::Gres,
            &opts,
        )
        .unwrap(),
        "nlvr" => {
            let rows: Vec<Value> =
                serde_json::from_str(&std::fs::read_to_string(f.join("nlvr.json")).unwrap())
                    .unwrap();
            rows.iter()
                .map(|r| Sample {
                    sample_id: r["sample_id"].as_str().unwrap().into(),
                    task: "nlvr".into(),
                    images: Some(vec![
                        image_bytes(r["left"].as_str().unwrap()),
                        image_bytes(r["right"].as_str().unwrap()),
                    ]),
                    instruction: r["sentence"].as_str().unwrap().into(),
                    target: Some(r["label"].as_str().unwrap().into()),
                    ..Default::default()
                })
                .collect()
        }
        "pope" => import::pope_samples(&f.join("pope_questions.json"), &opts).unwrap().0,
        "pointqa" => pointqa_fixture_samples().0,
        "coseg" => {
            import::coseg_samples(&f.join("coseg/images"), &f.join("coseg/masks"), 2, &opts)
                .unwrap()
                .0
        }
        "region_caption" => import::refs_region_samples(
            &f.join("refs_regions.json"),
            &f.join("instances.json"),
            &opts,
        )
        .unwrap(),
        other => panic!("no samples for {other}"),
    };
    samples
}

/// A job file as the tiny random checkpoint runs it: its generation length capped at 16 tokens.
/// Random weights rarely write an end token, so each row would run to the job's own length
/// (up to 1024 for masks); the jobs' plumbing, not the length, is under test here.
fn job_sql(task: &str) -> String {
    let sql = std::fs::read_to_string(root().join(format!("queries/eval_{task}.sql"))).unwrap();
    sql.lines()
        .map(|l| {
            if l.starts_with("SET vista.max_new_tokens") {
                "SET vista.max_new_tokens = 16;"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn job(
    ctx: &SessionContext,
    task: &str,
    samples: &Path,
    out: &Path,
    chunk_rows: usize,
    resume: bool,
) -> JobSummary {
    let sql = job_sql(task);
    let opts = JobOptions {
        samples: samples.display().to_string(),
        out_dir: out.to_path_buf(),
        resume,
        chunk_rows,
        progress: false,
        drop_unreadable: false,
    };
    let loader = vista::model::loader();
    runtime()
        .block_on(run_job(ctx, &sql, Some(&loader), &opts))
        .unwrap_or_else(|e| panic!("{task}: {e:#}"))
}

const TASKS: [(&str, &[&str]); 11] = [
    ("caption", &["bleu_1", "bleu_4", "cider_d", "failed", "truncated"]),
    ("vqa", &["failed", "truncated", "vqa_accuracy"]),
    ("rec", &["acc@0.5", "failed", "parsed", "truncated"]),
    ("res", &["ciou", "failed", "miou", "pr_50", "truncated"]),
    ("grec", &["failed", "n_acc", "precision_f1_1", "t_acc", "truncated"]),
    ("gres", &["ciou", "failed", "giou", "n_acc", "t_acc", "truncated"]),
    ("nlvr", &["accuracy", "failed", "truncated"]),
    ("pope", &["accuracy", "f1", "failed", "precision", "recall", "truncated", "yes_ratio"]),
    ("region_caption", &["bleu_1", "bleu_4", "cider_d", "failed", "rouge_l", "truncated"]),
    ("coseg", &["failed", "jaccard", "precision", "truncated"]),
    (
        "pointqa",
        &[
            "accuracy",
            "failed",
            "pointing.accuracy",
            "pointing.failed",
            "pointing.truncated",
            "truncated",
        ],
    ),
];

#[test]
fn every_eval_query_runs_as_a_job_and_as_plain_sql() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context();
    for (task, metrics) in TASKS {
        let (samples, n) = samples_for(task, dir.path());
        let out = dir.path().join(task);
        let summary = job(&ctx, task, &samples, &out, 3, false);
        assert_eq!(
            (summary.total, summary.computed, summary.resumed, summary.failed),
            (n, n, 0, 0),
            "{task}"
        );

        let preds = out.join("predictions.parquet");
        let raw = column_by_id(&preds, "raw");
        assert_eq!(raw.len(), n, "{task}");
        assert!(raw.values().all(Option::is_some), "{task}: every row generated");
        let status = column_by_id(&preds, "parse_status");
        assert!(status.values().all(Option::is_some), "{task}: every row has a parse status");
        let latency = column_by_id(&preds, "latency_ms");
        assert!(latency
            .values()
            .all(|v| v.as_ref().is_some_and(|v| v.parse::<f64>().unwrap() >= 0.0)));

        // Score values are checked exactly by the scripted-model tests below; here the counts.
        let scores = scores_by_metric(&out.join("scores.parquet"), task);
        let mut names: Vec<&str> = scores.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, metrics, "{task}");
        assert_eq!(scores["failed"], 0.0, "{task}");
        let cut = status.values().filter(|s| s.as_deref() == Some("truncated")).count();
        let counted = scores["truncated"] + scores.get("pointing.truncated").unwrap_or(&0.0);
        assert_eq!(counted, cut as f64, "{task}");

        // The same file run as plain SQL (every statement, the scores query included) gives
        // the same predictions.
        let plain = plain_predictions(&ctx, task, &samples);
        assert_eq!(plain, raw, "{task}: job and plain SQL differ");
    }
}

/// The same job files run a LLaVA and a Qwen3-VL checkpoint: `vista.coord_style` (`llava`,
/// `qwen`) makes them ask in the family's own words, the family's chat template wraps the
/// prompt, and the output metadata says which family and rules wrote the answers.
#[test]
fn eval_jobs_run_other_families_unchanged() {
    let families = [
        (
            "llava_tiny_default_gqa",
            "llava",
            [
                "Provide a one-sentence caption for the provided image.",
                "\nAnswer the question using a single word or phrase.",
                "Please provide the bounding box coordinate of the region this sentence describes: ",
            ],
        ),
        (
            "llava_next_tiny_a",
            "llava",
            [
                "Provide a one-sentence caption for the provided image.",
                "\nAnswer the question using a single word or phrase.",
                "Please provide the bounding box coordinate of the region this sentence describes: ",
            ],
        ),
        (
            "qwen3_vl_tiny_gqa",
            "qwen",
            [
                "Describe this image in one sentence.",
                "\nAnswer the question using a single word or phrase.",
                " in the image and output its bbox coordinates in JSON format.",
            ],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (checkpoint, style, asks) in families {
        let path = root().join("tests/fixtures/model").join(checkpoint);
        let settings = [
            ("model", path.display().to_string()),
            ("base_dir", fixtures().join("images").display().to_string()),
            ("coord_style", style.to_string()),
            ("batch_size", "4".to_string()),
        ];
        let ctx = session(&settings, vista::model::loader());
        let model = vista::model::load_model(&path, "cpu", "f32").unwrap();
        let family = model.fingerprint().rsplit_once('-').unwrap().0.to_string();
        for (task, asks) in ["caption", "vqa", "rec"].into_iter().zip(asks) {
            let (samples, n) = samples_for(task, dir.path());
            let out = dir.path().join(format!("{checkpoint}_{task}"));
            let summary = job(&ctx, task, &samples, &out, 4, false);
            assert_eq!((summary.computed, summary.failed), (n, 0), "{style} {task}");
            let preds = out.join("predictions.parquet");
            let instructions = column_by_id(&preds, "instruction");
            let raw = column_by_id(&preds, "raw");
            assert!(
                instructions.values().all(|i| i.as_deref().unwrap().contains(asks)),
                "{style} {task}: {instructions:?}"
            );
            // Each answer is what the model writes for that instruction alone (16 new tokens).
            let (id, instruction) = instructions.iter().min_by_key(|(id, _)| id.as_str()).unwrap();
            let sample = samples_of(task).into_iter().find(|s| &s.sample_id == id).unwrap();
            let image = image_bytes(sample.image_path.as_deref().unwrap());
            let images = vec![Arc::<[u8]>::from(image.as_slice())];
            let request = GenerateRequest { images, instruction: instruction.clone().unwrap() };
            let gen = GenerateSettings { max_new_tokens: 16, ..Default::default() };
            let alone = model.generate(&[request], &gen).pop().unwrap().unwrap();
            assert_eq!(raw[id].as_deref(), Some(alone.as_str()), "{style} {task} {id}");
            let file = std::fs::File::open(&preds).unwrap();
            let meta = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
                .parse_and_finish(&file)
                .unwrap();
            let kv: HashMap<String, String> = meta
                .file_metadata()
                .key_value_metadata()
                .unwrap()
                .iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect();
            assert_eq!(kv.get("vista.model_type"), Some(&family), "{style} {task}");
            assert_eq!(kv["vista.coord_style"], style, "{style} {task}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Exact scores: fixed model outputs, scored by the SQL of each job against the official code

/// A model that answers from a script: for each request, the text of the sample whose images
/// it carries and whose instruction (question, expression; empty for captions) its prompt
/// contains, the longest such instruction winning. The jobs' prompts, parsing and scoring run
/// unchanged; only the network is replaced.
struct ScriptedModel {
    /// (images, instruction, text) per sample.
    script: Vec<(Vec<Vec<u8>>, String, String)>,
}

impl VisionLanguageModel for ScriptedModel {
    fn fingerprint(&self) -> String {
        "scripted".to_string()
    }
    fn generate(
        &self,
        batch: &[GenerateRequest],
        _settings: &GenerateSettings,
    ) -> Vec<Result<String, String>> {
        batch
            .iter()
            .map(|r| {
                let mut best: Option<&(Vec<Vec<u8>>, String, String)> = None;
                for entry in &self.script {
                    let same_images = entry.0.len() == r.images.len()
                        && entry.0.iter().zip(&r.images).all(|(a, b)| a.as_slice() == b.as_ref());
                    if same_images
                        && r.instruction.contains(entry.1.as_str())
                        && best.is_none_or(|b| entry.1.len() > b.1.len())
                    {
                        best = Some(entry);
                    }
                }
                best.map(|e| e.2.clone())
                    .ok_or_else(|| format!("no scripted answer for {:?}", r.instruction))
            })
            .collect()
    }
    fn generate_detailed(
        &self,
        batch: &[GenerateRequest],
        settings: &GenerateSettings,
    ) -> Vec<Result<Generation, String>> {
        // A scripted text marked CUT: stands for an answer that reached max_new_tokens.
        self.generate(batch, settings)
            .into_iter()
            .map(|r| {
                r.map(|t| match t.strip_prefix(CUT) {
                    Some(rest) => Generation { text: rest.to_string(), truncated: true },
                    None => Generation { text: t, truncated: false },
                })
            })
            .collect()
    }
}

/// Prefix of a scripted text that the length limit cut (scripts/make_eval_score_fixtures.py).
const CUT: &str = "CUT:";

/// The scripted texts and official scores of `task` (scripts/make_eval_score_fixtures.py).
fn scored_fixture(task: &str) -> (HashMap<String, String>, HashMap<String, f64>) {
    let text = std::fs::read_to_string(fixtures().join("scored_predictions.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    let t = &all[task];
    let raw = t["raw"]
        .as_object()
        .unwrap_or_else(|| panic!("no scripted outputs for {task}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let scores = t["scores"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    (raw, scores)
}

/// A session as `vista run` builds it whose `vista_generate` is the scripted model of `samples`;
/// returns it with its loader.
fn scripted_context(
    task: &str,
    samples: &[Sample],
    raw: &HashMap<String, String>,
) -> (SessionContext, ModelLoader) {
    let script = samples
        .iter()
        .map(|s| {
            let images = match (&s.images, &s.image_path) {
                (Some(imgs), _) => imgs.clone(),
                (None, Some(p)) => vec![image_bytes(p)],
                (None, None) => panic!("{}: no image", s.sample_id),
            };
            let text =
                raw.get(&s.sample_id).unwrap_or_else(|| panic!("no text for {}", s.sample_id));
            (images, s.instruction.clone(), text.clone())
        })
        .collect();
    let model: Arc<dyn VisionLanguageModel> = Arc::new(ScriptedModel { script });
    let loader: ModelLoader = Arc::new(move |_spec: &ModelSpec| Ok(model.clone()));
    let settings = [
        // One worker per model directory and process: a name per task keeps the scripts apart.
        ("model", format!("scripted-{task}")),
        ("base_dir", fixtures().join("images").display().to_string()),
        ("on_error", "null".to_string()),
    ];
    (session(&settings, loader.clone()), loader)
}

/// `metric -> value` of a scores table (NULL as NaN, which equals nothing); the rows of a task
/// other than the job's own (pointing in the PointQA job) as `task.metric`.
fn scores_by_metric(path: &Path, job_task: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let utf8 = |b: &RecordBatch, name: &str| {
        datafusion::arrow::compute::cast(
            b.column_by_name(name).unwrap(),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap()
    };
    for b in read_parquet(path) {
        let (m, t) = (utf8(&b, "metric"), utf8(&b, "task"));
        let v = b
            .column_by_name("value")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        for i in 0..b.num_rows() {
            let (metric, task) = (m.as_string::<i32>().value(i), t.as_string::<i32>().value(i));
            let name =
                if task == job_task { metric.to_string() } else { format!("{task}.{metric}") };
            let value = if v.is_null(i) { f64::NAN } else { v.value(i) };
            assert!(out.insert(name, value).is_none(), "a metric twice");
        }
    }
    out
}

/// Runs `queries/eval_<task>.sql` as a job on the task's fixture samples with the scripted
/// outputs and checks every score against the official code's, to 1e-9.
fn assert_job_scores_match_reference(task: &str) {
    let dir = tempfile::tempdir().unwrap();
    let samples = samples_of(task);
    let n = samples.len();
    let (raw, want) = scored_fixture(task);
    assert_eq!(raw.len(), n, "{task}: one scripted text per sample");
    let (ctx, loader) = scripted_context(task, &samples, &raw);
    let path = dir.path().join("samples.parquet");
    import::write_samples(&path, samples).unwrap();
    let sql = std::fs::read_to_string(root().join(format!("queries/eval_{task}.sql"))).unwrap();
    let out = dir.path().join("out");
    let opts = JobOptions {
        chunk_rows: 5,
        progress: false,
        ..JobOptions::new(path.display().to_string(), &out)
    };
    let summary = runtime()
        .block_on(run_job(&ctx, &sql, Some(&loader), &opts))
        .unwrap_or_else(|e| panic!("{task}: {e:#}"));
    assert_eq!((summary.total, summary.failed), (n, 0), "{task}");
    let got_raw = column_by_id(&out.join("predictions.parquet"), "raw");
    let status = column_by_id(&out.join("predictions.parquet"), "parse_status");
    for (id, text) in &raw {
        let text = text.strip_prefix(CUT).unwrap_or(text);
        assert_eq!(got_raw[id].as_deref(), Some(text), "{task} {id}");
        if raw[id].starts_with(CUT) {
            assert_eq!(status[id].as_deref(), Some("truncated"), "{task} {id}");
        }
    }
    let got = scores_by_metric(&out.join("scores.parquet"), task);
    let mut names: Vec<&String> = got.keys().collect();
    names.sort();
    let mut want_names: Vec<&String> = want.keys().collect();
    want_names.sort();
    assert_eq!(names, want_names, "{task}: metrics");
    for (metric, w) in &want {
        let g = got[metric];
        assert!((g - w).abs() <= 1e-9, "{task} {metric}: vista {g}, reference {w}");
    }
}

#[test]
fn job_outputs_follow_the_session_parquet_settings() {
    let dir = tempfile::tempdir().unwrap();
    let samples = samples_of("nlvr");
    let (raw, _) = scored_fixture("nlvr");
    let (ctx, loader) = scripted_context("nlvr", &samples, &raw);
    runtime().block_on(async {
        let set = "SET datafusion.execution.parquet.compression = 'snappy'";
        ctx.sql(set).await.unwrap().collect().await.unwrap();
    });
    let path = dir.path().join("samples.parquet");
    import::write_samples(&path, samples).unwrap();
    let sql = std::fs::read_to_string(root().join("queries/eval_nlvr.sql")).unwrap();
    let out = dir.path().join("out");
    let opts = JobOptions { progress: false, ..JobOptions::new(path.display().to_string(), &out) };
    runtime().block_on(run_job(&ctx, &sql, Some(&loader), &opts)).unwrap();
    for name in ["predictions.parquet", "scores.parquet"] {
        let file = std::fs::File::open(out.join(name)).unwrap();
        let meta = datafusion::parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        let codec = meta.row_group(0).column(0).compression();
        assert_eq!(codec, datafusion::parquet::basic::Compression::SNAPPY, "{name}");
        let kv = meta.file_metadata().key_value_metadata().unwrap();
        assert!(kv.iter().any(|k| k.key == "vista.job.fingerprint"), "{name}: {kv:?}");
    }
}

#[test]
fn caption_scores_equal_pycocoevalcap() {
    assert_job_scores_match_reference("caption");
}

#[test]
fn vqa_scores_equal_the_official_vqa_eval() {
    assert_job_scores_match_reference("vqa");
}

#[test]
fn rec_scores_equal_the_reference() {
    assert_job_scores_match_reference("rec");
}

#[test]
fn res_scores_equal_lavt() {
    assert_job_scores_match_reference("res");
}

#[test]
fn grec_scores_equal_grefcoco() {
    assert_job_scores_match_reference("grec");
}

#[test]
fn gres_scores_equal_rela() {
    assert_job_scores_match_reference("gres");
}

#[test]
fn nlvr_scores_equal_the_reference() {
    assert_job_scores_match_reference("nlvr");
}

#[test]
fn pope_scores_equal_the_official_pope_eval() {
    assert_job_scores_match_reference("pope");
}

#[test]
fn region_caption_scores_equal_pycocoevalcap() {
    assert_job_scores_match_reference("region_caption");
}

#[test]
fn coseg_scores_equal_the_reference_definition() {
    assert_job_scores_match_reference("coseg");
}

#[test]
fn pointqa_and_pointing_scores_equal_shikra() {
    assert_job_scores_match_reference("pointqa");
}

fn plain_predictions(
    ctx: &SessionContext,
    task: &str,
    samples: &Path,
) -> HashMap<String, Option<String>> {
    let sql = job_sql(task);
    runtime().block_on(async {
        let _ = ctx.deregister_table("samples");
        vista::tables::register(ctx, "samples", samples.to_str().unwrap()).await.unwrap();
        for stmt in vista::engine::parse(&sql).unwrap() {
            ctx.sql(&stmt.to_string()).await.unwrap().collect().await.unwrap();
        }
        let batches = ctx
            .sql("SELECT sample_id, raw FROM predictions")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let _ = ctx.deregister_table("samples");
        let mut out = HashMap::new();
        for b in batches {
            let ids = datafusion::arrow::compute::cast(
                b.column(0),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let raw = datafusion::arrow::compute::cast(
                b.column(1),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            for i in 0..b.num_rows() {
                out.insert(
                    ids.as_string::<i32>().value(i).to_string(),
                    (!raw.is_null(i)).then(|| raw.as_string::<i32>().value(i).to_string()),
                );
            }
        }
        out
    })
}

#[test]
fn a_failed_row_is_null_with_its_error_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixtures();
    let mut samples = import::vqav2_samples(
        &f.join("vqa_questions.json"),
        Some(&f.join("vqa_annotations.json")),
        &ImportOptions::default(),
    )
    .unwrap();
    samples.truncate(3);
    samples[1].image_path = Some("corrupt.jpg".into());
    let bad_id = samples[1].sample_id.clone();
    let path = dir.path().join("vqa.parquet");
    import::write_samples(&path, samples).unwrap();
    let ctx = context();
    let summary = job(&ctx, "vqa", &path, &dir.path().join("out"), 2, false);
    assert_eq!((summary.total, summary.failed), (3, 1));
    let preds = summary.predictions;
    let errors = column_by_id(&preds, "error");
    let raw = column_by_id(&preds, "raw");
    assert!(errors[&bad_id].is_some(), "{errors:?}");
    assert_eq!(raw[&bad_id], None);
    assert_eq!(errors.values().filter(|e| e.is_some()).count(), 1);

    // With the default policy the job stops, naming the function and the row.
    let ctx = context();
    runtime().block_on(async {
        ctx.sql("SET vista.on_error = 'fail'").await.unwrap().collect().await.unwrap()
    });
    let sql = std::fs::read_to_string(root().join("queries/eval_vqa.sql")).unwrap();
    let opts = JobOptions {
        chunk_rows: 2,
        progress: false,
        ..JobOptions::new(path.display().to_string(), dir.path().join("out2"))
    };
    let loader = vista::model::loader();
    let err = runtime().block_on(run_job(&ctx, &sql, Some(&loader), &opts)).unwrap_err();
    assert!(format!("{err:#}").contains("vista_generate: row"), "{err:#}");
}

/// A model call in a `GROUP BY` key, an `ORDER BY` or a window runs as it does in a subquery
/// (DataFusion runs async calls only in projections, filters and aggregate arguments; the
/// session's `async_calls` rule moves the others there).
#[test]
fn a_model_call_can_be_grouped_by_ordered_by_and_ranked() {
    let ctx = context();
    let table = "CREATE VIEW t AS SELECT column1 AS id, read_bytes(column2) AS image FROM (VALUES \
                 (1, 'COCO_val2014_000000000001.jpg'), (2, 'COCO_val2014_000000000002.jpg'), \
                 (3, 'COCO_val2014_000000000001.jpg'), (4, 'COCO_val2014_000000000003.jpg'))";
    let call = "vista_generate(image, 'Describe <image> briefly.')";
    let rows = |sql: &str| -> Vec<String> {
        runtime().block_on(async {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap();
            text.to_string().lines().map(str::to_string).collect()
        })
    };
    rows(table);
    let sub = format!("(SELECT id, {call} AS o FROM t)");
    let cases = [
        (
            format!("SELECT {call} AS o, count(*) AS n FROM t GROUP BY 1 ORDER BY n DESC, o"),
            format!("SELECT o, count(*) AS n FROM {sub} GROUP BY o ORDER BY n DESC, o"),
        ),
        (
            format!("SELECT id FROM t ORDER BY {call}, id"),
            format!("SELECT id FROM {sub} ORDER BY o, id"),
        ),
        (
            format!("SELECT id, rank() OVER (ORDER BY {call}) AS r FROM t ORDER BY id"),
            format!("SELECT id, rank() OVER (ORDER BY o) AS r FROM {sub} ORDER BY id"),
        ),
    ];
    for (direct, through_subquery) in &cases {
        assert_eq!(rows(direct), rows(through_subquery), "{direct}");
    }
    // The same image twice is one group of 2.
    let grouped = rows(&cases[0].0);
    assert!(grouped[3].trim_end().ends_with("| 2 |"), "{grouped:#?}");
}

// ---------------------------------------------------------------------------------------------
// Resume after SIGKILL

/// Enough REC samples that a job takes a while at one sample per chunk.
fn many_rec_samples(dir: &Path) -> (PathBuf, usize) {
    let f = fixtures();
    let base = import::refs_samples(
        &f.join("refs.json"),
        &f.join("instances.json"),
        RefTask::Rec,
        &ImportOptions::default(),
    )
    .unwrap();
    let mut all = Vec::new();
    for k in 0..4 {
        for s in &base {
            let mut s = s.clone();
            s.sample_id = format!("{}-copy{k}", s.sample_id);
            s.instruction = format!("{} {k}", s.instruction);
            all.push(s);
        }
    }
    let path = dir.join("rec_many.parquet");
    let n = import::write_samples(&path, all).unwrap();
    (path, n)
}

/// Child side: runs the job named by the environment (the parent kills it, or lets it finish).
#[test]
#[ignore = "run by resume_after_kill_9 in a child process"]
fn resume_child() {
    let (Ok(samples), Ok(out)) =
        (std::env::var("VISTA_TEST_SAMPLES"), std::env::var("VISTA_TEST_OUT"))
    else {
        return;
    };
    let resume = std::env::var("VISTA_TEST_RESUME").is_ok();
    job(&context(), "rec", Path::new(&samples), Path::new(&out), 1, resume);
}

fn spawn_child(samples: &Path, out: &Path, resume: bool) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "resume_child", "--ignored", "--test-threads=1"])
        .env("VISTA_TEST_SAMPLES", samples)
        .env("VISTA_TEST_OUT", out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if resume {
        cmd.env("VISTA_TEST_RESUME", "1");
    }
    cmd.spawn().unwrap()
}

fn committed(out: &Path) -> usize {
    std::fs::read_dir(out.join("chunks"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("chunk-"))
                .count()
        })
        .unwrap_or(0)
}

/// Kills a child job with SIGKILL once `at_least` chunks are committed.
fn kill_after(mut child: std::process::Child, out: &Path, at_least: usize) {
    let start = Instant::now();
    while committed(out) < at_least {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the job ended ({status}) before it could be killed");
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no chunk committed in time");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
}

#[test]
fn resume_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (samples, n) = many_rec_samples(dir.path());
    assert!(n >= 30);

    // The reference: the whole job in one uninterrupted process.
    let reference = dir.path().join("reference");
    let child = spawn_child(&samples, &reference, false);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    let want = column_by_id(&reference.join("predictions.parquet"), "raw");
    assert_eq!(want.len(), n);

    // Killed twice at different points, then finished here.
    let out = dir.path().join("killed");
    kill_after(spawn_child(&samples, &out, false), &out, 2);
    let first = committed(&out);
    kill_after(spawn_child(&samples, &out, true), &out, first + 5);
    let before = committed(&out);
    assert!(before < n, "the killed runs did not finish the job");

    let summary = job(&context(), "rec", &samples, &out, 1, true);
    assert_eq!(summary.total, n);
    assert_eq!(summary.resumed, before, "every committed row is kept");
    assert_eq!(summary.computed, n - before, "no committed row is recomputed");
    let got = column_by_id(&summary.predictions, "raw");
    assert_eq!(got, want, "no duplicates, no lost rows, same outputs");
    assert!(
        std::fs::read_dir(out.join("chunks")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "temporary files of the killed runs are cleaned up"
    );

    // A finished job resumes to a no-op; a changed setting is refused.
    let again = job(&context(), "rec", &samples, &out, 1, true);
    assert_eq!((again.computed, again.resumed), (0, n));
    let ctx = context();
    runtime()
        .block_on(async { ctx.sql("SET vista.seed = 3").await.unwrap().collect().await.unwrap() });
    let sql = std::fs::read_to_string(root().join("queries/eval_rec.sql")).unwrap();
    let opts = JobOptions {
        resume: true,
        chunk_rows: 1,
        progress: false,
        ..JobOptions::new(samples.display().to_string(), &out)
    };
    let loader = vista::model::loader();
    let err = runtime().block_on(run_job(&ctx, &sql, Some(&loader), &opts)).unwrap_err();
    assert!(err.to_string().contains("generation settings"), "{err}");
    // Without --resume an existing job directory is refused.
    let opts = JobOptions {
        chunk_rows: 1,
        progress: false,
        ..JobOptions::new(samples.display().to_string(), &out)
    };
    let err = runtime().block_on(run_job(&context(), &sql, Some(&loader), &opts)).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Benchmark (scripts/bench_pipeline.sh): SQL overhead against a direct loop

/// `N` distinct small PNGs (distinct bytes, so nothing is deduplicated).
fn bench_images(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let img = image::RgbImage::from_fn(48, 40, |x, y| {
                image::Rgb([(x * 5 + i as u32) as u8, (y * 7 + 3 * i as u32) as u8, (i * 11) as u8])
            });
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Png).unwrap();
            out.into_inner()
        })
        .collect()
}

#[test]
#[ignore = "benchmark: scripts/bench_pipeline.sh"]
fn bench_pipeline() {
    let n: usize =
        std::env::var("VISTA_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let dir = std::env::var("VISTA_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|_| model_dir());
    let max_new: usize =
        std::env::var("VISTA_BENCH_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let images: Vec<Arc<[u8]>> = bench_images(n).into_iter().map(Arc::from).collect();
    let spec =
        ModelSpec { dir: dir.display().to_string(), device: "cpu".into(), dtype: "f32".into() };
    let model = (vista::model::loader())(&spec).unwrap();
    let settings = GenerateSettings { max_new_tokens: max_new, ..Default::default() };
    println!("rows={n} max_new_tokens={max_new} model={}", dir.display());
    println!(
        "{:>6} {:>12} {:>12} {:>10} {:>10} {:>15}",
        "batch", "direct img/s", "sql img/s", "overhead", "same text", "non-model time"
    );
    let reps: usize =
        std::env::var("VISTA_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!("best of {reps} alternating runs each (the machine may be shared; the minimum is the least disturbed)");
    let mut run = 0;
    for batch in [1usize, 8, 32] {
        let ctx = context();
        let rt = runtime();
        rt.block_on(async {
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
                datafusion::arrow::datatypes::Field::new(
                    "id",
                    datafusion::arrow::datatypes::DataType::Int64,
                    false,
                ),
                datafusion::arrow::datatypes::Field::new(
                    "img",
                    datafusion::arrow::datatypes::DataType::Binary,
                    false,
                ),
            ]));
            let ids = datafusion::arrow::array::Int64Array::from_iter_values(0..n as i64);
            let imgs = datafusion::arrow::array::BinaryArray::from_iter_values(
                images.iter().map(|i| i.as_ref()),
            );
            let b =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(imgs)]).unwrap();
            let table = datafusion::datasource::MemTable::try_new(schema, vec![vec![b]]).unwrap();
            ctx.register_table("bench", Arc::new(table)).unwrap();
            for s in [
                format!("SET vista.model = '{}'", dir.display()),
                format!("SET vista.batch_size = {batch}"),
                format!("SET vista.max_new_tokens = {max_new}"),
                "SET vista.on_error = 'fail'".to_string(),
            ] {
                ctx.sql(&s).await.unwrap().collect().await.unwrap();
            }
            // Load the model outside the timing, as the direct loop's model is.
            ctx.sql("SELECT vista_generate(img, 'warm-up <image>') FROM bench LIMIT 1")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
        });
        let (mut best_direct, mut best_sql, mut same) = (f64::MAX, f64::MAX, true);
        let mut best_sql_model = 0.0;
        for _ in 0..reps {
            // Distinct instructions per run keep the dedupe cache out of the measurement.
            run += 1;
            let instruction = format!("Describe this image <image> briefly. run {run}");
            let requests: Vec<GenerateRequest> = images
                .iter()
                .map(|i| GenerateRequest {
                    images: vec![i.clone()],
                    instruction: instruction.clone(),
                })
                .collect();
            let t = Instant::now();
            let mut direct = Vec::new();
            for chunk in requests.chunks(batch) {
                direct.extend(model.generate(chunk, &settings));
            }
            best_direct = best_direct.min(t.elapsed().as_secs_f64());

            let (texts, secs) = rt.block_on(async {
                let t = Instant::now();
                let q = format!(
                    "SELECT id, d.text AS t, d.latency_ms AS ms FROM (SELECT id, \
                     vista_generate(img, '{instruction}', output => 'detail') AS d FROM bench) \
                     ORDER BY id"
                );
                let batches = ctx.sql(&q).await.unwrap().collect().await.unwrap();
                let secs = t.elapsed().as_secs_f64();
                let mut texts = Vec::new();
                let mut model_ms = 0.0;
                for b in &batches {
                    let c = b.column(1).as_string::<i32>();
                    texts.extend((0..b.num_rows()).map(|i| c.value(i).to_string()));
                    let ms =
                        b.column(2).as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                    model_ms += ms.values().iter().sum::<f64>();
                }
                (texts, (secs, model_ms / 1000.0))
            });
            let (secs, model_s) = secs;
            if secs < best_sql {
                best_sql_model = model_s;
            }
            best_sql = best_sql.min(secs);
            assert_eq!(texts.len(), n, "batch {batch}: one SQL row per input row");
            same &= direct.iter().map(|r| r.clone().unwrap()).collect::<Vec<_>>() == texts;
        }
        println!(
            "{batch:>6} {:>12.2} {:>12.2} {:>9.1}% {:>10} {:>14.1}%",
            n as f64 / best_direct,
            n as f64 / best_sql,
            (best_sql - best_direct) / best_direct * 100.0,
            same,
            (best_sql - best_sql_model) / best_sql * 100.0
        );
        // The comparison is only meaningful when both paths computed the same thing.
        assert!(same, "batch {batch}: SQL and the direct loop generated different texts");
        assert!(best_sql_model > 0.0, "batch {batch}: no model latency reached the SQL result");
    }
}
