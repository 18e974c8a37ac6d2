//! `mask_contour(mask)`: ordered outer contours (and optionally holes) of a mask.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, ListBuilder, StructBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_datafusion_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::mask;
use super::options;
use super::trace::{self, Components};
use crate::common::{self, Arg, Params};

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The ordered contours of a mask, in pixel coordinates of boundary pixels: Suzuki-Abe \
         border following with 8-connectivity, the same points, start and direction as OpenCV's \
         `findContours(mask, RETR_EXTERNAL, CHAIN_APPROX_NONE)` (starting at the top-left pixel, \
         going down the left side first). `components => 'largest'` (default) keeps the \
         component with the most pixels, `'all'` every outer contour in OpenCV's order; \
         `holes => true` adds each kept component's holes (traced along the foreground pixels \
         around them) right after it. Each element is `{points: [x0, y0, x1, y1, ...], hole}`. \
         An empty mask gives an empty list.",
        "mask_contour(mask [, components => 'largest' | 'all', holes => false, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("mask", "PNG bytes, COCO RLE struct<size, counts>, or struct<size, polygons>.")
    .with_argument("components", "'largest' (default) or 'all'.")
    .with_argument("holes", "Whether to add the holes of the kept components (default false).")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT mask_contour(named_struct('size', [4, 5], 'counts', '52207')) AS c;\n\
+---------------------------------------------------+\n\
| c                                                 |\n\
+---------------------------------------------------+\n\
| [{points: [1, 1, 1, 2, 2, 2, 2, 1], hole: false}] |\n\
+---------------------------------------------------+\n```",
    )
    .build()
});

fn contour_fields() -> Fields {
    Fields::from(vec![
        Field::new("points", DataType::new_list(DataType::Int32, true), true),
        Field::new("hole", DataType::Boolean, true),
    ])
}

fn value_type() -> DataType {
    DataType::new_list(DataType::Struct(contour_fields()), true)
}

/// `mask_contour(mask, components, holes)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskContourFunc {
    signature: Signature,
    params: Params,
}

impl Default for MaskContourFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskContourFunc {
    pub fn new() -> Self {
        let params = Params::new(
            1,
            &[
                ("mask", Arg::Any),
                ("components", Arg::Text),
                ("holes", Arg::Bool),
                ("on_error", Arg::Text),
            ],
        );
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for MaskContourFunc {
    fn name(&self) -> &str {
        "mask_contour"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(value_type())
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), value_type(), &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[0] = options::check_mask_type(self.name(), "mask", &t[0], false)?;
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (_, policy) = self.params.policy(func, &args)?;
        let components = match common::const_str(func, "components", &args.args, 1)?.as_deref() {
            None => Components::Largest,
            Some(s) if s.eq_ignore_ascii_case("largest") => Components::Largest,
            Some(s) if s.eq_ignore_ascii_case("all") => Components::All,
            Some(s) => {
                return Err(exec_datafusion_err!(
                    "{func}: components must be 'largest' or 'all', got '{s}'"
                ))
            }
        };
        let holes = match common::const_arg(&args.args, 2) {
            None => false,
            Some(ScalarValue::Boolean(Some(b))) => *b,
            Some(other) => {
                return Err(exec_datafusion_err!(
                    "{func}: option `holes` must be a constant boolean, got {other}"
                ))
            }
        };
        let scalar = common::all_scalar(&args.args);
        let arr = args.args[0].to_array(args.number_rows)?;
        let (values, errors) = common::map_rows(mask::read_masks(func, &arr)?, |_, r| {
            Ok(r?.map(|m| trace::contours(&m, components, holes)))
        });
        let fields = contour_fields();
        let item = StructBuilder::new(
            fields.clone(),
            vec![
                Box::new(ListBuilder::new(Int32Builder::new()))
                    as Box<dyn datafusion::arrow::array::ArrayBuilder>,
                Box::new(BooleanBuilder::new()),
            ],
        );
        let mut b = ListBuilder::new(item).with_field(Arc::new(Field::new(
            "item",
            DataType::Struct(fields),
            true,
        )));
        for v in values {
            match v {
                Some(cs) => {
                    for c in cs {
                        let st = b.values();
                        let pts = st
                            .field_builder::<ListBuilder<Int32Builder>>(0)
                            .expect("field 0 is points");
                        for (x, y) in &c.points {
                            pts.values().append_value(*x);
                            pts.values().append_value(*y);
                        }
                        pts.append(true);
                        st.field_builder::<BooleanBuilder>(1)
                            .expect("field 1 is hole")
                            .append_value(c.hole);
                        st.append(true);
                    }
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        let result: ArrayRef = Arc::new(b.finish());
        common::shrink(common::finish(func, policy, result, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
