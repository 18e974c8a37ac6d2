//! Tests of the batching, dedupe and error plumbing of `vista_generate`, with a small
//! deterministic model that reports what it saw.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::arrow::array::{
    Array, BinaryArray, BinaryBuilder, ListArray, ListBuilder, RecordBatch, StringArray,
    StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::*;
use crate::config::VistaConfig;
use crate::test_util;

/// Echoes instruction, image sizes and its batch size; fails images starting with "bad".
struct EchoModel {
    batches: Mutex<Vec<usize>>,
    rows: AtomicUsize,
    threads: Mutex<Vec<String>>,
}

impl VisionLanguageModel for EchoModel {
    fn fingerprint(&self) -> String {
        "echo-v1".to_string()
    }
    fn generate(
        &self,
        batch: &[GenerateRequest],
        settings: &GenerateSettings,
    ) -> Vec<Result<String, String>> {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().unwrap().push(thread);
        self.batches.lock().unwrap().push(batch.len());
        self.rows.fetch_add(batch.len(), Ordering::SeqCst);
        batch
            .iter()
            .map(|r| {
                if r.images.iter().any(|i| i.starts_with(b"bad")) {
                    return Err("corrupt image".to_string());
                }
                let sizes: Vec<String> = r.images.iter().map(|i| i.len().to_string()).collect();
                Ok(format!(
                    "{};{};b{};t{}",
                    r.instruction,
                    sizes.join(","),
                    batch.len(),
                    settings.max_new_tokens
                ))
            })
            .collect()
    }
}

/// A fresh model under a unique spec (the worker registry is process-wide) and its loader.
fn echo() -> (Arc<EchoModel>, ModelLoader, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let model = Arc::new(EchoModel {
        batches: Mutex::new(Vec::new()),
        rows: AtomicUsize::new(0),
        threads: Mutex::new(Vec::new()),
    });
    let m = model.clone();
    let loads = Arc::new(AtomicUsize::new(0));
    let loader: ModelLoader = Arc::new(move |_spec: &ModelSpec| {
        assert_eq!(loads.fetch_add(1, Ordering::SeqCst), 0, "model loaded twice");
        Ok(m.clone() as Arc<dyn VisionLanguageModel>)
    });
    let dir = format!("echo-{}", N.fetch_add(1, Ordering::SeqCst));
    (model, loader, dir)
}

/// A context with `vista_generate` and a table `t(id, img, q)` of `parts` partitions.
fn ctx_with(
    loader: ModelLoader,
    dir: &str,
    parts: Vec<Vec<(&str, &[u8], &str)>>,
) -> SessionContext {
    let config = SessionConfig::new()
        .with_option_extension(VistaConfig::default())
        .with_target_partitions(parts.len().max(1));
    let ctx = SessionContext::new_with_config(config);
    crate::register_all(&ctx).unwrap();
    ctx.register_udf(vista_generate_udf_with_linger(loader, Duration::from_millis(300)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("img", DataType::Binary, true),
        Field::new("q", DataType::Utf8, true),
    ]));
    let batches: Vec<Vec<RecordBatch>> = parts
        .into_iter()
        .map(|rows| {
            let ids = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
            let imgs = BinaryArray::from(rows.iter().map(|r| Some(r.1)).collect::<Vec<_>>());
            let qs = StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
            vec![RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(ids), Arc::new(imgs), Arc::new(qs)],
            )
            .unwrap()]
        })
        .collect();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, batches).unwrap())).unwrap();
    test_util::run(&ctx, &format!("SET vista.model = '{dir}'")).unwrap();
    ctx
}

#[test]
fn micro_batches_gather_rows_across_partitions() {
    let (model, loader, dir) = echo();
    let imgs: Vec<Vec<u8>> = (0..12).map(|i| vec![7u8; i + 1]).collect();
    let parts: Vec<Vec<(&str, &[u8], &str)>> =
        (0..4).map(|p| (0..3).map(|r| ("x", imgs[p * 3 + r].as_slice(), "q")).collect()).collect();
    let ctx = ctx_with(loader, &dir, parts);
    let out = test_util::run(
        &ctx,
        "SET vista.batch_size = 8; SELECT count(*) AS n, count(DISTINCT g) AS d \
         FROM (SELECT vista_generate(img, q) AS g FROM t)",
    )
    .unwrap();
    assert!(out.contains("| 12 | 12 |"), "{out}");
    assert_eq!(*model.batches.lock().unwrap(), vec![8, 4]);
    for name in model.threads.lock().unwrap().iter() {
        assert!(name.starts_with("vista-model-"), "forward ran on thread '{name}'");
    }
}

#[test]
fn identical_rows_are_computed_once() {
    let (model, loader, dir) = echo();
    let parts = vec![
        vec![("a", &b"img1"[..], "q"), ("b", b"img1", "q"), ("c", b"img2", "q")],
        vec![("d", b"img1", "q"), ("e", b"img1", "other"), ("f", b"img2", "q")],
    ];
    let ctx = ctx_with(loader, &dir, parts);
    let out =
        test_util::run(&ctx, "SELECT id, vista_generate(img, q) AS g FROM t ORDER BY id").unwrap();
    assert_eq!(model.rows.load(Ordering::SeqCst), 3, "{out}");
    // Every copy of a row shares its one computation.
    assert_eq!(out.matches("q;4;b3;t64").count(), 5, "{out}");
    assert_eq!(out.matches("other;4;b3;t64").count(), 1, "{out}");
    // A different setting is a different computation.
    test_util::run(&ctx, "SET vista.max_new_tokens = 5; SELECT vista_generate(img, q) FROM t")
        .unwrap();
    assert_eq!(model.rows.load(Ordering::SeqCst), 6);
}

#[test]
fn on_error_fail_null_report_and_detail() {
    let (_model, loader, dir) = echo();
    let parts = vec![vec![("a", &b"good"[..], "q"), ("b", b"bad!", "q"), ("c", b"good2", "q")]];
    let ctx = ctx_with(loader, &dir, parts);
    let err = test_util::run(&ctx, "SELECT vista_generate(img, q) FROM t").unwrap_err();
    assert!(err.to_string().contains("vista_generate: row 2 of its batch: corrupt image"), "{err}");

    let out = test_util::run(
        &ctx,
        "SET vista.on_error = 'null'; SELECT id, vista_generate(img, q) AS g FROM t ORDER BY id",
    )
    .unwrap();
    assert_eq!(
        test_util::cells(&out),
        vec![vec!["a", "q;4;b3;t64"], vec!["b", ""], vec!["c", "q;5;b3;t64"]],
        "{out}"
    );

    let out = test_util::run(
        &ctx,
        "SELECT id, r.value AS v, r.error AS e FROM (SELECT id, \
         vista_generate(img, q, 'text', on_error => 'report') AS r FROM t) ORDER BY id",
    )
    .unwrap();
    assert_eq!(test_util::cells(&out)[1], vec!["b", "", "corrupt image"], "{out}");
    assert_eq!(test_util::cells(&out)[0], vec!["a", "q;4;b3;t64", ""], "{out}");

    let out = test_util::run(
        &ctx,
        "SELECT id, d.text AS text, d.error AS e, d.latency_ms >= 0 AS lat, d.batch_rows AS n, \
         d.truncated AS cut \
         FROM (SELECT id, vista_generate(img, q, output => 'detail') AS d FROM t) ORDER BY id",
    )
    .unwrap();
    let rows = test_util::cells(&out);
    // Every row comes from the first query's micro-batch of 3 (errors are remembered too).
    assert_eq!(rows[0], vec!["a", "q;4;b3;t64", "", "true", "3", "false"], "{out}");
    assert_eq!(rows[1], vec!["b", "", "corrupt image", "true", "3", ""], "{out}");

    let err = test_util::run(
        &ctx,
        "SET vista.on_error = 'fail'; \
         SELECT vista_generate(img, q, output => 'detail') FROM t",
    )
    .unwrap_err();
    assert!(err.to_string().contains("row 2 of its batch: corrupt image"), "{err}");
}

/// A model that stops on the length limit for instructions starting with "long".
struct CutModel;

impl VisionLanguageModel for CutModel {
    fn fingerprint(&self) -> String {
        "cut-v1".to_string()
    }
    fn generate(
        &self,
        batch: &[GenerateRequest],
        settings: &GenerateSettings,
    ) -> Vec<Result<String, String>> {
        self.generate_detailed(batch, settings).into_iter().map(|r| r.map(|g| g.text)).collect()
    }
    fn generate_detailed(
        &self,
        batch: &[GenerateRequest],
        settings: &GenerateSettings,
    ) -> Vec<Result<Generation, String>> {
        batch
            .iter()
            .map(|r| {
                let truncated = r.instruction.starts_with("long");
                let text =
                    if truncated { "x".repeat(settings.max_new_tokens) } else { "ok".into() };
                Ok(Generation { text, truncated })
            })
            .collect()
    }
}

#[test]
fn detail_reports_whether_the_length_limit_cut_the_answer() {
    let loader: ModelLoader = Arc::new(|_spec: &ModelSpec| Ok(Arc::new(CutModel) as _));
    let ctx =
        ctx_with(loader, "cut-model", vec![vec![("a", &b"i"[..], "long q"), ("b", b"i", "q")]]);
    let out = test_util::run(
        &ctx,
        "SET vista.max_new_tokens = 3; SELECT id, d.text AS text, d.truncated AS cut \
         FROM (SELECT id, vista_generate(img, q, output => 'detail') AS d FROM t) ORDER BY id",
    )
    .unwrap();
    let rows = test_util::cells(&out);
    assert_eq!(rows[0], vec!["a", "xxx", "true"], "{out}");
    assert_eq!(rows[1], vec!["b", "ok", "false"], "{out}");
}

#[test]
fn the_model_runs_once_per_row_in_a_cte() {
    let (model, loader, dir) = echo();
    let ctx = ctx_with(loader, &dir, vec![vec![("a", &b"xy"[..], "q"), ("b", b"xyz", "q")]]);
    let query = "WITH g AS (SELECT id, vista_generate(img, q, output => 'detail') AS d FROM t) \
                 SELECT id, d.text, d.error, d.latency_ms FROM g WHERE d.error IS NULL";
    let async_calls = |ctx: &SessionContext| {
        let plan = test_util::run(ctx, &format!("EXPLAIN {query}")).unwrap();
        let physical: Vec<&str> =
            plan.lines().skip_while(|l| !l.contains("physical_plan")).collect();
        physical.join("\n").matches("vista_generate(").count()
    };
    // DataFusion 55 pushes `d.text`, `d.error`, ... down through the CTE's projection, copying
    // the call once per field; the worker's dedupe still runs the model once per row.
    assert!(async_calls(&ctx) > 1);
    test_util::run(&ctx, query).unwrap();
    assert_eq!(model.rows.load(Ordering::SeqCst), 2);
    // With that rewrite off (the eval files and vista's session do this) the plan calls it once.
    test_util::run(&ctx, "SET datafusion.optimizer.enable_leaf_expression_pushdown = false")
        .unwrap();
    assert_eq!(async_calls(&ctx), 1);
}

#[test]
fn image_lists_and_nulls() {
    let (model, loader, dir) = echo();
    let ctx = ctx_with(loader, &dir, vec![vec![("a", &b"xy"[..], "q")]]);
    let mut b = ListBuilder::new(BinaryBuilder::new());
    b.values().append_value(b"abc");
    b.values().append_value(b"de");
    b.append(true);
    b.append(false);
    b.values().append_null();
    b.append(true);
    let schema = Arc::new(Schema::new(vec![Field::new(
        "imgs",
        DataType::List(Arc::new(Field::new("item", DataType::Binary, true))),
        true,
    )]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(b.finish())]).unwrap();
    ctx.register_table("m", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
        .unwrap();
    let out = test_util::run(
        &ctx,
        "SELECT r.value AS v, r.error AS e FROM \
         (SELECT vista_generate(imgs, 'two <image> <image>', 'text', 'report') AS r FROM m)",
    )
    .unwrap();
    assert!(out.contains("| two <image> <image>;3,2;b1;t64 |"), "{out}");
    assert!(out.contains("image 1 of the list is NULL"), "{out}");
    // NULL image or instruction: NULL without running the model.
    let before = model.rows.load(Ordering::SeqCst);
    let out = test_util::run(&ctx, "SELECT vista_generate(img, NULL) AS g FROM t").unwrap();
    assert!(out.contains("|   |"), "{out}");
    assert_eq!(model.rows.load(Ordering::SeqCst), before);
}

/// `m(one, many)`: an HF image struct column and a list of them.
fn register_hf(ctx: &SessionContext, one: StructArray, many: ListArray) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("one", one.data_type().clone(), true),
        Field::new("many", many.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(one), Arc::new(many)]).unwrap();
    ctx.register_table("m", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
        .unwrap();
}

#[test]
fn hf_image_structs_and_lists_of_them_send_their_bytes() {
    let (_model, loader, dir) = echo();
    let ctx = ctx_with(loader, &dir, vec![vec![("a", &b"xy"[..], "q")]]);
    // One row per model call, so that the echoed batch size does not depend on timing.
    test_util::run(&ctx, "SET vista.batch_size = 1").unwrap();
    let one = test_util::hf_images(&[
        Some((Some(b"abc"), Some("a.png"))),
        Some((None, Some("b.png"))),
        Some((None, None)),
        Some((Some(b"de"), None)),
    ]);
    let values = test_util::hf_images(&[
        Some((Some(b"abc"), None)),
        Some((Some(b"de"), Some("d.png"))),
        Some((None, Some("c.png"))),
        Some((Some(b"f"), None)),
    ]);
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    let offsets = OffsetBuffer::from_lengths([2, 1, 0, 1]);
    let nulls = Some(vec![true, true, false, true].into());
    let many = ListArray::try_new(field, offsets, Arc::new(values), nulls).unwrap();
    register_hf(&ctx, one, many);
    let path_only = |p: &str| {
        format!(
            "the image struct has only a path ('{p}') and no bytes; read the file with \
             read_bytes(image['path'])"
        )
    };
    let run = |col: &str| {
        let sql = format!(
            "SELECT d.text AS t, d.error AS e FROM \
             (SELECT vista_generate({col}, 'q', 'detail', 'null') AS d FROM m)"
        );
        test_util::cells(&test_util::run(&ctx, &sql).unwrap())
    };
    let null_image = "the image is NULL (no model call)".to_string();
    assert_eq!(
        run("one"),
        [
            ["q;3;b1;t64".to_string(), "".into()],
            ["".into(), path_only("b.png")],
            ["".into(), null_image.clone()],
            ["q;2;b1;t64".into(), "".into()],
        ]
    );
    assert_eq!(
        run("many"),
        [
            ["q;3,2;b1;t64".to_string(), "".into()],
            ["".into(), format!("image 1 of the list: {}", path_only("c.png"))],
            ["".into(), null_image],
            ["q;1;b1;t64".into(), "".into()],
        ]
    );
}

#[test]
fn bad_arguments_and_missing_model_are_clear() {
    let (_model, loader, _dir) = echo();
    let ctx = ctx_with(loader, "", vec![vec![("a", &b"xy"[..], "q")]]);
    let err = test_util::run(&ctx, "SELECT vista_generate(img, q) FROM t").unwrap_err();
    assert!(err.to_string().contains("no model is set"), "{err}");
    let err = test_util::run(&ctx, "SELECT vista_generate(id, q) FROM t").unwrap_err();
    assert!(err.to_string().contains("argument `image` must be binary"), "{err}");
    let err = test_util::run(&ctx, "SELECT vista_generate(img, q, 'wordy') FROM t").unwrap_err();
    assert!(err.to_string().contains("`output` must be 'text' or 'detail'"), "{err}");
}

#[test]
fn generation_settings_are_checked_by_name() {
    let (_model, loader, dir) = echo();
    let ctx = ctx_with(loader, &dir, vec![vec![("a", &b"xy"[..], "q")]]);
    let q = "SELECT vista_generate(img, q) FROM t";
    for (set, want) in [
        (
            "SET vista.prompt_template = 'alpaca'",
            "'vicuna_v1', 'raw', 'llava' or 'qwen', got 'alpaca'",
        ),
        (
            "SET vista.min_new_tokens = 65",
            "vista.min_new_tokens (65) must be at most vista.max_new_tokens (64)",
        ),
        ("SET vista.coord_decode = 'mean'", "must be 'argmax' or 'median', got 'mean'"),
        (
            "SET vista.coord_decode = 'median'; SET vista.num_beams = 3",
            "'median' is a rule of greedy decoding; it needs vista.num_beams = 1 and \
             vista.temperature = 0 (got 3 and 0)",
        ),
    ] {
        test_util::run(&ctx, set).unwrap();
        let err = test_util::run(&ctx, q).unwrap_err();
        assert!(err.to_string().contains(want), "{set}: {err}");
        test_util::run(&ctx, "SET vista.prompt_template = 'vicuna_v1'").unwrap();
        test_util::run(&ctx, "SET vista.min_new_tokens = 0").unwrap();
        test_util::run(&ctx, "SET vista.coord_decode = 'argmax'; SET vista.num_beams = 1").unwrap();
    }
    test_util::run(&ctx, "SET vista.coord_decode = 'median'").unwrap();
    assert!(test_util::run(&ctx, q).is_ok());
    test_util::run(&ctx, "SET vista.coord_decode = 'argmax'").unwrap();
    for template in ["llava", "qwen", "raw", "vicuna_v1"] {
        test_util::run(&ctx, &format!("SET vista.prompt_template = '{template}'")).unwrap();
        test_util::run(&ctx, "SET vista.min_new_tokens = 64").unwrap();
        assert!(test_util::run(&ctx, q).is_ok(), "{template}");
    }
}

#[test]
fn documented_example_runs() {
    let (_model, loader, _dir) = echo();
    let ctx = test_util::ctx();
    ctx.register_udf(vista_generate_udf(loader));
    let example = documentation().sql_example.clone().unwrap();
    let (query, expected) = test_util::parse_example(&example).unwrap();
    assert_eq!(test_util::run(&ctx, &query).unwrap().trim_end(), expected);
}

#[test]
fn a_failed_load_is_reported_and_retried() {
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let loader: ModelLoader = Arc::new(move |spec: &ModelSpec| {
        t.fetch_add(1, Ordering::SeqCst);
        Err(format!("no config.json in {}", spec.dir))
    });
    let ctx = ctx_with(loader, "missing-dir", vec![vec![("a", &b"xy"[..], "q")]]);
    for _ in 0..2 {
        let err = test_util::run(&ctx, "SELECT vista_generate(img, q) FROM t").unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot load model 'missing-dir': no config.json in missing-dir"),
            "{err}"
        );
    }
    assert_eq!(tries.load(Ordering::SeqCst), 2);
}
