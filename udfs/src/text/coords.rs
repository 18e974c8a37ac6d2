//! Coordinates as model text, both ways: `format_boxes` / `format_points` write boxes, points
//! and mask polygons in the `decimal` or `bins` style; `parse_boxes` / `parse_polygons` read
//! either style back with a parse status.
//!
//! The text is always in VistaLLM's frame, `square` (the image padded to a centred square, then
//! divided by its side; reference vistallm.md §2, §5). The `space` argument names the space of
//! the values given (format) or wanted (parse); `norm` and `pixel` need the image's `width` and
//! `height`. With `space => 'square'` (the default) nothing is converted, so any normalised
//! frame passes through unchanged.
//!
//! Styles (reference vistallm.md §5.2, §5.3):
//! - `bins`: value v in [0, 1] -> `<bin_k>`, k = round-half-to-even(v * 1000) (1001 bins);
//!   boxes are first rounded to 3 decimals (`norm_box_xyxy`). Boxes `<b_st>x0 y0 x1 y1<b_ed>`,
//!   points `<p_st>x y<p_ed>`, masks `<m_st>x0 y0 ... <m_ed>`; the bins of one primitive are
//!   separated by one space, several primitives by `<b_sep>` / `<p_sep>` / `<m_sep>` inside one
//!   start/end pair. Decoding is k / 1000.
//! - `decimal`: `[x0,y0,x1,y1]`, 3 decimals (`f"{v:.3f}"`), no spaces, several objects joined by
//!   `;` inside one bracket pair.
//!
//! Values are clamped to [0, 1] before writing, as the authors' normalisation does. Parsers
//! accept both styles (spaces anywhere, as the authors strip them), never guess from a ground
//! truth, and report `ok`, `empty` (no target: nothing parses and the text has no coordinate
//! markers; GREC/GRES) or `error: <reason>` (with NULL values).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, ListArray, ListBuilder, StringArray, StringBuilder,
    StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, DocSection, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};

use super::prompt::Style;
use crate::common::{self, Arg, Params};
use crate::config::VistaConfig;
use crate::contour::Space;

const SECTION: DocSection = DocSection {
    include: true,
    label: "Vista coordinate text functions",
    description: Some(
        "Boxes, points and polygons as model text (decimal or VistaLLM bin tokens) and back.",
    ),
};

pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(FormatFunc::new(Kind::Boxes)),
        ScalarUDF::new_from_impl(FormatFunc::new(Kind::Points)),
        ScalarUDF::new_from_impl(ParseFunc::new(Kind::Boxes)),
        ScalarUDF::new_from_impl(ParseFunc::new(Kind::Points)),
    ]
}

/// What a text holds: boxes (`<b_*>`, 4 values each) or points/polygons (`<p_*>` / `<m_*>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Boxes,
    Points,
}

/// The token family of a primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    Box,
    Point,
    Mask,
}

impl Tag {
    fn prefix(self) -> &'static str {
        match self {
            Tag::Box => "b",
            Tag::Point => "p",
            Tag::Mask => "m",
        }
    }
}

/// The bin of a value in [0, 1] (clamped), round half to even as Python's `round`.
pub fn to_bin(v: f64) -> u32 {
    (v.clamp(0.0, 1.0) * 1000.0).round_ties_even() as u32
}

/// Python's `round(v, 3)`: correctly rounded on the exact binary value, ties to even.
fn round3(v: f64) -> f64 {
    format!("{v:.3}").parse().expect("a formatted float parses")
}

fn clamp01(v: f64) -> f64 {
    // `+ 0.0` turns -0.0 into 0.0, so "-0.000" is never written.
    v.clamp(0.0, 1.0) + 0.0
}

/// Writes objects (each a flat list of values already in the text frame) in a style.
/// `Tag::Point` objects are pairs: every pair becomes one `<p_st>`-primitive.
pub fn format_objects(objects: &[Vec<f64>], style: Style, tag: Tag) -> Result<String, String> {
    if let Some(v) = objects.iter().flatten().find(|v| !v.is_finite()) {
        return Err(format!("coordinate {v} is not finite"));
    }
    if objects.is_empty() {
        return Ok(String::new());
    }
    let per: Vec<&[f64]> = match tag {
        Tag::Point => objects.iter().flat_map(|o| o.chunks(2)).collect(),
        _ => objects.iter().map(Vec::as_slice).collect(),
    };
    Ok(match style {
        Style::Bins => {
            let p = tag.prefix();
            let prims: Vec<String> = per
                .iter()
                .map(|o| {
                    o.iter()
                        .map(|&v| {
                            let v = if tag == Tag::Box { round3(clamp01(v)) } else { v };
                            format!("<bin_{}>", to_bin(v))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            format!("<{p}_st>{}<{p}_ed>", prims.join(&format!("<{p}_sep>")))
        }
        Style::Decimal => {
            let prims: Vec<String> = per
                .iter()
                .map(|o| {
                    o.iter().map(|&v| format!("{:.3}", clamp01(v))).collect::<Vec<_>>().join(",")
                })
                .collect();
            format!("[{}]", prims.join(";"))
        }
        Style::Qwen => {
            let objs: Vec<String> = per
                .iter()
                .map(|o| {
                    let v: Vec<String> =
                        o.iter().map(|&v| format!("{}", (clamp01(v) * 1000.0).round())).collect();
                    format!("{{\"bbox_2d\": [{}]}}", v.join(", "))
                })
                .collect();
            format!("[{}]", objs.join(", "))
        }
        Style::Llava => per
            .iter()
            .map(|o| {
                let v: Vec<String> = o.iter().map(|&v| format!("{:.2}", clamp01(v))).collect();
                format!("[{}]", v.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The outcome of parsing one text.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Ok(Vec<Vec<f64>>),
    Empty,
    Error(String),
}

/// Parses every primitive of `tags` in either style. Values come back in the text frame.
pub fn parse_objects(text: &str, tags: &[Tag]) -> Parsed {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let mut objects = Vec::new();
    let mut markers = s.contains("<bin_");
    for &tag in tags {
        let p = tag.prefix();
        let (st, ed, sep) = (format!("<{p}_st>"), format!("<{p}_ed>"), format!("<{p}_sep>"));
        markers |= s.contains(&st) || s.contains(&ed);
        let mut rest = s.as_str();
        while let Some(i) = rest.find(&st) {
            let after = &rest[i + st.len()..];
            let Some(j) = after.find(&ed) else {
                return Parsed::Error(format!("{st} without {ed}"));
            };
            for prim in after[..j].split(&sep) {
                match parse_bins(prim) {
                    Ok(v) => objects.push(v),
                    Err(e) => return Parsed::Error(e),
                }
            }
            rest = &after[j + ed.len()..];
        }
    }
    if objects.is_empty() {
        let mut rest = s.as_str();
        while let Some(i) = rest.find('[') {
            markers = true;
            let after = &rest[i + 1..];
            let Some(j) = after.find(']') else { return Parsed::Error("'[' without ']'".into()) };
            for prim in after[..j].split(';') {
                match parse_decimals(prim) {
                    Ok(v) => objects.push(v),
                    Err(e) => return Parsed::Error(e),
                }
            }
            rest = &after[j + 1..];
        }
    }
    if !objects.is_empty() {
        Parsed::Ok(objects)
    } else if markers {
        Parsed::Error("coordinate markers but no complete primitive".into())
    } else {
        Parsed::Empty
    }
}

fn parse_bins(prim: &str) -> Result<Vec<f64>, String> {
    let mut out = Vec::new();
    let mut rest = prim;
    while !rest.is_empty() {
        let body = rest
            .strip_prefix("<bin_")
            .ok_or_else(|| format!("unexpected text {rest:?} between bins"))?;
        let end = body.find('>').ok_or("unterminated <bin_ token")?;
        let k: u32 =
            body[..end].parse().map_err(|_| format!("bad bin token <bin_{}>", &body[..end]))?;
        if k > 1000 {
            return Err(format!("bin {k} is out of range 0..=1000"));
        }
        out.push(k as f64 / 1000.0);
        rest = &body[end + 1..];
    }
    if out.is_empty() {
        return Err("an empty primitive".into());
    }
    Ok(out)
}

fn parse_decimals(prim: &str) -> Result<Vec<f64>, String> {
    prim.split(',')
        .map(|t| {
            t.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{t:?} is not a number"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// SQL functions

/// The style argument; `model` is the style of the model in use (`SET vista.coord_style`).
fn style_arg(func: &str, args: &ScalarFunctionArgs, idx: usize) -> Result<Style> {
    match common::const_str(func, "style", &args.args, idx)? {
        None => Ok(Style::Bins),
        Some(s) if s.eq_ignore_ascii_case("model") => {
            let style = &VistaConfig::from_options(&args.config_options).coord_style;
            Style::parse(style).map_err(|e| exec_datafusion_err!("{func}: vista.coord_style: {e}"))
        }
        Some(s) => Style::parse(&s).map_err(|e| exec_datafusion_err!("{func}: {e}")),
    }
}

fn space_arg(func: &str, args: &[ColumnarValue], idx: usize) -> Result<Space> {
    match common::const_str(func, "space", args, idx)? {
        None => Ok(Space::Square),
        Some(s) => Space::parse(&s).map_err(|e| exec_datafusion_err!("{func}: {e}")),
    }
}

/// Per-row image sizes for a space conversion (`None` when the space needs none).
struct Sizes {
    w: Option<ArrayRef>,
    h: Option<ArrayRef>,
}

impl Sizes {
    fn new(args: &[ColumnarValue], wi: usize, rows: usize) -> Result<Sizes> {
        let get = |i: usize| -> Result<Option<ArrayRef>> {
            match args.get(i) {
                None => Ok(None),
                Some(a) => Ok(Some(cast(&a.to_array(rows)?, &DataType::Int64)?)),
            }
        };
        Ok(Sizes { w: get(wi)?, h: get(wi + 1)? })
    }

    fn at(&self, space: Space, row: usize) -> Result<(f64, f64), String> {
        if space == Space::Square {
            return Ok((1.0, 1.0));
        }
        let read = |a: &Option<ArrayRef>| -> Option<i64> {
            let a = a.as_ref()?.as_primitive::<Int64Type>();
            (!a.is_null(row)).then(|| a.value(row))
        };
        match (read(&self.w), read(&self.h)) {
            (Some(w), Some(h)) if w > 0 && h > 0 => Ok((w as f64, h as f64)),
            (Some(w), Some(h)) => Err(format!("invalid image size {w} x {h}")),
            _ => Err(format!("space '{space:?}' needs the image width and height").to_lowercase()),
        }
    }
}

fn format_doc(kind: Kind) -> Documentation {
    match kind {
        Kind::Boxes => Documentation::builder(
            SECTION,
            "Writes boxes `[x0, y0, x1, y1]` (one box, or a list of boxes for GREC) as model text \
             in VistaLLM's square frame: `bins` (default) `<b_st><bin_x0> <bin_y0> <bin_x1> \
             <bin_y1><b_sep>...<b_ed>` (values rounded to 3 decimals, then bin = round half to \
             even of v*1000), or `decimal` `[0.100,0.200,0.300,0.400;...]`. Values are clamped to \
             [0, 1]. An empty list gives '' (no target). `space` names the space of the input \
             ('square' default: written as given; 'norm'/'pixel' are converted using `width`, \
             `height`).",
            "format_boxes(boxes [, style => 'bins' | 'decimal' | 'model', space => 'square' | 'norm' | 'pixel', width, height])",
        ),
        Kind::Points => Documentation::builder(
            SECTION,
            "Writes a mask polygon `[x0, y0, x1, y1, ...]` (or a list of polygons for GRES) as \
             model text in VistaLLM's square frame: `bins` (default) `<m_st><bin_x0> <bin_y0> \
             ...<m_sep>...<m_ed>` (1001 bins, round half to even), or `decimal` \
             `[0.100,0.200,...;...]`. With `kind => 'point'` every pair is a point \
             (`<p_st><bin_x> <bin_y><p_sep>...<p_ed>`). Values are clamped to [0, 1]; an empty \
             list gives ''. `space` names the space of the input (see `format_boxes`).",
            "format_points(points [, style => 'bins' | 'decimal' | 'model', space => 'square' | 'norm' | 'pixel', width, height, kind => 'mask' | 'point'])",
        ),
    }
    .with_argument(
        if kind == Kind::Boxes { "boxes" } else { "points" },
        "list<double>, or a list of such lists for several objects.",
    )
    .with_argument("style", "'bins' (default), 'decimal', 'llava' (LLaVA-1.5's `[0.12, 0.34, 0.56, 0.78]`), 'qwen' (Qwen3-VL's `{\"bbox_2d\": [120, 340, 560, 780]}`, thousandths of the image itself), or 'model' (the style SET vista.coord_style names).")
    .with_argument("space", "Space of the values: 'square' (default), 'norm' or 'pixel'.")
    .with_argument("width", "Image width in pixels (needed for 'norm' and 'pixel').")
    .with_argument("height", "Image height in pixels (needed for 'norm' and 'pixel').")
    .with_sql_example(match kind {
        Kind::Boxes => "```sql\n> SELECT format_boxes([0.1, 0.2, 0.3, 0.4]) AS t;\n\
+-----------------------------------------------------+\n\
| t                                                   |\n\
+-----------------------------------------------------+\n\
| <b_st><bin_100> <bin_200> <bin_300> <bin_400><b_ed> |\n\
+-----------------------------------------------------+\n```"
            .to_string(),
        Kind::Points => "```sql\n> SELECT format_points([[0.1, 0.2, 0.5, 0.9, 0.3, 0.0005], [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]], style => 'decimal') AS t;\n\
+---------------------------------------------------------------------------+\n\
| t                                                                         |\n\
+---------------------------------------------------------------------------+\n\
| [0.100,0.200,0.500,0.900,0.300,0.001;0.000,0.000,1.000,1.000,1.000,0.000] |\n\
+---------------------------------------------------------------------------+\n```"
            .to_string(),
    })
    .build()
}

static FORMAT_BOXES_DOC: LazyLock<Documentation> = LazyLock::new(|| format_doc(Kind::Boxes));
static FORMAT_POINTS_DOC: LazyLock<Documentation> = LazyLock::new(|| format_doc(Kind::Points));

/// `format_boxes(...)` / `format_points(...)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FormatFunc {
    kind: Kind,
    signature: Signature,
    params: Params,
}

impl FormatFunc {
    pub fn new(kind: Kind) -> Self {
        let first = if kind == Kind::Boxes { "boxes" } else { "points" };
        let mut p = vec![
            (first, Arg::Any),
            ("style", Arg::Text),
            ("space", Arg::Text),
            ("width", Arg::Int),
            ("height", Arg::Int),
        ];
        if kind == Kind::Points {
            p.push(("kind", Arg::Text));
        }
        let params = Params::new(1, &p);
        Self { kind, signature: params.signature(Volatility::Immutable), params }
    }
}

fn list_depth(dt: &DataType) -> Option<usize> {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match f.data_type() {
                d if d.is_numeric() || d == &DataType::Null => Some(1),
                d => list_depth(d).filter(|&k| k == 1).map(|_| 2),
            }
        }
        _ => None,
    }
}

/// One row's objects: NULL, or the lists of values, or why they cannot be read.
type RowObjects = Option<Result<Vec<Vec<f64>>, String>>;

/// A numeric list column (depth 1 or 2) as per-row lists of objects.
fn objects_of(func: &str, arr: &ArrayRef, rows: usize) -> Result<Vec<RowObjects>> {
    let depth = list_depth(arr.data_type());
    let target = match depth {
        Some(1) => DataType::new_list(DataType::Float64, true),
        Some(2) => DataType::new_list(DataType::new_list(DataType::Float64, true), true),
        _ => {
            return Err(exec_datafusion_err!(
                "{func}: expected a list of numbers, got {}",
                arr.data_type()
            ))
        }
    };
    let arr = cast(arr, &target)?;
    let list = arr.as_list::<i32>();
    Ok((0..rows)
        .map(|row| {
            if list.is_null(row) {
                return None;
            }
            let v = list.value(row);
            Some(if depth == Some(1) {
                let v = v.as_primitive::<Float64Type>();
                if v.null_count() > 0 {
                    Err("a coordinate is NULL".to_string())
                } else {
                    Ok(vec![v.values().to_vec()])
                }
            } else {
                crate::contour::mask::list_of_f64_lists(&v)
            })
        })
        .collect())
}

impl ScalarUDFImpl for FormatFunc {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Boxes => "format_boxes",
            Kind::Points => "format_points",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let t = self.params.coerce(self.name(), arg_types)?;
        if list_depth(&t[0]).is_none() && t[0] != DataType::Null {
            return plan_err!(
                "{}: expected a list of numbers or a list of such lists, got {}",
                self.name(),
                t[0]
            );
        }
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let style = style_arg(func, &args, 1)?;
        let space = space_arg(func, &args.args, 2)?;
        let tag = match self.kind {
            Kind::Boxes => Tag::Box,
            Kind::Points => match common::const_str(func, "kind", &args.args, 5)?.as_deref() {
                None => Tag::Mask,
                Some(s) if s.eq_ignore_ascii_case("mask") => Tag::Mask,
                Some(s) if s.eq_ignore_ascii_case("point") => Tag::Point,
                Some(s) => {
                    return Err(exec_datafusion_err!(
                        "{func}: kind must be 'mask' or 'point', got '{s}'"
                    ))
                }
            },
        };
        let rows = args.number_rows;
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(rows)?;
        if arr.data_type() == &DataType::Null {
            return common::shrink(
                ColumnarValue::Array(Arc::new(StringArray::new_null(rows))),
                scalar,
            );
        }
        let sizes = Sizes::new(&args.args, 3, rows)?;
        let objects = objects_of(func, &arr, rows)?;
        let mut out = StringBuilder::new();
        for (row, objs) in objects.into_iter().enumerate() {
            let Some(objs) = objs else {
                out.append_null();
                continue;
            };
            let text = objs.and_then(|objs| {
                let mut objs: Vec<Vec<f64>> = objs;
                if tag == Tag::Box {
                    // A flat list of 4k values is k boxes.
                    objs = objs.iter().flat_map(|o| o.chunks(4).map(<[f64]>::to_vec)).collect();
                    if let Some(o) = objs.iter().find(|o| o.len() != 4) {
                        return Err(format!("a box needs 4 values, got {}", o.len()));
                    }
                } else if let Some(o) = objs.iter().find(|o| !o.len().is_multiple_of(2)) {
                    return Err(format!("points need an even number of values, got {}", o.len()));
                }
                // Qwen's boxes are fractions of the image itself, the others' of the padded square.
                let frame = if style == Style::Qwen { Space::Norm } else { Space::Square };
                if space != frame {
                    let (w, h) =
                        sizes.at(if space == Space::Square { frame } else { space }, row)?;
                    objs = objs.iter().map(|o| space.convert(frame, o, w, h)).collect();
                }
                objs.retain(|o| !o.is_empty());
                format_objects(&objs, style, tag)
            });
            match text {
                Ok(t) => out.append_value(t),
                Err(e) => return Err(common::row_error(func, row, e)),
            }
        }
        common::shrink(ColumnarValue::Array(Arc::new(out.finish())), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.kind {
            Kind::Boxes => &FORMAT_BOXES_DOC,
            Kind::Points => &FORMAT_POINTS_DOC,
        })
    }
}

fn parse_doc(kind: Kind) -> Documentation {
    let (name, field) = match kind {
        Kind::Boxes => ("parse_boxes", "boxes"),
        Kind::Points => ("parse_polygons", "polygons"),
    };
    Documentation::builder(
        SECTION,
        format!(
            "Reads {field} from model text in either style (`bins`: `<{t}_st>...<{t}_ed>`, \
             `<{t}_sep>` between objects, value = bin / 1000; `decimal`: `[a,b,...;...]`), \
             ignoring whitespace. Returns `{{{field}, status}}`: status `ok`, `empty` (nothing \
             parses and the text has no coordinate markers: \"no target\" in GREC/GRES), or \
             `error: <reason>` with NULL {field} (nothing is guessed). The text is in VistaLLM's \
             square frame; `space` converts the output ('square' default; 'norm'/'pixel' need \
             `width`, `height`).{extra}",
            t = if kind == Kind::Boxes { "b" } else { "m" },
            extra = if kind == Kind::Boxes {
                " Every box must have 4 values with x0 <= x1 and y0 <= y1 (an inverted box is \
                 an error, not reordered: scored, it is a miss). Qwen-VL's JSON boxes (`\"bbox_2d\": [x0, y0, x1, \
                 y1]`, thousandths of the image itself, not the padded square) are read too; \
                 converting them to 'square' needs `width` and `height`."
            } else {
                " Polygons may have any even number of values; `<p_st>` points are read too, one \
                 polygon per `<p_st>...<p_ed>` group item."
            }
        ),
        format!("{name}(text [, space => 'square' | 'norm' | 'pixel', width, height])"),
    )
    .with_argument("text", "Model output text.")
    .with_argument("space", "Space of the output: 'square' (default), 'norm' or 'pixel'.")
    .with_argument("width", "Image width in pixels (needed for 'norm' and 'pixel').")
    .with_argument("height", "Image height in pixels (needed for 'norm' and 'pixel').")
    .with_sql_example(match kind {
        Kind::Boxes => "```sql\n> SELECT parse_boxes('Answer: <b_st><bin_100> <bin_200> <bin_300> <bin_400><b_ed> .', space => 'pixel', width => 1000, height => 500) AS b;\n\
+-----------------------------------------------------+\n\
| b                                                   |\n\
+-----------------------------------------------------+\n\
| {boxes: [[100.0, -50.0, 300.0, 150.0]], status: ok} |\n\
+-----------------------------------------------------+\n```"
            .to_string(),
        Kind::Points => "```sql\n> SELECT parse_polygons('<m_st><bin_1> <bin_2> <bin_3> <bin_4> <bin_5> <bin_6><m_ed>') AS p;\n\
+----------------------------------------------------------------------+\n\
| p                                                                    |\n\
+----------------------------------------------------------------------+\n\
| {polygons: [[0.001, 0.002, 0.003, 0.004, 0.005, 0.006]], status: ok} |\n\
+----------------------------------------------------------------------+\n```"
            .to_string(),
    })
    .build()
}

static PARSE_BOXES_DOC: LazyLock<Documentation> = LazyLock::new(|| parse_doc(Kind::Boxes));
static PARSE_POLYGONS_DOC: LazyLock<Documentation> = LazyLock::new(|| parse_doc(Kind::Points));

/// `parse_boxes(text, ...)` / `parse_polygons(text, ...)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ParseFunc {
    kind: Kind,
    signature: Signature,
    params: Params,
}

impl ParseFunc {
    pub fn new(kind: Kind) -> Self {
        let params = Params::new(
            1,
            &[("text", Arg::Text), ("space", Arg::Text), ("width", Arg::Int), ("height", Arg::Int)],
        );
        Self { kind, signature: params.signature(Volatility::Immutable), params }
    }

    fn fields(&self) -> Fields {
        let name = if self.kind == Kind::Boxes { "boxes" } else { "polygons" };
        Fields::from(vec![
            Field::new(
                name,
                DataType::new_list(DataType::new_list(DataType::Float64, true), true),
                true,
            ),
            Field::new("status", DataType::Utf8, true),
        ])
    }
}

impl ScalarUDFImpl for ParseFunc {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Boxes => "parse_boxes",
            Kind::Points => "parse_polygons",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.fields()))
    }
    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(self.name(), DataType::Struct(self.fields()), true)))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let space = space_arg(func, &args.args, 1)?;
        let rows = args.number_rows;
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(rows)?;
        let texts = common::str_values(func, &arr)?;
        let sizes = Sizes::new(&args.args, 2, rows)?;
        let tags: &[Tag] = match self.kind {
            Kind::Boxes => &[Tag::Box],
            Kind::Points => &[Tag::Mask, Tag::Point],
        };
        let mut values = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
        let mut status = StringBuilder::new();
        let mut nulls = Vec::with_capacity(rows);
        for (row, text) in texts.into_iter().enumerate() {
            let Some(text) = text else {
                values.append(false);
                status.append_null();
                nulls.push(false);
                continue;
            };
            nulls.push(true);
            let qwen = if self.kind == Kind::Boxes { parse_bbox_2d(text) } else { None };
            let parsed = match qwen {
                Some(Parsed::Ok(objs)) => self.check_from(Space::Norm, objs, space, &sizes, row),
                Some(other) => other,
                None => match parse_objects(text, tags) {
                    Parsed::Ok(objs) => self.check(objs, space, &sizes, row),
                    other => other,
                },
            };
            match parsed {
                Parsed::Ok(objs) => {
                    for o in objs {
                        values.values().values().append_slice(&o);
                        values.values().append(true);
                    }
                    values.append(true);
                    status.append_value("ok");
                }
                Parsed::Empty => {
                    values.append(true);
                    status.append_value("empty");
                }
                Parsed::Error(e) => {
                    values.append(false);
                    status.append_value(format!("error: {e}"));
                }
            }
        }
        let values: ListArray = values.finish();
        let result = StructArray::try_new(
            self.fields(),
            vec![Arc::new(values) as ArrayRef, Arc::new(status.finish())],
            Some(nulls.into()),
        )?;
        common::shrink(ColumnarValue::Array(Arc::new(result)), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.kind {
            Kind::Boxes => &PARSE_BOXES_DOC,
            Kind::Points => &PARSE_POLYGONS_DOC,
        })
    }
}

/// Qwen-VL's JSON boxes, `"bbox_2d": [x0, y0, x1, y1]` (integers in 0..1000 of the image), as
/// fractions of the image; `None` when the text has none.
pub fn parse_bbox_2d(text: &str) -> Option<Parsed> {
    const KEY: &str = "\"bbox_2d\"";
    if !text.contains(KEY) {
        return None;
    }
    let mut objects = Vec::new();
    for part in text.split(KEY).skip(1) {
        let Some(open) = part.find('[') else {
            return Some(Parsed::Error("\"bbox_2d\" without '['".into()));
        };
        let Some(close) = part[open..].find(']') else {
            return Some(Parsed::Error("\"bbox_2d\" without ']'".into()));
        };
        let body: String =
            part[open + 1..open + close].chars().filter(|c| !c.is_whitespace()).collect();
        match parse_decimals(&body) {
            Ok(v) => objects.push(v.iter().map(|x| x / 1000.0).collect()),
            Err(e) => return Some(Parsed::Error(e)),
        }
    }
    Some(Parsed::Ok(objects))
}

impl ParseFunc {
    /// Shape checks and the conversion from the text frame to `space`.
    fn check(&self, objs: Vec<Vec<f64>>, space: Space, sizes: &Sizes, row: usize) -> Parsed {
        self.check_from(Space::Square, objs, space, sizes, row)
    }

    /// As [`check`](Self::check), for values in `frame`.
    fn check_from(
        &self,
        frame: Space,
        objs: Vec<Vec<f64>>,
        space: Space,
        sizes: &Sizes,
        row: usize,
    ) -> Parsed {
        for (k, o) in objs.iter().enumerate() {
            let bad = match self.kind {
                Kind::Boxes => o.len() != 4,
                Kind::Points => !o.len().is_multiple_of(2),
            };
            if bad {
                let what =
                    if self.kind == Kind::Boxes { "4 values" } else { "an even number of values" };
                return Parsed::Error(format!(
                    "object {} has {} values, expected {what}",
                    k + 1,
                    o.len()
                ));
            }
            // The box metrics refuse inverted boxes (as the references do); a model that writes
            // one has answered wrongly, which must count as a miss rather than stop the job.
            if self.kind == Kind::Boxes && (o[2] < o[0] || o[3] < o[1]) {
                return Parsed::Error(format!("box {} has x1 < x0 or y1 < y0", k + 1));
            }
        }
        if space == frame {
            return Parsed::Ok(objs);
        }
        match sizes.at(if space == Space::Square { frame } else { space }, row) {
            Ok((w, h)) => Parsed::Ok(objs.iter().map(|o| frame.convert(space, o, w, h)).collect()),
            Err(e) => Parsed::Error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_round_half_to_even() {
        assert_eq!(to_bin(0.0005), 0); // 0.0005 * 1000 = 0.5 -> 0 (even)
        assert_eq!(to_bin(0.0015), 2);
        assert_eq!(to_bin(0.0025), 2);
        assert_eq!(to_bin(1.7), 1000);
        assert_eq!(to_bin(-0.2), 0);
    }

    #[test]
    fn format_and_parse_round_trip_in_both_styles() {
        let objs = vec![vec![0.1, 0.2, 0.3, 0.4], vec![0.5, 0.5, 0.9, 0.95]];
        for style in [Style::Bins, Style::Decimal, Style::Llava] {
            let t = format_objects(&objs, style, Tag::Box).unwrap();
            assert_eq!(parse_objects(&t, &[Tag::Box]), Parsed::Ok(objs.clone()), "{t}");
        }
        assert_eq!(
            format_objects(&objs, Style::Bins, Tag::Box).unwrap(),
            "<b_st><bin_100> <bin_200> <bin_300> <bin_400><b_sep><bin_500> <bin_500> <bin_900> <bin_950><b_ed>"
        );
        assert_eq!(
            format_objects(&objs, Style::Decimal, Tag::Box).unwrap(),
            "[0.100,0.200,0.300,0.400;0.500,0.500,0.900,0.950]"
        );
        assert_eq!(
            format_objects(&objs, Style::Qwen, Tag::Box).unwrap(),
            "[{\"bbox_2d\": [100, 200, 300, 400]}, {\"bbox_2d\": [500, 500, 900, 950]}]"
        );
        assert_eq!(
            parse_bbox_2d(&format_objects(&objs, Style::Qwen, Tag::Box).unwrap()),
            Some(Parsed::Ok(objs.clone()))
        );
        assert_eq!(parse_bbox_2d("no boxes"), None);
        assert_eq!(
            parse_bbox_2d("```json\n[{\"bbox_2d\": [10, 20, x, 40], \"label\": \"cat\"}]\n```"),
            Some(Parsed::Error("\"x\" is not a number".into()))
        );
        assert_eq!(
            format_objects(&objs, Style::Llava, Tag::Box).unwrap(),
            "[0.10, 0.20, 0.30, 0.40], [0.50, 0.50, 0.90, 0.95]"
        );
        assert_eq!(
            format_objects(&[vec![0.25, 0.5, 1.0, 0.0]], Style::Bins, Tag::Point).unwrap(),
            "<p_st><bin_250> <bin_500><p_sep><bin_1000> <bin_0><p_ed>"
        );
        assert_eq!(format_objects(&[], Style::Bins, Tag::Mask).unwrap(), "");
    }

    #[test]
    fn parse_status_separates_empty_from_errors() {
        assert_eq!(parse_objects(" ", &[Tag::Mask]), Parsed::Empty);
        assert_eq!(parse_objects("There is no such object.", &[Tag::Mask]), Parsed::Empty);
        assert!(matches!(parse_objects("<m_st><bin_1> <bin_2>", &[Tag::Mask]), Parsed::Error(_)));
        assert!(matches!(parse_objects("<m_st><bin_1001><m_ed>", &[Tag::Mask]), Parsed::Error(_)));
        assert!(matches!(parse_objects("<bin_3>", &[Tag::Mask]), Parsed::Error(_)));
        assert!(matches!(parse_objects("[0.1,abc]", &[Tag::Box]), Parsed::Error(_)));
        assert_eq!(
            parse_objects(
                "Answer: <m_st><bin_1> <bin_2><m_sep><bin_3> <bin_4><m_ed> .",
                &[Tag::Mask]
            ),
            Parsed::Ok(vec![vec![0.001, 0.002], vec![0.003, 0.004]])
        );
        assert_eq!(
            parse_objects("[0.1, 0.2; 0.3, 0.4]", &[Tag::Mask]),
            Parsed::Ok(vec![vec![0.1, 0.2], vec![0.3, 0.4]])
        );
    }

    #[test]
    fn boxes_are_rounded_to_three_decimals_before_binning() {
        // round(0.12349999, 3) = 0.123 -> bin 123; and 0.0005 -> round3 = 0.001 (its binary value
        // is above the half) -> bin 1, while a mask value 0.0005 * 1000 = 0.5 -> bin 0.
        assert_eq!(
            format_objects(&[vec![0.12349999, 0.0005, 0.5, 0.5]], Style::Bins, Tag::Box).unwrap(),
            "<b_st><bin_123> <bin_1> <bin_500> <bin_500><b_ed>"
        );
    }

    #[test]
    fn model_style_follows_vista_coord_style() {
        let c = crate::test_util::ctx();
        let q = "SELECT format_boxes([[0.1, 0.2, 0.3, 0.4]], style => 'model') AS b";
        let out = crate::test_util::run(&c, q).unwrap();
        assert!(out.contains("| <b_st><bin_100> <bin_200> <bin_300> <bin_400><b_ed> |"), "{out}");
        let out =
            crate::test_util::run(&c, &format!("SET vista.coord_style = 'decimal'; {q}")).unwrap();
        assert!(out.contains("| [0.100,0.200,0.300,0.400] |"), "{out}");
        let prompt =
            crate::test_util::run(&c, "SELECT vista_prompt('rec', 'x', 'model') AS p").unwrap();
        let decimal =
            crate::test_util::run(&c, "SELECT vista_prompt('rec', 'x', 'decimal') AS p").unwrap();
        assert_eq!(prompt, decimal);
        let err = crate::test_util::run(&c, &format!("SET vista.coord_style = 'words'; {q}"))
            .unwrap_err();
        assert!(err.to_string().contains("vista.coord_style: style must be"), "{err}");
    }

    #[test]
    fn an_inverted_box_is_a_parse_error_and_scores_as_a_miss() {
        let c = crate::test_util::ctx();
        let q = "SELECT p['status'] AS s, p['boxes'] IS NULL AS none, \
                 CASE WHEN box_iou(p['boxes'][1], [0.0, 0.0, 1.0, 1.0]) > 0.5 THEN 1 ELSE 0 END AS hit \
                 FROM (SELECT parse_boxes('<b_st><bin_700> <bin_40> <bin_900> <bin_30><b_ed>') AS p)";
        let out = crate::test_util::run(&c, q).unwrap();
        assert!(out.contains("| error: box 1 has x1 < x0 or y1 < y0 | true | 0   |"), "{out}");
        let ok = "SELECT parse_boxes('<b_st><bin_7> <bin_8> <bin_7> <bin_9><b_ed>')['status'] AS s";
        assert!(crate::test_util::run(&c, ok).unwrap().contains("| ok |"));
    }
}
