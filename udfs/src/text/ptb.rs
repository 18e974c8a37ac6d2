//! `ptb_tokenize(text)`: the tokenisation pycocoevalcap applies before scoring captions.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{self, Arg, Params};
use crate::metrics::tokenize;

pub fn scalar_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(PtbTokenizeFunc::new())]
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::metrics::SECTION,
        "Tokenizes a caption exactly as pycocoevalcap does before BLEU, ROUGE-L and CIDEr-D: \
         Stanford PTBTokenizer 3.4.1 with `-preserveLines -lowerCase` (reimplemented, no Java), \
         then its punctuation tokens dropped. Returns the tokens joined by single spaces. Each \
         caption is tokenized on its own; line breaks inside it separate tokens. Brackets survive \
         as `-lrb-`/`-rrb-` (as in the reference). NULL gives NULL.",
        "ptb_tokenize(text)",
    )
    .with_argument("text", "The caption (string).")
    .with_sql_example(
        "```sql\n> SELECT ptb_tokenize('A dog''s toy (red) can''t fly!') AS t;\n+-----------------------------------------+\n| t                                       |\n+-----------------------------------------+\n| a dog 's toy -lrb- red -rrb- ca n't fly |\n+-----------------------------------------+\n```",
    )
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PtbTokenizeFunc {
    signature: Signature,
    params: Params,
}

impl PtbTokenizeFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("text", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl Default for PtbTokenizeFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for PtbTokenizeFunc {
    fn name(&self) -> &str {
        "ptb_tokenize"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args, args.number_rows)?;
        let texts = common::str_values(self.name(), &arrays[0])?;
        let mut out = StringBuilder::with_capacity(texts.len(), texts.len() * 32);
        for t in texts {
            out.append_option(t.map(tokenize::ptb_tokenize));
        }
        let array: ArrayRef = Arc::new(out.finish());
        common::shrink(ColumnarValue::Array(array), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
