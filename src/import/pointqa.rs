//! PointQA and Visual7W pointing in the JSON-lines layout Shikra published and VistaLLM trains
//! and evaluates on (`pointQA_local_*.jsonl`, `pointQA_twice_*.jsonl`, `v7w_pointing_*.jsonl`).
//! Each line is one question about a Visual Genome / Visual7W image (`file_path`), with boxes as
//! pixel `[x0, y0, x1, y1]` and points as pixel `[x, y]`:
//!
//! - PointQA Local: `question`, `answer`, `bbox`, `point` -> a `pointqa` sample whose `points`
//!   hold the queried point or box (`--query`), `answers` and `target` the answer;
//! - LookTwice-QA: the same with three phrasings, `obj_question`, `super_question`,
//!   `general_question` (`--question object|super|general` picks one, as the benchmark reports
//!   each separately);
//! - Visual7W pointing: `question`, `candidates` (boxes) and `answer` (the right candidate's box)
//!   -> a `pointing` sample whose `boxes` are the candidates in an order fixed by the sample id
//!   (the files list the answer first; Shikra shuffles at test time) and whose `answers` hold
//!   the 1-based position of the right one.
//!
//! The layout is recognised per line. Read line by line and written in row groups; a malformed
//! line is skipped with a one-line reason naming the file and line, and counted.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;
use vista_udfs::text::stable_hash::stable_hash;

use super::{json_lines, write_samples, ImportOptions, Sample, SamplesReport};

/// Which region a PointQA question is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Query {
    /// The queried point `[x, y]` (the benchmark's "p" variants).
    #[default]
    Point,
    /// The queried object's box `[x0, y0, x1, y1]` ("b" variants).
    Box,
}

/// Which of LookTwice-QA's phrasings to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phrasing {
    /// `obj_question` ("oq"): names the object.
    Object,
    /// `super_question` ("sq"): names the object's super-class.
    Super,
    /// `general_question` ("gq"): "this object".
    #[default]
    General,
}

impl std::str::FromStr for Query {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "point" | "p" => Ok(Query::Point),
            "box" | "b" => Ok(Query::Box),
            _ => Err(format!("--query must be point or box, got '{s}'")),
        }
    }
}

impl std::str::FromStr for Phrasing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "object" | "oq" => Ok(Phrasing::Object),
            "super" | "sq" => Ok(Phrasing::Super),
            "general" | "gq" => Ok(Phrasing::General),
            _ => Err(format!("--question must be object, super or general, got '{s}'")),
        }
    }
}

/// How PointQA lines become samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct PointQaOptions {
    pub query: Query,
    pub phrasing: Phrasing,
}

/// Reads a PointQA / LookTwice / Visual7W pointing file and writes its samples to `out`.
pub fn import_pointqa(
    path: &Path,
    pq: PointQaOptions,
    opts: &ImportOptions,
    out: &Path,
) -> Result<SamplesReport> {
    let mut skipped = Vec::new();
    let samples = pointqa_rows(path, pq, opts)?.filter_map(|r| r.map_err(|e| skipped.push(e)).ok());
    let n = write_samples(out, samples)?;
    Ok(SamplesReport { samples: n, skipped })
}

/// The samples of [`import_pointqa`] in memory, with the skipped lines.
pub fn pointqa_samples(
    path: &Path,
    pq: PointQaOptions,
    opts: &ImportOptions,
) -> Result<(Vec<Sample>, Vec<String>)> {
    let mut skipped = Vec::new();
    let samples =
        pointqa_rows(path, pq, opts)?.filter_map(|r| r.map_err(|e| skipped.push(e)).ok()).collect();
    Ok((samples, skipped))
}

/// One sample or one skip reason per non-blank line, lazily.
fn pointqa_rows<'a>(
    path: &'a Path,
    pq: PointQaOptions,
    opts: &'a ImportOptions,
) -> Result<impl Iterator<Item = std::result::Result<Sample, String>> + 'a> {
    let source = opts.source.clone().unwrap_or_else(|| "pointqa".to_string());
    json_lines(path, move |n, line| line_sample(line, format!("{source}-{n}"), &source, pq, opts))
}

fn line_sample(
    line: &str,
    sample_id: String,
    source: &str,
    pq: PointQaOptions,
    opts: &ImportOptions,
) -> std::result::Result<Sample, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let text = |key: &str| match &v[key] {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(format!("no {key}")),
    };
    let file_path = text("file_path")?;
    let base = Sample {
        sample_id,
        image_id: Path::new(&file_path).file_stem().map(|s| s.to_string_lossy().into_owned()),
        image_path: Some(format!("{}{file_path}", opts.images_prefix)),
        split: opts.split.clone(),
        source: Some(source.to_string()),
        ..Default::default()
    };
    if v.get("candidates").is_some() {
        return pointing_sample(&v, base);
    }
    let question = if v.get("obj_question").is_some() {
        text(match pq.phrasing {
            Phrasing::Object => "obj_question",
            Phrasing::Super => "super_question",
            Phrasing::General => "general_question",
        })?
    } else {
        text("question")?
    };
    let answer = match &v["answer"] {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err("no answer".into()),
    };
    let points = match pq.query {
        Query::Point => numbers(&v["point"], 2, "point")?,
        Query::Box => ordered_box(&v["bbox"], "bbox")?.to_vec(),
    };
    Ok(Sample {
        task: "pointqa".into(),
        instruction: question,
        answers: Some(vec![answer.clone()]),
        target: Some(answer),
        points: Some(points),
        ..base
    })
}

/// A Visual7W pointing line: the candidates in a per-sample order, the answer's position.
fn pointing_sample(v: &Value, base: Sample) -> std::result::Result<Sample, String> {
    let question = match &v["question"] {
        Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err("no question".into()),
    };
    let Value::Array(list) = &v["candidates"] else {
        return Err("candidates is not a list of boxes".into());
    };
    if list.len() < 2 {
        return Err(format!("{} candidate(s); pointing needs at least 2", list.len()));
    }
    let candidates = list
        .iter()
        .enumerate()
        .map(|(i, b)| ordered_box(b, &format!("candidate {}", i + 1)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let answer = ordered_box(&v["answer"], "answer")?;
    let right = candidates
        .iter()
        .position(|c| *c == answer)
        .ok_or_else(|| "the answer box is not one of the candidates".to_string())?;
    // A fixed, id-derived order: the same on every machine and import, and the answer is not
    // always in the position the file gives it.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| stable_hash(&format!("{}/{i}", base.sample_id), 0));
    let position = order.iter().position(|&i| i == right).expect("a permutation") + 1;
    Ok(Sample {
        task: "pointing".into(),
        instruction: question,
        boxes: Some(order.iter().map(|&i| candidates[i]).collect()),
        answers: Some(vec![position.to_string()]),
        target: None,
        ..base
    })
}

/// `n` finite numbers from a JSON list.
fn numbers(v: &Value, n: usize, what: &str) -> std::result::Result<Vec<f64>, String> {
    let list = v.as_array().ok_or_else(|| format!("no {what}"))?;
    let out: Vec<f64> = list.iter().filter_map(Value::as_f64).filter(|x| x.is_finite()).collect();
    if list.len() != n || out.len() != n {
        return Err(format!("{what} must be {n} finite numbers, got {v}"));
    }
    Ok(out)
}

/// A pixel box `[x0, y0, x1, y1]` with `x0 <= x1` and `y0 <= y1`.
fn ordered_box(v: &Value, what: &str) -> std::result::Result<[f64; 4], String> {
    let b = numbers(v, 4, what)?;
    if b[0] > b[2] || b[1] > b[3] {
        return Err(format!("{what} {v} is not [x0, y0, x1, y1] with x0 <= x1, y0 <= y1"));
    }
    Ok([b[0], b[1], b[2], b[3]])
}
