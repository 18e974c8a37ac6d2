//! `box_iou(pred, gt)` and `box_giou(pred, gt)`: IoU and generalised IoU of `[x0, y0, x1, y1]`
//! boxes, continuous coordinates (area = (x1 - x0)(y1 - y0), no +1), as torchvision's
//! `box_iou` and MDETR's `generalized_box_iou` compute them.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::lists;
use crate::common::{self, Arg, Params};

/// A validated box `[x0, y0, x1, y1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxXyxy(pub [f64; 4]);

impl BoxXyxy {
    /// Checks a box: four finite numbers with x0 <= x1 and y0 <= y1. Inverted or NaN boxes are
    /// an error rather than silently reordered (the references assert the same).
    pub fn parse(v: &[Option<f64>]) -> std::result::Result<BoxXyxy, String> {
        if v.len() != 4 {
            return Err(format!("a box needs 4 numbers [x0, y0, x1, y1], got {}", v.len()));
        }
        let mut b = [0.0; 4];
        for (i, x) in v.iter().enumerate() {
            match x {
                Some(x) if x.is_finite() => b[i] = *x,
                _ => {
                    return Err(format!(
                        "box {} has a NULL, NaN or infinite coordinate",
                        fmt_box(v)
                    ))
                }
            }
        }
        if b[2] < b[0] || b[3] < b[1] {
            return Err(format!("box {} has x1 < x0 or y1 < y0", fmt_box(v)));
        }
        Ok(BoxXyxy(b))
    }

    fn area(&self) -> f64 {
        (self.0[2] - self.0[0]) * (self.0[3] - self.0[1])
    }
}

fn fmt_box(v: &[Option<f64>]) -> String {
    let parts: Vec<String> =
        v.iter().map(|x| x.map_or("NULL".to_string(), |x| x.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

/// IoU and union area. Two boxes with an empty union give IoU 0 (torchvision gives NaN).
pub fn iou_union(a: &BoxXyxy, b: &BoxXyxy) -> (f64, f64) {
    let w = (a.0[2].min(b.0[2]) - a.0[0].max(b.0[0])).max(0.0);
    let h = (a.0[3].min(b.0[3]) - a.0[1].max(b.0[1])).max(0.0);
    let inter = w * h;
    let union = a.area() + b.area() - inter;
    (if union > 0.0 { inter / union } else { 0.0 }, union)
}

pub fn iou(a: &BoxXyxy, b: &BoxXyxy) -> f64 {
    iou_union(a, b).0
}

/// GIoU = IoU - (|C| - |U|) / |C|, C the smallest enclosing box; 0 when C has no area.
pub fn giou(a: &BoxXyxy, b: &BoxXyxy) -> f64 {
    let (iou, union) = iou_union(a, b);
    let w = (a.0[2].max(b.0[2]) - a.0[0].min(b.0[0])).max(0.0);
    let h = (a.0[3].max(b.0[3]) - a.0[1].min(b.0[1])).max(0.0);
    let c = w * h;
    if c > 0.0 {
        iou - (c - union) / c
    } else {
        0.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Overlap {
    Iou,
    Giou,
}

fn doc(kind: Overlap) -> Documentation {
    let (name, what, v) = match kind {
        Overlap::Iou => ("box_iou", "intersection over union", "0.08333333333333333"),
        Overlap::Giou => (
            "box_giou",
            "generalised IoU (IoU - (|C| - |U|) / |C|, C the enclosing box)",
            "-0.16666666666666669",
        ),
    };
    Documentation::builder(
        super::SECTION,
        format!(
            "The {what} of two boxes `[x0, y0, x1, y1]` in the same coordinate space, continuous \
             coordinates (area = (x1 - x0)(y1 - y0), no +1). A NULL prediction scores 0 (a miss \
             that stays in the denominator of an AVG); a NULL ground truth, a box without 4 \
             finite numbers or with x1 < x0 or y1 < y0 is an error naming the row. REC Acc@0.5: \
             `AVG(CASE WHEN {name}(pred, gt) >= 0.5 THEN 1.0 ELSE 0.0 END)` (MDETR uses GIoU and \
             `>=`; Shikra/VistaLLM use IoU and `>`)."
        ),
        format!("{name}(pred, gt [, on_error => 'fail' | 'null' | 'report'])"),
    )
    .with_argument("pred", "Predicted box (list of 4 numbers).")
    .with_argument("gt", "Ground-truth box (list of 4 numbers).")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(format!(
        "```sql\n> SELECT {name}([0, 0, 2, 2], [1, 1, 4, 4]) AS v;\n+{dash}+\n| v{pad} |\n+{dash}+\n| {v} |\n+{dash}+\n```",
        dash = "-".repeat(v.len() + 2),
        pad = " ".repeat(v.len() - 1),
    ))
    .build()
}

static IOU_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(Overlap::Iou));
static GIOU_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(Overlap::Giou));

/// `box_iou(pred, gt)` / `box_giou(pred, gt)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BoxOverlapFunc {
    kind: Overlap,
    signature: Signature,
    params: Params,
}

impl BoxOverlapFunc {
    pub fn new(kind: Overlap) -> Self {
        let params =
            Params::new(2, &[("pred", Arg::Any), ("gt", Arg::Any), ("on_error", Arg::Text)]);
        Self { kind, signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for BoxOverlapFunc {
    fn name(&self) -> &str {
        match self.kind {
            Overlap::Iou => "box_iou",
            Overlap::Giou => "box_giou",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Float64, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut types = self.params.coerce(self.name(), arg_types)?;
        types[0] = lists::coerce_float_list(self.name(), "pred", &arg_types[0], 1)?;
        types[1] = lists::coerce_float_list(self.name(), "gt", &arg_types[1], 1)?;
        Ok(types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, policy) = self.params.policy(self.name(), &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..2], args.number_rows)?;
        let preds = lists::float_lists(self.name(), "pred", &arrays[0])?;
        let gts = lists::float_lists(self.name(), "gt", &arrays[1])?;
        let kind = self.kind;
        let (values, errors) = common::map_rows(preds.into_iter().zip(gts), |_, (p, g)| {
            let g = BoxXyxy::parse(&g.ok_or("gt is NULL")?).map_err(|e| format!("gt: {e}"))?;
            let Some(p) = p else { return Ok(Some(0.0)) };
            let p = BoxXyxy::parse(&p).map_err(|e| format!("pred: {e}"))?;
            Ok(Some(match kind {
                Overlap::Iou => iou(&p, &g),
                Overlap::Giou => giou(&p, &g),
            }))
        });
        let array: ArrayRef = Arc::new(Float64Array::from(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.kind {
            Overlap::Iou => &IOU_DOC,
            Overlap::Giou => &GIOU_DOC,
        })
    }
}
