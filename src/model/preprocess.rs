//! Image preprocessing as InstructBLIP's image processor does it: any input mode to 8-bit RGB
//! (transparency composited onto white), optional white square padding (VistaLLM's
//! `Expand2square`), PIL's bicubic resize to the checkpoint's size (ported bit-exactly), then
//! rescale by 1/255 and normalise with the checkpoint's mean/std. CLIP's processor (LLaVA)
//! instead resizes the shortest edge to the size and crops the centre square.

use std::path::Path;

use image::{DynamicImage, RgbImage, RgbaImage};
use serde::Deserialize;

/// OpenAI CLIP statistics, InstructBLIP's defaults.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    pub size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Resize the shortest edge to `size`, then crop the centre `size` x `size` square
    /// (`do_center_crop` with `size.shortest_edge`); otherwise resize to the square directly.
    pub center_crop: bool,
}

#[derive(Deserialize)]
struct ProcessorFile {
    image_processor: Option<ImageProcessorFile>,
}

#[derive(Deserialize)]
struct ImageProcessorFile {
    image_mean: Option<[f32; 3]>,
    image_std: Option<[f32; 3]>,
    size: Option<serde_json::Value>,
    do_center_crop: Option<bool>,
    crop_size: Option<serde_json::Value>,
}

impl Preprocess {
    /// From `processor_config.json` or `preprocessor_config.json` when present, else the vision
    /// config's image size with CLIP statistics.
    pub fn from_dir(dir: &Path, image_size: usize) -> Result<Self, String> {
        let mut pre =
            Preprocess { size: image_size, mean: CLIP_MEAN, std: CLIP_STD, center_crop: false };
        let file = ["preprocessor_config.json", "processor_config.json"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file());
        let Some(path) = file else {
            return Ok(pre);
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let ip: ImageProcessorFile = match serde_json::from_str::<ProcessorFile>(&text) {
            Ok(ProcessorFile { image_processor: Some(ip) }) => ip,
            _ => serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        };
        pre.mean = ip.image_mean.unwrap_or(pre.mean);
        pre.std = ip.image_std.unwrap_or(pre.std);
        if let Some(size) = ip.size {
            let side = |k: &str| size.get(k).and_then(|v| v.as_u64());
            let s = match (side("height"), side("width"), size.as_u64()) {
                (Some(h), Some(w), _) if h == w => h,
                (Some(h), Some(w), _) => {
                    return Err(format!(
                        "{}: non-square image size {w}x{h} is not supported",
                        path.display()
                    ))
                }
                (_, _, Some(s)) => s,
                _ => side("shortest_edge").unwrap_or(image_size as u64),
            };
            if s as usize != image_size {
                return Err(format!(
                    "{}: image size {s} differs from vision_config.image_size {image_size}",
                    path.display()
                ));
            }
            pre.center_crop = ip.do_center_crop == Some(true) && side("shortest_edge").is_some();
        }
        if pre.center_crop {
            let crop = ip.crop_size.as_ref();
            let side = |k: &str| crop.and_then(|c| c.get(k)).and_then(|v| v.as_u64());
            let (h, w) = (side("height"), side("width"));
            if (h, w) != (Some(image_size as u64), Some(image_size as u64)) {
                return Err(format!(
                    "{}: crop_size {} must be {image_size}x{image_size}, the vision tower's input",
                    path.display(),
                    crop.map_or("(missing)".to_string(), |c| c.to_string())
                ));
            }
        }
        Ok(pre)
    }

    /// Encoded bytes -> normalised CHW floats [3 * size * size]. The decoded image and its
    /// square padding may each hold at most `max_pixels` pixels (a 1 x 100000 PNG is 370 bytes
    /// on disk and 30 GB once padded).
    pub fn run(&self, bytes: &[u8], pad_square: bool, max_pixels: u64) -> Result<Vec<f32>, String> {
        let img = decode_rgb_within(bytes, max_pixels)?;
        let img = if pad_square {
            let side = u64::from(img.width().max(img.height()));
            let limits =
                vista_udfs::limits::Limits { max_image_pixels: max_pixels, ..Default::default() };
            limits.check_image("square-padded image", side, side)?;
            expand_to_square(&img)
        } else {
            img
        };
        let img = if self.center_crop {
            resize_shortest_and_crop(&img, self.size)
        } else {
            resize_bicubic(&img, self.size, self.size)
        };
        Ok(self.normalize(&img))
    }

    pub fn normalize(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut out = vec![0f32; 3 * w * h];
        for (x, y, p) in img.enumerate_pixels() {
            for c in 0..3 {
                let v = (f64::from(p.0[c]) * (1.0 / 255.0)) as f32;
                out[c * w * h + y as usize * w + x as usize] = (v - self.mean[c]) / self.std[c];
            }
        }
        out
    }
}

/// Decodes any supported format and mode to 8-bit RGB; transparency is composited onto white
/// exactly as PIL's `alpha_composite` does (transformers' `convert_to_rgb`).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    decode_rgb_within(bytes, vista_udfs::limits::DEFAULT_MAX_IMAGE_PIXELS)
}

/// [`decode_rgb`] refusing images of more than `max_pixels` pixels before decoding them.
pub fn decode_rgb_within(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    let img = vista_udfs::image::pixels::decode(bytes, max_pixels)
        .map_err(|e| format!("cannot decode image: {e}"))?;
    if img.width() == 0 || img.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(if img.color().has_alpha() {
        composite_on_white(&img.to_rgba8())
    } else {
        match img {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => other.to_rgb8(),
        }
    })
}

fn composite_on_white(img: &RgbaImage) -> RgbImage {
    const PREC: u32 = 7;
    let div255 = |a: u32| ((a >> 8) + a) >> 8;
    let mut out = RgbImage::new(img.width(), img.height());
    for (src, dst) in img.pixels().zip(out.pixels_mut()) {
        let a = u32::from(src.0[3]);
        if a == 0 {
            dst.0 = [255, 255, 255];
            continue;
        }
        let coef1 = a * 255 * 255 * (1 << PREC) / (255 * 255);
        let coef2 = 255 * (1 << PREC) - coef1;
        for c in 0..3 {
            let tmp = u32::from(src.0[c]) * coef1 + 255 * coef2;
            dst.0[c] = (div255(tmp + (0x80 << PREC)) >> PREC) as u8;
        }
    }
    out
}

/// CLIP's processor: the shortest edge resized to `size` (the other to `size * long / short`,
/// truncated) with PIL's bicubic filter, then the centre `size` x `size` square, its corner at
/// ((w - size) / 2, (h - size) / 2) rounded down.
pub fn resize_shortest_and_crop(img: &RgbImage, size: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (short, long) = (w.min(h), w.max(h));
    let other = size * long / short;
    let (rw, rh) = if w <= h { (size, other) } else { (other, size) };
    let resized = resize_bicubic(img, rw, rh);
    let (left, top) = ((rw - size) / 2, (rh - size) / 2);
    image::imageops::crop_imm(&resized, left as u32, top as u32, size as u32, size as u32)
        .to_image()
}

/// VistaLLM's `Expand2square`: a white square of side max(w, h), the image pasted at
/// ((side - w) / 2, (side - h) / 2).
pub fn expand_to_square(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == h {
        return img.clone();
    }
    let side = w.max(h);
    let mut out = RgbImage::from_pixel(side, side, image::Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, img, i64::from((side - w) / 2), i64::from((side - h) / 2));
    out
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc`: per output pixel, the first input index,
/// the tap count and fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bicubic((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut kk[xx * ksize..(xx + 1) * ksize];
        for (x, slot) in row.iter_mut().enumerate().take(xmax) {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let f = w * f64::from(1u32 << PRECISION_BITS);
            *slot = if w < 0.0 { (-0.5 + f) as i32 } else { (0.5 + f) as i32 };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One horizontal pass (PIL `ImagingResampleHorizontal_8bpc`) over `rows` rows of `src`
/// starting at `first_row`.
fn horizontal(src: &[u8], in_w: usize, first_row: usize, rows: usize, out_w: usize) -> Vec<u8> {
    let (bounds, kk, ks) = coefficients(in_w, out_w);
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; rows * out_w * 3];
    for y in 0..rows {
        let line = &src[(y + first_row) * in_w * 3..(y + first_row + 1) * in_w * 3];
        for (xx, &(xmin, xmax)) in bounds.iter().enumerate() {
            let k = &kk[xx * ks..xx * ks + xmax];
            for c in 0..3 {
                let mut ss = half;
                for (x, &kx) in k.iter().enumerate() {
                    ss += i64::from(line[(x + xmin) * 3 + c]) * i64::from(kx);
                }
                out[(y * out_w + xx) * 3 + c] = clip8(ss);
            }
        }
    }
    out
}

/// One vertical pass (PIL `ImagingResampleVertical_8bpc`); `bounds` already relative to `src`.
fn vertical(src: &[u8], width: usize, bounds: &[(usize, usize)], kk: &[i32], ks: usize) -> Vec<u8> {
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; bounds.len() * width * 3];
    for (yy, &(ymin, ymax)) in bounds.iter().enumerate() {
        let k = &kk[yy * ks..yy * ks + ymax];
        for xx in 0..width {
            for c in 0..3 {
                let mut ss = half;
                for (y, &ky) in k.iter().enumerate() {
                    ss += i64::from(src[((y + ymin) * width + xx) * 3 + c]) * i64::from(ky);
                }
                out[(yy * width + xx) * 3 + c] = clip8(ss);
            }
        }
    }
    out
}

/// Bit-exact port of Pillow's `Image.resize(size, Image.BICUBIC)` for 8-bit RGB: two separable
/// fixed-point passes with an 8-bit intermediate. Pillow (checked against 13.0) runs the
/// vertical pass first when the width grows while the height shrinks, else the horizontal pass
/// first (over just the rows the vertical pass reads); a pass whose size is unchanged is skipped.
pub fn resize_bicubic(img: &RgbImage, out_w: usize, out_h: usize) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let (mut vb, vk, vks) = coefficients(in_h, out_h);
    let pixels = match (in_w != out_w, in_h != out_h) {
        (false, false) => src.to_vec(),
        (true, false) => horizontal(src, in_w, 0, in_h, out_w),
        (false, true) => vertical(src, in_w, &vb, &vk, vks),
        (true, true) if out_w > in_w && out_h < in_h => {
            let tmp = vertical(src, in_w, &vb, &vk, vks);
            horizontal(&tmp, in_w, 0, out_h, out_w)
        }
        (true, true) => {
            let first = vb[0].0;
            let last = vb[out_h - 1].0 + vb[out_h - 1].1;
            for b in vb.iter_mut() {
                b.0 -= first;
            }
            let tmp = horizontal(src, in_w, first, last - first, out_w);
            vertical(&tmp, out_w, &vb, &vk, vks)
        }
    };
    RgbImage::from_raw(out_w as u32, out_h as u32, pixels).expect("buffer sized for the image")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_padding_centres_with_floor_offset() {
        let img = RgbImage::from_pixel(4, 1, image::Rgb([0, 0, 0]));
        let sq = expand_to_square(&img);
        assert_eq!(sq.dimensions(), (4, 4));
        // (4 - 1) / 2 = 1: row 1 holds the image.
        assert_eq!(sq.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(sq.get_pixel(0, 1).0, [0, 0, 0]);
        assert_eq!(sq.get_pixel(3, 2).0, [255, 255, 255]);
    }

    #[test]
    fn transparent_pixels_become_white_and_opaque_ones_stay() {
        let mut img = RgbaImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgba([10, 20, 30, 0]));
        img.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let rgb = composite_on_white(&img);
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }

    #[test]
    fn constant_image_stays_constant_through_resize() {
        let img = RgbImage::from_pixel(37, 11, image::Rgb([200, 7, 99]));
        let out = resize_bicubic(&img, 14, 14);
        assert!(out.pixels().all(|p| p.0 == [200, 7, 99]));
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        assert!(decode_rgb(b"not an image").unwrap_err().contains("cannot decode"));
    }
}
