use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, BinaryArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{self, Arg, OnError, Params};
use crate::config::VistaConfig;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Reads a whole file as bytes. Relative paths resolve against `SET vista.base_dir` \
         (default: the working directory). A missing or unreadable file fails the query naming the \
         path, or gives NULL under `on_error => 'null'` (`'report'` adds the reason).",
        "read_bytes(path [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("path", "File path (text).")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT read_bytes('Cargo.toml') IS NOT NULL AS ok;\n+------+\n| ok   |\n+------+\n| true |\n+------+\n```",
    )
    .build()
});

/// `read_bytes(path)`: file contents as Binary.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ReadBytesFunc {
    signature: Signature,
    params: Params,
}

impl Default for ReadBytesFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadBytesFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("path", Arg::Text), ("on_error", Arg::Text)]);
        // Volatile: a file may change between queries, so the planner must not fold it.
        Self { signature: params.signature(Volatility::Volatile), params }
    }
}

/// `path` as given when absolute, else joined onto the base directory.
pub fn resolve_path(base_dir: &str, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() || base_dir.is_empty() {
        p.to_path_buf()
    } else {
        Path::new(base_dir).join(p)
    }
}

impl ScalarUDFImpl for ReadBytesFunc {
    fn name(&self) -> &str {
        "read_bytes"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let report = OnError::is_report(args.scalar_arguments, 1);
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(
            self.name(),
            common::result_type(DataType::Binary, report),
            true,
        )))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let config = VistaConfig::from_options(&args.config_options);
        let policy = OnError::resolve(self.name(), &args.args, 1, &config)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..1], args.number_rows)?;
        let paths = common::str_values(self.name(), &arrays[0])?;
        let (values, errors) = common::map_rows(paths, |_, path| match path {
            None => Ok(None),
            Some(p) => {
                let full = resolve_path(&config.base_dir, p);
                std::fs::read(&full)
                    .map(Some)
                    .map_err(|e| format!("cannot read '{}': {e}", full.display()))
            }
        });
        let array: ArrayRef = Arc::new(BinaryArray::from_iter(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
