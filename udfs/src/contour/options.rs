//! Reading the constant options of the contour functions (`space => 'norm'`, `n => 32`, ...).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_datafusion_err, plan_err, Result};
use datafusion::logical_expr::ColumnarValue;

use super::mask;
use super::sample::{Contour, Method};
use super::space::Space;
use crate::common;

pub fn space(func: &str, args: &[ColumnarValue], idx: usize, default: Space) -> Result<Space> {
    match common::const_str(func, "space", args, idx)? {
        None => Ok(default),
        Some(s) => Space::parse(&s).map_err(|e| exec_datafusion_err!("{func}: {e}")),
    }
}

pub fn method(func: &str, args: &[ColumnarValue], idx: usize) -> Result<Method> {
    match common::const_str(func, "method", args, idx)? {
        None => Ok(Method::Adaptive),
        Some(s) => Method::parse(&s).map_err(|e| exec_datafusion_err!("{func}: {e}")),
    }
}

pub fn contour(func: &str, args: &[ColumnarValue], idx: usize) -> Result<Contour> {
    match common::const_str(func, "contour", args, idx)? {
        None => Ok(Contour::Boundary),
        Some(s) => Contour::parse(&s).map_err(|e| exec_datafusion_err!("{func}: {e}")),
    }
}

/// Checks at planning time that a `mask` argument is a mask (or a list of masks when allowed).
pub fn check_mask_type(func: &str, name: &str, dt: &DataType, list_ok: bool) -> Result<DataType> {
    if mask::is_mask_type(dt) || dt == &DataType::Null || (list_ok && mask::is_mask_list_type(dt)) {
        return Ok(dt.clone());
    }
    plan_err!(
        "{func}: argument `{name}` must be a mask (PNG bytes, struct<size, counts> COCO RLE or \
         struct<size, polygons>){}, got {dt}",
        if list_ok { " or a list of masks" } else { "" }
    )
}
