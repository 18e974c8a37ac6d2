use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, ListArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::mask::{self, Mask, Rle};
use super::options;
use super::space::Space;
use crate::common::{self, Arg, Params};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Rasterises a polygon `[x0, y0, x1, y1, ...]` into a `width` x `height` mask. Fill rule: \
         pycocotools' `frPyObjects` exactly (the same RLE): after converting to pixels (pixel \
         `(x, y)` is the square `[x, x+1] x [y, y+1]`), a pixel is inside when its centre \
         `(x + 0.5, y + 0.5)` is inside the polygon, ties decided by pycocotools' scan-line \
         rule on a 5x upsampled outline. Coordinates outside the image \
         are allowed (the polygon is clipped to the image); NaN or infinite coordinates, an odd \
         number of values, or a missing size are row errors. Fewer than 3 points give an empty \
         mask. A list of polygons (GRES) gives a list of masks, one per polygon. Output: COCO \
         RLE `struct<size, counts>` (default) or PNG bytes (`format => 'png'`).",
        "polygon_to_mask(points, width, height [, space => 'norm' | 'pixel' | 'square', \
         format => 'rle' | 'png', on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("points", "list<double> [x0, y0, ...], or a list of such polygons.")
    .with_argument("width", "Mask width in pixels.")
    .with_argument("height", "Mask height in pixels.")
    .with_argument("space", "Space of the points: 'norm' (default), 'pixel' or 'square'.")
    .with_argument("format", "'rle' (default) or 'png'.")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT polygon_to_mask([1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 1.0], 5, 4, space => 'pixel') AS m;\n\
+-------------------------------+\n\
| m                             |\n\
+-------------------------------+\n\
| {size: [4, 5], counts: 52207} |\n\
+-------------------------------+\n```",
    )
    .build()
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Format {
    Rle,
    Png,
}

/// `polygon_to_mask(points, width, height, space, format)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PolygonToMaskFunc {
    signature: Signature,
    params: Params,
}

impl Default for PolygonToMaskFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl PolygonToMaskFunc {
    pub fn new() -> Self {
        let params = Params::new(
            3,
            &[
                ("points", Arg::Any),
                ("width", Arg::Int),
                ("height", Arg::Int),
                ("space", Arg::Text),
                ("format", Arg::Text),
                ("on_error", Arg::Text),
            ],
        );
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

fn format_of(func: &str, s: Option<&datafusion::common::ScalarValue>) -> Result<Format> {
    match s {
        None => Ok(Format::Rle),
        Some(v) => match v.to_string().to_ascii_lowercase().as_str() {
            "rle" => Ok(Format::Rle),
            "png" => Ok(Format::Png),
            other => plan_err!("{func}: format must be 'rle' or 'png', got '{other}'"),
        },
    }
}

fn nesting(dt: &DataType) -> Option<usize> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match f.data_type() {
                d if d.is_numeric() || d == &DataType::Null => Some(1),
                d => nesting(d).filter(|&k| k == 1).map(|_| 2),
            }
        }
        _ => None,
    }
}

/// One polygon (in `space`) rasterised on a `width` x `height` mask, as runs (a bitmap per row
/// of a batch would hold `width * height` bytes each).
pub fn polygon_mask(
    points: &[f64],
    width: usize,
    height: usize,
    space: Space,
) -> Result<Rle, String> {
    if !points.len().is_multiple_of(2) {
        return Err(format!("a polygon needs an even number of values, got {}", points.len()));
    }
    if let Some(i) = points.iter().position(|v| !v.is_finite()) {
        return Err(format!("coordinate {} is {}", i + 1, points[i]));
    }
    let px = space.convert(Space::Pixel, points, width as f64, height as f64);
    // Rasterising walks every scanline a polygon spans: a coordinate of 1e9 would take seconds,
    // one of 1e300 forever.
    crate::limits::check_coordinates(&px, width as f64, height as f64)?;
    Ok(Rle::from_polygons(height, width, &[px]))
}

impl ScalarUDFImpl for PolygonToMaskFunc {
    fn name(&self) -> &str {
        "polygon_to_mask"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(mask::rle_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let format = format_of(self.name(), args.scalar_arguments.get(4).copied().flatten())?;
        let one = match format {
            Format::Rle => mask::rle_type(),
            Format::Png => DataType::Binary,
        };
        let t = if nesting(args.arg_fields[0].data_type()) == Some(2) {
            DataType::new_list(one, true)
        } else {
            one
        };
        Ok(self.params.result_field(self.name(), t, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[0] = match nesting(&t[0]) {
            Some(1) => DataType::new_list(DataType::Float64, true),
            Some(_) => DataType::new_list(DataType::new_list(DataType::Float64, true), true),
            None if t[0] == DataType::Null => DataType::new_list(DataType::Float64, true),
            None => {
                return plan_err!(
                "{}: argument `points` must be a list of numbers or a list of such lists, got {}",
                self.name(),
                t[0]
            )
            }
        };
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (_, policy) = self.params.policy(func, &args)?;
        let space = options::space(func, &args.args, 3, Space::Norm)?;
        let format = format_of(func, common::const_arg(&args.args, 4))?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..3], args.number_rows)?;
        let widths = cast(&arrays[1], &DataType::Int64)?;
        let heights = cast(&arrays[2], &DataType::Int64)?;
        let (widths, heights) =
            (widths.as_primitive::<Int64Type>(), heights.as_primitive::<Int64Type>());
        let size = |row: usize| -> Result<(usize, usize), String> {
            if widths.is_null(row) || heights.is_null(row) {
                return Err("width and height must not be NULL".into());
            }
            let (w, h) = (widths.value(row), heights.value(row));
            if w <= 0 || h <= 0 {
                return Err(format!("invalid mask size {w} x {h} (width x height)"));
            }
            crate::limits::check_mask("mask", w as u64, h as u64)?;
            Ok((w as usize, h as usize))
        };
        let nested = nesting(arrays[0].data_type()) == Some(2);
        let list = arrays[0]
            .as_list_opt::<i32>()
            .ok_or_else(|| exec_datafusion_err!("{func}: points must be a list"))?;
        let (values, errors) = common::map_rows(0..args.number_rows, |_, row| {
            if list.is_null(row) {
                return Ok(None);
            }
            let (w, h) = size(row)?;
            if nested {
                let polys = mask::list_of_f64_lists(&list.value(row))?;
                polys
                    .iter()
                    .enumerate()
                    .map(|(k, p)| {
                        polygon_mask(p, w, h, space).map_err(|e| format!("polygon {}: {e}", k + 1))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            } else {
                let v = list.value(row);
                let v = v.as_primitive::<Float64Type>();
                if v.null_count() > 0 {
                    return Err("a coordinate is NULL".into());
                }
                polygon_mask(v.values(), w, h, space).map(|m| Some(vec![m]))
            }
        });
        let result: ArrayRef = match (nested, format) {
            (false, Format::Rle) => {
                mask::rle_array(values.iter().map(|v| v.as_ref().map(|m| &m[0])))
            }
            (false, Format::Png) => {
                png_array(values.iter().map(|v| v.as_ref().map(|m| m[0].to_mask())))
            }
            (true, Format::Rle) => mask::rle_list_array(&values),
            (true, Format::Png) => {
                let flat = png_array(values.iter().flatten().flatten().map(|r| Some(r.to_mask())));
                let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths(
                    values.iter().map(|r| r.as_ref().map_or(0, Vec::len)),
                );
                let nulls: Vec<bool> = values.iter().map(Option::is_some).collect();
                Arc::new(ListArray::try_new(
                    Arc::new(Field::new("item", DataType::Binary, true)),
                    offsets,
                    flat,
                    Some(nulls.into()),
                )?)
            }
        };
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// A Binary column of PNG-encoded masks.
pub fn png_array<M: std::borrow::Borrow<Mask>>(
    masks: impl IntoIterator<Item = Option<M>>,
) -> ArrayRef {
    let mut b = BinaryBuilder::new();
    for m in masks {
        match m {
            Some(m) => b.append_value(m.borrow().to_png()),
            None => b.append_null(),
        }
    }
    Arc::new(b.finish())
}
