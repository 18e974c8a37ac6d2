//! `image_phash(image)`: the perceptual hash of `imagehash.phash`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};
use image::imageops::FilterType;
use image::GrayImage;

use crate::common::{self, Arg, Params};

/// Side of the greyscale image the DCT runs on (`hash_size * highfreq_factor` = 8 * 4).
const N: usize = 32;
/// Side of the low-frequency block that gives the bits (`hash_size`).
const HASH: usize = 8;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Perceptual hash (pHash) of an encoded image, as Python `imagehash.phash` (hash_size 8, \
         highfreq_factor 4): the image is converted to 8-bit greyscale (ITU-R 601-2 luma, as \
         PIL's `convert(\"L\")`), resized to 32x32 (Lanczos3), transformed by a 2-D DCT-II, and \
         each of the 64 coefficients of the top-left 8x8 block gives one bit, set when it is above \
         the block's median. Bits are row-major with the first (DC) coefficient as the most \
         significant bit; the 64-bit hash is returned as the int64 with the same bits (so \
         `to_hex` prints imagehash's hex string). Similar images have hashes a few bits apart: \
         compare them with `hamming_distance`. The resampling and JPEG decoding differ from \
         PIL's in rounding, so a hash may differ from imagehash's by a few bits (not \
         bit-exact). Bytes that are not an image fail naming the row, or give NULL under \
         `on_error => 'null'`.",
        "image_phash(image [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("image", format!("{} Formats: PNG, JPEG, WebP, BMP, TIFF.", super::IMAGE_ARG))
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(
        "```sql\n> SELECT to_hex(image_phash(rle_decode(polygon_to_mask([4.0, 4.0, 40.0, 10.0, 12.0, 44.0], 48, 48, space => 'pixel')))) AS h;\n+------------------+\n| h                |\n+------------------+\n| c3d034672d3b1e96 |\n+------------------+\n```",
    )
    .build()
});

/// `COS[k][n] = cos(pi * k * (2n + 1) / 2N)`, the DCT-II basis.
static COS: LazyLock<[[f64; N]; N]> = LazyLock::new(|| {
    let mut t = [[0.0; N]; N];
    for (k, row) in t.iter_mut().enumerate() {
        for (n, c) in row.iter_mut().enumerate() {
            *c = (std::f64::consts::PI * k as f64 * (2 * n + 1) as f64 / (2 * N) as f64).cos();
        }
    }
    t
});

/// Unnormalised 32-point DCT-II (`scipy.fftpack.dct` type 2, `norm=None`):
/// `y[k] = 2 * sum_n x[n] cos(pi k (2n + 1) / 2N)`.
fn dct32(x: &[f64; N]) -> [f64; N] {
    let cos = &*COS;
    let mut y = [0.0; N];
    for (k, yk) in y.iter_mut().enumerate() {
        *yk = 2.0 * x.iter().zip(&cos[k]).map(|(a, c)| a * c).sum::<f64>();
    }
    y
}

/// 2-D DCT-II of a 32x32 block (`m[y][x]`): along axis 0 (columns), then along axis 1 (rows),
/// as `dct(dct(pixels, axis=0), axis=1)`.
fn dct2d(m: &[[f64; N]; N]) -> [[f64; N]; N] {
    let mut cols = [[0.0; N]; N];
    for x in 0..N {
        let col: [f64; N] = std::array::from_fn(|y| m[y][x]);
        for (y, v) in dct32(&col).into_iter().enumerate() {
            cols[y][x] = v;
        }
    }
    let mut out = [[0.0; N]; N];
    for y in 0..N {
        out[y] = dct32(&cols[y]);
    }
    out
}

/// The pHash of a greyscale image (any size; resized to 32x32 here).
pub fn phash_luma(gray: &GrayImage) -> u64 {
    let small = image::imageops::resize(gray, N as u32, N as u32, FilterType::Lanczos3);
    let mut m = [[0.0; N]; N];
    for (x, y, p) in small.enumerate_pixels() {
        m[y as usize][x as usize] = p.0[0] as f64;
    }
    let dct = dct2d(&m);
    // Rounded to 1e-6: coefficients that are equal in exact arithmetic (0 for a symmetric or
    // flat picture) then compare equal, as in scipy, instead of by rounding noise; differences
    // between real coefficients of 8-bit pixels are far larger.
    let low: Vec<f64> = dct[..HASH]
        .iter()
        .flat_map(|row| row[..HASH].iter().map(|v| (v * 1e6).round() / 1e6))
        .collect();
    let mut sorted = low.clone();
    sorted.sort_by(f64::total_cmp);
    // numpy.median of an even count: the mean of the two middle values.
    let median = (sorted[HASH * HASH / 2 - 1] + sorted[HASH * HASH / 2]) / 2.0;
    low.iter()
        .enumerate()
        .filter(|(_, &v)| v > median)
        .fold(0u64, |h, (i, _)| h | 1 << (HASH * HASH - 1 - i))
}

/// The pHash of encoded image bytes.
pub fn phash(bytes: &[u8], max_pixels: u64) -> std::result::Result<u64, String> {
    let img = super::pixels::decode(bytes, max_pixels)?;
    Ok(phash_luma(&super::pixels::luma_pil(&img)))
}

/// `image_phash(img)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ImagePhashFunc {
    signature: Signature,
    params: Params,
}

impl Default for ImagePhashFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ImagePhashFunc {
    pub fn new() -> Self {
        let params = Params::new(1, &[("image", Arg::Image), ("on_error", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for ImagePhashFunc {
    fn name(&self) -> &str {
        "image_phash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Int64, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.params.coerce(self.name(), arg_types)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (config, policy) = self.params.policy(self.name(), &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..1], args.number_rows)?;
        let images = common::image_values(self.name(), &arrays[0])?;
        let (values, errors) = common::map_rows(images, |_, img| {
            let Some(bytes) = img? else { return Ok(None) };
            // The u64's bits as an i64 (two's complement), so hashes round-trip through SQL.
            phash(bytes, config.max_image_pixels).map(|h| Some(h as i64))
        });
        let array: ArrayRef = Arc::new(Int64Array::from(values));
        common::shrink(common::finish(self.name(), policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use datafusion::arrow::array::{Array, AsArray, BinaryArray};
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::common::ScalarValue;
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::test_invoke::invoke;

    /// A smooth gradient with a bright disc and a dark box: `layout` 0 or 1 moves them and
    /// turns the gradient, so the two layouts are different pictures.
    pub(crate) fn scene(w: u32, h: u32, layout: u8) -> RgbImage {
        let (wf, hf) = (w as f64, h as f64);
        RgbImage::from_fn(w, h, |x, y| {
            let (u, v) = (x as f64 / wf, y as f64 / hf);
            let (u, v) = if layout == 0 { (u, v) } else { (1.0 - v, u) };
            let (cx, cy, r) = (0.3, 0.4, 0.2);
            if (u - cx).powi(2) + (v - cy).powi(2) < r * r {
                Rgb([240, 220, 60])
            } else if (0.6..0.9).contains(&u) && (0.55..0.85).contains(&v) {
                Rgb([20, 30, 90])
            } else {
                Rgb([(40.0 + 150.0 * u) as u8, (60.0 + 120.0 * v) as u8, 100])
            }
        })
    }

    pub(crate) fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img.clone()).write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(img)
            .unwrap();
        out
    }

    fn dist(a: u64, b: u64) -> u32 {
        (a ^ b).count_ones()
    }

    #[test]
    fn dct_of_a_constant_is_only_the_dc_term() {
        let out = dct2d(&[[3.0; N]; N]);
        // scipy: dct(dct(full((32, 32), 3.0), axis=0), axis=1)[0, 0] = 4 * 32 * 32 * 3.
        assert!((out[0][0] - 4.0 * 1024.0 * 3.0).abs() < 1e-9);
        let rest = out.iter().flatten().skip(1).map(|v| v.abs()).fold(0.0, f64::max);
        assert!(rest < 1e-9, "{rest}");
    }

    #[test]
    fn dct_of_a_basis_image_has_one_coefficient() {
        let (ky, kx) = (3, 5);
        let m: [[f64; N]; N] =
            std::array::from_fn(|y| std::array::from_fn(|x| COS[ky][y] * COS[kx][x]));
        let out = dct2d(&m);
        for (y, row) in out.iter().enumerate() {
            for (x, v) in row.iter().enumerate() {
                // Each axis: 2 * sum cos^2 = N for k > 0.
                let want = if (y, x) == (ky, kx) { (N * N) as f64 } else { 0.0 };
                assert!((v - want).abs() < 1e-9, "({y}, {x}): {v}");
            }
        }
    }

    /// Pictures whose imagehash.phash is known exactly (Pillow 13, scipy 1.17, imagehash 4.3.2).
    #[test]
    fn flat_and_symmetric_pictures_hash_as_imagehash() {
        let flat = RgbImage::from_pixel(50, 40, Rgb([120, 30, 200]));
        assert_eq!(phash(&encode(&flat, ImageFormat::Png), u64::MAX).unwrap(), 0x8000000000000000);
        let black = RgbImage::new(64, 64);
        assert_eq!(phash(&encode(&black, ImageFormat::Png), u64::MAX).unwrap(), 0);
        let rect = RgbImage::from_fn(64, 64, |x, y| {
            let on = (16..48).contains(&x) && (8..56).contains(&y);
            Rgb(if on { [255; 3] } else { [0; 3] })
        });
        assert_eq!(phash(&encode(&rect, ImageFormat::Png), u64::MAX).unwrap(), 0x8200200028002800);
    }

    #[test]
    fn re_encoded_and_resized_copies_hash_close() {
        let img = scene(256, 192, 0);
        let png = phash(&encode(&img, ImageFormat::Png), u64::MAX).unwrap();
        let jpg = phash(&jpeg(&img, 90), u64::MAX).unwrap();
        let small = image::imageops::resize(&img, 160, 120, FilterType::Triangle);
        let small = phash(&encode(&small, ImageFormat::Png), u64::MAX).unwrap();
        let big = image::imageops::resize(&img, 400, 300, FilterType::CatmullRom);
        let big = phash(&jpeg(&big, 90), u64::MAX).unwrap();
        for (what, h) in [("jpeg q90", jpg), ("160x120", small), ("400x300 jpeg", big)] {
            assert!(dist(png, h) <= 6, "{what}: {} bits apart", dist(png, h));
        }
    }

    #[test]
    fn different_pictures_hash_far_apart() {
        let a = phash(&encode(&scene(256, 192, 0), ImageFormat::Png), u64::MAX).unwrap();
        let b = phash(&encode(&scene(256, 192, 1), ImageFormat::Png), u64::MAX).unwrap();
        assert!(dist(a, b) > 16, "only {} bits apart", dist(a, b));
    }

    #[test]
    fn a_hash_has_32_bits_set_unless_values_tie() {
        // Bits above the median of 64 distinct values: exactly half.
        let h = phash(&encode(&scene(256, 192, 0), ImageFormat::Png), u64::MAX).unwrap();
        assert_eq!(h.count_ones(), 32);
    }

    #[test]
    fn greyscale_and_rgb_of_the_same_grey_picture_agree() {
        let rgb = scene(64, 64, 1);
        let grey = DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        let grey_rgb = RgbImage::from_fn(64, 64, |x, y| {
            let v = grey.get_pixel(x, y).0[0];
            Rgb([v, v, v])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageLuma8(grey).write_to(&mut out, ImageFormat::Png).unwrap();
        assert_eq!(
            phash(&out.into_inner(), u64::MAX).unwrap(),
            phash(&encode(&grey_rgb, ImageFormat::Png), u64::MAX).unwrap()
        );
    }

    #[test]
    fn invoke_hashes_rows_and_applies_on_error() {
        let png = encode(&scene(96, 64, 0), ImageFormat::Png);
        let want = phash(&png, u64::MAX).unwrap() as i64;
        let col = || {
            let rows: Vec<Option<&[u8]>> = vec![Some(&png), None, Some(b"junk")];
            ColumnarValue::Array(Arc::new(BinaryArray::from(rows)))
        };
        let f = ImagePhashFunc::new();

        let e = invoke(&f, vec![col()], 3).unwrap_err().to_string();
        assert!(
            e.contains("image_phash: row 3 of its batch: not a readable image (4 bytes)"),
            "{e}"
        );

        let null = ColumnarValue::Scalar(ScalarValue::Utf8(Some("null".into())));
        let out = invoke(&f, vec![col(), null], 3).unwrap().to_array(3).unwrap();
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.value(0), want);
        assert!(out.is_null(1) && out.is_null(2));

        let report = ColumnarValue::Scalar(ScalarValue::Utf8(Some("report".into())));
        let out = invoke(&f, vec![col(), report], 3).unwrap().to_array(3).unwrap();
        let st = out.as_struct();
        assert_eq!(st.column(0).as_primitive::<Int64Type>().value(0), want);
        let errs = st.column(1).as_string::<i32>();
        assert!(errs.is_null(0) && errs.is_null(1));
        assert!(errs.value(2).starts_with("not a readable image"), "{}", errs.value(2));
    }

    #[test]
    fn a_scalar_image_gives_a_scalar_hash() {
        let png = encode(&scene(40, 30, 1), ImageFormat::Png);
        let want = phash(&png, u64::MAX).unwrap() as i64;
        let out = invoke(
            &ImagePhashFunc::new(),
            vec![ColumnarValue::Scalar(ScalarValue::Binary(Some(png)))],
            1,
        )
        .unwrap();
        assert!(matches!(out, ColumnarValue::Scalar(ScalarValue::Int64(Some(h))) if h == want));
    }
}
