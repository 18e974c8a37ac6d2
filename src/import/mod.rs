//! Importers from the formats benchmarks ship in to the samples layout (schemas/samples.json),
//! one file per format: `coco_captions`, `vqav2`, `refs` (RefCOCO/+/g refs, the JSON dump of
//! the `refs(*).p` pickle, and gRefCOCO `grefs(*).json`, with the COCO instances they index),
//! `karpathy`, `nlvr2`, `pope`, `pointqa`, `regions` (Visual Genome and RefCOCOg region
//! captions), `coseg`; `instances` writes the curation inputs (images, instances, categories).
//! This file holds what they share: the options, the `Sample` row and the samples writer.
//!
//! Images are referenced by path (`image_path` = `--images` prefix + COCO file name, resolved
//! later against `vista.base_dir`); boxes are converted from COCO's `[x, y, w, h]` to pixel
//! `[x0, y0, x1, y1]`; masks become COCO compressed RLE (polygons rasterised exactly as
//! pycocotools does). Input JSON is read with typed, field-selective deserialisation (unknown
//! fields are skipped without being kept) and output is written in row groups as it is built.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::ListArray;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int32Builder, ListBuilder, RecordBatch, StringBuilder,
    StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use serde::Deserialize;

use crate::output::{self, AtomicFile};

pub mod coco_captions;
pub mod coseg;
pub mod instances;
pub mod karpathy;
pub mod nlvr2;
pub mod pointqa;
pub mod pope;
pub mod refs;
pub mod regions;
pub mod vqav2;
pub use coco_captions::{coco_captions_samples, import_coco_captions};
pub use coseg::{coseg_samples, import_coseg};
pub use instances::{import_coco_instances, ImportReport, InstancesOptions};
pub use karpathy::{import_karpathy, karpathy_samples};
pub use nlvr2::{import_nlvr2, nlvr2_samples};
pub use pointqa::{import_pointqa, pointqa_samples, Phrasing, PointQaOptions, Query};
pub use pope::{import_pope, pope_samples};
pub use refs::{import_refs, refs_samples, xywh_to_xyxy, RefTask};
pub use regions::{import_refs_regions, import_vg_regions, refs_region_samples, vg_region_samples};
pub use vqav2::{import_vqav2, vqav2_samples};

/// An image record of a COCO annotation file.
#[derive(Deserialize)]
pub(crate) struct CocoImage {
    pub id: i64,
    pub file_name: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

/// Every non-blank line of a JSON-lines file mapped by `f(line_number, text)`, lazily, each
/// failure (unreadable line or `f`'s error) as a skip reason naming the file and the line.
pub(crate) fn json_lines<'a, T>(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> std::result::Result<T, String> + 'a,
) -> Result<impl Iterator<Item = std::result::Result<T, String>> + 'a> {
    let file = File::open(path).with_context(|| format!("{}", path.display()))?;
    if file.metadata()?.is_dir() {
        anyhow::bail!("{} is a directory, not a JSON-lines file", path.display());
    }
    let name = path.display().to_string();
    Ok(std::io::BufRead::lines(BufReader::new(file)).enumerate().filter_map(move |(i, line)| {
        let at = format!("{name} line {}", i + 1);
        match line {
            Err(e) => Some(Err(format!("{at}: {e}"))),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(f(i + 1, &l).map_err(|e| format!("{at}: {e}"))),
        }
    }))
}

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
