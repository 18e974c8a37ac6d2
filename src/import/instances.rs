//! `vista import coco-instances`: COCO instance annotations (boxes, polygon / RLE masks,
//! categories, crowd flags) to the relational tables the curation queries read —
//! `images.parquet` (schemas/images.json), `categories.parquet` (schemas/categories.json),
//! `instances.parquet` (schemas/instances.json) and optionally `captions.parquet`
//! (schemas/captions.json).
//!
//! Streaming: a COCO file is one JSON object whose `annotations` array dominates its size, and
//! whose keys come in any order (categories often follow annotations). Pass 1 reads `images` and
//! `categories` and skips everything else without keeping it; pass 2 deserialises one
//! annotation at a time, converts it and appends it to a row-group buffer. Memory is the image
//! and category maps plus one row group, whatever the file size.
//!
//! Malformed records are skipped, never guessed: each gets a one-line reason (printed, the
//! first ones, and counted per reason in `import_report.json`), and an image that is skipped
//! takes its annotations with it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use vista_udfs::contour::mask::{decode_counts, encode_counts, Rle};

use super::BATCH_ROWS;
use crate::output::{self, AtomicFile};

/// How many skip messages are printed and kept in the report (all are counted).
const SHOWN_ERRORS: usize = 20;

#[derive(Debug, Clone)]
pub struct InstancesOptions {
    /// Directory the COCO `file_name`s are relative to; `image_path` = this joined with the name.
    pub images_dir: Option<PathBuf>,
    /// A COCO captions file for the same images, written as `captions.parquet`.
    pub captions: Option<PathBuf>,
    /// Print skipped records (the first [`SHOWN_ERRORS`]) to stderr.
    pub verbose: bool,
}

/// What an import did; also written as `import_report.json`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ImportReport {
    pub images: usize,
    pub categories: usize,
    pub instances: usize,
    pub crowd: usize,
    pub captions: usize,
    /// Images whose file is not under the images directory (kept: the path may be fixed later).
    pub missing_image_files: usize,
    /// Skipped records per reason, e.g. `annotation.bad_bbox`.
    pub skipped: BTreeMap<String, usize>,
    /// The first skip messages, one line each.
    pub errors: Vec<String>,
}

impl ImportReport {
    pub fn skipped_total(&self) -> usize {
        self.skipped.values().sum()
    }

    fn skip(&mut self, kind: &str, reason: &str, message: String) {
        *self.skipped.entry(format!("{kind}.{reason}")).or_default() += 1;
        if self.errors.len() < SHOWN_ERRORS {
            self.errors.push(message);
        }
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} images, {} categories, {} instances ({} crowd)",
            self.images, self.categories, self.instances, self.crowd
        )?;
        if self.captions > 0 {
            write!(f, ", {} captions", self.captions)?;
        }
        write!(f, "; skipped {}", self.skipped_total())?;
        if !self.skipped.is_empty() {
            let parts: Vec<String> =
                self.skipped.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        if self.missing_image_files > 0 {
            write!(f, "; {} image files not found", self.missing_image_files)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct ImageInfo {
    file_name: String,
    width: i32,
    height: i32,
}

#[derive(Debug, Clone)]
struct Category {
    name: String,
    supercategory: Option<String>,
}

/// Imports `annotations` into `out` (a directory); see the module docs.
pub fn import_coco_instances(
    annotations: &Path,
    opts: &InstancesOptions,
    out: &Path,
) -> Result<ImportReport> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory '{}'", out.display()))?;
    let mut report = ImportReport::default();
    let meta = output::provenance(
        None,
        &[("vista.import".to_string(), format!("coco-instances {}", annotations.display()))],
    );

    // Pass 1: images and categories.
    let mut images: BTreeMap<i64, ImageInfo> = BTreeMap::new();
    let mut categories: BTreeMap<i64, Category> = BTreeMap::new();
    stream_arrays(annotations, &["images", "categories"], |key, index, value| {
        if key == "images" {
            match parse_image(&value) {
                Ok((id, info)) => {
                    if images.insert(id, info).is_some() {
                        report.skip(
                            "image",
                            "duplicate_id",
                            format!("image #{index}: id {id} repeats an earlier image"),
                        );
                    }
                }
                Err((reason, why)) => {
                    report.skip("image", reason, format!("image #{index}{}: {why}", id_of(&value)))
                }
            }
        } else {
            match parse_category(&value) {
                Ok((id, c)) => {
                    categories.insert(id, c);
                }
                Err((reason, why)) => report.skip(
                    "category",
                    reason,
                    format!("category #{index}{}: {why}", id_of(&value)),
                ),
            }
        }
        Ok(())
    })?;
    report.images = images.len();
    report.categories = categories.len();
    if let Some(dir) = &opts.images_dir {
        report.missing_image_files =
            images.values().filter(|i| !dir.join(&i.file_name).is_file()).count();
    }
    write_images(out, &images, opts.images_dir.as_deref(), &meta)?;
    write_categories(out, &categories, &meta)?;

    // Pass 2: annotations, streamed into instances.parquet.
    let mut file = AtomicFile::create(&out.join("instances.parquet"))?;
    let mut writer = ArrowWriter::try_new(
        file.file(),
        instances_schema(),
        Some(output::parquet_properties_rows(&meta, 2048)?),
    )?;
    let mut rows: Vec<Instance> = Vec::with_capacity(BATCH_ROWS);
    let mut write_error: Option<anyhow::Error> = None;
    stream_arrays(annotations, &["annotations"], |_, index, value| {
        match parse_instance(&value, &images, &categories) {
            Ok(inst) => {
                report.instances += 1;
                report.crowd += inst.iscrowd as usize;
                rows.push(inst);
                if rows.len() == BATCH_ROWS {
                    let batch = instances_batch(&rows)?;
                    writer.write(&batch).map_err(|e| {
                        let msg = e.to_string();
                        write_error = Some(e.into());
                        msg
                    })?;
                    rows.clear();
                }
            }
            Err((reason, why)) => report.skip(
                "annotation",
                reason,
                format!("annotation #{index}{}: {why}", id_of(&value)),
            ),
        }
        Ok(())
    })
    .map_err(|e| write_error.take().unwrap_or(e))?;
    if !rows.is_empty() || report.instances == 0 {
        writer.write(&instances_batch(&rows).map_err(anyhow::Error::msg)?)?;
    }
    writer.close()?;
    file.commit()?;

    if let Some(captions) = &opts.captions {
        report.captions = write_captions(captions, out, &images, &mut report, &meta)?;
    }
    if opts.verbose {
        for e in &report.errors {
            eprintln!("skipped {e}");
        }
        if report.skipped_total() > report.errors.len() {
            eprintln!("... {} more skipped", report.skipped_total() - report.errors.len());
        }
    }
    output::write_json_atomic(&out.join("import_report.json"), &report)?;
    Ok(report)
}

fn id_of(v: &Value) -> String {
    match v.get("id") {
        Some(id) => format!(" (id {id})"),
        None => String::new(),
    }
}

type Invalid = (&'static str, String);

fn parse_image(v: &Value) -> std::result::Result<(i64, ImageInfo), Invalid> {
    let id = int_field(v, "id").ok_or(("bad_id", "no integer `id`".to_string()))?;
    let file_name = v
        .get("file_name")
        .and_then(Value::as_str)
        .ok_or(("missing_file_name", "no string `file_name`".to_string()))?
        .to_string();
    let dim = |name: &'static str| -> std::result::Result<i32, Invalid> {
        let reason = if name == "width" { "missing_width" } else { "missing_height" };
        let d = int_field(v, name).ok_or((reason, format!("no integer `{name}`")))?;
        i32::try_from(d)
            .ok()
            .filter(|d| *d > 0)
            .ok_or(("bad_size", format!("`{name}` must be a positive integer, got {d}")))
    };
    Ok((id, ImageInfo { file_name, width: dim("width")?, height: dim("height")? }))
}

fn parse_category(v: &Value) -> std::result::Result<(i64, Category), Invalid> {
    let id = int_field(v, "id").ok_or(("bad_id", "no integer `id`".to_string()))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or(("missing_name", "no string `name`".to_string()))?
        .to_string();
    let supercategory = v.get("supercategory").and_then(Value::as_str).map(str::to_string);
    Ok((id, Category { name, supercategory }))
}

fn int_field(v: &Value, name: &str) -> Option<i64> {
    let x = v.get(name)?;
    x.as_i64().or_else(|| x.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// One converted annotation.
#[derive(Debug, Clone)]
struct Instance {
    id: i64,
    image_id: i64,
    category_id: i64,
    category: String,
    bbox: [f64; 4],
    area: f64,
    iscrowd: bool,
    /// Compressed RLE counts of the image's size (a decoded mask is ~h*w bytes; a row group of
    /// them would be gigabytes).
    rle: String,
    size: [i32; 2],
}

fn parse_instance(
    v: &Value,
    images: &BTreeMap<i64, ImageInfo>,
    categories: &BTreeMap<i64, Category>,
) -> std::result::Result<Instance, Invalid> {
    let id = int_field(v, "id").ok_or(("bad_id", "no integer `id`".to_string()))?;
    let image_id =
        int_field(v, "image_id").ok_or(("bad_image_id", "no integer `image_id`".into()))?;
    let image = images.get(&image_id).ok_or((
        "unknown_image",
        format!("image_id {image_id} is not a (valid) image of the file"),
    ))?;
    let category_id = int_field(v, "category_id")
        .ok_or(("bad_category_id", "no integer `category_id`".into()))?;
    let category = categories
        .get(&category_id)
        .ok_or(("unknown_category", format!("category_id {category_id} is not in `categories`")))?;
    let bbox = match v.get("bbox") {
        None | Some(Value::Null) => return Err(("missing_bbox", "no `bbox`".into())),
        Some(Value::Array(b)) => {
            let nums: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
            if b.len() != 4 || nums.len() != 4 {
                return Err((
                    "bad_bbox",
                    format!(
                        "`bbox` must be 4 numbers [x, y, w, h], got {}",
                        Value::Array(b.clone())
                    ),
                ));
            }
            if nums.iter().any(|x| !x.is_finite()) || nums[2] < 0.0 || nums[3] < 0.0 {
                return Err((
                    "bad_bbox",
                    format!("`bbox` {nums:?} has a negative or non-finite value"),
                ));
            }
            [nums[0], nums[1], nums[0] + nums[2], nums[1] + nums[3]]
        }
        Some(other) => return Err(("bad_bbox", format!("`bbox` must be a list, got {other}"))),
    };
    let iscrowd = match v.get("iscrowd") {
        None | Some(Value::Null) => false,
        Some(x) => match x.as_i64() {
            Some(0) => false,
            Some(1) => true,
            _ => match x.as_bool() {
                Some(b) => b,
                None => return Err(("bad_iscrowd", format!("`iscrowd` must be 0 or 1, got {x}"))),
            },
        },
    };
    let mask =
        segmentation_mask(v.get("segmentation"), image.height as usize, image.width as usize)?;
    let area = match v.get("area").and_then(Value::as_f64) {
        Some(a) if a.is_finite() && a >= 0.0 => a,
        // COCO's area is the polygon's area; without it, the mask's pixel count is the best
        // stand-in (pycocotools' own `area` for RLE).
        _ => mask.area() as f64,
    };
    let rle = encode_counts(&mask.counts);
    Ok(Instance {
        id,
        image_id,
        category_id,
        category: category.name.clone(),
        bbox,
        area,
        iscrowd,
        rle,
        size: [image.height, image.width],
    })
}

/// A segmentation (polygons, uncompressed or compressed RLE) as a mask of the image's size,
/// rasterised exactly as pycocotools does.
fn segmentation_mask(
    seg: Option<&Value>,
    height: usize,
    width: usize,
) -> std::result::Result<Rle, Invalid> {
    match seg {
        None | Some(Value::Null) => Err(("missing_segmentation", "no `segmentation`".into())),
        Some(Value::Array(polys)) => {
            let mut out = Vec::with_capacity(polys.len());
            for (k, p) in polys.iter().enumerate() {
                let Some(coords) = p.as_array() else {
                    return Err((
                        "bad_segmentation",
                        format!("polygon {k} is not a list of numbers"),
                    ));
                };
                let nums: Vec<f64> = coords.iter().filter_map(Value::as_f64).collect();
                if nums.len() != coords.len() || nums.iter().any(|x| !x.is_finite()) {
                    return Err((
                        "bad_segmentation",
                        format!("polygon {k} has a non-numeric value"),
                    ));
                }
                if nums.len() % 2 == 1 {
                    return Err((
                        "odd_polygon",
                        format!("polygon {k} has an odd number of coordinates ({})", nums.len()),
                    ));
                }
                if nums.len() < 6 {
                    return Err((
                        "short_polygon",
                        format!("polygon {k} has {} points; at least 3 are needed", nums.len() / 2),
                    ));
                }
                out.push(nums);
            }
            if out.is_empty() {
                return Err(("bad_segmentation", "`segmentation` is an empty list".into()));
            }
            Ok(Rle::from_polygons(height, width, &out))
        }
        Some(Value::Object(rle)) => {
            let size: Option<Vec<i64>> = rle
                .get("size")
                .and_then(Value::as_array)
                .map(|s| s.iter().filter_map(Value::as_i64).collect());
            match size.as_deref() {
                Some([h, w]) if *h == height as i64 && *w == width as i64 => {}
                Some([h, w]) => {
                    return Err((
                        "rle_size_mismatch",
                        format!("RLE size [{h}, {w}] differs from the image's [{height}, {width}]"),
                    ))
                }
                _ => {
                    return Err(("bad_segmentation", "RLE without a [height, width] `size`".into()))
                }
            }
            let counts = match rle.get("counts") {
                Some(Value::String(s)) => decode_counts(s).map_err(|e| ("bad_rle", e))?,
                Some(Value::Array(c)) => {
                    let n: Vec<u64> = c.iter().filter_map(Value::as_u64).collect();
                    if n.len() != c.len() {
                        return Err(("bad_rle", "RLE counts must be non-negative integers".into()));
                    }
                    // Round trip through the compressed form keeps one canonical code path.
                    decode_counts(&encode_counts(&n)).map_err(|e| ("bad_rle", e))?
                }
                _ => return Err(("bad_rle", "RLE `counts` must be a string or a list".into())),
            };
            Rle::new(height, width, counts).map_err(|e| ("bad_rle", e))
        }
        Some(other) => Err((
            "bad_segmentation",
            format!("`segmentation` must be polygons or RLE, got {other}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming a top-level JSON object's arrays

/// Calls `each(key, index, value)` for every element of the top-level arrays named in `keys`,
/// in file order, skipping every other value without building it.
fn stream_arrays<F>(path: &Path, keys: &[&str], each: F) -> Result<()>
where
    F: FnMut(&str, usize, Value) -> std::result::Result<(), String>,
{
    stream_object_arrays(path, keys, "a COCO annotation file", each)
}

/// As `stream_arrays`, naming the expected format (`what`) in the error.
pub(super) fn stream_object_arrays<F>(
    path: &Path,
    keys: &[&str],
    what: &str,
    mut each: F,
) -> Result<()>
where
    F: FnMut(&str, usize, Value) -> std::result::Result<(), String>,
{
    let f = File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, f));
    TopLevel { keys, each: &mut each }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .with_context(|| format!("'{}' is not {what}", path.display()))
}

/// Calls `each(index, value)` for every element of a file whose top level is a JSON array.
pub(super) fn stream_top_array<F>(path: &Path, what: &str, mut each: F) -> Result<()>
where
    F: FnMut(usize, Value) -> std::result::Result<(), String>,
{
    let f = File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, f));
    let mut adapt = |_: &str, i: usize, v: Value| each(i, v);
    Elements { key: "the top level", each: &mut adapt }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .with_context(|| format!("'{}' is not {what}", path.display()))
}

struct TopLevel<'a, F> {
    keys: &'a [&'a str],
    each: &'a mut F,
}

impl<'de, F> DeserializeSeed<'de> for TopLevel<'_, F>
where
    F: FnMut(&str, usize, Value) -> std::result::Result<(), String>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for TopLevel<'_, F>
where
    F: FnMut(&str, usize, Value) -> std::result::Result<(), String>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with `images`, `annotations` and `categories`")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if self.keys.contains(&key.as_str()) {
                map.next_value_seed(Elements { key: &key, each: &mut *self.each })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct Elements<'a, F> {
    key: &'a str,
    each: &'a mut F,
}

impl<'de, F> DeserializeSeed<'de> for Elements<'_, F>
where
    F: FnMut(&str, usize, Value) -> std::result::Result<(), String>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for Elements<'_, F>
where
    F: FnMut(&str, usize, Value) -> std::result::Result<(), String>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "`{}` as a list", self.key)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut index = 0;
        while let Some(v) = seq.next_element::<Value>()? {
            (self.each)(self.key, index, v).map_err(A::Error::custom)?;
            index += 1;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

fn list_f64() -> DataType {
    DataType::new_list(DataType::Float64, true)
}

/// The Arrow schema of schemas/instances.json.
pub fn instances_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("instance_id", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, false),
        Field::new("category_id", DataType::Int64, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("box", list_f64(), false),
        Field::new("area", DataType::Float64, false),
        Field::new("iscrowd", DataType::Boolean, false),
        Field::new("mask", vista_udfs::contour::mask::rle_type(), false),
    ]))
}

fn instances_batch(rows: &[Instance]) -> std::result::Result<RecordBatch, String> {
    let mut ids = StringBuilder::new();
    let mut image_ids = StringBuilder::new();
    let mut cat_ids = Int64Builder::new();
    let mut cats = StringBuilder::new();
    let mut boxes = ListBuilder::new(Float64Builder::new());
    let mut areas = Float64Builder::new();
    let mut crowd = BooleanBuilder::new();
    for r in rows {
        ids.append_value(r.id.to_string());
        image_ids.append_value(r.image_id.to_string());
        cat_ids.append_value(r.category_id);
        cats.append_value(&r.category);
        boxes.values().append_slice(&r.bbox);
        boxes.append(true);
        areas.append_value(r.area);
        crowd.append_value(r.iscrowd);
    }
    let masks = super::rle_struct(rows.iter().map(|r| (r.size[0], r.size[1], r.rle.as_str())));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(image_ids.finish()),
        Arc::new(cat_ids.finish()),
        Arc::new(cats.finish()),
        Arc::new(boxes.finish()),
        Arc::new(areas.finish()),
        Arc::new(crowd.finish()),
        Arc::new(masks),
    ];
    RecordBatch::try_new(instances_schema(), columns).map_err(|e| e.to_string())
}

fn write_images(
    out: &Path,
    images: &BTreeMap<i64, ImageInfo>,
    dir: Option<&Path>,
    meta: &[(String, String)],
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("image", DataType::Binary, true),
        Field::new("image_path", DataType::Utf8, true),
        Field::new("width", DataType::Int32, true),
        Field::new("height", DataType::Int32, true),
    ]));
    let mut ids = StringBuilder::new();
    let mut paths = StringBuilder::new();
    let mut widths = Int32Builder::new();
    let mut heights = Int32Builder::new();
    for (id, info) in images {
        ids.append_value(id.to_string());
        let path = match dir {
            Some(d) => d.join(&info.file_name).to_string_lossy().to_string(),
            None => info.file_name.clone(),
        };
        paths.append_value(path);
        widths.append_value(info.width);
        heights.append_value(info.height);
    }
    let n = images.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        datafusion::arrow::array::new_null_array(&DataType::Binary, n),
        Arc::new(paths.finish()),
        Arc::new(widths.finish()),
        Arc::new(heights.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    output::write_parquet_atomic(&out.join("images.parquet"), &[batch], schema, meta)
}

fn write_categories(
    out: &Path,
    categories: &BTreeMap<i64, Category>,
    meta: &[(String, String)],
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("category_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("supercategory", DataType::Utf8, true),
    ]));
    let mut ids = Int64Builder::new();
    let mut names = StringBuilder::new();
    let mut supers = StringBuilder::new();
    for (id, c) in categories {
        ids.append_value(*id);
        names.append_value(&c.name);
        supers.append_option(c.supercategory.as_deref());
    }
    let columns: Vec<ArrayRef> =
        vec![Arc::new(ids.finish()), Arc::new(names.finish()), Arc::new(supers.finish())];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    output::write_parquet_atomic(&out.join("categories.parquet"), &[batch], schema, meta)
}

#[derive(Deserialize)]
struct CaptionRecord {
    id: i64,
    image_id: i64,
    caption: String,
}

/// A COCO captions file's annotations as `captions.parquet` (caption_id, image_id, caption),
/// keeping only captions of imported images.
fn write_captions(
    path: &Path,
    out: &Path,
    images: &BTreeMap<i64, ImageInfo>,
    report: &mut ImportReport,
    meta: &[(String, String)],
) -> Result<usize> {
    let mut rows: HashMap<i64, (i64, String)> = HashMap::new();
    stream_arrays(path, &["annotations"], |_, index, value| {
        match CaptionRecord::deserialize(&value) {
            Ok(c) if images.contains_key(&c.image_id) => {
                rows.insert(c.id, (c.image_id, c.caption.trim().to_string()));
            }
            Ok(c) => report.skip(
                "caption",
                "unknown_image",
                format!(
                    "caption #{index} (id {}): image_id {} is not a (valid) image",
                    c.id, c.image_id
                ),
            ),
            Err(e) => report.skip(
                "caption",
                "bad_record",
                format!("caption #{index}{}: {e}", id_of(&value)),
            ),
        }
        Ok(())
    })?;
    let mut sorted: Vec<(i64, (i64, String))> = rows.into_iter().collect();
    sorted.sort_by_key(|(id, _)| *id);
    let schema = Arc::new(Schema::new(vec![
        Field::new("caption_id", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, false),
    ]));
    let mut ids = StringBuilder::new();
    let mut image_ids = StringBuilder::new();
    let mut texts = StringBuilder::new();
    for (id, (image_id, text)) in &sorted {
        ids.append_value(id.to_string());
        image_ids.append_value(image_id.to_string());
        texts.append_value(text);
    }
    let columns: Vec<ArrayRef> =
        vec![Arc::new(ids.finish()), Arc::new(image_ids.finish()), Arc::new(texts.finish())];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    output::write_parquet_atomic(&out.join("captions.parquet"), &[batch], schema, meta)?;
    Ok(sorted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(h: i32, w: i32) -> BTreeMap<i64, ImageInfo> {
        BTreeMap::from([(1, ImageInfo { file_name: "a.png".into(), width: w, height: h })])
    }

    fn cats() -> BTreeMap<i64, Category> {
        BTreeMap::from([(3, Category { name: "box".into(), supercategory: None })])
    }

    fn reason(v: Value) -> &'static str {
        parse_instance(&v, &img(10, 12), &cats()).unwrap_err().0
    }

    #[test]
    fn malformed_annotations_name_their_reason() {
        let base = serde_json::json!({"id": 5, "image_id": 1, "category_id": 3,
            "bbox": [1, 1, 4, 4], "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]]});
        assert!(parse_instance(&base, &img(10, 12), &cats()).is_ok());
        let with = |k: &str, v: Value| {
            let mut x = base.clone();
            x[k] = v;
            x
        };
        assert_eq!(reason(with("bbox", serde_json::json!([1, 2, 3]))), "bad_bbox");
        assert_eq!(reason(with("image_id", serde_json::json!(9))), "unknown_image");
        assert_eq!(reason(with("category_id", serde_json::json!(4))), "unknown_category");
        assert_eq!(reason(with("segmentation", serde_json::json!([[1, 2, 3]]))), "odd_polygon");
        assert_eq!(
            reason(with("segmentation", serde_json::json!([[1, 2, 3, 4]]))),
            "short_polygon"
        );
        assert_eq!(reason(with("segmentation", serde_json::json!(5))), "bad_segmentation");
        let rle = serde_json::json!({"size": [12, 10], "counts": [120]});
        assert_eq!(reason(with("segmentation", rle)), "rle_size_mismatch");
        let short = serde_json::json!({"size": [10, 12], "counts": [100]});
        assert_eq!(reason(with("segmentation", short)), "bad_rle");
        let mut no_box = base.clone();
        no_box.as_object_mut().unwrap().remove("bbox");
        assert_eq!(reason(no_box), "missing_bbox");
    }

    #[test]
    fn arrays_stream_in_file_order_whatever_the_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(
            &p,
            r#"{"annotations": [{"id": 1}, {"id": 2}], "info": {"big": [1, 2, 3]},
                "images": [{"id": 7}], "categories": []}"#,
        )
        .unwrap();
        let mut seen = Vec::new();
        stream_arrays(&p, &["images", "annotations"], |k, i, v| {
            seen.push(format!("{k}{i}:{}", v["id"]));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, ["annotations0:1", "annotations1:2", "images0:7"]);
        std::fs::write(&p, r#"{"images": [1, 2"#).unwrap();
        let err = stream_arrays(&p, &["images"], |_, _, _| Ok(())).unwrap_err();
        assert!(format!("{err:#}").contains("is not a COCO annotation file"), "{err:#}");
    }
}
