//! `vista_generate(image_or_images, instruction [, output [, on_error]])`: the async SQL function
//! in front of the device worker.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, StringArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_datafusion_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, TypeSignature, Volatility,
};

use super::worker::{self, Outcome};
use super::{CoordDecode, GenerateRequest, GenerateSettings, ModelLoader, ModelSpec};
use crate::common::{self, OnError};
use crate::config::VistaConfig;

const NAME: &str = "vista_generate";
const OUTPUT_IDX: usize = 2;
const ON_ERROR_IDX: usize = 3;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Runs the vision-language model set by `SET vista.model = 'dir'` on one image (binary or \
         a Hugging Face image struct<bytes, path>) or several (a list of either, one per `<image>` \
         marker) with an instruction, and returns the generated text. One worker thread owns the \
         model (loaded once per process) and gathers rows from every partition into \
         micro-batches of `vista.batch_size`; identical (images, instruction, settings) rows are \
         computed once. Generation follows `vista.max_new_tokens`, `vista.min_new_tokens`, \
         `vista.num_beams`, `vista.temperature`, `vista.top_p`, `vista.seed`, \
         `vista.prompt_template` and `vista.coord_decode` (`median`: a greedy coordinate token \
         is the median of the distribution over the bins). `output \
         => 'detail'` returns struct<text, error, latency_ms, batch_rows, truncated> (latency = \
         model time of the row's micro-batch divided by its rows; truncated = generation stopped \
         on vista.max_new_tokens, not on an end token). A NULL image or instruction gives NULL \
         without running the model (in `detail`, with an error saying which, so that a job counts \
         the row as failed).",
        "vista_generate(image, instruction [, output => 'text' | 'detail' [, on_error => 'fail' | 'null' | 'report']])",
    )
    .with_argument(
        "image",
        "Encoded image bytes (binary) or a Hugging Face `datasets` image struct<bytes, path> (read \
         through its `bytes`; a row with only a `path` is a row error: read the file with \
         read_bytes(image['path'])), or a list of either for multi-image prompts.",
    )
    .with_argument("instruction", "The instruction, e.g. from vista_prompt(...).")
    .with_argument(
        "output",
        "'text' (default) or 'detail': struct<text, error, latency_ms, batch_rows, truncated>.",
    )
    .with_argument(
        "on_error",
        "Per-row error policy: 'fail' (default, or vista.on_error), 'null' or 'report' (struct<value, error>).",
    )
    .with_sql_example(
        "```sql\n> SELECT vista_generate(NULL, 'Describe this image <image> as simply as possible.') AS caption;\n+---------+\n| caption |\n+---------+\n|         |\n+---------+\n```",
    )
    .build()
});

/// The documentation of `vista_generate` (the async wrapper does not forward it; listings
/// such as `vista functions` read it from here).
pub fn documentation() -> &'static Documentation {
    &DOC
}

/// `vista_generate` backed by `loader`; register the result on the session.
pub fn vista_generate_udf(loader: ModelLoader) -> ScalarUDF {
    vista_generate_udf_with_linger(loader, worker::DEFAULT_LINGER)
}

/// As [`vista_generate_udf`], with the time the worker waits to fill a micro-batch.
pub fn vista_generate_udf_with_linger(loader: ModelLoader, linger: Duration) -> ScalarUDF {
    AsyncScalarUDF::new(Arc::new(VistaGenerateFunc::new(loader, linger))).into_scalar_udf()
}

/// The model loader, compared by identity (a UDF must be `Eq + Hash`).
#[derive(Clone)]
struct LoaderRef(ModelLoader);

impl std::fmt::Debug for LoaderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelLoader@{:p}", Arc::as_ptr(&self.0))
    }
}
impl PartialEq for LoaderRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for LoaderRef {}
impl std::hash::Hash for LoaderRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VistaGenerateFunc {
    signature: Signature,
    loader: LoaderRef,
    linger: Duration,
}

impl VistaGenerateFunc {
    pub fn new(loader: ModelLoader, linger: Duration) -> Self {
        // The async wrapper does not forward `coerce_types`, so the signature takes any types
        // and `return_field_from_args` checks them.
        let signature = Signature::one_of(
            vec![TypeSignature::Any(2), TypeSignature::Any(3), TypeSignature::Any(4)],
            Volatility::Volatile,
        )
        .with_parameter_names(vec!["image", "instruction", "output", "on_error"])
        .expect("fixed-arity signatures accept parameter names");
        VistaGenerateFunc { signature, loader: LoaderRef(loader), linger }
    }
}

/// What the call returns, fixed at planning time by its constant options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Text,
    Detail,
    Report,
}

fn detail_fields() -> Fields {
    Fields::from(vec![
        Field::new("text", DataType::Utf8, true),
        Field::new("error", DataType::Utf8, true),
        Field::new("latency_ms", DataType::Float64, true),
        Field::new("batch_rows", DataType::Int32, true),
        Field::new("truncated", DataType::Boolean, true),
    ])
}

fn const_text(v: Option<&ScalarValue>) -> Option<&str> {
    match v {
        Some(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Some(s.as_str()),
        _ => None,
    }
}

fn parse_output(s: Option<&str>) -> Result<bool> {
    match s.map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") => Ok(false),
        Some("detail") => Ok(true),
        Some(other) => Err(exec_datafusion_err!(
            "{NAME}: argument `output` must be 'text' or 'detail', got '{other}'"
        )),
    }
}

fn shape(scalars: &[Option<&ScalarValue>]) -> Result<Shape> {
    let detail = parse_output(const_text(scalars.get(OUTPUT_IDX).copied().flatten()))?;
    Ok(if detail {
        Shape::Detail
    } else if OnError::is_report(scalars, ON_ERROR_IDX) {
        Shape::Report
    } else {
        Shape::Text
    })
}

fn check_types(types: &[DataType]) -> Result<()> {
    let is_bytes = |t: &DataType| match t {
        DataType::Struct(fields) => common::is_image_struct(fields),
        t => matches!(
            t,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
        ),
    };
    let image_ok = match &types[0] {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            is_bytes(f.data_type())
        }
        t => is_bytes(t),
    };
    if !image_ok {
        return plan_err!(
            "{NAME}: argument `image` must be binary, an image struct<bytes, path>, or a list \
             of either, got {}",
            types[0]
        );
    }
    for (i, name) in [(1, "instruction"), (2, "output"), (3, "on_error")] {
        if let Some(t) = types.get(i) {
            if !matches!(
                t,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            ) {
                return plan_err!("{NAME}: argument `{name}` must be text, got {t}");
            }
        }
    }
    Ok(())
}

impl ScalarUDFImpl for VistaGenerateFunc {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        check_types(&types)?;
        let dt = match shape(args.scalar_arguments)? {
            Shape::Text => DataType::Utf8,
            Shape::Detail => DataType::Struct(detail_fields()),
            Shape::Report => common::result_type(DataType::Utf8, true),
        };
        Ok(Arc::new(Field::new(NAME, dt, true)))
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        datafusion::common::internal_err!("{NAME} runs asynchronously")
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for VistaGenerateFunc {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let config = VistaConfig::from_options(&args.config_options);
        let output = common::const_str(NAME, "output", &args.args, OUTPUT_IDX)?;
        let detail = parse_output(output.as_deref())?;
        let policy = OnError::resolve(NAME, &args.args, ON_ERROR_IDX, &config)?;
        let rows = args.number_rows;
        let arrays = common::to_arrays(&args.args[..2], rows)?;
        let requests = requests(&arrays[0], &arrays[1])?;

        let mut outcomes: Vec<Option<Outcome>> = vec![None; rows];
        if requests.iter().any(|r| matches!(r, Ok(Some(_)))) {
            let settings = Arc::new(settings(&config)?);
            let spec = model_spec(&config)?;
            let worker =
                worker::worker_for(&self.loader.0, &spec, self.linger).await.map_err(|e| {
                    exec_datafusion_err!("{NAME}: cannot load model '{}': {e}", spec.dir)
                })?;
            // Hand every row over before awaiting any, so the worker sees the whole batch (and
            // the other partitions' rows) when it forms micro-batches.
            let mut pending = Vec::new();
            for (row, req) in requests.iter().enumerate() {
                if let Ok(Some(req)) = req {
                    let rx = worker
                        .submit(req.clone(), settings.clone(), config.batch_size)
                        .map_err(|e| exec_datafusion_err!("{NAME}: {e}"))?;
                    pending.push((row, rx));
                }
            }
            for (row, rx) in pending {
                let outcome = rx
                    .await
                    .map_err(|_| exec_datafusion_err!("{NAME}: the model worker stopped"))?;
                outcomes[row] = Some(outcome);
            }
        }

        let mut texts = Vec::with_capacity(rows);
        let mut errors = Vec::with_capacity(rows);
        let mut latency = Vec::with_capacity(rows);
        let mut batch_rows = Vec::with_capacity(rows);
        let mut unseen = Vec::with_capacity(rows);
        let mut truncated = Vec::with_capacity(rows);
        for (req, outcome) in requests.into_iter().zip(outcomes) {
            unseen.push(matches!((&req, &outcome), (Ok(None), None)));
            let (text, error) = match (req, &outcome) {
                (Err(e), _) => (None, Some(e)),
                (Ok(_), Some(o)) => match &o.text {
                    Ok(t) => (Some(t.clone()), None),
                    Err(e) => (None, Some(e.clone())),
                },
                (Ok(_), None) => (None, None),
            };
            texts.push(text);
            errors.push(error);
            latency.push(outcome.as_ref().map(|o| o.latency_ms));
            batch_rows.push(outcome.as_ref().map(|o| o.batch_rows as i32));
            truncated.push(outcome.as_ref().filter(|o| o.text.is_ok()).map(|o| o.truncated));
        }
        let text: ArrayRef = Arc::new(StringArray::from(texts));
        if !detail {
            return common::finish(NAME, policy, text, errors);
        }
        if policy == OnError::Fail {
            if let Some((row, msg)) =
                errors.iter().enumerate().find_map(|(i, e)| e.as_ref().map(|m| (i, m)))
            {
                return Err(common::row_error(NAME, row, msg));
            }
        }
        // In detail, a row the model never saw says why: an image that `read_bytes(...,
        // on_error => 'null')` could not read arrives as NULL, and a job must count it as failed.
        for (row, e) in errors.iter_mut().enumerate() {
            if unseen[row] {
                // With the instruction set, the image was NULL: a NULL row, or an image struct
                // with neither bytes nor path.
                let image_null = arrays[0].is_null(row) || arrays[1].is_valid(row);
                *e = Some(if image_null {
                    "the image is NULL (no model call)".to_string()
                } else {
                    "the instruction is NULL (no model call)".to_string()
                });
            }
        }
        let columns: Vec<ArrayRef> = vec![
            text,
            Arc::new(StringArray::from(errors)),
            Arc::new(Float64Array::from(latency)),
            Arc::new(Int32Array::from(batch_rows)),
            Arc::new(BooleanArray::from(truncated)),
        ];
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(detail_fields(), columns, None)?)))
    }
}

/// The model request of every row: `Ok(None)` for a NULL image or instruction (NULL result, no
/// error), `Err` for a row that cannot be sent (a NULL inside an image list, no images).
fn requests(
    images: &ArrayRef,
    instructions: &ArrayRef,
) -> Result<Vec<Result<Option<GenerateRequest>, String>>> {
    let instructions = common::str_values(NAME, instructions)?;
    let images = image_lists(images)?;
    Ok(images
        .into_iter()
        .zip(instructions)
        .map(|(imgs, instr)| {
            let (Some(imgs), Some(instr)) = (imgs, instr) else { return Ok(None) };
            let imgs = imgs?;
            if imgs.is_empty() {
                return Err("the image list is empty".to_string());
            }
            Ok(Some(GenerateRequest { images: imgs, instruction: instr.to_string() }))
        })
        .collect())
}

type ImageList = Option<Result<Vec<Arc<[u8]>>, String>>;

/// Each row's images: one for an image column, the list for a list column.
fn image_lists(arr: &ArrayRef) -> Result<Vec<ImageList>> {
    let list_rows = |values: &ArrayRef, offsets: Vec<(usize, usize)>, arr: &dyn Array| {
        let values = common::image_values(NAME, values)?;
        Ok(offsets
            .into_iter()
            .enumerate()
            .map(|(row, (start, end))| {
                if arr.is_null(row) {
                    return None;
                }
                Some(
                    values[start..end]
                        .iter()
                        .enumerate()
                        .map(|(k, v)| match v {
                            Ok(Some(b)) => Ok(Arc::from(*b)),
                            Ok(None) => Err(format!("image {} of the list is NULL", k + 1)),
                            Err(e) => Err(format!("image {} of the list: {e}", k + 1)),
                        })
                        .collect(),
                )
            })
            .collect())
    };
    match arr.data_type() {
        DataType::List(_) => {
            let l = arr.as_list::<i32>();
            let offsets = l.offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect();
            list_rows(l.values(), offsets, l)
        }
        DataType::LargeList(_) => {
            let l = arr.as_list::<i64>();
            let offsets = l.offsets().windows(2).map(|w| (w[0] as usize, w[1] as usize)).collect();
            list_rows(l.values(), offsets, l)
        }
        DataType::FixedSizeList(_, n) => {
            let l = arr.as_fixed_size_list();
            let n = *n as usize;
            let offsets =
                (0..l.len()).map(|i| ((l.offset() + i) * n, (l.offset() + i + 1) * n)).collect();
            list_rows(l.values(), offsets, l)
        }
        _ => Ok(common::image_values(NAME, arr)?
            .into_iter()
            .map(|v| v.transpose().map(|r| r.map(|b| vec![Arc::from(b)])))
            .collect()),
    }
}

/// Generation settings from `SET vista.*`, checked.
pub fn settings(config: &VistaConfig) -> Result<GenerateSettings> {
    if !matches!(config.prompt_template.as_str(), "vicuna_v1" | "raw" | "llava" | "qwen") {
        return Err(exec_datafusion_err!(
            "{NAME}: vista.prompt_template must be 'vicuna_v1', 'raw', 'llava' or 'qwen', got '{}'",
            config.prompt_template
        ));
    }
    if config.num_beams == 0 || config.batch_size == 0 {
        return Err(exec_datafusion_err!(
            "{NAME}: vista.num_beams and vista.batch_size must be at least 1"
        ));
    }
    if config.min_new_tokens > config.max_new_tokens {
        return Err(exec_datafusion_err!(
            "{NAME}: vista.min_new_tokens ({}) must be at most vista.max_new_tokens ({})",
            config.min_new_tokens,
            config.max_new_tokens
        ));
    }
    let temperature_ok = config.temperature >= 0.0 && config.temperature.is_finite();
    if !temperature_ok || config.top_p.is_nan() || config.top_p <= 0.0 || config.top_p > 1.0 {
        return Err(exec_datafusion_err!(
            "{NAME}: vista.temperature must be >= 0 and vista.top_p in (0, 1], got {} and {}",
            config.temperature,
            config.top_p
        ));
    }
    let coord_decode = CoordDecode::parse(&config.coord_decode).ok_or_else(|| {
        exec_datafusion_err!(
            "{NAME}: vista.coord_decode must be 'argmax' or 'median', got '{}'",
            config.coord_decode
        )
    })?;
    if coord_decode == CoordDecode::Median && (config.num_beams > 1 || config.temperature > 0.0) {
        return Err(exec_datafusion_err!(
            "{NAME}: vista.coord_decode = 'median' is a rule of greedy decoding; it needs \
             vista.num_beams = 1 and vista.temperature = 0 (got {} and {})",
            config.num_beams,
            config.temperature
        ));
    }
    Ok(GenerateSettings {
        max_new_tokens: config.max_new_tokens,
        min_new_tokens: config.min_new_tokens,
        num_beams: config.num_beams,
        temperature: config.temperature,
        top_p: config.top_p,
        seed: config.seed,
        prompt_template: config.prompt_template.clone(),
        max_image_pixels: config.max_image_pixels,
        coord_decode,
    })
}

/// The model to load, from `SET vista.model / device / dtype`.
pub fn model_spec(config: &VistaConfig) -> Result<ModelSpec> {
    if config.model.trim().is_empty() {
        return Err(exec_datafusion_err!(
            "{NAME}: no model is set; run SET vista.model = '<model directory>' first"
        ));
    }
    Ok(ModelSpec {
        dir: config.model.clone(),
        device: config.device.clone(),
        dtype: config.dtype.clone(),
    })
}
