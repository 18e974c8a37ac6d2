//! The raw relational tables of a synthetic set: one row per image, per object, per vocabulary
//! word, and the run's parameters. `queries/synth_samples.sql` shapes them into samples.

use std::io::Cursor;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::scene::{Scene, BACKGROUNDS, COLORS, POSITIONS, SHAPES, SIZES};
use vista_udfs::seeded::SplitMix64 as Rng;

/// Encodes 8-bit pixels as PNG with fixed encoder settings.
pub fn png(pixels: &[u8], side: u32, color: ExtendedColorType) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(
        Cursor::new(&mut out),
        CompressionType::Default,
        FilterType::Adaptive,
    )
    .write_image(pixels, side, side, color)?;
    Ok(out)
}

/// A visible mask as an 8-bit grayscale PNG, foreground 255.
pub fn mask_png(mask: &[bool], side: u32) -> Result<Vec<u8>> {
    let px: Vec<u8> = mask.iter().map(|&b| if b { 255 } else { 0 }).collect();
    png(&px, side, ExtendedColorType::L8)
}

/// The prime modulus of the SQL side's `(k * salt) % 2147483647` shuffles.
pub const SALT_MODULUS: usize = 2_147_483_647;

pub fn image_id(seed: u64, index: usize) -> String {
    format!("synth-s{seed}-{index:06}")
}

fn list_f64() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
}

/// `images` in the layout of schemas/images.json.
pub fn images_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("image", DataType::Binary, true),
        Field::new("image_path", DataType::Utf8, true),
        Field::new("width", DataType::Int32, true),
        Field::new("height", DataType::Int32, true),
    ]))
}

/// Per-image facts that are not part of the image layout.
pub fn scenes_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("idx", DataType::Int64, false),
        Field::new("background", DataType::Utf8, false),
        // A per-image random number in [1, 2^31 - 1), so that SQL can order candidates
        // pseudo-randomly yet deterministically: `(k * salt) % 2147483647` permutes k.
        Field::new("salt", DataType::Int64, false),
    ]))
}

pub fn objects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("object_id", DataType::Utf8, false),
        Field::new("z", DataType::Int32, false),
        Field::new("cell", DataType::Int32, false),
        Field::new("shape", DataType::Utf8, false),
        Field::new("color", DataType::Utf8, false),
        Field::new("size", DataType::Utf8, false),
        Field::new("position", DataType::Utf8, false),
        Field::new("box", list_f64(), false),
        Field::new("area", DataType::Int64, false),
        Field::new("mask", DataType::Binary, false),
        Field::new("point", list_f64(), false),
    ]))
}

pub fn vocab_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("idx", DataType::Int32, false),
        Field::new("plural", DataType::Utf8, true),
        Field::new("article", DataType::Utf8, true),
        Field::new("phrase", DataType::Utf8, true),
    ]))
}

pub struct RawTables {
    pub images: RecordBatch,
    pub scenes: RecordBatch,
    pub objects: RecordBatch,
    pub vocab: RecordBatch,
}

pub fn raw_tables(seed: u64, scenes: &[Scene]) -> Result<RawTables> {
    let mut img_id = StringBuilder::new();
    let mut img = BinaryBuilder::new();
    let mut img_path = StringBuilder::new();
    let mut width = Int32Builder::new();
    let mut height = Int32Builder::new();
    let mut sc_idx = Int64Builder::new();
    let mut sc_bg = StringBuilder::new();
    let mut sc_salt = Int64Builder::new();

    let mut o_img = StringBuilder::new();
    let mut o_id = StringBuilder::new();
    let mut o_z = Int32Builder::new();
    let mut o_cell = Int32Builder::new();
    let (mut o_shape, mut o_color, mut o_size, mut o_pos) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let mut o_box = ListBuilder::new(Float64Builder::new());
    let mut o_area = Int64Builder::new();
    let mut o_mask = BinaryBuilder::new();
    let mut o_point = ListBuilder::new(Float64Builder::new());

    for (i, s) in scenes.iter().enumerate() {
        let id = image_id(seed, i);
        img_id.append_value(&id);
        img.append_value(png(&s.rgb, s.side, ExtendedColorType::Rgb8)?);
        img_path.append_null();
        width.append_value(s.side as i32);
        height.append_value(s.side as i32);
        sc_idx.append_value(i as i64);
        sc_bg.append_value(BACKGROUNDS[s.background]);
        sc_salt.append_value(1 + Rng::for_item(!seed, i as u64).below(SALT_MODULUS - 1) as i64);
        for (z, o) in s.objects.iter().enumerate() {
            o_img.append_value(&id);
            o_id.append_value(format!("{id}-{z}"));
            o_z.append_value(z as i32);
            o_cell.append_value(o.cell as i32);
            o_shape.append_value(SHAPES[o.shape].0);
            o_color.append_value(COLORS[o.color].0);
            o_size.append_value(SIZES[o.size].0);
            o_pos.append_value(POSITIONS[o.cell].0);
            o_box.values().append_slice(&o.bbox.map(f64::from));
            o_box.append(true);
            o_area.append_value(o.area as i64);
            o_mask.append_value(mask_png(&o.mask, s.side)?);
            o_point.values().append_slice(&o.point);
            o_point.append(true);
        }
    }
    let images = RecordBatch::try_new(
        images_schema(),
        vec![
            Arc::new(img_id.finish()) as ArrayRef,
            Arc::new(img.finish()),
            Arc::new(img_path.finish()),
            Arc::new(width.finish()),
            Arc::new(height.finish()),
        ],
    )?;
    let ids: ArrayRef = images.column(0).clone();
    let scenes = RecordBatch::try_new(
        scenes_schema(),
        vec![ids, Arc::new(sc_idx.finish()), Arc::new(sc_bg.finish()), Arc::new(sc_salt.finish())],
    )?;
    let objects = RecordBatch::try_new(
        objects_schema(),
        vec![
            Arc::new(o_img.finish()) as ArrayRef,
            Arc::new(o_id.finish()),
            Arc::new(o_z.finish()),
            Arc::new(o_cell.finish()),
            Arc::new(o_shape.finish()),
            Arc::new(o_color.finish()),
            Arc::new(o_size.finish()),
            Arc::new(o_pos.finish()),
            Arc::new(o_box.finish()),
            Arc::new(o_area.finish()),
            Arc::new(o_mask.finish()),
            Arc::new(o_point.finish()),
        ],
    )?;
    Ok(RawTables { images, scenes, objects, vocab: vocab()? })
}

/// Every attribute value the generator can draw, with the words the templates need.
pub fn vocab() -> Result<RecordBatch> {
    let (mut kind, mut value, mut idx) =
        (StringBuilder::new(), StringBuilder::new(), Int32Builder::new());
    let (mut plural, mut article, mut phrase) =
        (StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
    let mut row =
        |k: &str, v: &str, i: usize, p: Option<&str>, a: Option<&str>, ph: Option<&str>| {
            kind.append_value(k);
            value.append_value(v);
            idx.append_value(i as i32);
            plural.append_option(p);
            article.append_option(a);
            phrase.append_option(ph);
        };
    for (i, (s, p, a)) in SHAPES.iter().enumerate() {
        row("shape", s, i, Some(p), Some(a), None);
    }
    for (i, (c, _)) in COLORS.iter().enumerate() {
        row("color", c, i, None, Some("a"), None);
    }
    for (i, (s, _, _)) in SIZES.iter().enumerate() {
        row("size", s, i, None, Some("a"), None);
    }
    for (i, (p, ph)) in POSITIONS.iter().enumerate() {
        row("position", p, i, None, None, Some(ph));
    }
    for (i, b) in BACKGROUNDS.iter().enumerate() {
        row("background", b, i, None, Some("a"), None);
    }
    Ok(RecordBatch::try_new(
        vocab_schema(),
        vec![
            Arc::new(kind.finish()) as ArrayRef,
            Arc::new(value.finish()),
            Arc::new(idx.finish()),
            Arc::new(plural.finish()),
            Arc::new(article.finish()),
            Arc::new(phrase.finish()),
        ],
    )?)
}
