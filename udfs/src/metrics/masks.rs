//! Mask metrics: RES `miou`, `ciou` and `res_score` (LAVT's `test.py` conventions), and GRES
//! `gres_score` (ReLA's `ReferEvaluator`). Masks are read with the contour module's decoder
//! (PNG, COCO RLE, polygons); I and U are counted at the masks' own resolution, which must
//! match per row.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use crate::common::{self, Arg, Params};
use crate::contour::mask::{self, Mask};

/// Which aggregate over the same per-sample I and U.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskMetric {
    MIou,
    CIou,
    Res,
    Gres { smoothed: bool },
}

impl MaskMetric {
    pub fn name(self) -> &'static str {
        match self {
            MaskMetric::MIou => "miou",
            MaskMetric::CIou => "ciou",
            MaskMetric::Res => "res_score",
            MaskMetric::Gres { .. } => "gres_score",
        }
    }
}

const RES_THRESHOLDS: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

/// Running sums. For RES every sample is a target sample; GRES adds the no-target confusion.
/// Order (the state layout): n, n_target, sum_iou, sum_i, sum_u, pr@0.5..0.9, tp, tn, fp, fn.
#[derive(Debug, Default, Clone)]
struct Sums {
    n: i64,
    n_target: i64,
    sum_iou: f64,
    sum_i: i64,
    sum_u: i64,
    pr: [i64; 5],
    nt: [i64; 4],
}

const STATE: [&str; 14] = [
    "n", "n_target", "sum_iou", "sum_i", "sum_u", "pr50", "pr60", "pr70", "pr80", "pr90", "tp",
    "tn", "fp", "fn",
];

impl Sums {
    /// A target sample with intersection and union counts.
    fn add_target(&mut self, i: u64, u: u64) {
        let iou = if u == 0 { 0.0 } else { i as f64 / u as f64 };
        self.n += 1;
        self.n_target += 1;
        self.sum_iou += iou;
        self.sum_i += i as i64;
        self.sum_u += u as i64;
        for (k, t) in RES_THRESHOLDS.iter().enumerate() {
            self.pr[k] += (iou >= *t) as i64;
        }
    }

    fn to_state(&self) -> Vec<ScalarValue> {
        let mut v = vec![ScalarValue::Int64(Some(self.n)), ScalarValue::Int64(Some(self.n_target))];
        v.push(ScalarValue::Float64(Some(self.sum_iou)));
        v.push(ScalarValue::Int64(Some(self.sum_i)));
        v.push(ScalarValue::Int64(Some(self.sum_u)));
        v.extend(self.pr.iter().chain(&self.nt).map(|c| ScalarValue::Int64(Some(*c))));
        v
    }

    fn merge(&mut self, states: &[ArrayRef]) {
        let ints = |k: usize| -> i64 {
            states[k]
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
                .flatten()
                .sum()
        };
        self.n += ints(0);
        self.n_target += ints(1);
        self.sum_iou += states[2].as_primitive::<Float64Type>().iter().flatten().sum::<f64>();
        self.sum_i += ints(3);
        self.sum_u += ints(4);
        for k in 0..5 {
            self.pr[k] += ints(5 + k);
        }
        for k in 0..4 {
            self.nt[k] += ints(10 + k);
        }
    }
}

fn div(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| a / b)
}

/// The union of a list of masks (the merged mask ReLA scores), checking sizes.
fn merged(list: &[Mask]) -> std::result::Result<Option<Mask>, String> {
    let Some(first) = list.first() else { return Ok(None) };
    let mut m = first.clone();
    for (k, other) in list.iter().enumerate().skip(1) {
        if (other.width, other.height) != (m.width, m.height) {
            return Err(format!(
                "mask {} is {}x{}, mask 1 is {}x{} (width x height)",
                k + 1,
                other.width,
                other.height,
                m.width,
                m.height
            ));
        }
        for (a, b) in m.bits.iter_mut().zip(&other.bits) {
            *a |= *b;
        }
    }
    Ok(Some(m))
}

fn inter_union(p: &Mask, g: &Mask) -> std::result::Result<(u64, u64), String> {
    p.intersection_union(g).ok_or_else(|| {
        format!(
            "masks differ in size: pred {}x{}, gt {}x{} (width x height)",
            p.width, p.height, g.width, g.height
        )
    })
}

fn fields(metric: MaskMetric) -> Fields {
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    let i = |n: &str| Field::new(n, DataType::Int64, false);
    match metric {
        MaskMetric::Res => Fields::from(vec![
            f("miou"),
            f("ciou"),
            f("pr_50"),
            f("pr_60"),
            f("pr_70"),
            f("pr_80"),
            f("pr_90"),
            i("n"),
        ]),
        _ => Fields::from(vec![
            f("giou"),
            f("ciou"),
            f("n_acc"),
            f("t_acc"),
            f("pr_70"),
            f("pr_80"),
            f("pr_90"),
            i("n"),
            i("n_target"),
            i("tp"),
            i("tn"),
            i("fp"),
            i("fn"),
        ]),
    }
}

fn doc(metric: MaskMetric) -> Documentation {
    const TWO: &str = "(VALUES (named_struct('size', [2, 2], 'counts', '04'), named_struct('size', [2, 2], 'counts', '13'))) AS t(p, g)";
    let (what, syntax, query, table) = match metric {
        MaskMetric::MIou => (
            "RES mean IoU (LAVT \"mean IoU\"; LISA/ReLA \"gIoU\"): the mean over samples of I/U, \
             a sample with U = 0 scoring 0 (LAVT). Returns a fraction.",
            "miou(pred_mask, gt_mask)",
            format!("SELECT miou(p, g) AS v FROM {TWO}"),
            "+------+\n| v    |\n+------+\n| 0.75 |\n+------+",
        ),
        MaskMetric::CIou => (
            "RES cumulative IoU (LAVT \"overall IoU\", LISA/ReLA \"cIoU\"): sum of I / sum of U over \
             the samples (NULL when every union is empty). Returns a fraction.",
            "ciou(pred_mask, gt_mask)",
            format!("SELECT ciou(p, g) AS v FROM {TWO}"),
            "+------+\n| v    |\n+------+\n| 0.75 |\n+------+",
        ),
        MaskMetric::Res => (
            "RES scores in one pass: `miou`, `ciou` and `pr_50`..`pr_90` (share of samples with \
             IoU >= 0.5..0.9, LAVT's Pr@X), as fractions, and `n`.",
            "res_score(pred_mask, gt_mask)",
            format!("SELECT res_score(p, g)['pr_70'] AS v FROM {TWO}"),
            "+-----+\n| v   |\n+-----+\n| 1.0 |\n+-----+",
        ),
        MaskMetric::Gres { .. } => (
            "GRES scores as ReLA's `ReferEvaluator` (fixed version 884ef17): each row is a list of \
             predicted masks (empty = the model says no target) and a list of GT masks (empty = a \
             no-target sample), each list merged by union. `giou` = mean per-sample IoU with \
             no-target samples scoring 1 if predicted no-target (else 0); `ciou` = sum I / sum U \
             (a no-target sample adds the predicted area to U); `pr_70/80/90` over target samples; \
             `n_acc` = TP/(TP+FN), `t_acc` = TN/(TN+FP), both 0 when the group has no no-target \
             sample (as the reference). All fractions (ReLA prints gIoU, cIoU and Pr x100). \
             `smoothed => true` gives the initial release's (a389648) `t_acc` = TP/(TP+FP+1) and \
             `n_acc` = TP/(TP+FN+1). Group by source for per-dataset numbers.",
            "gres_score(pred_masks, gt_masks [, smoothed => false])",
            "SELECT gres_score(p, g)['giou'] AS v FROM (VALUES ([named_struct('size', [2, 2], 'counts', '04')], [named_struct('size', [2, 2], 'counts', '13')]), ([], [])) AS t(p, g)".to_string(),
            "+-------+\n| v     |\n+-------+\n| 0.875 |\n+-------+",
        ),
    };
    Documentation::builder(
        super::SECTION,
        format!(
            "{what} Aggregate, one row per sample. Masks: PNG bytes (non-zero = foreground) or COCO \
             RLE `struct<size: [h, w], counts>`. A NULL prediction counts as wrong (an empty mask on \
             a target sample; FN on a no-target one) and stays in the denominators; a NULL GT and \
             masks of different sizes are errors naming the row."
        ),
        syntax,
    )
    .with_argument("pred_mask", "Predicted mask (or list of masks for gres_score).")
    .with_argument("gt_mask", "Ground-truth mask (or list of masks for gres_score).")
    .with_sql_example(format!("```sql\n> {query};\n{table}\n```"))
    .build()
}

static MIOU_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(MaskMetric::MIou));
static CIOU_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(MaskMetric::CIou));
static RES_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(MaskMetric::Res));
static GRES_DOC: LazyLock<Documentation> =
    LazyLock::new(|| doc(MaskMetric::Gres { smoothed: false }));

/// `miou` / `ciou` / `res_score` / `gres_score`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskMetricFunc {
    metric: MaskMetric,
    signature: Signature,
    params: Params,
}

impl MaskMetricFunc {
    pub fn new(metric: MaskMetric) -> Self {
        let params = if matches!(metric, MaskMetric::Gres { .. }) {
            Params::new(
                2,
                &[("pred_masks", Arg::Any), ("gt_masks", Arg::Any), ("smoothed", Arg::Bool)],
            )
        } else {
            Params::new(2, &[("pred_mask", Arg::Any), ("gt_mask", Arg::Any)])
        };
        Self { metric, signature: params.signature(Volatility::Immutable), params }
    }
}

impl AggregateUDFImpl for MaskMetricFunc {
    fn name(&self) -> &str {
        self.metric.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.metric {
            MaskMetric::MIou | MaskMetric::CIou => DataType::Float64,
            m => DataType::Struct(fields(m)),
        })
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let types = self.params.coerce(self.name(), arg_types)?;
        let gres = matches!(self.metric, MaskMetric::Gres { .. });
        for (k, t) in arg_types.iter().take(2).enumerate() {
            let ok = t.is_null()
                || if gres { mask::is_mask_list_type(t) } else { mask::is_mask_type(t) };
            if !ok {
                let what = if gres {
                    "a list of masks (PNG bytes or COCO RLE structs)"
                } else {
                    "a mask (PNG bytes or a COCO RLE struct)"
                };
                return plan_err!(
                    "{}: argument `{}` must be {what}, got {t}",
                    self.name(),
                    self.params.names[k]
                );
            }
        }
        Ok(types)
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE
            .iter()
            .map(|s| {
                let t = if *s == "sum_iou" { DataType::Float64 } else { DataType::Int64 };
                Arc::new(Field::new(*s, t, true))
            })
            .collect())
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let mut metric = self.metric;
        if let MaskMetric::Gres { smoothed } = &mut metric {
            use datafusion::physical_expr::expressions::Literal;
            if let Some(lit) = acc_args.exprs.get(2).and_then(|e| e.downcast_ref::<Literal>()) {
                *smoothed = matches!(lit.value(), ScalarValue::Boolean(Some(true)));
            }
        }
        Ok(Box::new(MaskAccumulator { metric, sums: Sums::default() }))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.metric {
            MaskMetric::MIou => &MIOU_DOC,
            MaskMetric::CIou => &CIOU_DOC,
            MaskMetric::Res => &RES_DOC,
            MaskMetric::Gres { .. } => &GRES_DOC,
        })
    }
}

#[derive(Debug)]
struct MaskAccumulator {
    metric: MaskMetric,
    sums: Sums,
}

impl MaskAccumulator {
    fn update_res(&mut self, values: &[ArrayRef]) -> Result<()> {
        let name = self.metric.name();
        let preds = mask::read_masks(name, &values[0])?;
        let gts = mask::read_masks(name, &values[1])?;
        for (row, (p, g)) in preds.into_iter().zip(gts).enumerate() {
            let err = |e: String| common::row_error(name, row, e);
            let g = g
                .map_err(|e| err(format!("gt_mask: {e}")))?
                .ok_or_else(|| err("gt_mask is NULL".into()))?;
            let (i, u) = match p.map_err(|e| err(format!("pred_mask: {e}")))? {
                Some(p) => inter_union(&p, &g).map_err(err)?,
                None => (0, g.area()),
            };
            self.sums.add_target(i, u);
        }
        Ok(())
    }

    /// One ReLA sample; `pred` is `None` for a NULL prediction (always wrong).
    fn add_gres(
        &mut self,
        pred: Option<Option<Mask>>,
        gt: Option<Mask>,
    ) -> std::result::Result<(), String> {
        let s = &mut self.sums;
        match gt {
            None => {
                s.n += 1;
                match pred {
                    Some(None) => {
                        s.nt[0] += 1;
                        s.sum_iou += 1.0;
                    }
                    Some(Some(p)) => {
                        s.nt[3] += 1;
                        s.sum_u += p.area() as i64;
                    }
                    None => s.nt[3] += 1,
                }
            }
            Some(g) => {
                let (i, u, pred_nt) = match &pred {
                    Some(Some(p)) => {
                        let (i, u) = inter_union(p, &g)?;
                        (i, u, false)
                    }
                    _ => (0, g.area(), true),
                };
                if pred_nt {
                    s.nt[2] += 1;
                } else {
                    s.nt[1] += 1;
                }
                s.add_target(i, u);
            }
        }
        Ok(())
    }

    fn update_gres(&mut self, values: &[ArrayRef]) -> Result<()> {
        let name = self.metric.name();
        let preds = mask::read_mask_lists(name, &values[0])?;
        let gts = mask::read_mask_lists(name, &values[1])?;
        for (row, (p, g)) in preds.into_iter().zip(gts).enumerate() {
            let err = |e: String| common::row_error(name, row, e);
            let g = g
                .map_err(|e| err(format!("gt_masks: {e}")))?
                .ok_or_else(|| err("gt_masks is NULL (use an empty list for no target)".into()))?;
            let g = merged(&g).map_err(|e| err(format!("gt_masks: {e}")))?;
            let p = match p.map_err(|e| err(format!("pred_masks: {e}")))? {
                Some(list) => Some(merged(&list).map_err(|e| err(format!("pred_masks: {e}")))?),
                None => None,
            };
            self.add_gres(p, g).map_err(err)?;
        }
        Ok(())
    }
}

impl Accumulator for MaskAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match self.metric {
            MaskMetric::Gres { .. } => self.update_gres(values),
            _ => self.update_res(values),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let s = &self.sums;
        let miou = div(s.sum_iou, s.n as f64);
        let ciou = div(s.sum_i as f64, s.sum_u as f64);
        let pr = |k: usize| div(s.pr[k] as f64, s.n_target as f64);
        let f = |v: Option<f64>| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
        let i = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        let cols = match self.metric {
            MaskMetric::MIou => return Ok(ScalarValue::Float64(miou)),
            MaskMetric::CIou => return Ok(ScalarValue::Float64(ciou)),
            MaskMetric::Res => {
                vec![f(miou), f(ciou), f(pr(0)), f(pr(1)), f(pr(2)), f(pr(3)), f(pr(4)), i(s.n)]
            }
            MaskMetric::Gres { smoothed } => {
                let [tp, tn, fp, fn_] = s.nt;
                let (n_acc, t_acc) = if tp + fn_ == 0 {
                    (0.0, 0.0)
                } else if smoothed {
                    (tp as f64 / (tp + fn_ + 1) as f64, tp as f64 / (tp + fp + 1) as f64)
                } else {
                    (
                        tp as f64 / (tp + fn_) as f64,
                        div(tn as f64, (tn + fp) as f64).unwrap_or(f64::NAN),
                    )
                };
                vec![
                    f(miou),
                    f(ciou),
                    f(Some(n_acc)),
                    f(Some(t_acc).filter(|v| !v.is_nan())),
                    f(pr(2)),
                    f(pr(3)),
                    f(pr(4)),
                    i(s.n),
                    i(s.n_target),
                    i(tp),
                    i(tn),
                    i(fp),
                    i(fn_),
                ]
            }
        };
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(fields(self.metric), cols, None)?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(self.sums.to_state())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.sums.merge(states);
        Ok(())
    }
}
