//! GREC (gRefCOCO boxes): `grec_match(pred_boxes, gt_boxes)` per sample and the
//! `grec_score(pred_boxes, gt_boxes)` aggregate, as gRefCOCO's
//! `mdetr/datasets/refexp.py::RefExpEvaluator.summarize` computes them.
//!
//! A generative model has no box scores, so every predicted box is kept (the reference keeps
//! those scoring >= 0.7). An empty GT list is a no-target sample; an empty prediction list
//! predicts "no target". A NULL prediction (nothing parsable) counts as wrong: F1 = 0, and in
//! the no-target confusion it is FP on a target sample and FN on a no-target sample.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, Documentation, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::boxes::{giou, BoxXyxy};
use super::lists;
use crate::common::{self, Arg, Params};

/// The outcome of one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrecMatch {
    pub tp: i64,
    pub fp: i64,
    pub fn_: i64,
    pub f1: f64,
    /// The no-target confusion cell: "TP"/"FN" on no-target samples, "TN"/"FP" on target ones.
    pub nt: &'static str,
}

impl GrecMatch {
    pub fn correct(&self, f1_threshold: f64) -> bool {
        self.f1 >= f1_threshold
    }
}

/// Greedy one-to-one matching by GIoU: at most min(#pred, #gt) rounds, each taking the global
/// maximum (first in row-major order on ties) while it is >= `iou_threshold`, then zeroing its
/// row and column.
pub fn grec_match(pred: Option<&[BoxXyxy]>, gt: &[BoxXyxy], iou_threshold: f64) -> GrecMatch {
    let Some(pred) = pred else {
        let nt = if gt.is_empty() { "FN" } else { "FP" };
        return GrecMatch { tp: 0, fp: 0, fn_: gt.len() as i64, f1: 0.0, nt };
    };
    if gt.is_empty() {
        return if pred.is_empty() {
            GrecMatch { tp: 0, fp: 0, fn_: 0, f1: 1.0, nt: "TP" }
        } else {
            GrecMatch { tp: 0, fp: pred.len() as i64, fn_: 0, f1: 0.0, nt: "FN" }
        };
    }
    let nt = if pred.is_empty() { "FP" } else { "TN" };
    let (np, ng) = (pred.len(), gt.len());
    let mut m: Vec<f64> = pred.iter().flat_map(|p| gt.iter().map(move |g| giou(p, g))).collect();
    let mut tp = 0i64;
    for _ in 0..np.min(ng) {
        let (idx, best) =
            m.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        if best < iou_threshold {
            break;
        }
        tp += 1;
        let (r, c) = (idx / ng, idx % ng);
        for j in 0..ng {
            m[r * ng + j] = 0.0;
        }
        for i in 0..np {
            m[i * ng + c] = 0.0;
        }
    }
    let fp = np as i64 - tp;
    let fn_ = ng as i64 - tp;
    let f1 =
        if 2 * tp + fp + fn_ == 0 { 0.0 } else { 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64 };
    GrecMatch { tp, fp, fn_, f1, nt }
}

/// Parses a row's list of boxes, naming the argument on failure.
fn parse_boxes(
    arg: &str,
    rows: Vec<Option<Vec<Option<f64>>>>,
) -> std::result::Result<Vec<BoxXyxy>, String> {
    rows.into_iter()
        .enumerate()
        .map(|(i, b)| {
            let b = b.ok_or_else(|| format!("{arg}[{}] is NULL", i + 1))?;
            BoxXyxy::parse(&b).map_err(|e| format!("{arg}[{}]: {e}", i + 1))
        })
        .collect()
}

/// Reads (pred, gt) box lists of a batch: per row, the parsed prediction (`None` when NULL)
/// and GT, or the reason the row cannot be scored.
type Sample = std::result::Result<(Option<Vec<BoxXyxy>>, Vec<BoxXyxy>), String>;

fn read_samples(func: &str, pred: &ArrayRef, gt: &ArrayRef) -> Result<Vec<Sample>> {
    let preds = lists::float_list_lists(func, "pred_boxes", pred)?;
    let gts = lists::float_list_lists(func, "gt_boxes", gt)?;
    Ok(preds
        .into_iter()
        .zip(gts)
        .map(|(p, g)| -> Sample {
            let g = parse_boxes(
                "gt_boxes",
                g.ok_or("gt_boxes is NULL (use an empty list for no target)")?,
            )?;
            let p = p.map(|p| parse_boxes("pred_boxes", p)).transpose()?;
            Ok((p, g))
        })
        .collect())
}

fn match_fields() -> Fields {
    Fields::from(vec![
        Field::new("tp", DataType::Int64, false),
        Field::new("fp", DataType::Int64, false),
        Field::new("fn", DataType::Int64, false),
        Field::new("f1", DataType::Float64, false),
        Field::new("correct", DataType::Boolean, false),
        Field::new("no_target", DataType::Boolean, false),
        Field::new("nt", DataType::Utf8, false),
    ])
}

static MATCH_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "GREC matching of one sample as gRefCOCO's evaluator: GIoU between every predicted and GT \
         box `[x0, y0, x1, y1]`, greedy one-to-one matching while the best GIoU >= `iou_threshold` \
         (0.5), then TP/FP/FN, F1 = 2TP / (2TP + FP + FN), `correct` iff F1 = 1. An empty GT list \
         is a no-target sample (correct iff the prediction is empty too); `nt` is the no-target \
         confusion cell (TP/FN on no-target samples, TN/FP on target samples). Every predicted box \
         is kept (no score threshold). A NULL prediction counts as wrong.",
        "grec_match(pred_boxes, gt_boxes [, iou_threshold => 0.5] [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("pred_boxes", "Predicted boxes (list of [x0, y0, x1, y1]); empty = no target.")
    .with_argument("gt_boxes", "GT boxes (list of [x0, y0, x1, y1]); empty = no-target sample.")
    .with_argument("iou_threshold", "GIoU needed for a match (default 0.5).")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT grec_match([[0, 0, 10, 10], [50, 50, 60, 60]], [[0, 0, 10, 11]]) AS m;\n+-----------------------------------------------------------------------------------------+\n| m                                                                                       |\n+-----------------------------------------------------------------------------------------+\n| {tp: 1, fp: 1, fn: 0, f1: 0.6666666666666666, correct: false, no_target: false, nt: TN} |\n+-----------------------------------------------------------------------------------------+\n```",
    )
    .build()
});

/// `grec_match(pred_boxes, gt_boxes [, iou_threshold] [, on_error])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GrecMatchFunc {
    signature: Signature,
    params: Params,
}

impl GrecMatchFunc {
    pub fn new() -> Self {
        let params = Params::new(
            2,
            &[
                ("pred_boxes", Arg::Any),
                ("gt_boxes", Arg::Any),
                ("iou_threshold", Arg::Float),
                ("on_error", Arg::Text),
            ],
        );
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl Default for GrecMatchFunc {
    fn default() -> Self {
        Self::new()
    }
}

fn const_f64(
    func: &str,
    name: &str,
    args: &[ColumnarValue],
    idx: usize,
    default: f64,
) -> Result<f64> {
    match common::const_arg(args, idx) {
        None => Ok(default),
        Some(s) => match s.cast_to(&DataType::Float64)? {
            ScalarValue::Float64(Some(v)) if v.is_finite() => Ok(v),
            _ => exec_err!("{func}: option `{name}` must be a finite number"),
        },
    }
}

impl ScalarUDFImpl for GrecMatchFunc {
    fn name(&self) -> &str {
        "grec_match"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(match_fields()))
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Struct(match_fields()), &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut types = self.params.coerce(self.name(), arg_types)?;
        types[0] = lists::coerce_float_list(self.name(), "pred_boxes", &arg_types[0], 2)?;
        types[1] = lists::coerce_float_list(self.name(), "gt_boxes", &arg_types[1], 2)?;
        Ok(types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, policy) = self.params.policy(self.name(), &args)?;
        let thr = const_f64(self.name(), "iou_threshold", &args.args, 2, 0.5)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..2], args.number_rows)?;
        let samples = read_samples(self.name(), &arrays[0], &arrays[1])?;
        let (values, errors) = common::map_rows(samples, |_, s| {
            let (p, g) = s?;
            Ok(Some((grec_match(p.as_deref(), &g, thr), g.is_empty())))
        });
        let n = values.len();
        let get = |f: &dyn Fn(&(GrecMatch, bool)) -> i64| -> Int64Array {
            values.iter().map(|v| Some(v.as_ref().map_or(0, f))).collect()
        };
        let nulls: Vec<bool> = values.iter().map(Option::is_some).collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(get(&|v| v.0.tp)),
            Arc::new(get(&|v| v.0.fp)),
            Arc::new(get(&|v| v.0.fn_)),
            Arc::new(
                values
                    .iter()
                    .map(|v| Some(v.as_ref().map_or(0.0, |v| v.0.f1)))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                values
                    .iter()
                    .map(|v| Some(v.as_ref().is_some_and(|v| v.0.correct(1.0))))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(
                values
                    .iter()
                    .map(|v| Some(v.as_ref().is_some_and(|v| v.1)))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(
                values
                    .iter()
                    .map(|v| Some(v.as_ref().map_or("", |v| v.0.nt)))
                    .collect::<StringArray>(),
            ),
        ];
        debug_assert_eq!(nulls.len(), n);
        let array: ArrayRef =
            Arc::new(StructArray::try_new(match_fields(), cols, Some(nulls.into()))?);
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&MATCH_DOC)
    }
}

// ---------------------------------------------------------------------------------------------
// grec_score

const COUNTS: [&str; 6] = ["correct", "total", "nt_tp", "nt_tn", "nt_fp", "nt_fn"];

fn score_fields() -> Fields {
    let mut f = vec![
        Field::new("precision_f1_1", DataType::Float64, true),
        Field::new("n_acc", DataType::Float64, true),
        Field::new("t_acc", DataType::Float64, true),
    ];
    f.extend(COUNTS.iter().map(|c| Field::new(*c, DataType::Int64, false)));
    Fields::from(f)
}

static SCORE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "GREC scores of a group of samples as gRefCOCO's `RefExpEvaluator.summarize`: \
         `precision_f1_1` = samples with F1 = 1 / all samples (its `F1_score`, \"Pr@(F1=1, IoU>=0.5)\"), \
         `n_acc` = TP / (TP + FN) over no-target samples, `t_acc` = TN / (TN + FP) over target samples \
         (NULL where the group has none, where the reference divides by zero), plus the counts. \
         Matching as `grec_match`. NULL predictions count as wrong; NULL GT lists are an error. \
         Variant: `grec/giou>=<iou_threshold>`.",
        "grec_score(pred_boxes, gt_boxes [, iou_threshold => 0.5])",
    )
    .with_argument("pred_boxes", "Predicted boxes (list of [x0, y0, x1, y1]); empty = no target.")
    .with_argument("gt_boxes", "GT boxes (list of [x0, y0, x1, y1]); empty = no-target sample.")
    .with_argument("iou_threshold", "GIoU needed for a match (default 0.5).")
    .with_sql_example(
        "```sql\n> SELECT grec_score(p, g)['precision_f1_1'] AS f1, grec_score(p, g)['n_acc'] AS n_acc FROM (VALUES ([[0.0, 0.0, 10.0, 10.0]], [[0.0, 0.0, 10.0, 10.0]]), ([], [])) AS t(p, g);\n+-----+-------+\n| f1  | n_acc |\n+-----+-------+\n| 1.0 | 1.0   |\n+-----+-------+\n```",
    )
    .build()
});

/// `grec_score(pred_boxes, gt_boxes [, iou_threshold])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GrecScoreFunc {
    signature: Signature,
    params: Params,
}

impl GrecScoreFunc {
    pub fn new() -> Self {
        let params = Params::new(
            2,
            &[("pred_boxes", Arg::Any), ("gt_boxes", Arg::Any), ("iou_threshold", Arg::Float)],
        );
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl Default for GrecScoreFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for GrecScoreFunc {
    fn name(&self) -> &str {
        "grec_score"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(score_fields()))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut types = self.params.coerce(self.name(), arg_types)?;
        types[0] = lists::coerce_float_list(self.name(), "pred_boxes", &arg_types[0], 2)?;
        types[1] = lists::coerce_float_list(self.name(), "gt_boxes", &arg_types[1], 2)?;
        Ok(types)
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(COUNTS.iter().map(|c| Arc::new(Field::new(*c, DataType::Int64, true))).collect())
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(GrecAccumulator::default()))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&SCORE_DOC)
    }
}

/// Counts in `COUNTS` order.
#[derive(Debug, Default)]
struct GrecAccumulator {
    counts: [i64; 6],
}

/// A / (A + B), NULL when both are 0.
pub(crate) fn ratio(a: i64, b: i64) -> Option<f64> {
    (a + b > 0).then(|| a as f64 / (a + b) as f64)
}

impl Accumulator for GrecAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let thr = match values.get(2) {
            Some(a) if !a.is_empty() && !a.is_null(0) => {
                a.as_primitive::<datafusion::arrow::datatypes::Float64Type>().value(0)
            }
            _ => 0.5,
        };
        for (row, s) in read_samples("grec_score", &values[0], &values[1])?.into_iter().enumerate()
        {
            let (p, g) = s.map_err(|e| common::row_error("grec_score", row, e))?;
            let m = grec_match(p.as_deref(), &g, thr);
            self.counts[0] += m.correct(1.0) as i64;
            self.counts[1] += 1;
            let cell = match m.nt {
                "TP" => 2,
                "TN" => 3,
                "FP" => 4,
                _ => 5,
            };
            self.counts[cell] += 1;
        }
        Ok(())
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        let [correct, total, tp, tn, fp, fn_] = self.counts;
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(Float64Array::from(vec![(total > 0).then(|| correct as f64 / total as f64)])),
            Arc::new(Float64Array::from(vec![ratio(tp, fn_)])),
            Arc::new(Float64Array::from(vec![ratio(tn, fp)])),
        ];
        cols.extend(self.counts.iter().map(|c| Arc::new(Int64Array::from(vec![*c])) as ArrayRef));
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(score_fields(), cols, None)?)))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.counts.iter().map(|c| ScalarValue::Int64(Some(*c))).collect())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for (k, s) in states.iter().enumerate().take(6) {
            for v in s.as_primitive::<Int64Type>().iter().flatten() {
                self.counts[k] += v;
            }
        }
        Ok(())
    }
}
