//! `hamming_distance(a, b)`: differing bits of two 64-bit hashes.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Int32Array};
use datafusion::arrow::compute::binary;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::{self, Arg, Params};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Number of bits in which two 64-bit integers differ (popcount of `a XOR b`), e.g. the \
         distance between two `image_phash` hashes: 0 for the same picture, a few bits for \
         re-encoded or resized copies, around 32 for unrelated images. Either NULL gives NULL.",
        "hamming_distance(a, b)",
    )
    .with_argument("a", "A hash (any integer, read as int64).")
    .with_argument("b", "A hash (any integer, read as int64).")
    .with_sql_example(
        "```sql\n> SELECT hamming_distance(255, 15) AS d, hamming_distance(-1, 0) AS all_bits;\n+---+----------+\n| d | all_bits |\n+---+----------+\n| 4 | 64       |\n+---+----------+\n```",
    )
    .build()
});

/// `hamming_distance(a, b)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HammingDistanceFunc {
    signature: Signature,
    params: Params,
}

impl Default for HammingDistanceFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl HammingDistanceFunc {
    pub fn new() -> Self {
        let params = Params::new(2, &[("a", Arg::Int), ("b", Arg::Int)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for HammingDistanceFunc {
    fn name(&self) -> &str {
        "hamming_distance"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args, args.number_rows)?;
        let (a, b) = (
            datafusion::arrow::compute::cast(&arrays[0], &DataType::Int64)?,
            datafusion::arrow::compute::cast(&arrays[1], &DataType::Int64)?,
        );
        let d: Int32Array = binary(
            a.as_primitive::<Int64Type>(),
            b.as_primitive::<Int64Type>(),
            |x: i64, y: i64| (x ^ y).count_ones() as i32,
        )?;
        let array: ArrayRef = Arc::new(d);
        common::shrink(ColumnarValue::Array(array), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, Int32Array, Int64Array};
    use datafusion::common::ScalarValue;

    use super::*;
    use crate::test_invoke::invoke;

    #[test]
    fn counts_differing_bits_and_passes_nulls() {
        let a = Int64Array::from(vec![Some(0), Some(255), Some(-1), Some(i64::MIN), None, Some(7)]);
        let b = Int64Array::from(vec![Some(0), Some(15), Some(0), Some(i64::MAX), Some(1), None]);
        let out = invoke(
            &HammingDistanceFunc::new(),
            vec![ColumnarValue::Array(Arc::new(a)), ColumnarValue::Array(Arc::new(b))],
            6,
        )
        .unwrap()
        .to_array(6)
        .unwrap();
        let want = Int32Array::from(vec![Some(0), Some(4), Some(64), Some(64), None, None]);
        assert_eq!(out.as_any().downcast_ref::<Int32Array>().unwrap(), &want);
    }

    #[test]
    fn scalars_give_a_scalar_and_a_column_against_a_constant_works() {
        let f = HammingDistanceFunc::new();
        let s = |v: i64| ColumnarValue::Scalar(ScalarValue::Int64(Some(v)));
        let out = invoke(&f, vec![s(0x0f0f), s(0x00ff)], 1).unwrap();
        assert!(matches!(out, ColumnarValue::Scalar(ScalarValue::Int32(Some(8)))));
        let col = ColumnarValue::Array(Arc::new(Int64Array::from(vec![1, 3, 7])));
        let out = invoke(&f, vec![col, s(0)], 3).unwrap().to_array(3).unwrap();
        assert_eq!(
            out.as_any().downcast_ref::<Int32Array>().unwrap(),
            &Int32Array::from(vec![1, 2, 3])
        );
        let null = ColumnarValue::Scalar(ScalarValue::Int64(None));
        let out = invoke(&f, vec![s(5), null], 1).unwrap();
        assert!(matches!(out, ColumnarValue::Scalar(ScalarValue::Int32(None))));
    }

    #[test]
    fn smaller_integer_types_are_read_as_int64() {
        let t =
            HammingDistanceFunc::new().coerce_types(&[DataType::Int32, DataType::UInt8]).unwrap();
        assert_eq!(t, vec![DataType::Int64, DataType::Int64]);
        assert!(HammingDistanceFunc::new()
            .coerce_types(&[DataType::Utf8, DataType::Int64])
            .is_err());
    }
}
