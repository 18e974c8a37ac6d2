//! The image functions on Hugging Face `datasets` image columns, `struct<bytes, path>`: the
//! same results as on the bytes themselves, and a row error for a struct with only a path.

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryArray, Int32Array, RecordBatch, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::contour::{mask, Mask};
use crate::test_util::{self, cells, hf_images};

fn solid(w: u32, h: u32, rgb: [u8; 3], format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, Rgb(rgb)))
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn full_mask(w: usize, h: usize) -> Mask {
    let mut m = Mask::empty(w, h);
    (0..w).for_each(|x| (0..h).for_each(|y| m.set(x, y, true)));
    m
}

/// Registers `name` with an `id` column (1, 2, ...) and `columns`.
fn register(ctx: &SessionContext, name: &str, columns: Vec<(&str, ArrayRef)>) {
    let n = columns[0].1.len() as i32;
    let mut fields = vec![Field::new("id", DataType::Int32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int32Array::from_iter_values(1..=n))];
    for (col, a) in columns {
        fields.push(Field::new(col, a.data_type().clone(), true));
        arrays.push(a);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()))
        .unwrap();
}

/// The HF column with view types, as DataFusion's Parquet reader may hand it over.
fn as_views(st: &StructArray) -> ArrayRef {
    let views = DataType::Struct(
        vec![
            Field::new("bytes", DataType::BinaryView, true),
            Field::new("path", DataType::Utf8View, true),
        ]
        .into(),
    );
    cast(st, &views).unwrap()
}

/// Only the `bytes` field, as LargeBinary.
fn bytes_only(st: &StructArray) -> ArrayRef {
    let bytes = cast(st.column(0), &DataType::LargeBinary).unwrap();
    let field = Field::new("bytes", DataType::LargeBinary, true);
    Arc::new(StructArray::try_new(vec![field].into(), vec![bytes], st.nulls().cloned()).unwrap())
}

#[test]
fn hf_image_structs_give_the_results_of_their_bytes() {
    let png = solid(5, 7, [30, 60, 200], ImageFormat::Png);
    let jpeg = solid(6, 4, [220, 30, 30], ImageFormat::Jpeg);
    let img: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&png[..]), Some(&jpeg[..]), None]));
    let hf = hf_images(&[Some((Some(&png), Some("a.png"))), Some((Some(&jpeg), None)), None]);
    let (m1, m2) = (full_mask(5, 7), full_mask(6, 4));
    let ctx = test_util::ctx();
    register(
        &ctx,
        "t",
        vec![
            ("img", img),
            ("m", mask::rle_array([Some(&m1), Some(&m2), None])),
            ("hfv", as_views(&hf)),
            ("hfb", bytes_only(&hf)),
            ("hf", Arc::new(hf)),
        ],
    );
    let query = |c: &str| {
        let sql = format!(
            "SELECT id, image_width({c}) AS w, image_height({c}) AS h, image_format({c}) AS f, \
             image_phash({c}) AS p, mask_color({c}, m) AS color FROM t ORDER BY id"
        );
        test_util::run(&ctx, &sql).unwrap()
    };
    let want = query("img");
    let phash = |b: &[u8]| (super::phash::phash(b, u64::MAX).unwrap() as i64).to_string();
    let (p1, p2) = (phash(&png), phash(&jpeg));
    let rows = [
        vec!["1", "5", "7", "png", &p1, "blue"],
        vec!["2", "6", "4", "jpeg", &p2, "red"],
        vec!["3", "", "", "", "", ""],
    ];
    assert_eq!(cells(&want), rows, "{want}");
    for c in ["hf", "hfv", "hfb"] {
        assert_eq!(query(c), want, "column {c}");
    }
}

#[test]
fn a_literal_hf_struct_is_an_image() {
    let sql = "SELECT image_format(named_struct('bytes', X'89504E470D0A1A0A', 'path', 'x.png')) \
               AS f, image_format(named_struct('bytes', X'89504E470D0A1A0A')) AS g";
    let out = test_util::run(&test_util::ctx(), sql).unwrap();
    assert_eq!(cells(&out), [["png", "png"]], "{out}");
}

#[test]
fn a_struct_with_only_a_path_is_a_row_error() {
    let png = solid(5, 7, [30, 60, 200], ImageFormat::Png);
    let hf = hf_images(&[
        Some((Some(&png), Some("a.png"))),
        Some((None, Some("photos/b.jpg"))),
        None,
        Some((None, None)),
    ]);
    let ctx = test_util::ctx();
    register(&ctx, "p", vec![("image", Arc::new(hf))]);

    let sql = "SELECT id, image_width(image, on_error => 'null') AS w FROM p ORDER BY id";
    let out = test_util::run(&ctx, sql).unwrap();
    assert_eq!(cells(&out), [["1", "5"], ["2", ""], ["3", ""], ["4", ""]], "{out}");

    let sql = "SELECT r.value AS v, r.error AS e FROM \
               (SELECT id, image_format(image, on_error => 'report') AS r FROM p) ORDER BY id";
    let out = test_util::run(&ctx, sql).unwrap();
    let want_error = "the image struct has only a path ('photos/b.jpg') and no bytes; read the \
                      file with read_bytes(image['path'])";
    assert_eq!(cells(&out), [["png", ""], ["", want_error], ["", ""], ["", ""]], "{out}");

    let err = test_util::run(&ctx, "SELECT image_height(image) FROM p").unwrap_err().to_string();
    assert!(err.contains(&format!("image_height: row 2 of its batch: {want_error}")), "{err}");
}

#[test]
fn only_structs_of_bytes_and_path_are_images() {
    let ctx = test_util::ctx();
    for arg in [
        "named_struct('size', [2, 2], 'counts', [4])",
        "named_struct('bytes', X'00', 'path', 'a.png', 'label', 1)",
        "named_struct('bytes', 'text', 'path', 'a.png')",
        "named_struct('path', 'a.png')",
    ] {
        let err = test_util::run(&ctx, &format!("SELECT image_width({arg})")).unwrap_err();
        let want = "image_width: argument `image` must be image bytes (binary) or an image \
                    struct<bytes, path>";
        assert!(err.to_string().contains(want), "{arg}: {err}");
    }
}
