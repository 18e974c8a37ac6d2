//! Arrow columns of masks: the RLE struct type, writing masks to columns, and reading RLE,
//! PNG and polygon columns back (one reader for every mask argument).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, ListArray, ListBuilder, StringBuilder, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{exec_datafusion_err, Result};

use super::*;

/// The Arrow type of RLE outputs: `struct<size: list<int32>, counts: utf8>` (COCO's `{size:
/// [h, w], counts}`).
pub fn rle_type() -> DataType {
    DataType::Struct(rle_fields())
}

pub(crate) fn rle_fields() -> Fields {
    Fields::from(vec![
        Field::new("size", DataType::new_list(DataType::Int32, true), true),
        Field::new("counts", DataType::Utf8, true),
    ])
}

/// Something that can be written as COCO RLE: a decoded [`Mask`] or its runs ([`Rle`]).
pub trait RleSource {
    /// `(height, width)`.
    fn size(&self) -> (usize, usize);
    /// pycocotools' compressed counts string.
    fn rle_string(&self) -> String;
}

impl RleSource for Mask {
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn rle_string(&self) -> String {
        Mask::rle_string(self)
    }
}

impl RleSource for Rle {
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn rle_string(&self) -> String {
        encode_counts(&self.counts)
    }
}

/// Builds an RLE struct column (compressed counts) from masks; `None` rows are NULL.
pub fn rle_array<'a, T: RleSource + 'a>(
    masks: impl IntoIterator<Item = Option<&'a T>>,
) -> ArrayRef {
    let mut sizes = ListBuilder::new(Int32Builder::new());
    let mut counts = StringBuilder::new();
    let mut nulls = Vec::new();
    for m in masks {
        match m {
            Some(m) => {
                let (h, w) = m.size();
                sizes.values().append_value(h as i32);
                sizes.values().append_value(w as i32);
                sizes.append(true);
                counts.append_value(m.rle_string());
                nulls.push(true);
            }
            None => {
                sizes.append(false);
                counts.append_null();
                nulls.push(false);
            }
        }
    }
    let arrays: Vec<ArrayRef> = vec![Arc::new(sizes.finish()), Arc::new(counts.finish())];
    Arc::new(
        StructArray::try_new(rle_fields(), arrays, Some(nulls.into()))
            .expect("the RLE struct's children match its fields"),
    )
}

/// Builds a `list<rle struct>` column: one list of masks per row (GRES: every object).
pub fn rle_list_array<T: RleSource>(rows: &[Option<Vec<T>>]) -> ArrayRef {
    let flat: Vec<&T> = rows.iter().flatten().flatten().collect();
    let values = rle_array(flat.into_iter().map(Some));
    let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths(
        rows.iter().map(|r| r.as_ref().map_or(0, Vec::len)),
    );
    let nulls: Vec<bool> = rows.iter().map(Option::is_some).collect();
    Arc::new(
        ListArray::try_new(
            Arc::new(Field::new("item", rle_type(), true)),
            offsets,
            values,
            Some(nulls.into()),
        )
        .expect("offsets come from the rows"),
    )
}

/// Whether a column type holds one mask per row (PNG bytes, an RLE struct, or a polygon struct).
pub fn is_mask_type(dt: &DataType) -> bool {
    match dt {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Struct(f) => {
            f.find("size").is_some() && (f.find("counts").is_some() || f.find("polygons").is_some())
        }
        _ => false,
    }
}

/// Whether a column type holds a list of masks per row (several objects, GRES).
pub fn is_mask_list_type(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) => is_mask_type(f.data_type()),
        _ => false,
    }
}

/// Reads a mask column row by row. Accepted types:
/// - Binary / LargeBinary / BinaryView: PNG bytes (non-zero = foreground);
/// - `struct<size: list<int>, counts: utf8 | binary | list<int>>`: COCO RLE, `size` = `[h, w]`;
/// - `struct<size: list<int>, polygons: list<list<double>>>`: COCO polygons in pixels.
///
/// The outer error is for an unsupported column type; each row is `Ok(None)` for NULL,
/// `Ok(Some(mask))`, or `Err(reason)` (corrupt PNG, counts that do not sum to h*w, ...).
///
/// Rows are decoded lazily, one at a time as the iterator advances: a batch of large masks is
/// never held decoded at once (a 640x480 mask is 300 KB; 8192 of them would be 2.5 GB).
pub fn read_masks(func: &str, arr: &ArrayRef) -> Result<MaskRows<'static>> {
    Ok(Box::new(read_rles(func, arr)?.map(|r| r.map(|m| m.map(|rle| rle.to_mask())))))
}

/// Reads a mask column as run lengths, without decoding bitmaps: area, box and IoU are
/// computed on the runs (as pycocotools does), and contours on a crop to the object's box.
/// Accepts what [`read_masks`] accepts; PNG masks and polygons are rasterised and encoded.
/// The rows own their data (the array is shared, not borrowed), so a list column's values can
/// be read by the rows of the list.
pub fn read_rles(func: &str, arr: &ArrayRef) -> Result<RleRows<'static>> {
    match arr.data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let png = cast(arr, &DataType::LargeBinary)?;
            Ok(Box::new((0..png.len()).map(move |i| {
                let b = png.as_binary::<i64>();
                if b.is_null(i) {
                    Ok(None)
                } else {
                    Mask::from_png(b.value(i)).map(|m| Some(Rle::from_mask(&m)))
                }
            })))
        }
        DataType::Struct(_) => read_struct_rles(func, arr.as_struct()),
        DataType::Null => Ok(Box::new((0..arr.len()).map(|_| Ok(None)))),
        other => Err(exec_datafusion_err!(
            "{func}: a mask must be PNG bytes or a COCO RLE struct<size, counts>, got {other}"
        )),
    }
}

/// The rows of a mask column as run lengths, read as they are iterated.
pub type RleRows<'a> = Box<dyn Iterator<Item = std::result::Result<Option<Rle>, String>> + 'a>;

/// The rows of a list-of-masks column, decoded as they are read.
pub type MaskListRows<'a> =
    Box<dyn Iterator<Item = std::result::Result<Option<Vec<Mask>>, String>> + 'a>;

/// One decoded row of a mask column: NULL, a mask, or why the row is not a mask.
pub type MaskRow = std::result::Result<Option<Mask>, String>;

/// The rows of a mask column, decoded as they are read.
pub type MaskRows<'a> = Box<dyn Iterator<Item = MaskRow> + 'a>;

/// Reads a `list<mask>` column: each row a list of masks (any type [`read_masks`] accepts),
/// decoded a row at a time like [`read_masks`].
pub fn read_mask_lists<'a>(func: &str, arr: &'a ArrayRef) -> Result<MaskListRows<'a>> {
    let list = match arr.data_type() {
        DataType::List(_) => arr.as_list::<i32>().clone(),
        DataType::LargeList(f) => cast(arr, &DataType::List(f.clone()))?.as_list::<i32>().clone(),
        other => return Err(exec_datafusion_err!("{func}: expected a list of masks, got {other}")),
    };
    // The values are read in order; each row takes its slice of them.
    let mut masks = read_masks(func, list.values())?;
    let offsets: Vec<usize> = list.value_offsets().iter().map(|o| *o as usize).collect();
    let nulls: Vec<bool> = (0..list.len()).map(|i| list.is_null(i)).collect();
    // A sliced list starts part-way into its values.
    for _ in 0..offsets.first().copied().unwrap_or(0) {
        masks.next();
    }
    Ok(Box::new((0..nulls.len()).map(move |row| {
        let n = offsets[row + 1] - offsets[row];
        let mut v = Vec::with_capacity(n);
        let mut first_error = None;
        for k in 0..n {
            match masks.next().unwrap_or(Ok(None)) {
                Ok(Some(m)) => v.push(m),
                Ok(None) => {
                    first_error.get_or_insert(format!("mask {} of the list is NULL", k + 1));
                }
                Err(e) => {
                    first_error.get_or_insert(format!("mask {} of the list: {e}", k + 1));
                }
            }
        }
        if nulls[row] {
            return Ok(None);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Some(v)),
        }
    })))
}

fn read_struct_rles(func: &str, st: &StructArray) -> Result<RleRows<'static>> {
    let st = st.clone();
    let sizes = struct_sizes(func, &st)?;
    let counts = Counts::read(func, &st)?;
    Ok(Box::new((0..st.len()).map(move |i| {
        if st.is_null(i) || (sizes[i].is_none() && counts.is_null(i)) {
            return Ok(None);
        }
        let (h, w) = sizes[i].ok_or("RLE `size` must be [height, width] of whole numbers")?;
        if h < 0 || w < 0 {
            return Err(format!("RLE size [{h}, {w}] is not a valid [height, width]"));
        }
        crate::limits::check_mask("RLE mask", w as u64, h as u64)?;
        counts.rle(i, h as usize, w as usize).map(Some)
    })))
}

/// Each row's `size` as whole `(height, width)`; NULL where it is missing or not two whole
/// numbers. Sizes are read as floats so that a fractional size (a float column from a JSON
/// file) is refused instead of truncated; every integer a mask side can hold is exact in f64.
fn struct_sizes(func: &str, st: &StructArray) -> Result<Vec<Option<(i64, i64)>>> {
    let size = st.column_by_name("size").ok_or_else(|| {
        exec_datafusion_err!("{func}: an RLE mask struct needs a `size` field [h, w]")
    })?;
    let size = cast(size, &DataType::new_list(DataType::Float64, true))
        .map_err(|e| exec_datafusion_err!("{func}: RLE `size` must be a list of integers: {e}"))?;
    let size = size.as_list::<i32>();
    let whole = |x: f64| (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64);
    Ok((0..st.len())
        .map(|i| {
            if size.is_null(i) {
                return None;
            }
            let v = size.value(i);
            let v = v.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            if v.len() != 2 || v.null_count() != 0 {
                return None;
            }
            Some((whole(v.value(0))?, whole(v.value(1))?))
        })
        .collect())
}

/// The mask body of an RLE struct column: compressed counts text, a counts list, or COCO
/// polygons.
enum Counts {
    Text(Vec<Option<String>>),
    List(ListArray),
    Polygons(ListArray),
}

impl Counts {
    fn read(func: &str, st: &StructArray) -> Result<Counts> {
        let Some(c) = st.column_by_name("counts") else {
            let p =
                st.column_by_name("polygons").expect("is_mask_type checked for counts or polygons");
            let p = cast(p, &DataType::new_list(DataType::new_list(DataType::Float64, true), true))
                .map_err(|e| {
                    exec_datafusion_err!(
                        "{func}: `polygons` must be a list of lists of numbers: {e}"
                    )
                })?;
            return Ok(Counts::Polygons(p.as_list::<i32>().clone()));
        };
        Ok(match c.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let c = cast(c, &DataType::Utf8)?;
                Counts::Text(c.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect())
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                let vals = crate::common::bytes_values(func, c)?;
                Counts::Text(
                    vals.into_iter()
                        .map(|b| b.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                )
            }
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::FixedSizeList(..) => {
                let c = cast(c, &DataType::new_list(DataType::Int64, true)).map_err(|e| {
                    exec_datafusion_err!("{func}: RLE `counts` list must hold integers: {e}")
                })?;
                Counts::List(c.as_list::<i32>().clone())
            }
            other => {
                return Err(exec_datafusion_err!(
                    "{func}: RLE `counts` must be a string or a list of integers, got {other}"
                ))
            }
        })
    }

    fn is_null(&self, i: usize) -> bool {
        match self {
            Counts::Text(t) => t[i].is_none(),
            Counts::List(l) | Counts::Polygons(l) => l.is_null(i),
        }
    }

    /// Row `i` as runs over `h` x `w` pixels.
    fn rle(&self, i: usize, h: usize, w: usize) -> std::result::Result<Rle, String> {
        match self {
            Counts::Text(t) => {
                let s = t[i].as_deref().ok_or("RLE `counts` is NULL")?;
                Rle::new(h, w, decode_counts(s)?)
            }
            Counts::List(l) => {
                if l.is_null(i) {
                    return Err("RLE `counts` is NULL".into());
                }
                let v = l.value(i);
                let counts = v
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|x| match x {
                        Some(x) if x >= 0 => Ok(x as u64),
                        _ => Err("RLE counts must be non-negative integers".to_string()),
                    })
                    .collect::<std::result::Result<Vec<u64>, String>>()?;
                Rle::new(h, w, counts)
            }
            Counts::Polygons(l) => {
                if l.is_null(i) {
                    return Err("`polygons` is NULL".into());
                }
                let polys = list_of_f64_lists(&l.value(i))?;
                for p in &polys {
                    crate::limits::check_coordinates(p, w as f64, h as f64)?;
                }
                Ok(Rle::from_mask(&Mask::from_polygons(h, w, &polys)))
            }
        }
    }
}

/// A `list<double>` array (one polygon per element) as vectors; NULL elements are errors.
pub fn list_of_f64_lists(arr: &ArrayRef) -> std::result::Result<Vec<Vec<f64>>, String> {
    let l = arr.as_list::<i32>();
    (0..l.len())
        .map(|k| {
            if l.is_null(k) {
                return Err(format!("polygon {} is NULL", k + 1));
            }
            let v = l.value(k);
            let v = v.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            if v.null_count() > 0 {
                return Err(format!("polygon {} has a NULL coordinate", k + 1));
            }
            Ok(v.values().to_vec())
        })
        .collect()
}
