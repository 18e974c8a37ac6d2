//! `rle_encode(mask)` and `rle_decode(rle)`: COCO RLE, byte-compatible with pycocotools.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, BinaryArray, Int64Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::mask::{self, Mask};
use super::options;
use crate::common::{self, Arg, Params};

static ENCODE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Encodes a mask as COCO RLE `struct<size: [h, w], counts>` with pycocotools' compressed \
         counts string (byte-identical with `pycocotools.mask.encode`). Accepts PNG bytes \
         (non-zero = foreground, any colour type), an RLE with uncompressed counts (a list), an \
         RLE already compressed (re-encoded canonically), or COCO polygons \
         `struct<size, polygons>` (rasterised as `frPyObjects` + `merge`). A list of masks gives \
         a list of RLEs. Corrupt PNG or counts that do not sum to h*w fail naming the row.",
        "rle_encode(mask [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("mask", "PNG bytes, COCO RLE struct<size, counts>, struct<size, polygons>, or a list of these.")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT rle_encode(named_struct('size', [4, 5], 'counts', [5, 2, 2, 2, 9])) AS rle;\n\
+-------------------------------+\n\
| rle                           |\n\
+-------------------------------+\n\
| {size: [4, 5], counts: 52207} |\n\
+-------------------------------+\n```",
    )
    .build()
});

static DECODE_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Decodes a COCO RLE (compressed string or counts list, `size` = [h, w]) into a mask: PNG \
         bytes (8-bit grayscale, foreground 255; default) or, with `format => 'counts'`, the \
         uncompressed counts (column-major runs starting with background). Counts that do not \
         sum to h*w, or an invalid compressed string, fail naming the row.",
        "rle_decode(rle [, format => 'png' | 'counts', on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("rle", "COCO RLE struct<size, counts> (also accepts PNG bytes and polygon structs).")
    .with_argument("format", "'png' (default) or 'counts'.")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT rle_decode(named_struct('size', [4, 5], 'counts', '52207'), format => 'counts') AS c;\n\
+-----------------+\n\
| c               |\n\
+-----------------+\n\
| [5, 2, 2, 2, 9] |\n\
+-----------------+\n```",
    )
    .build()
});

/// `rle_encode(mask)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RleEncodeFunc {
    signature: Signature,
    params: Params,
}

impl Default for RleEncodeFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl RleEncodeFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("mask", Arg::Any), ("on_error", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for RleEncodeFunc {
    fn name(&self) -> &str {
        "rle_encode"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(mask::rle_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let t = if mask::is_mask_list_type(args.arg_fields[0].data_type()) {
            DataType::new_list(mask::rle_type(), true)
        } else {
            mask::rle_type()
        };
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
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(args.number_rows)?;
        let (result, errors) = if mask::is_mask_list_type(arr.data_type()) {
            let (values, errors) = common::map_rows(mask::read_mask_lists(func, &arr)?, |_, r| r);
            (mask::rle_list_array(&values), errors)
        } else {
            let (values, errors) = common::map_rows(mask::read_masks(func, &arr)?, |_, r| r);
            (mask::rle_array(values.iter().map(Option::as_ref)), errors)
        };
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&ENCODE_DOC)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DecodeTo {
    Png,
    Counts,
}

fn decode_to(func: &str, s: Option<&ScalarValue>) -> Result<DecodeTo> {
    match s {
        None => Ok(DecodeTo::Png),
        Some(v) => match v.to_string().to_ascii_lowercase().as_str() {
            "png" => Ok(DecodeTo::Png),
            "counts" => Ok(DecodeTo::Counts),
            other => plan_err!("{func}: format must be 'png' or 'counts', got '{other}'"),
        },
    }
}

/// `rle_decode(rle)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RleDecodeFunc {
    signature: Signature,
    params: Params,
}

impl Default for RleDecodeFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl RleDecodeFunc {
    pub fn new() -> Self {
        let params =
            Params::new(1, &[("rle", Arg::Any), ("format", Arg::Text), ("on_error", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

fn decode_type(to: DecodeTo) -> DataType {
    match to {
        DecodeTo::Png => DataType::Binary,
        DecodeTo::Counts => DataType::new_list(DataType::Int64, true),
    }
}

impl ScalarUDFImpl for RleDecodeFunc {
    fn name(&self) -> &str {
        "rle_decode"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let to = decode_to(self.name(), args.scalar_arguments.get(1).copied().flatten())?;
        Ok(self.params.result_field(self.name(), decode_type(to), &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[0] = options::check_mask_type(self.name(), "rle", &t[0], false)?;
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (_, policy) = self.params.policy(func, &args)?;
        let to = decode_to(func, common::const_arg(&args.args, 1))?;
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(args.number_rows)?;
        // Each mask is encoded as soon as it is decoded: a batch never holds its bitmaps at once
        // (8192 masks of 512x512 would be 2 GB).
        let rows = mask::read_rles(func, &arr)?;
        let result: ArrayRef;
        let errors;
        match to {
            DecodeTo::Png => {
                let (values, e) = common::map_rows(rows, |_, r| {
                    let Some(rle) = r? else { return Ok(None) };
                    if rle.width == 0 || rle.height == 0 {
                        return Err(format!(
                            "a {}x{} mask has no pixels and no PNG form (width x height)",
                            rle.width, rle.height
                        ));
                    }
                    crate::limits::check_mask("mask", rle.width as u64, rle.height as u64)?;
                    Ok(Some(rle.to_mask().to_png()))
                });
                result = Arc::new(BinaryArray::from_iter(values));
                errors = e;
            }
            DecodeTo::Counts => {
                let (values, e) =
                    common::map_rows(rows, |_, r| Ok(r?.map(|rle| Mask::counts(&rle.to_mask()))));
                let mut b = ListBuilder::new(Int64Builder::new());
                for v in &values {
                    match v {
                        Some(c) => {
                            b.values().extend(c.iter().map(|&c| Some(c as i64)));
                            b.append(true);
                        }
                        None => b.append(false),
                    }
                }
                result = Arc::new(b.finish());
                errors = e;
            }
        }
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DECODE_DOC)
    }
}
