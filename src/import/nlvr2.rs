//! NLVR2 (official JSON lines, `dev.json` / `test1.json` / `train.json`: one object per line with
//! `identifier`, `sentence`, `label` (`True`/`False`) and, for train, `directory`) plus its image
//! pairs -> one `nlvr` sample per statement, both images embedded in `images` (left, right), as
//! `queries/eval_nlvr.sql` reads them.
//!
//! The image files are named after the identifier without its final `-<n>`:
//! `dev-850-0-0` -> `dev-850-0-img0.png` and `dev-850-0-img1.png`, under `--images` (train:
//! under `--images/<directory>/`). Lines are read one at a time and samples written in row
//! groups; a malformed line or a missing image is skipped with a one-line reason and counted.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::{json_lines, ImportOptions, Sample, SamplesReport, SamplesWriter};

/// Reads an NLVR2 statement file and its images under `images_dir`; writes samples to `out`.
pub fn import_nlvr2(
    statements: &Path,
    images_dir: &Path,
    opts: &ImportOptions,
    out: &Path,
) -> Result<SamplesReport> {
    let mut w = SamplesWriter::create(out)?;
    let mut skipped = Vec::new();
    for r in rows(statements, images_dir, opts)? {
        match r {
            Ok(s) => w.push(s)?,
            Err(e) => skipped.push(e),
        }
    }
    Ok(SamplesReport { samples: w.finish()?, skipped })
}

/// The samples of an NLVR2 statement file in memory, with the skipped lines.
pub fn nlvr2_samples(
    statements: &Path,
    images_dir: &Path,
    opts: &ImportOptions,
) -> Result<(Vec<Sample>, Vec<String>)> {
    let (mut samples, mut skipped) = (Vec::new(), Vec::new());
    for r in rows(statements, images_dir, opts)? {
        match r {
            Ok(s) => samples.push(s),
            Err(e) => skipped.push(e),
        }
    }
    Ok((samples, skipped))
}

fn rows<'a>(
    path: &'a Path,
    images_dir: &'a Path,
    opts: &'a ImportOptions,
) -> Result<impl Iterator<Item = std::result::Result<Sample, String>> + 'a> {
    let source = opts.source.clone().unwrap_or_else(|| "nlvr2".to_string());
    let mut seen = HashSet::new();
    json_lines(path, move |_, line| sample(line, images_dir, &source, opts, &mut seen))
}

fn sample(
    line: &str,
    images_dir: &Path,
    source: &str,
    opts: &ImportOptions,
    seen: &mut HashSet<String>,
) -> std::result::Result<Sample, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let id = v["identifier"].as_str().filter(|s| !s.is_empty()).ok_or("no identifier")?;
    let sentence = v["sentence"]
        .as_str()
        .filter(|s| !s.trim().is_empty())
        .ok_or(format!("{id}: no sentence"))?;
    let target = match v["label"].as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("true") => "true",
        Some("false") => "false",
        _ => return Err(format!("{id}: label must be True or False, got {}", v["label"])),
    };
    let pair = match id.rsplit_once('-') {
        Some((pair, n)) if !pair.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => pair,
        _ => return Err(format!("{id}: identifier does not end in -<number>")),
    };
    if !seen.insert(id.to_string()) {
        return Err(format!("{id}: duplicate identifier"));
    }
    let dir = match v["directory"].as_str() {
        Some(d) => images_dir.join(d),
        None => images_dir.to_path_buf(),
    };
    let images = (0..2)
        .map(|k| {
            let p = dir.join(format!("{pair}-img{k}.png"));
            std::fs::read(&p).map_err(|e| format!("{id}: image {}: {e}", p.display()))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    let split = opts.split.clone().or_else(|| pair.split('-').next().map(str::to_string));
    Ok(Sample {
        sample_id: format!("{source}-{id}"),
        task: "nlvr".into(),
        image_id: Some(pair.to_string()),
        images: Some(images),
        instruction: sentence.to_string(),
        target: Some(target.to_string()),
        split,
        source: Some(source.to_string()),
        ..Default::default()
    })
}
