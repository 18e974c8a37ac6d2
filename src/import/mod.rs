//! Importers from the formats benchmarks ship in to the samples layout (schemas/samples.json):
//! COCO captions, VQAv2 questions + annotations, RefCOCO/+/g refs (the JSON dump of the
//! `refs(*).p` pickle) with COCO instances, and gRefCOCO `grefs(*).json`.
//!
//! Images are referenced by path (`image_path` = `--images` prefix + COCO file name, resolved
//! later against `vista.base_dir`); boxes are converted from COCO's `[x, y, w, h]` to pixel
//! `[x0, y0, x1, y1]`; masks become COCO compressed RLE (polygons rasterised exactly as
//! pycocotools does). Input JSON is read with typed, field-selective deserialisation (unknown
//! fields are skipped without being kept) and output is written in row groups as it is built.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::ListArray;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int32Builder, ListBuilder, RecordBatch, StringBuilder,
    StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use serde::Deserialize;
use vista_udfs::contour::mask::{decode_counts, encode_counts, Mask};

use crate::output::{self, AtomicFile};

pub mod coseg;
pub mod instances;
pub mod karpathy;
pub mod nlvr2;
pub mod pointqa;
pub mod pope;
pub mod regions;
pub use coseg::{coseg_samples, import_coseg};
pub use instances::{import_coco_instances, ImportReport, InstancesOptions};
pub use karpathy::{import_karpathy, karpathy_samples};
pub use nlvr2::{import_nlvr2, nlvr2_samples};
pub use pointqa::{import_pointqa, pointqa_samples, Phrasing, PointQaOptions, Query};
pub use pope::{import_pope, pope_samples};
pub use regions::{import_refs_regions, import_vg_regions, refs_region_samples, vg_region_samples};

/// Rows per written record batch (bounds memory on big sets).
const BATCH_ROWS: usize = 8192;

/// Options shared by every importer.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Prefix put before COCO file names in `image_path` (e.g. `val2014/`).
    pub images_prefix: String,
    /// Only refs of this split (RefCOCO/gRefCOCO: train, val, testA, testB, test); also written
    /// to the `split` column (COCO captions and VQAv2 have no split field: it is taken as given).
    pub split: Option<String>,
    /// Value of the `source` column and prefix of sample ids (default: the format's name).
    pub source: Option<String>,
}

/// What a line- or record-wise importer did: samples written, and each skipped record with a
/// one-line reason naming the file and the record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplesReport {
    pub samples: usize,
    pub skipped: Vec<String>,
}

impl SamplesReport {
    /// Prints the first 20 skipped records, one line each, and the count to stderr.
    pub fn print_skipped(&self) {
        for reason in self.skipped.iter().take(20) {
            eprintln!("skipped {reason}");
        }
        if !self.skipped.is_empty() {
            eprintln!("{} records skipped", self.skipped.len());
        }
    }
}

/// One sample being built; fields follow schemas/samples.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub sample_id: String,
    pub task: String,
    pub image_id: Option<String>,
    pub image_path: Option<String>,
    /// Encoded images of a multi-image sample (nlvr, coseg).
    pub images: Option<Vec<Vec<u8>>>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub instruction: String,
    pub target: Option<String>,
    pub answers: Option<Vec<String>>,
    pub boxes: Option<Vec<[f64; 4]>>,
    /// COCO RLE masks as (height, width, compressed counts).
    pub masks: Option<Vec<(i32, i32, String)>>,
    /// The point `[x, y]` or region `[x0, y0, x1, y1]` the instruction refers to (pointqa,
    /// region_caption), pixel space.
    pub points: Option<Vec<f64>>,
    pub split: Option<String>,
    pub source: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// COCO captions

#[derive(Deserialize)]
struct CocoImage {
    id: i64,
    file_name: String,
    width: Option<i32>,
    height: Option<i32>,
}

#[derive(Deserialize)]
struct CocoCaptionAnn {
    id: i64,
    image_id: i64,
    caption: String,
}

#[derive(Deserialize)]
struct CocoCaptions {
    images: Vec<CocoImage>,
    annotations: Vec<CocoCaptionAnn>,
}

/// `captions_*.json` -> one `caption` sample per image, its captions (by annotation id) in
/// `answers`, written to `out`; returns the number of samples.
pub fn import_coco_captions(annotations: &Path, opts: &ImportOptions, out: &Path) -> Result<usize> {
    write_samples(out, coco_captions_samples(annotations, opts)?)
}

/// The samples of [`import_coco_captions`].
pub fn coco_captions_samples(annotations: &Path, opts: &ImportOptions) -> Result<Vec<Sample>> {
    let data: CocoCaptions = read_json(annotations)?;
    let source = opts.source.clone().unwrap_or_else(|| "coco-captions".into());
    let mut caps: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
    for a in data.annotations {
        caps.entry(a.image_id).or_default().push((a.id, a.caption));
    }
    let mut images = data.images;
    images.sort_by_key(|i| i.id);
    let samples = images.into_iter().filter_map(|img| {
        let mut c = caps.remove(&img.id)?;
        c.sort_by_key(|x| x.0);
        Some(Sample {
            sample_id: format!("{source}-{}", img.id),
            task: "caption".into(),
            image_id: Some(img.id.to_string()),
            image_path: Some(format!("{}{}", opts.images_prefix, img.file_name)),
            width: img.width,
            height: img.height,
            instruction: String::new(),
            answers: Some(c.into_iter().map(|x| x.1).collect()),
            split: opts.split.clone(),
            source: Some(source.clone()),
            ..Default::default()
        })
    });
    Ok(samples.collect())
}

// ---------------------------------------------------------------------------------------------
// VQAv2

#[derive(Deserialize)]
struct VqaQuestions {
    data_subtype: Option<String>,
    questions: Vec<VqaQuestion>,
}

#[derive(Deserialize)]
struct VqaQuestion {
    question_id: i64,
    image_id: i64,
    question: String,
}

#[derive(Deserialize)]
struct VqaAnnotations {
    annotations: Vec<VqaAnnotation>,
}

#[derive(Deserialize)]
struct VqaAnnotation {
    question_id: i64,
    multiple_choice_answer: Option<String>,
    answers: Vec<VqaAnswer>,
}

#[derive(Deserialize)]
struct VqaAnswer {
    answer: String,
}

/// VQAv2 questions (+ annotations, absent for test-dev) -> one `vqa` sample per question, its
/// (usually 10) human answers in `answers` and the majority answer in `target`. Image paths
/// follow COCO's naming, `COCO_<data_subtype>_<12-digit id>.jpg`.
pub fn import_vqav2(
    questions: &Path,
    annotations: Option<&Path>,
    opts: &ImportOptions,
    out: &Path,
) -> Result<usize> {
    write_samples(out, vqav2_samples(questions, annotations, opts)?)
}

/// The samples of [`import_vqav2`].
pub fn vqav2_samples(
    questions: &Path,
    annotations: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Vec<Sample>> {
    let q: VqaQuestions = read_json(questions)?;
    let source = opts.source.clone().unwrap_or_else(|| "vqav2".into());
    let subtype = q.data_subtype.clone().unwrap_or_else(|| "val2014".into());
    let mut anns: HashMap<i64, VqaAnnotation> = HashMap::new();
    if let Some(a) = annotations {
        let a: VqaAnnotations = read_json(a)?;
        anns = a.annotations.into_iter().map(|a| (a.question_id, a)).collect();
    }
    let mut qs = q.questions;
    qs.sort_by_key(|q| q.question_id);
    let mut missing = None;
    let samples: Vec<Sample> = qs
        .into_iter()
        .map(|q| {
            let ann = anns.remove(&q.question_id);
            if annotations.is_some() && ann.is_none() && missing.is_none() {
                missing = Some(q.question_id);
            }
            Sample {
                sample_id: format!("{source}-{}", q.question_id),
                task: "vqa".into(),
                image_id: Some(q.image_id.to_string()),
                image_path: Some(format!(
                    "{}COCO_{subtype}_{:012}.jpg",
                    opts.images_prefix, q.image_id
                )),
                instruction: q.question,
                target: ann.as_ref().and_then(|a| a.multiple_choice_answer.clone()),
                answers: ann.map(|a| a.answers.into_iter().map(|x| x.answer).collect()),
                split: opts.split.clone(),
                source: Some(source.clone()),
                ..Default::default()
            }
        })
        .collect();
    if let Some(id) = missing {
        bail!("vqav2: question {id} has no annotation in '{}'", annotations.unwrap().display());
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------------------------
// RefCOCO / RefCOCO+ / RefCOCOg and gRefCOCO

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
struct Ref {
    ref_id: i64,
    image_id: i64,
    split: Option<String>,
    /// One id (RefCOCO) or a list (gRefCOCO; `[-1]` for no target).
    ann_id: serde_json::Value,
    sentences: Vec<RefSentence>,
    #[serde(default)]
    no_target: Option<bool>,
}

#[derive(Deserialize)]
struct RefSentence {
    sent_id: i64,
    sent: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RefsFile {
    List(Vec<Ref>),
    Wrapped { refs: Vec<Ref> },
}

#[derive(Deserialize)]
struct Instances {
    images: Vec<CocoImage>,
    annotations: Vec<InstanceAnn>,
}

#[derive(Deserialize)]
struct InstanceAnn {
    id: i64,
    bbox: [f64; 4],
    #[serde(default)]
    segmentation: Option<serde_json::Value>,
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
fn ann_ids(r: &Ref) -> Result<Vec<i64>> {
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

// ---------------------------------------------------------------------------------------------
// Writing

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let f = File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    serde_json::from_reader(BufReader::with_capacity(1 << 20, f))
        .with_context(|| format!("'{}' is not in the expected format", path.display()))
}

/// COCO RLE masks `(height, width, compressed counts)` as the RLE struct column.
pub(crate) fn rle_struct<'a>(masks: impl Iterator<Item = (i32, i32, &'a str)>) -> StructArray {
    let mut sizes = ListBuilder::new(Int32Builder::new());
    let mut counts = StringBuilder::new();
    for (h, w, c) in masks {
        sizes.values().append_value(h);
        sizes.values().append_value(w);
        sizes.append(true);
        counts.append_value(c);
    }
    StructArray::try_new(
        rle_fields(),
        vec![Arc::new(sizes.finish()), Arc::new(counts.finish())],
        None,
    )
    .expect("the RLE struct's children match its fields")
}

fn rle_fields() -> Fields {
    Fields::from(vec![
        Field::new("size", DataType::new_list(DataType::Int32, true), true),
        Field::new("counts", DataType::Utf8, true),
    ])
}

/// The Arrow schema of schemas/samples.json.
pub fn samples_schema() -> SchemaRef {
    let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
    Arc::new(Schema::new(vec![
        Field::new("sample_id", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, true),
        Field::new("image", DataType::Binary, true),
        Field::new("image_path", DataType::Utf8, true),
        Field::new("images", list(DataType::Binary), true),
        Field::new("width", DataType::Int32, true),
        Field::new("height", DataType::Int32, true),
        Field::new("instruction", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, true),
        Field::new("answers", list(DataType::Utf8), true),
        Field::new("boxes", list(list(DataType::Float64)), true),
        Field::new("masks", list(DataType::Struct(rle_fields())), true),
        Field::new("points", list(DataType::Float64), true),
        Field::new("split", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, true),
    ]))
}

/// Samples as a record batch in the samples layout.
pub fn samples_batch(rows: &[Sample]) -> Result<RecordBatch> {
    let mut ids = StringBuilder::new();
    let mut tasks = StringBuilder::new();
    let mut image_ids = StringBuilder::new();
    let mut image = BinaryBuilder::new();
    let mut paths = StringBuilder::new();
    let mut images = ListBuilder::new(BinaryBuilder::new());
    let mut widths = Int32Builder::new();
    let mut heights = Int32Builder::new();
    let mut instr = StringBuilder::new();
    let mut targets = StringBuilder::new();
    let mut answers = ListBuilder::new(StringBuilder::new());
    let mut boxes = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
    let mut points = ListBuilder::new(Float64Builder::new());
    let mut splits = StringBuilder::new();
    let mut sources = StringBuilder::new();
    let mut s_masks: Vec<&(i32, i32, String)> = Vec::new();
    let mut mask_lengths = Vec::new();
    for s in rows {
        ids.append_value(&s.sample_id);
        tasks.append_value(&s.task);
        image_ids.append_option(s.image_id.as_deref());
        image.append_null();
        paths.append_option(s.image_path.as_deref());
        match &s.images {
            Some(list) => {
                for img in list {
                    images.values().append_value(img);
                }
                images.append(true);
            }
            None => images.append(false),
        }
        widths.append_option(s.width);
        heights.append_option(s.height);
        instr.append_value(&s.instruction);
        targets.append_option(s.target.as_deref());
        match &s.answers {
            Some(a) => {
                for x in a {
                    answers.values().append_value(x);
                }
                answers.append(true);
            }
            None => answers.append(false),
        }
        match &s.boxes {
            Some(bs) => {
                for b in bs {
                    boxes.values().values().append_slice(b);
                    boxes.values().append(true);
                }
                boxes.append(true);
            }
            None => boxes.append(false),
        }
        mask_lengths.push(s.masks.as_ref().map(|m| m.len()));
        s_masks.extend(s.masks.iter().flatten());
        match &s.points {
            Some(p) => {
                points.values().append_slice(p);
                points.append(true);
            }
            None => points.append(false),
        }
        splits.append_option(s.split.as_deref());
        sources.append_option(s.source.as_deref());
    }
    let mask_values = rle_struct(s_masks.iter().map(|(h, w, c)| (*h, *w, c.as_str())));
    let masks = ListArray::try_new(
        Arc::new(Field::new("item", DataType::Struct(rle_fields()), true)),
        OffsetBuffer::from_lengths(mask_lengths.iter().map(|l| l.unwrap_or(0))),
        Arc::new(mask_values),
        Some(mask_lengths.iter().map(Option::is_some).collect::<Vec<_>>().into()),
    )?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(tasks.finish()),
        Arc::new(image_ids.finish()),
        Arc::new(image.finish()),
        Arc::new(paths.finish()),
        Arc::new(images.finish()),
        Arc::new(widths.finish()),
        Arc::new(heights.finish()),
        Arc::new(instr.finish()),
        Arc::new(targets.finish()),
        Arc::new(answers.finish()),
        Arc::new(boxes.finish()),
        Arc::new(masks),
        Arc::new(points.finish()),
        Arc::new(splits.finish()),
        Arc::new(sources.finish()),
    ];
    Ok(RecordBatch::try_new(samples_schema(), columns)?)
}

/// Writes samples to `out` (Parquet, atomically) in batches; returns how many.
pub fn write_samples(out: &Path, samples: impl IntoIterator<Item = Sample>) -> Result<usize> {
    let mut w = SamplesWriter::create(out)?;
    for s in samples {
        w.push(s)?;
    }
    w.finish()
}

/// A samples file being written: rows are buffered [`BATCH_ROWS`] at a time, so an importer
/// that streams its input holds one batch of samples; nothing is visible at `out` until
/// [`finish`](Self::finish) (temporary name, then rename).
pub struct SamplesWriter {
    file: AtomicFile,
    writer: ArrowWriter<File>,
    buf: Vec<Sample>,
    n: usize,
}

impl SamplesWriter {
    pub fn create(out: &Path) -> Result<SamplesWriter> {
        let meta = output::provenance(None, &[("vista.import".to_string(), "samples".to_string())]);
        let mut file = AtomicFile::create(out)?;
        let writer = ArrowWriter::try_new(
            file.file().try_clone()?,
            samples_schema(),
            Some(output::parquet_properties(&meta)?),
        )?;
        Ok(SamplesWriter { file, writer, buf: Vec::with_capacity(BATCH_ROWS), n: 0 })
    }

    pub fn push(&mut self, s: Sample) -> Result<()> {
        self.buf.push(s);
        if self.buf.len() == BATCH_ROWS {
            self.writer.write(&samples_batch(&self.buf)?)?;
            self.n += self.buf.len();
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is buffered, closes and commits the file; returns the number of samples.
    pub fn finish(mut self) -> Result<usize> {
        if !self.buf.is_empty() || self.n == 0 {
            self.writer.write(&samples_batch(&self.buf)?)?;
            self.n += self.buf.len();
        }
        self.writer.close()?;
        self.file.commit()?;
        Ok(self.n)
    }
}
