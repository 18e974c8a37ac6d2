//! `mask_color(image, mask)`: the basic colour name of the masked object.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use crate::common::{self, Arg, Params};
use crate::contour::{mask, options, Mask};

/// A 2x2 PNG: left column red (220, 30, 30), right column blue (30, 60, 200).
const PNG_RED_BLUE: &str = "X'89504E470D0A1A0A0000000D4948445200000002000000020802000000FDD49A730000001649444154789C63B823272767738289818181818101001782023DD0385CAF0000000049454E44AE426082'";

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The basic colour name of the object a mask covers in an image: the mean RGB of the \
         image pixels under the mask (alpha ignored), converted to HSV (H in degrees, S and V \
         in 0..1) and named, first rule that applies: V < 0.2 `black`; S < 0.15 `white` if V \
         > 0.8 else `gray`; then by hue: H < 15 or H >= 345 `red` (`pink` if S < 0.5 and V > \
         0.7, `brown` if V < 0.6 and S < 0.8); 15..45 `orange` (`brown` if V < 0.6); 45..70 \
         `yellow`; 70..165 `green`; 165..195 `cyan`; 195..255 `blue`; 255..300 `purple`; \
         300..345 `pink` (`purple` if V < 0.6). An empty mask gives NULL (no object). A mask \
         whose size differs from the image's, bytes that are not an image, or a corrupt mask \
         fail naming the row (NULL under `on_error => 'null'`).",
        "mask_color(image, mask [, on_error => 'fail' | 'null' | 'report'])",
    )
    .with_argument("image", format!("{} Formats: PNG, JPEG, WebP, BMP, TIFF.", super::IMAGE_ARG))
    .with_argument(
        "mask",
        "A mask of the image's size: PNG bytes, COCO RLE struct<size, counts>, or \
         struct<size, polygons>.",
    )
    .with_argument("on_error", "Per-row error policy: 'fail' (default), 'null' or 'report'.")
    .with_sql_example(format!(
        "```sql\n> SELECT mask_color({PNG_RED_BLUE}, named_struct('size', [2, 2], 'counts', [0, 2, 2])) AS left_half, mask_color({PNG_RED_BLUE}, named_struct('size', [2, 2], 'counts', [2, 2])) AS right_half;\n+-----------+------------+\n| left_half | right_half |\n+-----------+------------+\n| red       | blue       |\n+-----------+------------+\n```"
    ))
    .build()
});

/// HSV of an RGB colour in 0..1: hue in degrees [0, 360), saturation and value in 0..1.
pub fn hsv(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let s = if max > 0.0 { d / max } else { 0.0 };
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    (h, s, max)
}

/// The basic colour name of an RGB colour (components 0..255), by the rules documented on
/// `mask_color`.
pub fn color_name(r: f64, g: f64, b: f64) -> &'static str {
    let (h, s, v) = hsv(r / 255.0, g / 255.0, b / 255.0);
    if v < 0.2 {
        return "black";
    }
    if s < 0.15 {
        return if v > 0.8 { "white" } else { "gray" };
    }
    match h {
        h if !(15.0..345.0).contains(&h) => {
            if s < 0.5 && v > 0.7 {
                "pink"
            } else if v < 0.6 && s < 0.8 {
                "brown"
            } else {
                "red"
            }
        }
        h if h < 45.0 => {
            if v < 0.6 {
                "brown"
            } else {
                "orange"
            }
        }
        h if h < 70.0 => "yellow",
        h if h < 165.0 => "green",
        h if h < 195.0 => "cyan",
        h if h < 255.0 => "blue",
        h if h < 300.0 => "purple",
        _ => {
            if v < 0.6 {
                "purple"
            } else {
                "pink"
            }
        }
    }
}

/// Mean RGB (0..255) of the image pixels under the mask; `None` for an empty mask.
pub fn mean_rgb(img: &image::RgbImage, m: &Mask) -> Result<Option<[f64; 3]>, String> {
    let (w, h) = img.dimensions();
    if (m.width, m.height) != (w as usize, h as usize) {
        return Err(format!(
            "the mask is {}x{} but the image is {w}x{h} (width x height)",
            m.width, m.height
        ));
    }
    let mut sum = [0u64; 3];
    let mut n = 0u64;
    for (x, y, p) in img.enumerate_pixels() {
        if m.get(x as usize, y as usize) {
            for (s, c) in sum.iter_mut().zip(p.0) {
                *s += c as u64;
            }
            n += 1;
        }
    }
    Ok((n > 0).then(|| sum.map(|s| s as f64 / n as f64)))
}

/// `mask_color(image, mask)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskColorFunc {
    signature: Signature,
    params: Params,
}

impl Default for MaskColorFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskColorFunc {
    pub fn new() -> Self {
        let params =
            Params::new(2, &[("image", Arg::Image), ("mask", Arg::Any), ("on_error", Arg::Text)]);
        Self { signature: params.signature(Volatility::Immutable), params }
    }
}

impl ScalarUDFImpl for MaskColorFunc {
    fn name(&self) -> &str {
        "mask_color"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.params.result_field(self.name(), DataType::Utf8, &args))
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut t = self.params.coerce(self.name(), arg_types)?;
        t[1] = options::check_mask_type(self.name(), "mask", &t[1], false)?;
        Ok(t)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let func = self.name();
        let (config, policy) = self.params.policy(func, &args)?;
        let scalar = common::all_scalar(&args.args);
        let arrays = common::to_arrays(&args.args[..2], args.number_rows)?;
        let images = common::image_values(func, &arrays[0])?;
        let masks = mask::read_masks(func, &arrays[1])?;
        let (values, errors) = common::map_rows(images.into_iter().zip(masks), |_, (img, m)| {
            let m = m.map_err(|e| format!("mask: {e}"))?;
            let (Some(bytes), Some(m)) = (img?, m) else { return Ok(None) };
            let rgb = super::pixels::decode(bytes, config.max_image_pixels)?.to_rgb8();
            Ok(mean_rgb(&rgb, &m)?.map(|[r, g, b]| color_name(r, g, b)))
        });
        let array: ArrayRef = Arc::new(StringArray::from(values));
        common::shrink(common::finish(func, policy, array, errors)?, scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use datafusion::arrow::array::{Array, AsArray, BinaryArray};
    use datafusion::common::ScalarValue;
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

    use super::*;
    use crate::test_invoke::invoke;

    const NAMED: [((u8, u8, u8), &str); 16] = [
        ((220, 30, 30), "red"),
        ((139, 0, 0), "red"),
        ((240, 140, 20), "orange"),
        ((230, 220, 40), "yellow"),
        ((40, 180, 60), "green"),
        ((40, 200, 210), "cyan"),
        ((30, 60, 200), "blue"),
        ((120, 40, 160), "purple"),
        ((128, 0, 128), "purple"),
        ((255, 150, 200), "pink"),
        ((255, 192, 203), "pink"),
        ((120, 70, 30), "brown"),
        ((140, 70, 50), "brown"),
        ((250, 250, 250), "white"),
        ((128, 128, 128), "gray"),
        ((20, 20, 20), "black"),
    ];

    /// A `w` x `h` picture: a disc of `color` on a two-tone background, and the disc's mask.
    fn disc(w: u32, h: u32, color: Rgb<u8>) -> (RgbImage, Mask) {
        let (cx, cy, r) = (w as f64 * 0.45, h as f64 * 0.55, h as f64 * 0.3);
        let inside = |x: u32, y: u32| (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2) < r * r;
        let img = RgbImage::from_fn(w, h, |x, y| {
            if inside(x, y) {
                color
            } else if x < w / 2 {
                Rgb([235, 235, 235])
            } else {
                Rgb([15, 40, 15])
            }
        });
        let mut m = Mask::empty(w as usize, h as usize);
        for x in 0..w {
            for y in 0..h {
                m.set(x as usize, y as usize, inside(x, y));
            }
        }
        (img, m)
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img.clone()).write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn jpeg90(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(img).unwrap();
        out
    }

    fn binary(rows: Vec<Option<Vec<u8>>>) -> ColumnarValue {
        ColumnarValue::Array(Arc::new(BinaryArray::from_iter(rows)))
    }

    #[test]
    fn colours_are_named_by_the_documented_rules() {
        for ((r, g, b), want) in NAMED {
            assert_eq!(color_name(r as f64, g as f64, b as f64), want, "({r}, {g}, {b})");
        }
    }

    #[test]
    fn hsv_matches_the_usual_conversion() {
        let close = |a: (f64, f64, f64), b: (f64, f64, f64)| {
            (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9 && (a.2 - b.2).abs() < 1e-9
        };
        assert!(close(hsv(1.0, 0.0, 0.0), (0.0, 1.0, 1.0)));
        assert!(close(hsv(0.0, 1.0, 0.0), (120.0, 1.0, 1.0)));
        assert!(close(hsv(0.0, 0.0, 1.0), (240.0, 1.0, 1.0)));
        assert!(close(hsv(1.0, 0.0, 0.5), (330.0, 1.0, 1.0)));
        assert!(close(hsv(0.5, 0.5, 0.5), (0.0, 0.0, 0.5)));
        assert!(close(hsv(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)));
    }

    #[test]
    fn rendered_discs_are_named_by_their_colour_in_png_and_jpeg() {
        let mut images = Vec::new();
        let mut masks = Vec::new();
        let mut want = Vec::new();
        for ((r, g, b), name) in NAMED {
            let (img, m) = disc(80, 60, Rgb([r, g, b]));
            for bytes in [encode(&img, ImageFormat::Png), jpeg90(&img)] {
                images.push(Some(bytes));
                masks.push(Some(m.to_png()));
                want.push(name);
            }
        }
        let n = want.len();
        let out = invoke(&MaskColorFunc::new(), vec![binary(images), binary(masks)], n).unwrap();
        let out = out.to_array(n).unwrap();
        let got: Vec<_> = out.as_string::<i32>().iter().map(Option::unwrap).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rle_masks_work_like_png_masks() {
        let (img, m) = disc(40, 30, Rgb([30, 60, 200]));
        let rle = mask::rle_array([Some(&m)]);
        let img = ColumnarValue::Scalar(ScalarValue::Binary(Some(encode(&img, ImageFormat::Png))));
        let out = invoke(&MaskColorFunc::new(), vec![img, ColumnarValue::Array(rle)], 1).unwrap();
        assert_eq!(out.to_array(1).unwrap().as_string::<i32>().value(0), "blue");
    }

    #[test]
    fn empty_masks_and_nulls_give_null_and_sizes_must_match() {
        let (img, m) = disc(40, 30, Rgb([40, 180, 60]));
        let png = encode(&img, ImageFormat::Png);
        let images = || binary(vec![Some(png.clone()), None, Some(png.clone()), Some(png.clone())]);
        let masks = || {
            binary(vec![
                Some(Mask::empty(40, 30).to_png()),
                Some(m.to_png()),
                None,
                Some(Mask::empty(30, 40).to_png()),
            ])
        };
        let f = MaskColorFunc::new();
        let e = invoke(&f, vec![images(), masks()], 4).unwrap_err().to_string();
        assert!(
            e.contains("mask_color: row 4 of its batch: the mask is 30x40 but the image is 40x30"),
            "{e}"
        );
        let null = ColumnarValue::Scalar(ScalarValue::Utf8(Some("null".into())));
        let out = invoke(&f, vec![images(), masks(), null], 4).unwrap().to_array(4).unwrap();
        assert_eq!(out.null_count(), 4);
        let report = ColumnarValue::Scalar(ScalarValue::Utf8(Some("report".into())));
        let out = invoke(&f, vec![images(), masks(), report], 4).unwrap().to_array(4).unwrap();
        let errs = out.as_struct().column(1).as_string::<i32>().clone();
        assert_eq!(errs.null_count(), 3, "only the size mismatch is an error");
        assert!(errs.value(3).starts_with("the mask is 30x40"));
    }

    #[test]
    fn unreadable_images_and_masks_name_the_row() {
        let (img, m) = disc(40, 30, Rgb([40, 180, 60]));
        let images = binary(vec![Some(encode(&img, ImageFormat::Png)), Some(b"junk".to_vec())]);
        let masks = binary(vec![Some(b"nope".to_vec()), Some(m.to_png())]);
        let e = invoke(&MaskColorFunc::new(), vec![images, masks], 2).unwrap_err().to_string();
        assert!(e.contains("mask_color: row 1 of its batch: mask: not a readable PNG mask"), "{e}");
    }
}
