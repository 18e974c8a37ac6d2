//! Karpathy split files (`dataset_coco.json`, `dataset_flickr30k.json`, `dataset_flickr8k.json`):
//! `{"images": [{"filepath"?, "filename", "imgid", "cocoid"?, "split", "sentences": [{"raw",
//! ...}]}], "dataset"}` -> one `caption` sample per image with every reference sentence in
//! `answers`, scored by `queries/eval_caption.sql`.
//!
//! The image id is COCO's `cocoid` when present (so COCO result files carry the official ids),
//! else the file name's stem (Flickr30k's ids). `image_path` = prefix + `filepath/` + `filename`.
//! `--split` keeps one Karpathy split (`train`, `restval`, `val`, `test`). The `images` array is
//! streamed element by element; a malformed image record is skipped with a one-line reason.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::instances::stream_object_arrays;
use super::{ImportOptions, Sample, SamplesReport, SamplesWriter};

/// Reads a Karpathy split file and writes its caption samples to `out`.
pub fn import_karpathy(path: &Path, opts: &ImportOptions, out: &Path) -> Result<SamplesReport> {
    let mut w = SamplesWriter::create(out)?;
    let mut skipped = Vec::new();
    let mut failed = None;
    each_sample(path, opts, |r| match r {
        Ok(s) => {
            if let Err(e) = w.push(s) {
                failed = Some(e);
            }
        }
        Err(e) => skipped.push(e),
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(SamplesReport { samples: w.finish()?, skipped })
}

/// The samples of a Karpathy split file in memory, with the skipped records.
pub fn karpathy_samples(path: &Path, opts: &ImportOptions) -> Result<(Vec<Sample>, Vec<String>)> {
    let (mut samples, mut skipped) = (Vec::new(), Vec::new());
    each_sample(path, opts, |r| match r {
        Ok(s) => samples.push(s),
        Err(e) => skipped.push(e),
    })?;
    Ok((samples, skipped))
}

fn each_sample(
    path: &Path,
    opts: &ImportOptions,
    mut each: impl FnMut(std::result::Result<Sample, String>),
) -> Result<()> {
    let source = opts.source.clone().unwrap_or_else(|| "karpathy".to_string());
    let name = path.display().to_string();
    let mut seen = std::collections::HashSet::new();
    stream_object_arrays(path, &["images"], "a Karpathy split file", |_, index, v| {
        match image_sample(&v, &source, opts) {
            Ok(Some(s)) if !seen.insert(s.sample_id.clone()) => each(Err(format!(
                "{name} image #{index}: duplicate image id {}",
                s.image_id.unwrap_or_default()
            ))),
            Ok(Some(s)) => each(Ok(s)),
            Ok(None) => {}
            Err(e) => each(Err(format!("{name} image #{index}: {e}"))),
        }
        Ok(())
    })
}

/// The sample of one image record; `None` when it is not in the wanted split.
fn image_sample(
    v: &Value,
    source: &str,
    opts: &ImportOptions,
) -> std::result::Result<Option<Sample>, String> {
    let filename = v["filename"].as_str().filter(|s| !s.is_empty()).ok_or("no filename")?;
    let split = v["split"].as_str().map(str::to_string);
    if opts.split.is_some() && split != opts.split {
        return Ok(None);
    }
    let image_id = match &v["cocoid"] {
        Value::Number(n) => n.to_string(),
        Value::Null => Path::new(filename)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .ok_or("no image id")?,
        other => return Err(format!("{filename}: cocoid must be a number, got {other}")),
    };
    let sentences =
        v["sentences"].as_array().ok_or_else(|| format!("{filename}: no sentences list"))?;
    let mut answers = Vec::with_capacity(sentences.len());
    for (k, s) in sentences.iter().enumerate() {
        match s["raw"].as_str().map(str::trim) {
            Some(raw) if !raw.is_empty() => answers.push(raw.to_string()),
            _ => return Err(format!("{filename}: sentence {} has no raw text", k + 1)),
        }
    }
    if answers.is_empty() {
        return Err(format!("{filename}: no sentences"));
    }
    let dir = match v["filepath"].as_str() {
        Some(d) if !d.is_empty() => format!("{d}/"),
        _ => String::new(),
    };
    Ok(Some(Sample {
        sample_id: format!("{source}-{image_id}"),
        task: "caption".into(),
        image_id: Some(image_id),
        image_path: Some(format!("{}{dir}{filename}", opts.images_prefix)),
        answers: Some(answers),
        split,
        source: Some(source.to_string()),
        ..Default::default()
    }))
}
