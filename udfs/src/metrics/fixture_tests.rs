//! Parity tests against the fixtures in tests/fixtures/metrics/, generated with the reference
//! implementations by scripts/make_metric_fixtures_*.py. Tables are split over several
//! partitions so partial aggregates go through `state()` / `merge_batch()`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, RecordBatch, StringBuilder, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde_json::Value;

use super::caption::{self, Item};
use super::vqa::{vqa_accuracy, VqaVariant};
use crate::config::VistaConfig;

fn load(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/metrics/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1.0);
    assert!((got - want).abs() <= tol, "{what}: got {got}, reference {want}");
}

fn ctx() -> SessionContext {
    let config = SessionConfig::new()
        .with_option_extension(VistaConfig::default())
        .with_target_partitions(3);
    let ctx = SessionContext::new_with_config(config);
    crate::register_all(&ctx).unwrap();
    ctx
}

fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { ctx.sql(sql).await?.collect().await })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Registers `t` with the given columns, rows split round-robin into 3 partitions.
fn register(ctx: &SessionContext, cols: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), cols.into_iter().map(|c| c.1).collect()).unwrap();
    let n = batch.num_rows();
    let parts: Vec<Vec<RecordBatch>> = (0..3)
        .map(|p| {
            let lo = n * p / 3;
            let hi = n * (p + 1) / 3;
            vec![batch.slice(lo, hi - lo)]
        })
        .collect();
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, parts).unwrap())).unwrap();
}

fn strings<'a>(v: impl IntoIterator<Item = &'a Value>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for s in v {
        b.append_option(s.as_str());
    }
    Arc::new(b.finish())
}

fn string_lists<'a>(v: impl IntoIterator<Item = &'a Value>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for l in v {
        for s in l.as_array().unwrap() {
            b.values().append_value(s.as_str().unwrap());
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn field<'a>(s: &'a StructArray, name: &str) -> &'a ArrayRef {
    s.column_by_name(name).unwrap_or_else(|| panic!("no field {name}"))
}

fn first_struct(batches: &[RecordBatch], col: usize) -> StructArray {
    batches[0].column(col).as_struct().clone()
}

// ---------------------------------------------------------------------------------------------
// captions

#[test]
fn caption_metrics_match_pycocoevalcap_on_its_tokenized_captions() {
    for set in load("captions.json").as_array().unwrap() {
        let name = set["name"].as_str().unwrap();
        let images = set["images"].as_array().unwrap();
        let items: Vec<Item> = images
            .iter()
            .map(|im| Item {
                hyp: im["hyp_tok"].as_str().unwrap(),
                refs: im["refs_tok"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect(),
            })
            .collect();
        let b = caption::bleu(&items);
        let (r, rper) = caption::rouge_l(&items);
        let (c, cper) = caption::cider_d(&items);
        for k in 0..4 {
            close(b.bleu[k], set["bleu"][k].as_f64().unwrap(), &format!("{name} BLEU-{}", k + 1));
        }
        close(r, set["rouge_l"].as_f64().unwrap(), &format!("{name} ROUGE-L"));
        close(c, set["cider_d"].as_f64().unwrap(), &format!("{name} CIDEr-D"));
        for (i, im) in images.iter().enumerate() {
            let what = |m: &str| format!("{name} image {} {m}", im["id"]);
            for k in 0..4 {
                close(b.per_item[i][k], im["bleu"][k].as_f64().unwrap(), &what("BLEU"));
            }
            close(rper[i], im["rouge_l"].as_f64().unwrap(), &what("ROUGE-L"));
            close(cper[i], im["cider_d"].as_f64().unwrap(), &what("CIDEr-D"));
        }
    }
}

/// Raw strings in, vista's own tokenizer, partial aggregates merged: equal to pycocoevalcap
/// after its Java PTBTokenizer. The pre-tokenized path (`tokenize => false`) is checked too.
#[test]
fn caption_aggregates_end_to_end_from_raw_strings() {
    for set in load("captions.json").as_array().unwrap() {
        let name = set["name"].as_str().unwrap();
        let images = set["images"].as_array().unwrap();
        for raw in [true, false] {
            let ctx = ctx();
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
                images.iter().map(|im| im["id"].as_i64().unwrap()),
            ));
            let (h, r) = if raw { ("hyp", "refs") } else { ("hyp_tok", "refs_tok") };
            register(
                &ctx,
                vec![
                    ("id", ids),
                    ("pred", strings(images.iter().map(|im| &im[h]))),
                    ("refs", string_lists(images.iter().map(|im| &im[r]))),
                ],
            );
            let tok = if raw { "true" } else { "false" };
            let out = run(
                &ctx,
                &format!(
                    "SELECT cider_d(pred, refs, id, {tok}) AS c, bleu(pred, refs, id, {tok}) AS b, rouge_l(pred, refs, id, {tok}) AS r FROM t"
                ),
            );
            let what = |m: &str| format!("{name} ({}) {m}", if raw { "raw" } else { "tokenized" });
            let c = first_struct(&out, 0);
            let b = first_struct(&out, 1);
            let r = first_struct(&out, 2);
            close(
                field(&c, "score").as_primitive::<Float64Type>().value(0),
                set["cider_d"].as_f64().unwrap(),
                &what("CIDEr-D"),
            );
            close(
                field(&r, "score").as_primitive::<Float64Type>().value(0),
                set["rouge_l"].as_f64().unwrap(),
                &what("ROUGE-L"),
            );
            for k in 0..4 {
                let got =
                    field(&b, &format!("bleu_{}", k + 1)).as_primitive::<Float64Type>().value(0);
                close(got, set["bleu"][k].as_f64().unwrap(), &what("BLEU"));
            }
            assert_eq!(field(&c, "n").as_primitive::<Int64Type>().value(0), images.len() as i64);
            // the one-pass aggregate gives the same numbers
            let all = run(&ctx, &format!("SELECT caption_scores(pred, refs, id, {tok}) FROM t"));
            let all = first_struct(&all, 0);
            let get = |n: &str| field(&all, n).as_primitive::<Float64Type>().value(0);
            close(
                get("cider_d"),
                set["cider_d"].as_f64().unwrap(),
                &what("caption_scores CIDEr-D"),
            );
            close(
                get("rouge_l"),
                set["rouge_l"].as_f64().unwrap(),
                &what("caption_scores ROUGE-L"),
            );
            for k in 0..4 {
                let got = get(&format!("bleu_{}", k + 1));
                close(got, set["bleu"][k].as_f64().unwrap(), &what("caption_scores BLEU"));
            }
            // per-item scores, matched by id
            let per = field(&c, "per_item").as_list::<i32>().value(0);
            let per = per.as_struct();
            let want: std::collections::HashMap<i64, f64> = images
                .iter()
                .map(|im| (im["id"].as_i64().unwrap(), im["cider_d"].as_f64().unwrap()))
                .collect();
            assert_eq!(per.len(), images.len());
            for i in 0..per.len() {
                let id = field(per, "id").as_primitive::<Int64Type>().value(i);
                let got = field(per, "score").as_primitive::<Float64Type>().value(i);
                close(got, want[&id], &what(&format!("CIDEr-D of image {id}")));
            }
        }
    }
}

#[test]
fn caption_aggregate_rejects_missing_references_naming_the_row() {
    let ctx = ctx();
    let err = crate::test_util::run(
        &ctx,
        "SELECT cider_d(p, r, i) FROM (VALUES (1, 'a dog', ['a dog']), (2, 'a cat', [])) AS t(i, p, r)",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cider_d: row 2 of its batch (id 2): refs is NULL or empty"), "{err}");
    // a NULL prediction is an empty caption: it scores 0 and stays in the mean
    let out = run(&ctx, "SELECT rouge_l(p, r)['score'] AS s FROM (VALUES (CAST(NULL AS VARCHAR), ['a dog']), ('a dog', ['a dog'])) AS t(p, r)");
    close(
        out[0].column(0).as_primitive::<Float64Type>().value(0),
        0.5,
        "ROUGE-L with a NULL prediction",
    );
}

// ---------------------------------------------------------------------------------------------
// VQA

#[test]
fn vqa_accuracy_matches_the_official_script_both_versions() {
    let f = load("vqa.json");
    let rows = f["rows"].as_array().unwrap();
    let (mut sum_cur, mut sum_old) = (0.0, 0.0);
    for r in rows {
        let answers: Vec<&str> =
            r["answers"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        let pred = r["pred"].as_str().unwrap();
        let cur = vqa_accuracy(pred, &answers, VqaVariant::Current);
        let old = vqa_accuracy(pred, &answers, VqaVariant::Pre2021);
        close(cur, r["current"].as_f64().unwrap(), &format!("current {pred:?} vs {answers:?}"));
        close(old, r["pre2021"].as_f64().unwrap(), &format!("pre2021 {pred:?} vs {answers:?}"));
        sum_cur += cur;
        sum_old += old;
    }
    let overall = |s: f64| (100.0 * s / rows.len() as f64 * 100.0).round() / 100.0;
    close(overall(sum_cur), f["overall_current"].as_f64().unwrap(), "overall current");
    close(overall(sum_old), f["overall_pre2021"].as_f64().unwrap(), "overall pre2021");
}

#[test]
fn vqa_accuracy_in_sql() {
    let ctx = ctx();
    let out = crate::test_util::run(
        &ctx,
        "SELECT vqa_accuracy(p, a) AS cur, vqa_accuracy(p, a, 'pre2021') AS old, vqa_accuracy(NULL, a) AS none FROM (VALUES ('Yes', ['yes', 'yes', 'yes'])) AS t(p, a)",
    )
    .unwrap();
    // three identical answers: each GT answer sees 2 matches among the others, 2/3
    assert!(out.contains("| 0.0 | 0.6666666666666666 | 0.0  |"), "{out}");
    let err = crate::test_util::run(
        &ctx,
        "SELECT vqa_accuracy('yes', a) FROM (VALUES (['yes']), (CAST(NULL AS VARCHAR[]))) AS t(a)",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("vqa_accuracy: row 2 of its batch: answers is NULL or empty"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// boxes and GREC

fn box_lists(v: &Value) -> ArrayRef {
    let mut b = ListBuilder::new(ListBuilder::new(datafusion::arrow::array::Float64Builder::new()));
    for sample in v.as_array().unwrap() {
        for bx in sample.as_array().unwrap() {
            for x in f64s(bx) {
                b.values().values().append_value(x);
            }
            b.values().append(true);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

#[test]
fn box_overlaps_match_the_reference_formulas() {
    let f = load("boxes.json");
    let pairs = f["pairs"].as_array().unwrap();
    let ctx = ctx();
    let mut a = ListBuilder::new(datafusion::arrow::array::Float64Builder::new());
    let mut b = ListBuilder::new(datafusion::arrow::array::Float64Builder::new());
    for p in pairs {
        a.values().append_slice(&f64s(&p["a"]));
        a.append(true);
        b.values().append_slice(&f64s(&p["b"]));
        b.append(true);
    }
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..pairs.len() as i64));
    register(&ctx, vec![("k", ids), ("a", Arc::new(a.finish())), ("b", Arc::new(b.finish()))]);
    let out = run(&ctx, "SELECT box_iou(a, b), box_giou(a, b), k FROM t");
    let mut k = 0;
    for batch in &out {
        let iou = batch.column(0).as_primitive::<Float64Type>();
        let giou = batch.column(1).as_primitive::<Float64Type>();
        let idx = batch.column(2).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            let p = &pairs[idx.value(i) as usize];
            close(iou.value(i), p["iou"].as_f64().unwrap(), &format!("iou {p}"));
            close(giou.value(i), p["giou"].as_f64().unwrap(), &format!("giou {p}"));
            k += 1;
        }
    }
    assert_eq!(k, pairs.len());
}

#[test]
fn grec_matches_grefcoco_per_sample_and_summary() {
    let f = load("boxes.json");
    let rows = f["grec"].as_array().unwrap();
    let ctx = ctx();
    let preds: Vec<Value> = rows.iter().map(|r| r["pred"].clone()).collect();
    let gts: Vec<Value> = rows.iter().map(|r| r["gt"].clone()).collect();
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows.len() as i64));
    register(
        &ctx,
        vec![
            ("id", ids),
            ("p", box_lists(&Value::Array(preds))),
            ("g", box_lists(&Value::Array(gts))),
        ],
    );
    let out = run(&ctx, "SELECT id, grec_match(p, g) FROM t");
    for batch in &out {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let m = batch.column(1).as_struct();
        for i in 0..batch.num_rows() {
            let r = &rows[ids.value(i) as usize];
            let what = format!("sample {r}");
            for (k, key) in [("tp", "tp"), ("fp", "fp"), ("fn", "fn")] {
                assert_eq!(
                    field(m, k).as_primitive::<Int64Type>().value(i),
                    r[key].as_i64().unwrap(),
                    "{k} of {what}"
                );
            }
            close(
                field(m, "f1").as_primitive::<Float64Type>().value(i),
                r["f1"].as_f64().unwrap(),
                &what,
            );
            assert_eq!(
                field(m, "nt").as_string::<i32>().value(i),
                r["nt"].as_str().unwrap(),
                "{what}"
            );
        }
    }
    let s = first_struct(&run(&ctx, "SELECT grec_score(p, g) FROM t"), 0);
    let want = &f["grec_summary"];
    close(
        field(&s, "precision_f1_1").as_primitive::<Float64Type>().value(0),
        want["F1_score"].as_f64().unwrap(),
        "F1_score",
    );
    close(
        field(&s, "n_acc").as_primitive::<Float64Type>().value(0),
        want["N_acc"].as_f64().unwrap(),
        "N_acc",
    );
    close(
        field(&s, "t_acc").as_primitive::<Float64Type>().value(0),
        want["T_acc"].as_f64().unwrap(),
        "T_acc",
    );
}

#[test]
fn inverted_or_nan_boxes_are_errors_naming_the_row() {
    let ctx = ctx();
    let err = crate::test_util::run(
        &ctx,
        "SELECT box_iou(p, [0, 0, 1, 1]) FROM (VALUES ([0.0, 0, 1, 1]), ([2.0, 0, 1, 1])) AS t(p)",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("box_iou: row 2 of its batch: pred: box [2, 0, 1, 1] has x1 < x0"),
        "{err}"
    );
    let out =
        crate::test_util::run(&ctx, "SELECT box_giou(CAST(NULL AS DOUBLE[]), [0, 0, 1, 1]) AS v")
            .unwrap();
    assert!(out.contains("| 0.0 |"), "{out}");
    let err = crate::test_util::run(&ctx, "SELECT box_iou([0, 0, 'NaN'::double, 1], [0, 0, 1, 1])")
        .unwrap_err()
        .to_string();
    assert!(err.contains("NaN"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// masks

fn rle_struct(v: &[&Value]) -> ArrayRef {
    let mut sizes = ListBuilder::new(datafusion::arrow::array::Int64Builder::new());
    let mut counts = StringBuilder::new();
    for m in v {
        for s in m["size"].as_array().unwrap() {
            sizes.values().append_value(s.as_i64().unwrap());
        }
        sizes.append(true);
        counts.append_value(m["counts"].as_str().unwrap());
    }
    let sizes: ArrayRef = Arc::new(sizes.finish());
    let counts: ArrayRef = Arc::new(counts.finish());
    Arc::new(StructArray::from(vec![
        (Arc::new(Field::new("size", sizes.data_type().clone(), true)), sizes),
        (Arc::new(Field::new("counts", DataType::Utf8, true)), counts),
    ]))
}

fn rle_lists(rows: &[&Value]) -> ArrayRef {
    let all: Vec<&Value> = rows.iter().flat_map(|r| r.as_array().unwrap()).collect();
    let values = rle_struct(&all);
    let lengths = rows.iter().map(|r| r.as_array().unwrap().len());
    Arc::new(
        datafusion::arrow::array::ListArray::try_new(
            Arc::new(Field::new_list_field(values.data_type().clone(), true)),
            datafusion::arrow::buffer::OffsetBuffer::from_lengths(lengths),
            values,
            None,
        )
        .unwrap(),
    )
}

#[test]
fn res_aggregates_match_lavt() {
    let f = load("masks.json");
    let rows: Vec<&Value> = f["res"].as_array().unwrap().iter().collect();
    let ctx = ctx();
    let preds: Vec<&Value> = rows.iter().map(|r| &r["pred"]).collect();
    let gts: Vec<&Value> = rows.iter().map(|r| &r["gt"]).collect();
    register(&ctx, vec![("p", rle_struct(&preds)), ("g", rle_struct(&gts))]);
    let out = run(&ctx, "SELECT miou(p, g), ciou(p, g), res_score(p, g) FROM t");
    let want = &f["lavt"];
    close(
        out[0].column(0).as_primitive::<Float64Type>().value(0),
        want["miou"].as_f64().unwrap(),
        "mIoU",
    );
    close(
        out[0].column(1).as_primitive::<Float64Type>().value(0),
        want["ciou"].as_f64().unwrap(),
        "cIoU",
    );
    let s = out[0].column(2).as_struct();
    for (k, name) in ["pr_50", "pr_60", "pr_70", "pr_80", "pr_90"].iter().enumerate() {
        close(
            field(s, name).as_primitive::<Float64Type>().value(0),
            want["pr"][k].as_f64().unwrap(),
            name,
        );
    }
    assert_eq!(field(s, "n").as_primitive::<Int64Type>().value(0), want["n"].as_i64().unwrap());
}

#[test]
fn gres_score_matches_rela_fixed_and_initial() {
    let f = load("masks.json");
    let rows: Vec<&Value> = f["gres"].as_array().unwrap().iter().collect();
    let ctx = ctx();
    let preds: Vec<&Value> = rows.iter().map(|r| &r["pred"]).collect();
    let gts: Vec<&Value> = rows.iter().map(|r| &r["gt"]).collect();
    register(&ctx, vec![("p", rle_lists(&preds)), ("g", rle_lists(&gts))]);
    for (sql, key) in
        [("gres_score(p, g)", "rela_fixed"), ("gres_score(p, g, true)", "rela_initial")]
    {
        let s = first_struct(&run(&ctx, &format!("SELECT {sql} FROM t")), 0);
        let want = &f[key];
        let get = |n: &str| field(&s, n).as_primitive::<Float64Type>().value(0);
        close(get("giou") * 100.0, want["gIoU"].as_f64().unwrap(), &format!("{key} gIoU"));
        close(get("ciou") * 100.0, want["cIoU"].as_f64().unwrap(), &format!("{key} cIoU"));
        close(get("n_acc"), want["N_acc"].as_f64().unwrap(), &format!("{key} N_acc"));
        close(get("t_acc"), want["T_acc"].as_f64().unwrap(), &format!("{key} T_acc"));
        for (n, k) in [("pr_70", "Pr@0.7"), ("pr_80", "Pr@0.8"), ("pr_90", "Pr@0.9")] {
            close(get(n) * 100.0, want[k].as_f64().unwrap(), &format!("{key} {k}"));
        }
    }
}

#[test]
fn masks_of_different_sizes_are_an_error_naming_the_row() {
    let ctx = ctx();
    let err = crate::test_util::run(
        &ctx,
        "SELECT miou(p, g) FROM (VALUES (named_struct('size', [2, 2], 'counts', '04'), named_struct('size', [2, 2], 'counts', '04')), \
         (named_struct('size', [2, 2], 'counts', '04'), named_struct('size', [3, 2], 'counts', '06'))) AS t(p, g)",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("miou: row 2 of its batch: masks differ in size"), "{err}");
}

/// NULL predictions count as wrong and stay in the denominators.
#[test]
fn null_predictions_are_wrong_answers() {
    let ctx = ctx();
    let out = crate::test_util::run(
        &ctx,
        "SELECT grec_score(p, g)['precision_f1_1'] AS f1, grec_score(p, g)['n_acc'] AS n_acc, \
         grec_score(p, g)['nt_fn'] AS nt_fn FROM (VALUES (CASE WHEN false THEN [[0.0, 0.0, 1.0, 1.0]] END, []), \
         ([[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]])) AS t(p, g)",
    )
    .unwrap();
    assert!(out.contains("| 0.5 | 0.0   | 1     |"), "{out}");
    let m = "named_struct('size', [2, 2], 'counts', '04')";
    let out = crate::test_util::run(
        &ctx,
        &format!(
            "SELECT gres_score(p, g)['giou'] AS giou, gres_score(p, g)['fp'] AS fp FROM \
             (VALUES (CASE WHEN false THEN [{m}] END, [{m}]), ([{m}], [{m}])) AS t(p, g)"
        ),
    )
    .unwrap();
    assert!(out.contains("| 0.5  | 1  |"), "{out}");
    let out =
        crate::test_util::run(&ctx, "SELECT ptb_tokenize(CAST(NULL AS VARCHAR)) AS t").unwrap();
    assert!(out.contains("|   |"), "{out}");
}
