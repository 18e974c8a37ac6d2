//! POPE question files (`coco_pope_random.json`, `_popular`, `_adversarial`, and the A-OKVQA /
//! GQA variants): one JSON object per line, `{"question_id", "image", "text", "label"}` with
//! label `yes` or `no` -> one `vqa` sample per question (`target` and `answers` = the label),
//! scored by `queries/eval_pope.sql`.
//!
//! Read line by line and written in row groups, so a file of any size streams. A malformed line
//! is skipped with a one-line reason naming the file and line, and counted; it is never guessed.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{json_lines, write_samples, ImportOptions, Sample, SamplesReport};

/// Reads a POPE question file and writes its samples to `out`.
pub fn import_pope(questions: &Path, opts: &ImportOptions, out: &Path) -> Result<SamplesReport> {
    let mut skipped = Vec::new();
    let rows = pope_rows(questions, opts)?;
    let samples = rows.filter_map(|r| r.map_err(|e| skipped.push(e)).ok());
    let n = write_samples(out, samples)?;
    Ok(SamplesReport { samples: n, skipped })
}

/// The samples of a POPE question file in memory, with the skipped lines.
pub fn pope_samples(questions: &Path, opts: &ImportOptions) -> Result<(Vec<Sample>, Vec<String>)> {
    let mut skipped = Vec::new();
    let samples =
        pope_rows(questions, opts)?.filter_map(|r| r.map_err(|e| skipped.push(e)).ok()).collect();
    Ok((samples, skipped))
}

/// One sample or one skip reason per non-blank line, lazily.
fn pope_rows<'a>(
    path: &'a Path,
    opts: &'a ImportOptions,
) -> Result<impl Iterator<Item = std::result::Result<Sample, String>> + 'a> {
    let source = opts.source.clone().unwrap_or_else(|| "pope".to_string());
    let mut seen = HashSet::new();
    json_lines(path, move |_, line| pope_sample(line, &source, opts, &mut seen))
}

fn pope_sample(
    line: &str,
    source: &str,
    opts: &ImportOptions,
    seen: &mut HashSet<String>,
) -> std::result::Result<Sample, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let qid = match &v["question_id"] {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::String(s) if !s.is_empty() => s.clone(),
        _ => return Err("no question_id".into()),
    };
    let text = |key: &str| match &v[key] {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(format!("question {qid}: no {key}")),
    };
    let image = text("image")?;
    let question = text("text")?;
    let label = text("label")?;
    if label != "yes" && label != "no" {
        return Err(format!("question {qid}: label must be yes or no, got {label:?}"));
    }
    if !seen.insert(qid.clone()) {
        return Err(format!("question {qid}: duplicate question_id"));
    }
    let image_id = Path::new(&image).file_stem().map(|s| s.to_string_lossy().into_owned());
    Ok(Sample {
        sample_id: format!("{source}-{qid}"),
        task: "vqa".into(),
        image_id,
        image_path: Some(format!("{}{image}", opts.images_prefix)),
        instruction: question,
        answers: Some(vec![label.clone()]),
        target: Some(label),
        split: opts.split.clone(),
        source: Some(source.to_string()),
        ..Default::default()
    })
}
