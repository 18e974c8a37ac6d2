//! VQA accuracy as the official evaluation script (GT-Vision-Lab/VQA `vqaEval.py`) computes it,
//! in both published versions: `current` (a013f00, 2021: answers normalised only when the ten
//! GT answers disagree, and then GT and prediction alike) and `pre2021` (458a8b2..77bb365, the
//! version LAVIS copies: the prediction always normalised, GT answers only punctuation-stripped
//! and only when they disagree). Text rules are Python 3's (`str.lower`, `str.split`, `re`'s
//! Unicode `\d`), as the script runs in LAVIS.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::caption::{py_split, py_strip};
use super::lists;
use crate::common::{self, Arg, Params};

/// Which version of the official script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VqaVariant {
    Current,
    Pre2021,
}

impl VqaVariant {
    pub fn parse(s: &str) -> Result<VqaVariant> {
        match s.to_ascii_lowercase().as_str() {
            "current" => Ok(VqaVariant::Current),
            "pre2021" | "legacy" => Ok(VqaVariant::Pre2021),
            other => {
                exec_err!("vqa_accuracy: variant must be 'current' or 'pre2021', got '{other}'")
            }
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            VqaVariant::Current => "current",
            VqaVariant::Pre2021 => "pre2021",
        }
    }
}

const PUNCT: [char; 21] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',',
    '?', '!',
];

const MANUAL_MAP: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

const ARTICLES: [&str; 3] = ["a", "an", "the"];

static CONTRACTIONS: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
    [
        ("aint", "ain't"),
        ("arent", "aren't"),
        ("cant", "can't"),
        ("couldve", "could've"),
        ("couldnt", "couldn't"),
        ("couldn'tve", "couldn't've"),
        ("couldnt've", "couldn't've"),
        ("didnt", "didn't"),
        ("doesnt", "doesn't"),
        ("dont", "don't"),
        ("hadnt", "hadn't"),
        ("hadnt've", "hadn't've"),
        ("hadn'tve", "hadn't've"),
        ("hasnt", "hasn't"),
        ("havent", "haven't"),
        ("hed", "he'd"),
        ("hed've", "he'd've"),
        ("he'dve", "he'd've"),
        ("hes", "he's"),
        ("howd", "how'd"),
        ("howll", "how'll"),
        ("hows", "how's"),
        ("Id've", "I'd've"),
        ("I'dve", "I'd've"),
        ("Im", "I'm"),
        ("Ive", "I've"),
        ("isnt", "isn't"),
        ("itd", "it'd"),
        ("itd've", "it'd've"),
        ("it'dve", "it'd've"),
        ("itll", "it'll"),
        ("let's", "let's"),
        ("maam", "ma'am"),
        ("mightnt", "mightn't"),
        ("mightnt've", "mightn't've"),
        ("mightn'tve", "mightn't've"),
        ("mightve", "might've"),
        ("mustnt", "mustn't"),
        ("mustve", "must've"),
        ("neednt", "needn't"),
        ("notve", "not've"),
        ("oclock", "o'clock"),
        ("oughtnt", "oughtn't"),
        ("ow's'at", "'ow's'at"),
        ("'ows'at", "'ow's'at"),
        ("'ow'sat", "'ow's'at"),
        ("shant", "shan't"),
        ("shed've", "she'd've"),
        ("she'dve", "she'd've"),
        ("she's", "she's"),
        ("shouldve", "should've"),
        ("shouldnt", "shouldn't"),
        ("shouldnt've", "shouldn't've"),
        ("shouldn'tve", "shouldn't've"),
        ("somebody'd", "somebodyd"),
        ("somebodyd've", "somebody'd've"),
        ("somebody'dve", "somebody'd've"),
        ("somebodyll", "somebody'll"),
        ("somebodys", "somebody's"),
        ("someoned", "someone'd"),
        ("someoned've", "someone'd've"),
        ("someone'dve", "someone'd've"),
        ("someonell", "someone'll"),
        ("someones", "someone's"),
        ("somethingd", "something'd"),
        ("somethingd've", "something'd've"),
        ("something'dve", "something'd've"),
        ("somethingll", "something'll"),
        ("thats", "that's"),
        ("thered", "there'd"),
        ("thered've", "there'd've"),
        ("there'dve", "there'd've"),
        ("therere", "there're"),
        ("theres", "there's"),
        ("theyd", "they'd"),
        ("theyd've", "they'd've"),
        ("they'dve", "they'd've"),
        ("theyll", "they'll"),
        ("theyre", "they're"),
        ("theyve", "they've"),
        ("twas", "'twas"),
        ("wasnt", "wasn't"),
        ("wed've", "we'd've"),
        ("we'dve", "we'd've"),
        ("weve", "we've"),
        ("werent", "weren't"),
        ("whatll", "what'll"),
        ("whatre", "what're"),
        ("whats", "what's"),
        ("whatve", "what've"),
        ("whens", "when's"),
        ("whered", "where'd"),
        ("wheres", "where's"),
        ("whereve", "where've"),
        ("whod", "who'd"),
        ("whod've", "who'd've"),
        ("who'dve", "who'd've"),
        ("wholl", "who'll"),
        ("whos", "who's"),
        ("whove", "who've"),
        ("whyll", "why'll"),
        ("whyre", "why're"),
        ("whys", "why's"),
        ("wont", "won't"),
        ("wouldve", "would've"),
        ("wouldnt", "wouldn't"),
        ("wouldnt've", "wouldn't've"),
        ("wouldn'tve", "wouldn't've"),
        ("yall", "y'all"),
        ("yall'll", "y'all'll"),
        ("y'allll", "y'all'll"),
        ("yall'd've", "y'all'd've"),
        ("y'alld've", "y'all'd've"),
        ("y'all'dve", "y'all'd've"),
        ("youd", "you'd"),
        ("youd've", "you'd've"),
        ("you'dve", "you'd've"),
        ("youll", "you'll"),
        ("youre", "you're"),
        ("youve", "you've"),
    ]
    .into_iter()
    .collect()
});

fn is_digit(c: char) -> bool {
    static DIGIT: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(r"^\d$").unwrap());
    c.is_ascii_digit() || (!c.is_ascii() && DIGIT.is_match(c.encode_utf8(&mut [0; 4])))
}

/// `processPunctuation`: the digit-comma-digit test and the `p + ' '` / `' ' + p` tests read
/// the original text; `periodStrip` removes at most 32 periods not followed by a digit (its
/// `re.UNICODE` lands in the `count` argument).
pub fn process_punctuation(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let comma_digit = chars.windows(3).any(|w| is_digit(w[0]) && w[1] == ',' && is_digit(w[2]));
    let mut out = text.to_string();
    for p in PUNCT {
        if comma_digit || text.contains(&format!("{p} ")) || text.contains(&format!(" {p}")) {
            out = out.replace(p, "");
        } else {
            out = out.replace(p, " ");
        }
    }
    let chars: Vec<char> = out.chars().collect();
    let mut res = String::with_capacity(out.len());
    let mut removed = 0;
    for (i, &c) in chars.iter().enumerate() {
        if c == '.' && removed < 32 && !chars.get(i + 1).is_some_and(|&n| is_digit(n)) {
            removed += 1;
            continue;
        }
        res.push(c);
    }
    res
}

/// `processDigitArticle`: lower-case, number words to digits, articles dropped, contractions.
pub fn process_digit_article(text: &str) -> String {
    let lower = text.to_lowercase();
    let words: Vec<&str> = py_split(&lower)
        .map(|w| MANUAL_MAP.iter().find(|(k, _)| *k == w).map_or(w, |(_, v)| *v))
        .filter(|w| !ARTICLES.contains(w))
        .map(|w| CONTRACTIONS.get(w).copied().unwrap_or(w))
        .collect();
    words.join(" ")
}

/// `\n` and `\t` to spaces, then `strip()`.
fn clean(s: &str) -> String {
    py_strip(&s.replace(['\n', '\t'], " ")).to_string()
}

/// The accuracy of one question: the mean over GT answers i of min(1, #{j != i: gt_j == pred} / 3).
pub fn vqa_accuracy(pred: &str, answers: &[&str], variant: VqaVariant) -> f64 {
    let mut pred = clean(pred);
    let mut gts: Vec<String> = match variant {
        VqaVariant::Current => answers.iter().map(|a| clean(a)).collect(),
        VqaVariant::Pre2021 => answers.iter().map(|a| a.to_string()).collect(),
    };
    if variant == VqaVariant::Pre2021 {
        pred = process_digit_article(&process_punctuation(&pred));
    }
    let distinct: HashSet<&String> = gts.iter().collect();
    if distinct.len() > 1 {
        for g in gts.iter_mut() {
            *g = process_punctuation(g);
            if variant == VqaVariant::Current {
                *g = process_digit_article(g);
            }
        }
        if variant == VqaVariant::Current {
            pred = process_digit_article(&process_punctuation(&pred));
        }
    }
    let total: f64 = (0..gts.len())
        .map(|i| {
            let matching = gts.iter().enumerate().filter(|(j, g)| *j != i && **g == pred).count();
            (matching as f64 / 3.0).min(1.0)
        })
        .sum();
    total / gts.len() as f64
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The official VQA accuracy of one answer against the human answers (usually ten): the \
         mean over each GT answer i of min(1, matches among the other answers / 3), after the \
         official script's answer normalisation. `variant => 'current'` (default) is the script \
         since 2021-03 (normalise GT and prediction only when the GT answers disagree); \
         'pre2021' is the older, widely copied version (LAVIS): the prediction is always \
         normalised, the GT only punctuation-stripped when they disagree. Returns a fraction \
         (the script reports 100 x the mean, rounded to 2 decimals). A NULL prediction scores \
         0 (it counts as wrong and stays in AVG's denominator); NULL or empty answers are an error.",
        "vqa_accuracy(pred, answers [, variant => 'current' | 'pre2021'] [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("pred", "The model's answer (string).")
    .with_argument("answers", "The human answers (list of strings).")
    .with_argument("variant", "'current' (default) or 'pre2021'.")
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT vqa_accuracy('Yes', array_repeat('yes', 10)) AS cur, vqa_accuracy('Yes', array_repeat('yes', 10), variant => 'pre2021') AS old;\n+-----+-----+\n| cur | old |\n+-----+-----+\n| 0.0 | 1.0 |\n+-----+-----+\n```",
    )
    .build()
});

/// `vqa_accuracy(pred, answers [, variant] [, on_error])`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VqaAccuracyFunc {
    signature: Signature,
    params: Params,
}

impl VqaAccuracyFunc {
    pub fn new() -> Self {
        let params = Params::new(
            2,
            &[
                ("pred", Arg::Text),
                ("answers", Arg::Any),
                ("variant", Arg::Text),
                ("on_error", Arg::Text),
            ],
        );
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl Default for VqaAccuracyFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for VqaAccuracyFunc {
    fn name(&self) -> &str {
        "vqa_accuracy"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Float64, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut types = self.params.coerce(self.name(), arg_types)?;
        types[1] = lists::coerce_text_list(self.name(), "answers", &arg_types[1])?;
        Ok(types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (_, policy) = self.params.policy(self.name(), &args)?;
        let variant = match common::const_str(self.name(), "variant", &args.args, 2)? {
            Some(v) => VqaVariant::parse(&v)?,
            None => VqaVariant::Current,
        };
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..2], args.number_rows)?;
        let preds = common::str_values(self.name(), &arrays[0])?;
        let answers = lists::text_lists(self.name(), "answers", &arrays[1])?;
        let (values, errors) =
            common::map_rows(preds.into_iter().zip(answers), |_, (pred, answers)| {
                let answers = match answers {
                    Some(a) if !a.is_empty() => a,
                    _ => {
                        return Err(
                            "answers is NULL or empty: VQA accuracy needs the human answers"
                                .to_string(),
                        )
                    }
                };
                if let Some(k) = answers.iter().position(Option::is_none) {
                    return Err(format!("answer {} of the human answers is NULL", k + 1));
                }
                let answers: Vec<&str> = answers.iter().map(|a| a.unwrap_or("")).collect();
                Ok(Some(match pred {
                    None => 0.0,
                    Some(p) => vqa_accuracy(p, &answers, variant),
                }))
            });
        let array: ArrayRef = Arc::new(Float64Array::from(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_examples_from_the_reference_notes() {
        let both = |s: &str| process_digit_article(&process_punctuation(s));
        assert_eq!(process_punctuation("yes!"), "yes ");
        assert_eq!(both("3,000"), "3000");
        assert_eq!(both("t-shirt"), "t shirt");
        assert_eq!(both("yes, it is"), "yes it is");
        assert_eq!(process_punctuation("hello-world, 1,2"), "helloworld 12");
        assert_eq!(both("Dont"), "don't");
        assert_eq!(both("the Ten dogs"), "10 dogs");
        assert_eq!(process_punctuation("u.s. 2.5 5."), "us 2.5 5");
    }

    #[test]
    fn the_two_versions_differ_where_documented() {
        let ten_yes = ["yes"; 10];
        assert_eq!(vqa_accuracy("Yes", &ten_yes, VqaVariant::Current), 0.0);
        assert_eq!(vqa_accuracy("Yes", &ten_yes, VqaVariant::Pre2021), 1.0);
        let mixed = ["two", "two", "two", "two", "two", "two", "two", "2", "two", "two"];
        assert_eq!(vqa_accuracy("two", &mixed, VqaVariant::Current), 1.0);
        assert!((vqa_accuracy("two", &mixed, VqaVariant::Pre2021) - 0.3).abs() < 1e-12);
    }
}
