use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{self, Arg, Params};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The format of encoded image bytes, from their magic number, in lower case: `png`, `jpeg`, \
         `webp`, `bmp`, `tiff`, `gif`, ... Bytes of no known format fail naming the row, or give NULL \
         under `on_error => 'null'`.",
        "image_format(image [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("image", super::IMAGE_ARG)
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT image_format(X'89504E470D0A1A0A') AS f;\n+-----+\n| f   |\n+-----+\n| png |\n+-----+\n```",
    )
    .build()
});

/// `image_format(img)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageFormatFunc {
    signature: Signature,
    params: Params,
}

impl Default for ImageFormatFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ImageFormatFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("image", Arg::Image), ("on_error", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for ImageFormatFunc {
    fn name(&self) -> &str {
        "image_format"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Utf8, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, policy) = self.params.policy(self.name(), &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..1], args.number_rows)?;
        let images = common::image_values(self.name(), &arrays[0])?;
        let (values, errors) = common::map_rows(images, |_, img| {
            let Some(bytes) = img? else { return Ok(None) };
            let f = super::format_of(bytes)?;
            Ok(Some(f.extensions_str().first().map_or("unknown", |e| e).to_string()).map(|e| {
                // `jpg` is the first extension image lists for JPEG; users expect the format name.
                if e == "jpg" {
                    "jpeg".to_string()
                } else if e == "tif" {
                    "tiff".to_string()
                } else {
                    e
                }
            }))
        });
        let array: ArrayRef = Arc::new(StringArray::from(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
