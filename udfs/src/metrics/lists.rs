//! Reading list columns the metric functions take: lists of strings (references, answers),
//! boxes (`[x0, y0, x1, y1]` lists of numbers) and lists of boxes, of any list flavour.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use std::sync::Arc;

fn item_type(dt: &DataType) -> Option<&DataType> {
    match dt {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::ListView(f) => Some(f.data_type()),
        _ => None,
    }
}

/// Accepts any list of strings (or NULL); keeps the caller's type.
pub fn coerce_text_list(func: &str, arg: &str, dt: &DataType) -> Result<DataType> {
    match item_type(dt) {
        Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null) => {
            Ok(dt.clone())
        }
        _ if dt.is_null() => {
            Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))))
        }
        _ => plan_err!("{func}: argument `{arg}` must be a list of strings, got {dt}"),
    }
}

/// The list type for numbers nested `depth` deep (1: a box, 2: a list of boxes), as Float64.
pub fn float_list_type(depth: usize) -> DataType {
    let mut t = DataType::Float64;
    for _ in 0..depth {
        t = DataType::List(Arc::new(Field::new_list_field(t, true)));
    }
    t
}

/// Accepts lists of numbers nested `depth` deep; they are cast to Float64 lists.
pub fn coerce_float_list(func: &str, arg: &str, dt: &DataType, depth: usize) -> Result<DataType> {
    let mut t = dt;
    for _ in 0..depth {
        match item_type(t) {
            Some(inner) => t = inner,
            None if t.is_null() => return Ok(float_list_type(depth)),
            None => {
                return plan_err!(
                    "{func}: argument `{arg}` must be a {} of numbers, got {dt}",
                    nesting(depth)
                )
            }
        }
    }
    if t.is_numeric() || t.is_null() {
        Ok(float_list_type(depth))
    } else {
        plan_err!("{func}: argument `{arg}` must be a {} of numbers, got {dt}", nesting(depth))
    }
}

fn nesting(depth: usize) -> &'static str {
    if depth == 1 {
        "list"
    } else {
        "list of lists"
    }
}

/// Row values of a list-of-strings column.
pub fn text_lists<'a>(
    func: &str,
    arg: &str,
    arr: &'a ArrayRef,
) -> Result<Vec<Option<Vec<Option<&'a str>>>>> {
    if arr.data_type().is_null() {
        return Ok(vec![None; arr.len()]);
    }
    let (offsets, values): (Vec<(usize, usize)>, &ArrayRef) = match arr.data_type() {
        DataType::List(_) => {
            let l = arr.as_list::<i32>();
            (l.offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect(), l.values())
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>();
            (l.offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect(), l.values())
        }
        DataType::FixedSizeList(_, n) => {
            let l = arr.as_fixed_size_list();
            let n = *n as usize;
            ((0..arr.len()).map(|i| (i * n, (i + 1) * n)).collect(), l.values())
        }
        other => {
            return Err(exec_datafusion_err!(
                "{func}: `{arg}` must be a list of strings, got {other}"
            ))
        }
    };
    let strings = crate::common::str_values(func, values)?;
    Ok(offsets
        .into_iter()
        .enumerate()
        .map(|(i, (a, b))| if arr.is_null(i) { None } else { Some(strings[a..b].to_vec()) })
        .collect())
}

/// One list of numbers, NULL entries kept.
pub type Numbers = Vec<Option<f64>>;

/// Row values of a Float64 list column (after `coerce_float_list` with depth 1).
pub fn float_lists(func: &str, arg: &str, arr: &ArrayRef) -> Result<Vec<Option<Numbers>>> {
    let arr =
        cast(arr, &float_list_type(1)).map_err(|e| exec_datafusion_err!("{func}: `{arg}`: {e}"))?;
    let l = arr.as_list::<i32>();
    let vals = l.values().as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    Ok((0..l.len())
        .map(|i| {
            if l.is_null(i) {
                return None;
            }
            let (a, b) = (l.offsets()[i] as usize, l.offsets()[i + 1] as usize);
            Some((a..b).map(|j| if vals.is_null(j) { None } else { Some(vals.value(j)) }).collect())
        })
        .collect())
}

/// Row values of a list-of-lists-of-Float64 column (lists of boxes).
pub fn float_list_lists(
    func: &str,
    arg: &str,
    arr: &ArrayRef,
) -> Result<Vec<Option<Vec<Option<Numbers>>>>> {
    let arr =
        cast(arr, &float_list_type(2)).map_err(|e| exec_datafusion_err!("{func}: `{arg}`: {e}"))?;
    let l = arr.as_list::<i32>();
    let inner = float_lists(func, arg, l.values())?;
    Ok((0..l.len())
        .map(|i| {
            if l.is_null(i) {
                return None;
            }
            let (a, b) = (l.offsets()[i] as usize, l.offsets()[i + 1] as usize);
            Some(inner[a..b].to_vec())
        })
        .collect())
}
