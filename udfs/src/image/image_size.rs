use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int32Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{self, Arg, Params};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Width,
    Height,
}

fn doc(side: Side) -> Documentation {
    let (name, what, v) = match side {
        Side::Width => ("image_width", "width", "2"),
        Side::Height => ("image_height", "height", "3"),
    };
    Documentation::builder(
        super::SECTION,
        format!(
            "The {what} in pixels of an encoded image (PNG, JPEG, WebP, BMP, TIFF), read from its \
             header without decoding the pixels. Bytes that are not an image fail naming the row, or \
             give NULL under `on_error => 'null'`."
        ),
        format!("{name}(image [, on_error => 'fail' | 'null' | 'report'])"),
    )
    .with_argument("image", super::IMAGE_ARG)
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(format!(
        "```sql\n> SELECT {name}(X'89504E470D0A1A0A0000000D49484452000000020000000308000000009C81815D0000000B49444154789C636080020000090001FB52B8A90000000049454E44AE426082') AS v;\n+---+\n| v |\n+---+\n| {v} |\n+---+\n```"
    ))
    .build()
}

static WIDTH_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(Side::Width));
static HEIGHT_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(Side::Height));

/// `image_width(img)` / `image_height(img)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImageSizeFunc {
    side: Side,
    signature: Signature,
    params: Params,
}

impl ImageSizeFunc {
    pub fn new(side: Side) -> Self {
        let params = Params::new(1, &[("image", Arg::Image), ("on_error", Arg::Text)]);
        Self { side, signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for ImageSizeFunc {
    fn name(&self) -> &str {
        match self.side {
            Side::Width => "image_width",
            Side::Height => "image_height",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Int32, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, policy) = self.params.policy(self.name(), &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..1], args.number_rows)?;
        let images = common::image_values(self.name(), &arrays[0])?;
        let side = self.side;
        let (values, errors) = common::map_rows(images, |_, img| {
            let Some(bytes) = img? else { return Ok(None) };
            let (w, h) = super::dimensions(bytes)?;
            let v = if side == Side::Width { w } else { h };
            i32::try_from(v).map(Some).map_err(|_| format!("dimension {v} exceeds int32"))
        });
        let array: ArrayRef = Arc::new(Int32Array::from(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.side {
            Side::Width => &WIDTH_DOC,
            Side::Height => &HEIGHT_DOC,
        })
    }
}
