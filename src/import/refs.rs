//! RefCOCO / RefCOCO+ / RefCOCOg refs and gRefCOCO grefs, with the COCO instances they index ->
//! rec / res / grec / gres samples.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use vista_udfs::contour::mask::{decode_counts, encode_counts, Mask};

use super::{read_json, write_samples, CocoImage, ImportOptions, Sample};

/// Which samples to make from referring expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefTask {
    /// One box per expression (RefCOCO/+/g).
    Rec,
    /// One mask per expression (RefCOCO/+/g).
    Res,
    /// Zero or more boxes per expression (gRefCOCO).
    Grec,
    /// Zero or more masks per expression (gRefCOCO).
    Gres,
}

impl RefTask {
    pub fn parse(s: &str) -> Result<RefTask> {
        Ok(match s {
            "rec" => RefTask::Rec,
            "res" => RefTask::Res,
            "grec" => RefTask::Grec,
            "gres" => RefTask::Gres,
            other => bail!("unknown referring task '{other}' (rec, res, grec, gres)"),
        })
    }
    fn name(self) -> &'static str {
        match self {
            RefTask::Rec => "rec",
            RefTask::Res => "res",
            RefTask::Grec => "grec",
            RefTask::Gres => "gres",
        }
    }
}

#[derive(Deserialize)]
pub(super) struct Ref {
    pub(super) ref_id: i64,
    pub(super) image_id: i64,
    pub(super) split: Option<String>,
    /// One id (RefCOCO) or a list (gRefCOCO; `[-1]` for no target).
    pub(super) ann_id: serde_json::Value,
    pub(super) sentences: Vec<RefSentence>,
    #[serde(default)]
    pub(super) no_target: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct RefSentence {
    pub(super) sent_id: i64,
    pub(super) sent: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RefsFile {
    List(Vec<Ref>),
    Wrapped { refs: Vec<Ref> },
}

#[derive(Deserialize)]
pub(super) struct Instances {
    pub(super) images: Vec<CocoImage>,
    pub(super) annotations: Vec<InstanceAnn>,
}

#[derive(Deserialize)]
pub(super) struct InstanceAnn {
    pub(super) id: i64,
    pub(super) bbox: [f64; 4],
    #[serde(default)]
    pub(super) segmentation: Option<serde_json::Value>,
}

/// RefCOCO-style refs (the JSON dump of `refs(unc).p`, see docs/eval.md, or gRefCOCO's
/// `grefs(unc).json`) with the COCO `instances.json` they index -> one sample per sentence.
pub fn import_refs(
    refs: &Path,
    instances: &Path,
    task: RefTask,
    opts: &ImportOptions,
    out: &Path,
) -> Result<usize> {
    write_samples(out, refs_samples(refs, instances, task, opts)?)
}

/// The samples of [`import_refs`].
pub fn refs_samples(
    refs: &Path,
    instances: &Path,
    task: RefTask,
    opts: &ImportOptions,
) -> Result<Vec<Sample>> {
    let refs: Vec<Ref> = match read_json::<RefsFile>(refs)? {
        RefsFile::List(v) | RefsFile::Wrapped { refs: v } => v,
    };
    let inst: Instances = read_json(instances)?;
    let source = opts.source.clone().unwrap_or_else(|| {
        if matches!(task, RefTask::Grec | RefTask::Gres) {
            "grefcoco".into()
        } else {
            "refcoco".into()
        }
    });
    let images: HashMap<i64, CocoImage> = inst.images.into_iter().map(|i| (i.id, i)).collect();
    let anns: HashMap<i64, InstanceAnn> = inst.annotations.into_iter().map(|a| (a.id, a)).collect();
    let mut samples = Vec::new();
    let mut refs = refs;
    refs.sort_by_key(|r| r.ref_id);
    for r in refs {
        if opts.split.is_some() && r.split != opts.split {
            continue;
        }
        let img = images.get(&r.image_id).with_context(|| {
            format!("ref {}: image {} is not in the instances file", r.ref_id, r.image_id)
        })?;
        let ids = ann_ids(&r)?;
        if ids.is_empty() && matches!(task, RefTask::Rec | RefTask::Res) {
            bail!("ref {}: no target object, but {} needs exactly one", r.ref_id, task.name());
        }
        if ids.len() > 1 && matches!(task, RefTask::Rec | RefTask::Res) {
            bail!(
                "ref {}: {} target objects; use grec/gres for multi-target refs",
                r.ref_id,
                ids.len()
            );
        }
        let (w, h) = match (img.width, img.height) {
            (Some(w), Some(h)) => (w, h),
            _ => bail!("image {}: the instances file gives no width/height", img.id),
        };
        let objs: Vec<&InstanceAnn> = ids
            .iter()
            .map(|id| {
                anns.get(id).with_context(|| {
                    format!("ref {}: annotation {id} is not in the instances file", r.ref_id)
                })
            })
            .collect::<Result<_>>()?;
        let boxes: Vec<[f64; 4]> = objs.iter().map(|a| xywh_to_xyxy(a.bbox)).collect();
        let masks = if matches!(task, RefTask::Res | RefTask::Gres) {
            Some(
                objs.iter()
                    .map(|a| {
                        segmentation_rle(a, h, w)
                            .with_context(|| format!("ref {}, annotation {}", r.ref_id, a.id))
                    })
                    .collect::<Result<Vec<_>>>()?,
            )
        } else {
            None
        };
        for s in &r.sentences {
            samples.push(Sample {
                sample_id: format!("{source}-{}-{}", r.ref_id, s.sent_id),
                task: task.name().into(),
                image_id: Some(r.image_id.to_string()),
                image_path: Some(format!("{}{}", opts.images_prefix, img.file_name)),
                width: Some(w),
                height: Some(h),
                instruction: s.sent.clone(),
                boxes: Some(boxes.clone()),
                masks: masks.clone(),
                split: r.split.clone(),
                source: Some(source.clone()),
                ..Default::default()
            });
        }
    }
    Ok(samples)
}

/// The referred annotation ids; `[-1]` or `no_target` means none.
pub(super) fn ann_ids(r: &Ref) -> Result<Vec<i64>> {
    let ids: Vec<i64> = match &r.ann_id {
        serde_json::Value::Number(n) => vec![n.as_i64().context("ann_id is not an integer")?],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|v| v.as_i64().context("ann_id is not an integer"))
            .collect::<Result<_>>()?,
        other => bail!("ref {}: ann_id must be a number or a list, got {other}", r.ref_id),
    };
    if r.no_target == Some(true) {
        return Ok(Vec::new());
    }
    Ok(ids.into_iter().filter(|&i| i >= 0).collect())
}

/// COCO `[x, y, w, h]` -> pixel `[x0, y0, x1, y1]`.
pub fn xywh_to_xyxy(b: [f64; 4]) -> [f64; 4] {
    [b[0], b[1], b[0] + b[2], b[1] + b[3]]
}

/// An annotation's segmentation as compressed RLE: polygons rasterised like pycocotools,
/// uncompressed RLE re-encoded, compressed RLE kept.
fn segmentation_rle(a: &InstanceAnn, h: i32, w: i32) -> Result<(i32, i32, String)> {
    let seg = a.segmentation.as_ref().context("no segmentation")?;
    match seg {
        serde_json::Value::Array(polys) => {
            let polys: Vec<Vec<f64>> = polys
                .iter()
                .map(|p| {
                    serde_json::from_value::<Vec<f64>>(p.clone())
                        .context("a polygon is not a list of numbers")
                })
                .collect::<Result<_>>()?;
            let m = Mask::from_polygons(h as usize, w as usize, &polys);
            Ok((h, w, m.rle_string()))
        }
        serde_json::Value::Object(o) => {
            let counts = o.get("counts").context("RLE without counts")?;
            match counts {
                serde_json::Value::String(s) => {
                    decode_counts(s).map_err(|e| anyhow::anyhow!("bad RLE counts: {e}"))?;
                    Ok((h, w, s.clone()))
                }
                serde_json::Value::Array(c) => {
                    let c: Vec<u64> = c
                        .iter()
                        .map(|v| v.as_u64().context("RLE counts must be integers"))
                        .collect::<Result<_>>()?;
                    Ok((h, w, encode_counts(&c)))
                }
                _ => bail!("RLE counts must be a string or a list"),
            }
        }
        other => bail!("unsupported segmentation {other}"),
    }
}
