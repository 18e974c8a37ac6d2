//! `stable_hash(value, seed)`: a seeded hash that is the same on every machine and run, for the
//! reproducible shuffles curation needs (balancing caps, sampling absent categories, pairing
//! images). DataFusion's `random()` is not reproducible and its crypto digests are not built in.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::prompt::{mix, text_seed};
use crate::common::{self, Arg, Params};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::prompt::SECTION,
        "A 64-bit hash of `value` (its text form: FNV-1a) mixed with `seed` (splitmix64), as a \
         signed integer. The same on every machine, run and partitioning, so `ORDER BY \
         stable_hash(id, 7)` is a reproducible shuffle and a different seed a different one. \
         NULL in, NULL out. Not a cryptographic hash.",
        "stable_hash(value [, seed => 0])",
    )
    .with_argument("value", "Any value; hashed through its text form (CAST(value AS VARCHAR)).")
    .with_argument("seed", "Integer seed, default 0.")
    .with_sql_example(
        "```sql\n> SELECT stable_hash('coco-rec-12', 7) AS h;\n+---------------------+\n| h                   |\n+---------------------+\n| 6766916681641422376 |\n+---------------------+\n```",
    )
    .build()
});

/// `stable_hash(value [, seed])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StableHashFunc {
    signature: Signature,
    params: Params,
}

impl Default for StableHashFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHashFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("value", Arg::Any), ("seed", Arg::Int)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

/// The hash of one text value under a seed.
pub fn stable_hash(text: &str, seed: i64) -> i64 {
    mix(text_seed(text) ^ mix(seed as u64)) as i64
}

impl ScalarUDFImpl for StableHashFunc {
    fn name(&self) -> &str {
        "stable_hash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args, args.number_rows)?;
        let text = cast(&arrays[0], &DataType::Utf8)?;
        let values = common::str_values(self.name(), &text)?;
        let seeds: Vec<Option<i64>> = match arrays.get(1) {
            Some(a) => cast(a, &DataType::Int64)?
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("cast to Int64")
                .iter()
                .collect(),
            None => vec![Some(0); values.len()],
        };
        let out: Int64Array =
            values.iter().zip(&seeds).map(|(v, s)| Some(stable_hash((*v)?, (*s)?))).collect();
        common::shrink(ColumnarValue::Array(Arc::new(out) as ArrayRef), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util;

    #[test]
    fn same_input_same_hash_and_seeds_differ() {
        assert_eq!(stable_hash("coco-rec-12", 7), stable_hash("coco-rec-12", 7));
        assert_ne!(stable_hash("coco-rec-12", 7), stable_hash("coco-rec-12", 8));
        assert_ne!(stable_hash("coco-rec-12", 7), stable_hash("coco-rec-13", 7));
    }

    /// Pinned to literals (FNV-1a 64 of the UTF-8 text, xor splitmix64 of the seed, then
    /// splitmix64, as a signed integer; computed independently in Python): a change of the hash
    /// would silently reshuffle every curated split.
    #[test]
    fn hash_values_are_pinned() {
        for (text, seed, want) in [
            ("a", 0, 6223453292557176174),
            ("abc", 1, 5328301147059835157),
            ("coco-rec-12", 7, 6766916681641422376),
            ("coco-rec-12", 8, -444391428119542616),
            ("", 0, 6566800829925814604),
            ("12", 3, 2414491686605134519),
            ("refcoco-301-42", -5, -7911430256640335992),
        ] {
            assert_eq!(stable_hash(text, seed), want, "stable_hash({text:?}, {seed})");
        }
        let out = test_util::run(
            &test_util::ctx(),
            "SELECT stable_hash('coco-rec-12', 7) AS a, stable_hash(12, 3) AS b",
        )
        .unwrap();
        assert!(out.contains("| 6766916681641422376 | 2414491686605134519 |"), "{out}");
    }

    #[test]
    fn integers_hash_as_their_text_and_null_stays_null() {
        let out = test_util::run(
            &test_util::ctx(),
            "SELECT stable_hash(12, 3) = stable_hash('12', 3) AS same, stable_hash(NULL, 3) IS NULL AS n",
        )
        .unwrap();
        assert!(out.contains("| true | true |"), "{out}");
    }
}
