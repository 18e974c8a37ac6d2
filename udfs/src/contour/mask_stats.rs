//! `mask_area(m)`, `mask_bbox(m)` and `mask_iou(a, b)`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, Float64Builder, Int64Array, ListBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::mask;
use super::options;
use super::space::Space;
use crate::common::{self, Arg, Params};

const RLE_4X5: &str = "named_struct('size', [4, 5], 'counts', '52207')";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    Area,
    Bbox,
}

fn stat_doc(stat: Stat) -> Documentation {
    match stat {
        Stat::Area => Documentation::builder(
            super::SECTION,
            "Number of foreground pixels of a mask (pycocotools `area`). Corrupt PNG or RLE \
             counts that do not sum to h*w fail naming the row (NULL under `on_error => 'null'`).",
            "mask_area(mask [, on_error => 'fail' | 'null' | 'report'])",
        )
        .with_argument("mask", "PNG bytes, COCO RLE struct<size, counts>, or struct<size, polygons>.")
        .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
        .with_sql_example(format!(
            "```sql\n> SELECT mask_area({RLE_4X5}) AS a;\n+---+\n| a |\n+---+\n| 4 |\n+---+\n```"
        ))
        .build(),
        Stat::Bbox => Documentation::builder(
            super::SECTION,
            "Tight box `[x0, y0, x1, y1]` of a mask's foreground, pixel edges: in `pixel` space \
             `[x_min, y_min, x_max + 1, y_max + 1]` (pycocotools `toBbox` [x, y, w, h] as \
             corners). `norm` divides by width/height, `square` uses VistaLLM's padded square. \
             An empty mask gives NULL (no box).",
            "mask_bbox(mask [, space => 'pixel' | 'norm' | 'square', on_error => 'fail' | 'null' | 'report'])",
        )
        .with_argument("mask", "PNG bytes, COCO RLE struct<size, counts>, or struct<size, polygons>.")
        .with_argument("space", "Output space: 'pixel' (default), 'norm' or 'square'.")
        .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
        .with_sql_example(format!(
            "```sql\n> SELECT mask_bbox({RLE_4X5}) AS b;\n+----------------------+\n| b                    |\n+----------------------+\n| [1.0, 1.0, 3.0, 3.0] |\n+----------------------+\n```"
        ))
        .build(),
    }
}

static AREA_DOC: LazyLock<Documentation> = LazyLock::new(|| stat_doc(Stat::Area));
static BBOX_DOC: LazyLock<Documentation> = LazyLock::new(|| stat_doc(Stat::Bbox));

/// `mask_area(m)` / `mask_bbox(m)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskStatFunc {
    stat: Stat,
    signature: Signature,
    params: Params,
}

impl MaskStatFunc {
    pub fn new(stat: Stat) -> Self {
        let params = match stat {
            Stat::Area => Params::new(1, &[("mask", Arg::Any), ("on_error", Arg::Text)]),
            Stat::Bbox => {
                Params::new(1, &[("mask", Arg::Any), ("space", Arg::Text), ("on_error", Arg::Text)])
            }
        };
        Self { stat, signature: params.signature(Volatility::Immutable), params }
    }

    fn value_type(&self) -> DataType {
        match self.stat {
            Stat::Area => DataType::Int64,
            Stat::Bbox => DataType::new_list(DataType::Float64, true),
        }
    }
}

impl ScalarUDFImpl for MaskStatFunc {
    fn name(&self) -> &str {
        match self.stat {
            Stat::Area => "mask_area",
            Stat::Bbox => "mask_bbox",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.value_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), self.value_type(), &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[0] = options::check_mask_type(self.name(), "mask", &t[0], false)?;
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (_, policy) = self.params.policy(func, &args)?;
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(args.number_rows)?;
        let rows = mask::read_rles(func, &arr)?;
        let result: ArrayRef;
        let errors;
        match self.stat {
            Stat::Area => {
                let (values, errs) = common::map_rows(rows, |_, r| Ok(r?.map(|m| m.area() as i64)));
                result = Arc::new(Int64Array::from(values));
                errors = errs;
            }
            Stat::Bbox => {
                let space = options::space(func, &args.args, 1, Space::Pixel)?;
                let (values, errs) = common::map_rows(rows, |_, r| {
                    let Some(m) = r? else { return Ok(None) };
                    Ok(m.bbox().map(|(x0, y0, x1, y1)| {
                        let (w, h) = (m.width as f64, m.height as f64);
                        // Corners are pixel edges: the top-left corner of pixel (x0, y0) and the
                        // bottom-right corner of (x1, y1); a space maps edges like coordinates.
                        let a = space.from_pixel(x0 as f64, y0 as f64, w, h);
                        let b = space.from_pixel(x1 as f64 + 1.0, y1 as f64 + 1.0, w, h);
                        [a.0, a.1, b.0, b.1]
                    }))
                });
                let mut b = ListBuilder::new(Float64Builder::new());
                for v in values {
                    match v {
                        Some(bx) => {
                            b.values().append_slice(&bx);
                            b.append(true);
                        }
                        None => b.append(false),
                    }
                }
                result = Arc::new(b.finish());
                errors = errs;
            }
        }
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.stat {
            Stat::Area => &AREA_DOC,
            Stat::Bbox => &BBOX_DOC,
        })
    }
}

static IOU_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Intersection over union of two masks of the same size (pycocotools `iou` with \
         `iscrowd = 0`); two empty masks give 0. Masks of different sizes are an error naming the \
         row and both sizes, never 0. Either mask NULL gives NULL.",
        "mask_iou(a, b [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("a", "A mask: PNG bytes, COCO RLE struct<size, counts>, or struct<size, polygons>.")
    .with_argument("b", "A mask of the same size.")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(format!(
        "```sql\n> SELECT mask_iou({RLE_4X5}, polygon_to_mask([1.0, 1.0, 1.0, 4.0, 3.0, 4.0, 3.0, 1.0], 5, 4, space => 'pixel')) AS iou;\n+--------------------+\n| iou                |\n+--------------------+\n| 0.6666666666666666 |\n+--------------------+\n```"
    ))
    .build()
});

/// `mask_iou(a, b)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskIouFunc {
    signature: Signature,
    params: Params,
}

impl Default for MaskIouFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskIouFunc {
    pub fn new() -> Self {
        let params = Params::new(2, &[("a", Arg::Any), ("b", Arg::Any), ("on_error", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for MaskIouFunc {
    fn name(&self) -> &str {
        "mask_iou"
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
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[0] = options::check_mask_type(self.name(), "a", &t[0], false)?;
        t[1] = options::check_mask_type(self.name(), "b", &t[1], false)?;
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (_, policy) = self.params.policy(func, &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..2], args.number_rows)?;
        let a = mask::read_rles(func, &arrays[0])?;
        let b = mask::read_rles(func, &arrays[1])?;
        let (values, errors) = common::map_rows(a.into_iter().zip(b), |_, (a, b)| {
            let a = a.map_err(|e| format!("mask a: {e}"))?;
            let b = b.map_err(|e| format!("mask b: {e}"))?;
            match (a, b) {
                (Some(a), Some(b)) => a.iou(&b).map(Some),
                _ => Ok(None),
            }
        });
        let result: ArrayRef = Arc::new(Float64Array::from(values));
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&IOU_DOC)
    }
}
