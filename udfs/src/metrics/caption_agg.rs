//! The caption metric aggregates `cider_d`, `bleu` and `rouge_l`: one row per image (its
//! prediction and list of references), scored over the whole group as pycocoevalcap scores an
//! evaluation set. The state is the tokenized captions themselves (CIDEr-D's document
//! frequencies need the whole set), so partial aggregates merge exactly.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    new_empty_array, Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, ListBuilder,
    StringBuilder, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_datafusion_err, exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use super::caption::{self, Item};
use super::{lists, tokenize};
use crate::common::{Arg, Params};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptionMetric {
    CiderD,
    Bleu,
    RougeL,
    /// BLEU-1..4, ROUGE-L and CIDEr-D in one pass (tokenized once, n-grams counted once).
    All,
}

impl CaptionMetric {
    pub fn name(self) -> &'static str {
        match self {
            CaptionMetric::CiderD => "cider_d",
            CaptionMetric::Bleu => "bleu",
            CaptionMetric::RougeL => "rouge_l",
            CaptionMetric::All => "caption_scores",
        }
    }

    /// The names of the scores in the result (and in each `per_item` entry).
    fn score_names(self) -> &'static [&'static str] {
        match self {
            CaptionMetric::CiderD | CaptionMetric::RougeL => &["score"],
            CaptionMetric::Bleu => &["bleu_1", "bleu_2", "bleu_3", "bleu_4"],
            CaptionMetric::All => &["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d"],
        }
    }
}

fn doc(metric: CaptionMetric) -> Documentation {
    let name = metric.name();
    let (what, fields, example) = match metric {
        CaptionMetric::CiderD => (
            "CIDEr-D exactly as pycocoevalcap's `Cider` (n = 1..4, sigma = 6, clipped tf-idf with \
             document frequencies and N taken from the rows of the group, x10 per image, mean over \
             images). A one-image group scores 0, as in the reference.",
            "`score` (the corpus CIDEr-D, not x100), `n`",
            "+------------------------------------+\n| s                                  |\n+------------------------------------+\n| {id: 1, score: 2.6521641497946558} |\n| {id: 2, score: 1.21500539222853}   |\n+------------------------------------+",
        ),
        CaptionMetric::Bleu => (
            "BLEU-1..4 exactly as pycocoevalcap's `Bleu(4)`: clipped n-gram counts and lengths \
             summed over the group, the `closest` reference length (ties to the shorter), brevity \
             penalty on the totals.",
            "`bleu_1`..`bleu_4` (corpus), `testlen`, `reflen`, `n`",
            "",
        ),
        CaptionMetric::RougeL => (
            "ROUGE-L exactly as pycocoevalcap's `Rouge` (beta = 1.2, best precision and best \
             recall over the references taken separately, single-space token split), mean over \
             images.",
            "`score` (the mean), `n`",
            "",
        ),
        CaptionMetric::All => (
            "BLEU-1..4, ROUGE-L and CIDEr-D together, as pycocoevalcap's `COCOEvalCap.evaluate` \
             computes them (without METEOR and SPICE): the captions are tokenized once and the \
             n-gram tables shared, so this is the fast way to get all three; each value equals \
             the one of `bleu`, `rouge_l` and `cider_d`.",
            "`bleu_1`..`bleu_4`, `rouge_l`, `cider_d` (corpus), `testlen`, `reflen`, `n`",
            "",
        ),
    };
    let example = if example.is_empty() {
        example_for(metric)
    } else {
        format!("```sql\n> SELECT unnest({name}(pred, refs, id)['per_item']) AS s FROM (VALUES (1, 'A dog runs.', ['A dog is running.', 'The dog runs']), (2, 'Two cats sleep.', ['Two cats are sleeping.', 'A cat sleeps'])) AS t(id, pred, refs);\n{example}\n```")
    };
    Documentation::builder(
        super::SECTION,
        format!(
            "{what} Aggregate: one row per image. Captions are tokenized with `ptb_tokenize` \
             (pycocoevalcap's PTB tokenisation) unless `tokenize` is false. Returns a struct: \
             {fields}, and with an `id` argument `per_item`, the per-image scores (relative to \
             the group) with their ids. A NULL prediction is scored as an empty caption (it \
             scores 0 and counts in the mean); a NULL or empty reference list is an error naming \
             the row. Variant: `{name}/ptb` (tokenized) or `{name}/pretokenized`."
        ),
        format!("{name}(pred, refs [, id [, tokenize => true]])"),
    )
    .with_argument("pred", "The predicted caption (string).")
    .with_argument("refs", "The reference captions (list of strings, at least one).")
    .with_argument(
        "id",
        "Optional image id (integer or string): adds `per_item` to the result. NULL for none.",
    )
    .with_argument(
        "tokenize",
        "Whether to apply `ptb_tokenize` first (default true); false for pre-tokenized text.",
    )
    .with_sql_example(example)
    .build()
}

fn example_for(metric: CaptionMetric) -> String {
    let name = metric.name();
    let table = match metric {
        CaptionMetric::All => "+--------------------+\n| c                  |\n+--------------------+\n| 0.6666666666666666 |\n+--------------------+",
        CaptionMetric::Bleu => "+--------------------+\n| b                  |\n+--------------------+\n| 0.9999999992500005 |\n+--------------------+",
        _ => "+--------------------+\n| r                  |\n+--------------------+\n| 0.6666666666666666 |\n+--------------------+",
    };
    let (alias, field) = match metric {
        CaptionMetric::Bleu => ("b", "bleu_2"),
        CaptionMetric::All => ("c", "rouge_l"),
        _ => ("r", "score"),
    };
    format!(
        "```sql\n> SELECT {name}(pred, refs)['{field}'] AS {alias} FROM (VALUES ('A dog runs.', ['A dog is running.', 'The dog runs'])) AS t(pred, refs);\n{table}\n```"
    )
}

static CIDER_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(CaptionMetric::CiderD));
static BLEU_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(CaptionMetric::Bleu));
static ROUGE_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(CaptionMetric::RougeL));
static ALL_DOC: LazyLock<Documentation> = LazyLock::new(|| doc(CaptionMetric::All));

/// `cider_d` / `bleu` / `rouge_l` (pred, refs [, id [, tokenize]]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CaptionMetricFunc {
    metric: CaptionMetric,
    signature: Signature,
    params: Params,
}

impl CaptionMetricFunc {
    pub fn new(metric: CaptionMetric) -> Self {
        let params = Params::new(
            2,
            &[("pred", Arg::Text), ("refs", Arg::Any), ("id", Arg::Any), ("tokenize", Arg::Bool)],
        );
        Self { metric, signature: params.signature(Volatility::Immutable), params }
    }
}

/// The per-item struct type, or `None` without ids.
fn item_fields(metric: CaptionMetric, id_type: &DataType) -> Fields {
    let mut f = vec![Field::new("id", id_type.clone(), true)];
    f.extend(metric.score_names().iter().map(|n| Field::new(*n, DataType::Float64, true)));
    Fields::from(f)
}

fn result_fields(metric: CaptionMetric, id_type: Option<&DataType>) -> Fields {
    let mut f: Vec<Field> =
        metric.score_names().iter().map(|n| Field::new(*n, DataType::Float64, true)).collect();
    if matches!(metric, CaptionMetric::Bleu | CaptionMetric::All) {
        f.push(Field::new("testlen", DataType::Int64, false));
        f.push(Field::new("reflen", DataType::Int64, false));
    }
    f.push(Field::new("n", DataType::Int64, false));
    if let Some(t) = id_type {
        let item = DataType::Struct(item_fields(metric, t));
        f.push(Field::new(
            "per_item",
            DataType::List(Arc::new(Field::new_list_field(item, true))),
            false,
        ));
    }
    Fields::from(f)
}

/// The id column's type, when the call has a (non-NULL) id argument.
fn id_type(arg_types: &[DataType]) -> Option<DataType> {
    arg_types.get(2).filter(|t| !t.is_null()).cloned()
}

fn text_list_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl AggregateUDFImpl for CaptionMetricFunc {
    fn name(&self) -> &str {
        self.metric.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(result_fields(self.metric, id_type(arg_types).as_ref())))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut types = self.params.coerce(self.name(), arg_types)?;
        types[1] = lists::coerce_text_list(self.name(), "refs", &arg_types[1])?;
        if let Some(t) = arg_types.get(2) {
            types[2] = match t {
                t if t.is_integer() => DataType::Int64,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                DataType::Null => DataType::Null,
                other => {
                    return plan_err!(
                        "{}: `id` must be an integer or a string, got {other}",
                        self.name()
                    )
                }
            };
        }
        Ok(types)
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let types: Vec<DataType> =
            args.input_fields.iter().map(|f| f.data_type().clone()).collect();
        let mut f = vec![
            Arc::new(Field::new("preds", text_list_type(), true)),
            Arc::new(Field::new(
                "refs",
                DataType::List(Arc::new(Field::new_list_field(text_list_type(), true))),
                true,
            )),
        ];
        if let Some(t) = id_type(&types) {
            f.push(Arc::new(Field::new(
                "ids",
                DataType::List(Arc::new(Field::new_list_field(t, true))),
                true,
            )));
        }
        Ok(f)
    }
    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let types: Vec<DataType> =
            acc_args.expr_fields.iter().map(|f| f.data_type().clone()).collect();
        Ok(Box::new(CaptionAccumulator {
            metric: self.metric,
            id_type: id_type(&types),
            preds: Vec::new(),
            refs: Vec::new(),
            ids: Vec::new(),
            bytes: 0,
        }))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.metric {
            CaptionMetric::CiderD => &CIDER_DOC,
            CaptionMetric::Bleu => &BLEU_DOC,
            CaptionMetric::RougeL => &ROUGE_DOC,
            CaptionMetric::All => &ALL_DOC,
        })
    }
}

#[derive(Debug)]
struct CaptionAccumulator {
    metric: CaptionMetric,
    id_type: Option<DataType>,
    preds: Vec<String>,
    refs: Vec<Vec<String>>,
    ids: Vec<ScalarValue>,
    bytes: usize,
}

impl CaptionAccumulator {
    fn push(&mut self, pred: String, refs: Vec<String>, id: Option<ScalarValue>) {
        self.bytes += pred.len() + refs.iter().map(|r| r.len() + 24).sum::<usize>() + 48;
        self.preds.push(pred);
        self.refs.push(refs);
        if let Some(id) = id {
            self.ids.push(id);
        }
    }
}

impl Accumulator for CaptionAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let name = self.metric.name();
        let preds = crate::common::str_values(name, &values[0])?;
        let refs = lists::text_lists(name, "refs", &values[1])?;
        let do_tokenize = match values.get(3) {
            Some(a) if a.data_type() == &DataType::Boolean && !a.is_empty() => {
                let b = a.as_boolean();
                b.is_null(0) || b.value(0)
            }
            _ => true,
        };
        let tok = |s: &str| if do_tokenize { tokenize::ptb_tokenize(s) } else { s.to_string() };
        for (row, (pred, refs)) in preds.into_iter().zip(refs).enumerate() {
            let id = match (&self.id_type, values.get(2)) {
                (Some(_), Some(a)) => Some(ScalarValue::try_from_array(a, row)?),
                _ => None,
            };
            let refs = match refs {
                Some(r) if !r.is_empty() => r,
                _ => {
                    let which = id.as_ref().map_or(String::new(), |id| format!(" (id {id})"));
                    return exec_err!(
                        "{name}: row {} of its batch{which}: refs is NULL or empty; a caption cannot be scored without references",
                        row + 1
                    );
                }
            };
            // A NULL reference is a gap in the data, not an empty caption: scoring it as "" would
            // lower every n-gram statistic of the row without a word.
            if let Some(k) = refs.iter().position(Option::is_none) {
                let which = id.as_ref().map_or(String::new(), |id| format!(" (id {id})"));
                return exec_err!(
                    "{name}: row {} of its batch{which}: reference {} is NULL",
                    row + 1,
                    k + 1
                );
            }
            let refs: Vec<String> = refs.iter().map(|r| tok(r.unwrap_or(""))).collect();
            self.push(pred.map_or(String::new(), tok), refs, id);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let items: Vec<Item> = self
            .preds
            .iter()
            .zip(&self.refs)
            .map(|(h, r)| Item { hyp: h, refs: r.iter().map(String::as_str).collect() })
            .collect();
        let n = items.len();
        let some = |v: f64| (n > 0).then_some(v);
        let fields = result_fields(self.metric, self.id_type.as_ref());
        let mut cols: Vec<ArrayRef> = Vec::new();
        let per_item: Vec<Vec<f64>> = match self.metric {
            CaptionMetric::CiderD | CaptionMetric::RougeL => {
                let (score, per) = if self.metric == CaptionMetric::CiderD {
                    caption::cider_d(&items)
                } else {
                    caption::rouge_l(&items)
                };
                cols.push(Arc::new(Float64Array::from(vec![some(score)])));
                vec![per]
            }
            CaptionMetric::Bleu => {
                let r = caption::bleu(&items);
                for k in 0..4 {
                    cols.push(Arc::new(Float64Array::from(vec![some(r.bleu[k])])));
                }
                cols.push(Arc::new(Int64Array::from(vec![r.testlen as i64])));
                cols.push(Arc::new(Int64Array::from(vec![r.reflen as i64])));
                (0..4).map(|k| r.per_item.iter().map(|p| p[k]).collect()).collect()
            }
            CaptionMetric::All => {
                let r = caption::all_scores(&items);
                for k in 0..4 {
                    cols.push(Arc::new(Float64Array::from(vec![some(r.bleu.bleu[k])])));
                }
                cols.push(Arc::new(Float64Array::from(vec![some(r.rouge_l.0)])));
                cols.push(Arc::new(Float64Array::from(vec![some(r.cider_d.0)])));
                cols.push(Arc::new(Int64Array::from(vec![r.bleu.testlen as i64])));
                cols.push(Arc::new(Int64Array::from(vec![r.bleu.reflen as i64])));
                let mut per: Vec<Vec<f64>> =
                    (0..4).map(|k| r.bleu.per_item.iter().map(|p| p[k]).collect()).collect();
                per.push(r.rouge_l.1);
                per.push(r.cider_d.1);
                per
            }
        };
        cols.push(Arc::new(Int64Array::from(vec![n as i64])));
        if let Some(t) = &self.id_type {
            let ids = if self.ids.is_empty() {
                new_empty_array(t)
            } else {
                ScalarValue::iter_to_array(self.ids.iter().cloned())?
            };
            let mut item_cols = vec![ids];
            item_cols
                .extend(per_item.into_iter().map(|v| Arc::new(Float64Array::from(v)) as ArrayRef));
            let items = StructArray::try_new(item_fields(self.metric, t), item_cols, None)?;
            let list = ListArray::try_new(
                Arc::new(Field::new_list_field(items.data_type().clone(), true)),
                OffsetBuffer::from_lengths([n]),
                Arc::new(items),
                None,
            )?;
            cols.push(Arc::new(list));
        }
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(fields, cols, None)?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes + self.ids.len() * 48
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut preds = ListBuilder::new(StringBuilder::new());
        for p in &self.preds {
            preds.values().append_value(p);
        }
        preds.append(true);
        let mut refs = ListBuilder::new(ListBuilder::new(StringBuilder::new()));
        for rs in &self.refs {
            for r in rs {
                refs.values().values().append_value(r);
            }
            refs.values().append(true);
        }
        refs.append(true);
        let mut out = vec![
            ScalarValue::List(Arc::new(preds.finish())),
            ScalarValue::List(Arc::new(refs.finish())),
        ];
        if let Some(t) = &self.id_type {
            out.push(ScalarValue::List(ScalarValue::new_list_nullable(&self.ids, t)));
        }
        Ok(out)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let name = self.metric.name();
        let preds = states[0].as_list::<i32>();
        let refs = states[1].as_list::<i32>();
        for i in 0..preds.len() {
            if preds.is_null(i) {
                continue;
            }
            let p = preds.value(i);
            let p = crate::common::str_values(name, &p)?;
            let r = refs.value(i);
            let r = lists::text_lists(name, "refs", &r)?;
            let ids = match (&self.id_type, states.get(2)) {
                (Some(_), Some(a)) => {
                    let l = a.as_list::<i32>().value(i);
                    (0..l.len())
                        .map(|j| ScalarValue::try_from_array(&l, j))
                        .collect::<Result<Vec<_>>>()?
                }
                _ => Vec::new(),
            };
            for (j, (p, r)) in p.into_iter().zip(r).enumerate() {
                let r = r.ok_or_else(|| exec_datafusion_err!("{name}: corrupt partial state"))?;
                let r = r.into_iter().map(|s| s.unwrap_or("").to_string()).collect();
                self.push(p.unwrap_or("").to_string(), r, ids.get(j).cloned());
            }
        }
        Ok(())
    }
}
