//! Region captioning samples (`task = region_caption`, the region in `points` as a pixel box
//! `[x0, y0, x1, y1]`, the reference descriptions in `answers`), scored by
//! `queries/eval_region_caption.sql`:
//!
//! - Visual Genome `region_descriptions.json`: a top-level list of `{"id", "regions": [{"region_id",
//!   "image_id", "x", "y", "width", "height", "phrase"}]}`, streamed image by image -> one
//!   sample per region (`image_path` = prefix + `<image_id>.jpg`, as VG_100K names its files). A
//!   malformed region is skipped with a one-line reason.
//! - RefCOCOg (or RefCOCO/+) refs with their COCO instances, read as the `refs` importer reads
//!   them -> one sample per ref: the referred object's box, every sentence of the ref as a
//!   reference description.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::instances::stream_top_array;
use super::refs::{ann_ids, InstanceAnn, Instances, Ref, RefsFile};
use super::{
    read_json, write_samples, xywh_to_xyxy, CocoImage, ImportOptions, Sample, SamplesReport,
    SamplesWriter,
};

/// Reads Visual Genome region descriptions and writes region captioning samples to `out`.
pub fn import_vg_regions(path: &Path, opts: &ImportOptions, out: &Path) -> Result<SamplesReport> {
    let mut w = SamplesWriter::create(out)?;
    let mut skipped = Vec::new();
    let mut failed = None;
    each_vg_sample(path, opts, |r| match r {
        Ok(s) => {
            if let Err(e) = w.push(s) {
                failed.get_or_insert(e);
            }
        }
        Err(e) => skipped.push(e),
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(SamplesReport { samples: w.finish()?, skipped })
}

/// The samples of [`import_vg_regions`] in memory, with the skipped regions.
pub fn vg_region_samples(path: &Path, opts: &ImportOptions) -> Result<(Vec<Sample>, Vec<String>)> {
    let (mut samples, mut skipped) = (Vec::new(), Vec::new());
    each_vg_sample(path, opts, |r| match r {
        Ok(s) => samples.push(s),
        Err(e) => skipped.push(e),
    })?;
    Ok((samples, skipped))
}

fn each_vg_sample(
    path: &Path,
    opts: &ImportOptions,
    mut each: impl FnMut(std::result::Result<Sample, String>),
) -> Result<()> {
    let source = opts.source.clone().unwrap_or_else(|| "vg".to_string());
    let name = path.display().to_string();
    let mut seen = HashSet::new();
    stream_top_array(path, "a Visual Genome region descriptions file", |index, image| {
        let Some(regions) = image["regions"].as_array() else {
            each(Err(format!("{name} image #{index}: no regions list")));
            return Ok(());
        };
        for (k, r) in regions.iter().enumerate() {
            let s = vg_sample(r, &image["id"], &source, opts)
                .and_then(|s| {
                    if seen.insert(s.sample_id.clone()) {
                        Ok(s)
                    } else {
                        Err(format!("duplicate region id in {}", s.sample_id))
                    }
                })
                .map_err(|e| format!("{name} image #{index} region #{k}: {e}"));
            each(s);
        }
        Ok(())
    })
}

fn vg_sample(
    r: &Value,
    image_id: &Value,
    source: &str,
    opts: &ImportOptions,
) -> std::result::Result<Sample, String> {
    let int = |v: &Value, what: &str| v.as_i64().ok_or_else(|| format!("no integer {what}"));
    let region_id = int(&r["region_id"], "region_id")?;
    let image_id =
        int(if r["image_id"].is_null() { image_id } else { &r["image_id"] }, "image_id")?;
    let num = |key: &str| {
        r[key]
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("region {region_id}: no {key}"))
    };
    let (x, y, w, h) = (num("x")?, num("y")?, num("width")?, num("height")?);
    if w <= 0.0 || h <= 0.0 {
        return Err(format!("region {region_id}: empty box {w} x {h}"));
    }
    let phrase = r["phrase"]
        .as_str()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("region {region_id}: no phrase"))?;
    Ok(Sample {
        sample_id: format!("{source}-{region_id}"),
        task: "region_caption".into(),
        image_id: Some(image_id.to_string()),
        image_path: Some(format!("{}{image_id}.jpg", opts.images_prefix)),
        points: Some(vec![x, y, x + w, y + h]),
        target: Some(phrase.to_string()),
        answers: Some(vec![phrase.to_string()]),
        split: opts.split.clone(),
        source: Some(source.to_string()),
        ..Default::default()
    })
}

/// RefCOCOg-style refs with the COCO instances they index -> region captioning samples.
pub fn import_refs_regions(
    refs: &Path,
    instances: &Path,
    opts: &ImportOptions,
    out: &Path,
) -> Result<usize> {
    write_samples(out, refs_region_samples(refs, instances, opts)?)
}

/// The samples of [`import_refs_regions`]: one per ref, its sentences as references.
pub fn refs_region_samples(
    refs: &Path,
    instances: &Path,
    opts: &ImportOptions,
) -> Result<Vec<Sample>> {
    let mut refs: Vec<Ref> = match read_json::<RefsFile>(refs)? {
        RefsFile::List(v) | RefsFile::Wrapped { refs: v } => v,
    };
    let inst: Instances = read_json(instances)?;
    let source = opts.source.clone().unwrap_or_else(|| "refcocog".into());
    let images: HashMap<i64, CocoImage> = inst.images.into_iter().map(|i| (i.id, i)).collect();
    let anns: HashMap<i64, InstanceAnn> = inst.annotations.into_iter().map(|a| (a.id, a)).collect();
    refs.sort_by_key(|r| r.ref_id);
    let mut samples = Vec::new();
    for r in refs {
        if opts.split.is_some() && r.split != opts.split {
            continue;
        }
        let img = images.get(&r.image_id).with_context(|| {
            format!("ref {}: image {} is not in the instances file", r.ref_id, r.image_id)
        })?;
        let ids = ann_ids(&r)?;
        let [id] = ids[..] else {
            bail!(
                "ref {}: {} target objects; a region caption needs exactly one",
                r.ref_id,
                ids.len()
            )
        };
        let ann = anns.get(&id).with_context(|| {
            format!("ref {}: annotation {id} is not in the instances file", r.ref_id)
        })?;
        let answers: Vec<String> = r.sentences.iter().map(|s| s.sent.clone()).collect();
        if answers.is_empty() {
            bail!("ref {}: no sentences", r.ref_id);
        }
        samples.push(Sample {
            sample_id: format!("{source}-{}", r.ref_id),
            task: "region_caption".into(),
            image_id: Some(r.image_id.to_string()),
            image_path: Some(format!("{}{}", opts.images_prefix, img.file_name)),
            width: img.width,
            height: img.height,
            points: Some(xywh_to_xyxy(ann.bbox).to_vec()),
            target: Some(answers[0].clone()),
            answers: Some(answers),
            split: r.split.clone(),
            source: Some(source.clone()),
            ..Default::default()
        });
    }
    Ok(samples)
}
