use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::boundary;
use super::mask::{self, Mask, Rle};
use super::options;
use super::sample::{self, Contour, Method};
use super::space::Space;
use super::trace::{self, Components};
use crate::common::{self, Arg, Params};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "A mask as a sequence of at most `n` points of its outer contour, `[x0, y0, ..., x_{n-1}, \
         y_{n-1}]` (VistaLLM's mask representation). The contour (default `contour => \
         'boundary'`) is the outer boundary of the largest 8-connected component along pixel \
         edges: pixel `(x, y)` is the square `[x, x+1] x [y, y+1]` (COCO's frame), the vertices \
         are pixel corners, and the whole boundary fills back through `polygon_to_mask` to \
         exactly the component with its holes filled; a boundary with at most `n` corners comes \
         back whole. `contour => 'centres'` samples OpenCV's contour instead (`findContours` \
         `RETR_EXTERNAL`, `CHAIN_APPROX_NONE`: the boundary pixels' own indices, which \
         `polygon_to_mask` reads as their top-left corners). Methods: `adaptive` (default) is \
         greedy least-area removal (Visvalingam-Whyatt: drop the point whose triangle with its \
         neighbours has the least area until `n` remain), then an edge refit (each edge onto the \
         line through its arc at 1/4 and 3/4, vertices at the crossings); vertices may lie off \
         the contour. `refined`: `adaptive`, then on the boundary a local search that moves \
         vertices while the IoU of the filled polygon with the filled component rises (higher \
         IoU, about a hundred times slower). `uniform`: `n` contour points evenly \
         spaced along the contour (arc length on the boundary). `vistallm`: the authors' code \
         (40 pre-sampled points, distance-to-chord score). `angle`: the paper's wording taken \
         literally (turning angle at every contour point, the `n` largest in contour order). \
         Holes and other components are not represented. Output in `space` (`norm`: divided by \
         width/height; `square`: VistaLLM's padded square; `pixel`). Never padded: fewer than \
         `n` points come back when the contour has fewer. An empty mask is a row error ('mask is \
         empty'): NULL under `on_error => 'null'`. A list of masks (GRES) gives a list of \
         sequences.",
        "mask_to_sequence(mask [, n => 32, method => 'adaptive' | 'refined' | 'uniform' | 'vistallm' | 'angle', \
         space => 'norm' | 'pixel' | 'square', on_error => 'fail' | 'null' | 'report', \
         contour => 'boundary' | 'centres'])",
    )
    .with_argument("mask", "PNG bytes, a COCO RLE struct<size, counts>, struct<size, polygons>, or a list of these.")
    .with_argument("n", "Number of points (at least 3), default 32.")
    .with_argument("method", "'adaptive' (default), 'refined', 'uniform', 'vistallm' or 'angle'.")
    .with_argument("space", "Coordinate space of the output: 'norm' (default), 'pixel' or 'square'.")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_argument("contour", "'boundary' (default: pixel edges) or 'centres' (OpenCV's contour through boundary pixels). Optional arguments are trailing only: pass the four before it, positionally or by name.")
    .with_sql_example(
        "```sql\n> SELECT mask_to_sequence(named_struct('size', [4, 5], 'counts', '52207'), n => 4, method => 'adaptive', space => 'pixel') AS seq, mask_to_sequence(named_struct('size', [4, 5], 'counts', '52207'), 4, 'adaptive', 'pixel', 'fail', 'centres') AS centres;\n\
+------------------------------------------+------------------------------------------+\n\
| seq                                      | centres                                  |\n\
+------------------------------------------+------------------------------------------+\n\
| [1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0, 1.0] | [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 1.0] |\n\
+------------------------------------------+------------------------------------------+\n```",
    )
    .build()
});

/// `mask_to_sequence(mask, n, method, space)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskToSequenceFunc {
    signature: Signature,
    params: Params,
}

impl Default for MaskToSequenceFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskToSequenceFunc {
    pub fn new() -> Self {
        let params = Params::new(
            1,
            &[
                ("mask", Arg::Any),
                ("n", Arg::Int),
                ("method", Arg::Text),
                ("space", Arg::Text),
                ("on_error", Arg::Text),
                ("contour", Arg::Text),
            ],
        );
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

fn seq_type() -> DataType {
    DataType::new_list(DataType::Float64, true)
}

/// The sampled contour of one mask in `space`; an empty mask is an error.
/// Traced on the mask itself: the tracer reads column runs (a word at a time) and the one
/// border it follows, so a copy of the object's box would cost more than it saves.
pub fn mask_sequence(
    m: &Mask,
    n: usize,
    method: Method,
    contour: Contour,
    space: Space,
) -> Result<Vec<f64>, String> {
    crop_sequence(m, 0, 0, n, method, contour, space, m.width, m.height)
}

/// [`mask_sequence`] of a run-length mask: only the object's box is ever decoded.
pub fn rle_sequence(
    r: &Rle,
    n: usize,
    method: Method,
    contour: Contour,
    space: Space,
) -> Result<Vec<f64>, String> {
    let (crop, x0, y0) = r.crop().ok_or_else(empty_mask)?;
    crop_sequence(&crop, x0, y0, n, method, contour, space, r.width, r.height)
}

/// The contour points a sequence samples, in the mask's pixel frame: the boundary's corners
/// (one per unit step) or OpenCV's boundary pixels. `None` for an empty mask.
pub fn contour_points(m: &Mask, contour: Contour) -> Option<Vec<(i32, i32)>> {
    match contour {
        Contour::Boundary => boundary::largest_boundary(m),
        Contour::Centres => {
            trace::contours(m, Components::Largest, false).into_iter().next().map(|c| c.points)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn crop_sequence(
    crop: &Mask,
    x0: usize,
    y0: usize,
    n: usize,
    method: Method,
    contour: Contour,
    space: Space,
    width: usize,
    height: usize,
) -> Result<Vec<f64>, String> {
    let mut points = contour_points(crop, contour).ok_or_else(empty_mask)?;
    let (dx, dy) = (x0 as i32, y0 as i32);
    for p in &mut points {
        *p = (p.0 + dx, p.1 + dy);
    }
    Ok(contour_sequence(&points, n, method, contour, space, width, height))
}

fn empty_mask() -> String {
    "mask is empty (no foreground pixels)".into()
}

fn contour_sequence(
    points: &[(i32, i32)],
    n: usize,
    method: Method,
    contour: Contour,
    space: Space,
    width: usize,
    height: usize,
) -> Vec<f64> {
    let (w, h) = (width as f64, height as f64);
    let mut out = Vec::with_capacity(2 * n.min(points.len()));
    for (x, y) in sample::sequence_points(points, n, method, contour, width, height) {
        let (x, y) = space.from_pixel(x, y, w, h);
        out.push(x);
        out.push(y);
    }
    out
}

impl ScalarUDFImpl for MaskToSequenceFunc {
    fn name(&self) -> &str {
        "mask_to_sequence"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(seq_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let list = mask::is_mask_list_type(args.arg_fields[0].data_type());
        let t = if list { DataType::new_list(seq_type(), true) } else { seq_type() };
        Ok(self.params.result_field(self.name(), t, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[0] = options::check_mask_type(self.name(), "mask", &t[0], true)?;
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (_, policy) = self.params.policy(func, &args)?;
        let n = common::const_i64(func, "n", &args.args, 1)?.unwrap_or(32);
        if n < 3 {
            return plan_err!("{func}: n must be at least 3, got {n}");
        }
        let n = n as usize;
        let method = options::method(func, &args.args, 2)?;
        let space = options::space(func, &args.args, 3, Space::Norm)?;
        let contour = options::contour(func, &args.args, 5)?;
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(args.number_rows)?;
        let result: ArrayRef;
        let errors;
        if mask::is_mask_list_type(arr.data_type()) {
            let rows = mask::read_mask_lists(func, &arr)?;
            let (values, errs) = common::map_rows(rows, |_, r| {
                let Some(masks) = r? else { return Ok(None) };
                masks
                    .iter()
                    .enumerate()
                    .map(|(k, m)| {
                        mask_sequence(m, n, method, contour, space)
                            .map_err(|e| format!("mask {} of the list: {e}", k + 1))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            });
            let mut b = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
            for v in values {
                match v {
                    Some(seqs) => {
                        for s in seqs {
                            b.values().values().append_slice(&s);
                            b.values().append(true);
                        }
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            result = Arc::new(b.finish());
            errors = errs;
        } else {
            let rows = mask::read_rles(func, &arr)?;
            let (values, errs) = common::map_rows(rows, |_, r| {
                let Some(m) = r? else { return Ok(None) };
                rle_sequence(&m, n, method, contour, space).map(Some)
            });
            let mut b = ListBuilder::new(Float64Builder::new());
            for v in values {
                match v {
                    Some(s) => {
                        b.values().append_slice(&s);
                        b.append(true);
                    }
                    None => b.append(false),
                }
            }
            result = Arc::new(b.finish());
            errors = errs;
        }
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// Reconstruction IoU of the issue: `mask_iou(m, polygon_to_mask(mask_to_sequence(m, n), w, h))`,
/// through `norm` space as the SQL functions do. `n = None` uses the whole contour (the ceiling
/// of contour sampling). An empty mask gives 0.
pub fn reconstruction_iou(m: &Mask, n: Option<usize>, method: Method, contour: Contour) -> f64 {
    let Ok(seq) = mask_sequence(m, n.unwrap_or(usize::MAX), method, contour, Space::Norm) else {
        return 0.0;
    };
    let back = super::rasterise::polygon_mask(&seq, m.width, m.height, Space::Norm)
        .expect("finite points");
    Rle::from_mask(m).iou(&back).expect("same size by construction")
}

#[cfg(test)]
mod tests {
    use crate::test_util::{ctx, run};

    #[test]
    fn sql_sequence_round_trip_and_errors_name_the_row() {
        let c = ctx();
        // The boundary fills back to the mask; OpenCV's contour of a 2x2 square to one pixel.
        let out = run(
            &c,
            "SELECT mask_iou(m, polygon_to_mask(mask_to_sequence(m, n => 8), 5, 4)) AS iou, \
             mask_iou(m, polygon_to_mask(mask_to_sequence(m, 8, 'adaptive', 'norm', 'fail', 'centres'), 5, 4)) AS c \
             FROM (SELECT named_struct('size', [4, 5], 'counts', '52207') AS m)",
        )
        .unwrap();
        assert!(out.contains("| 1.0 | 0.25 |"), "{out}");
        for (method, want) in [("angle", "1.0"), ("vistallm", "1.0"), ("uniform", "1.0")] {
            let out = run(
                &c,
                &format!(
                    "SELECT mask_iou(m, polygon_to_mask(mask_to_sequence(m, 8, '{method}'), 5, 4)) AS iou \
                     FROM (SELECT named_struct('size', [4, 5], 'counts', '52207') AS m)"
                ),
            )
            .unwrap();
            assert!(out.contains(&format!("| {want} |")), "{method}: {out}");
        }
        let err = run(&c, "SELECT mask_to_sequence(named_struct('size', [4, 5], 'counts', '52207'), n => 8, method => 'uniform', space => 'norm', on_error => 'fail', contour => 'edges') AS s").unwrap_err();
        assert!(err.to_string().contains("contour must be 'boundary' or 'centres'"), "{err}");
        let err = run(&c, "SELECT mask_to_sequence(named_struct('size', [4, 5], 'counts', '52207'), n => 8, method => 'top') AS s").unwrap_err();
        assert!(err.to_string().contains("'vistallm' or 'angle', got 'top'"), "{err}");
        let err =
            run(&c, "SELECT mask_to_sequence(named_struct('size', [4, 5], 'counts', 'd0')) AS s")
                .unwrap_err();
        assert!(
            err.to_string().contains("mask_to_sequence: row 1 of its batch: mask is empty"),
            "{err}"
        );
        let out = run(
            &c,
            "SELECT mask_to_sequence(named_struct('size', [4, 5], 'counts', 'd0'), 32, 'adaptive', 'norm', 'report') AS s",
        )
        .unwrap();
        assert!(out.contains("mask is empty"), "{out}");
        let err = run(&c, "SELECT mask_area(named_struct('size', [4, 5], 'counts', '5220')) AS s")
            .unwrap_err();
        assert!(
            err.to_string().contains("mask_area: row 1 of its batch: RLE counts sum to 11"),
            "{err}"
        );
        let err = run(&c, "SELECT mask_iou(named_struct('size', [4, 5], 'counts', '52207'), named_struct('size', [5, 4], 'counts', '52207')) AS s").unwrap_err();
        assert!(
            err.to_string().contains("mask_iou: row 1 of its batch: masks differ in size"),
            "{err}"
        );
        let err =
            run(&c, "SELECT polygon_to_mask([0.1, 'NaN'::double, 0.5, 0.5, 0.2, 0.9], 5, 4) AS s")
                .unwrap_err();
        assert!(
            err.to_string().contains("polygon_to_mask: row 1 of its batch: coordinate 2 is NaN"),
            "{err}"
        );
        let out =
            run(&c, "SELECT mask_area(polygon_to_mask([0.1, 0.1, 0.9, 0.9], 5, 4)) AS a").unwrap();
        assert!(out.contains("| 0 |"), "{out}");
    }

    #[test]
    fn gres_lists_go_both_ways() {
        let c = ctx();
        let out = run(
            &c,
            "SELECT mask_area(m[1]) AS a1, mask_area(m[2]) AS a2 FROM (SELECT polygon_to_mask(\
             mask_to_sequence([named_struct('size', [4, 5], 'counts', '52207'), \
             named_struct('size', [4, 5], 'counts', '0d0')], 32, 'adaptive', 'pixel'), 5, 4, space => 'pixel') AS m)",
        )
        .unwrap();
        assert!(out.contains("| 4  | 20 |"), "{out}");
    }
}
