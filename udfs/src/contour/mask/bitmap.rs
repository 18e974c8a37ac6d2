//! The decoded mask: one byte per pixel, column-major, and the word-at-a-time column scans
//! the tracer shares.

use super::*;

/// A binary mask of `width` x `height` pixels, column-major, one byte (0 or 1) per pixel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    /// `bits[x * height + y]` is 1 for foreground.
    pub bits: Vec<u8>,
}

impl Mask {
    /// An all-background mask.
    pub fn empty(width: usize, height: usize) -> Mask {
        Mask { width, height, bits: vec![0; width * height] }
    }

    pub fn get(&self, x: usize, y: usize) -> bool {
        self.bits[x * self.height + y] != 0
    }

    pub fn set(&mut self, x: usize, y: usize, v: bool) {
        self.bits[x * self.height + y] = v as u8;
    }

    /// Number of foreground pixels.
    pub fn area(&self) -> u64 {
        self.bits.iter().map(|&b| b as u64).sum()
    }

    /// Decodes a PNG (any colour type or bit depth): a pixel is foreground when any of its colour
    /// channels is non-zero (alpha is ignored). Palette images are read by colour, not index.
    pub fn from_png(bytes: &[u8]) -> std::result::Result<Mask, String> {
        let (w, h) = crate::image::dimensions(bytes)
            .map_err(|e| format!("not a readable PNG mask ({} bytes): {e}", bytes.len()))?;
        crate::limits::check_mask("PNG mask", w.into(), h.into())?;
        crate::contour::png_mask::decode(bytes)
    }

    /// [`Mask::from_png`] through the `image` crate's RGBA conversion: the reference the fast
    /// decoder is tested against.
    #[cfg(test)]
    pub(crate) fn from_png_by_image(bytes: &[u8]) -> std::result::Result<Mask, String> {
        let img =
            image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Png)
                .decode()
                .map_err(|e| format!("not a readable PNG mask ({} bytes): {e}", bytes.len()))?;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut m = Mask::empty(w, h);
        match img {
            image::DynamicImage::ImageLuma8(g) => {
                for (i, v) in g.into_raw().into_iter().enumerate() {
                    m.bits[(i % w) * h + i / w] = (v != 0) as u8;
                }
            }
            other => {
                let rgba = other.into_rgba16();
                for (i, p) in rgba.pixels().enumerate() {
                    m.bits[(i % w) * h + i / w] = (p.0[0] | p.0[1] | p.0[2] != 0) as u8;
                }
            }
        }
        Ok(m)
    }

    /// Encodes as an 8-bit grayscale PNG, foreground 255.
    pub fn to_png(&self) -> Vec<u8> {
        let mut raw = vec![0u8; self.width * self.height];
        for x in 0..self.width {
            for y in 0..self.height {
                raw[y * self.width + x] = self.bits[x * self.height + y] * 255;
            }
        }
        let mut out = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut out);
        image::ImageEncoder::write_image(
            enc,
            &raw,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::L8,
        )
        .expect("encoding a grayscale PNG into memory cannot fail");
        out
    }

    /// Builds a mask from uncompressed COCO counts (alternating background/foreground runs,
    /// starting with background, column-major). The counts must sum to `height * width`.
    pub fn from_counts(
        height: usize,
        width: usize,
        counts: &[u64],
    ) -> std::result::Result<Mask, String> {
        let total: u64 = counts.iter().sum();
        let want = (height * width) as u64;
        if total != want {
            return Err(format!(
                "RLE counts sum to {total}, expected height*width = {height}*{width} = {want}"
            ));
        }
        let mut bits = Vec::with_capacity(want as usize);
        for (i, &c) in counts.iter().enumerate() {
            bits.resize(bits.len() + c as usize, (i % 2) as u8);
        }
        Ok(Mask { width, height, bits })
    }

    /// Builds a mask from a compressed COCO RLE string (pycocotools `rleFrString`).
    pub fn from_rle_string(
        height: usize,
        width: usize,
        s: &str,
    ) -> std::result::Result<Mask, String> {
        Mask::from_counts(height, width, &decode_counts(s)?)
    }

    /// Uncompressed COCO counts, canonical as pycocotools' `rleEncode` writes them.
    pub fn counts(&self) -> Vec<u64> {
        let bits = &self.bits;
        let mut counts = Vec::new();
        let (mut value, mut start) = (0u8, 0usize);
        loop {
            let end = run_end(bits, start, value);
            counts.push((end - start) as u64);
            if end == bits.len() {
                return counts;
            }
            (value, start) = (bits[end], end);
        }
    }

    /// The compressed COCO RLE string, byte-identical with pycocotools' `encode(...)['counts']`.
    pub fn rle_string(&self) -> String {
        encode_counts(&self.counts())
    }

    /// Rasterises COCO polygons (pixel coordinates `[x0, y0, x1, y1, ...]`) and unions them, as
    /// pycocotools' `frPyObjects` + `merge`. Polygons with fewer than 3 points add nothing.
    /// Coordinates must be finite; points outside the image are clipped by the rule itself.
    pub fn from_polygons(height: usize, width: usize, polygons: &[Vec<f64>]) -> Mask {
        Rle::from_polygons(height, width, polygons).to_mask()
    }

    /// Pixels in both masks and in either (`None` when the sizes differ).
    pub fn intersection_union(&self, other: &Mask) -> Option<(u64, u64)> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let (mut i, mut u) = (0u64, 0u64);
        for (&a, &b) in self.bits.iter().zip(&other.bits) {
            i += (a & b) as u64;
            u += (a | b) as u64;
        }
        Some((i, u))
    }

    /// Intersection over union; two empty masks give 0 (as pycocotools' `iou`).
    pub fn iou(&self, other: &Mask) -> std::result::Result<f64, String> {
        let (i, u) = self.intersection_union(other).ok_or_else(|| {
            format!(
                "masks differ in size: {}x{} vs {}x{} (width x height)",
                self.width, self.height, other.width, other.height
            )
        })?;
        Ok(if u == 0 { 0.0 } else { i as f64 / u as f64 })
    }

    /// The mask cropped to its box, with the box's top-left corner (see [`Rle::crop`]).
    pub fn crop(&self) -> Option<(Mask, usize, usize)> {
        let (x0, y0, x1, y1) = self.bbox()?;
        let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
        let mut bits = Vec::with_capacity(cw * ch);
        for x in x0..=x1 {
            let col = x * self.height;
            bits.extend_from_slice(&self.bits[col + y0..col + y1 + 1]);
        }
        Some((Mask { width: cw, height: ch, bits }, x0, y0))
    }

    /// Tight pixel box `(x_min, y_min, x_max, y_max)`, inclusive; `None` for an empty mask.
    pub fn bbox(&self) -> Option<(usize, usize, usize, usize)> {
        let h = self.height;
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for x in 0..self.width {
            let col = &self.bits[x * h..(x + 1) * h];
            // Most columns are empty or already inside [y0, y1]: skip empty ones a word at a time
            // and look for the exact ends only where they can widen the box.
            if next_nonzero(col, 0).is_none() {
                continue;
            }
            x0 = x0.min(x);
            x1 = x;
            // Before the first non-empty column y0 is usize::MAX: the whole column is searched.
            if let Some(first) = next_nonzero(&col[..y0.min(h)], 0) {
                y0 = first;
            }
            // y1 starts at 0, so row 0 is never searched below; it needs no search: a
            // foreground pixel there is already inside [y0, y1] = [0, 0].
            let below = y1 + 1;
            if below < h {
                if let Some(last) = last_nonzero(&col[below..]) {
                    y1 = below + last;
                }
            }
        }
        (x0 != usize::MAX).then_some((x0, y0, x1, y1))
    }
}

// Column scans (the box, the tracer's runs) go eight bytes at a time: the first non-zero byte
// of a word is its lowest set bit / 8 (little-endian), and the first zero byte is the lowest byte flagged by the classic
// "has a zero byte" expression (exact for the lowest one, whatever the other bytes hold).
const BYTE_ONES: u64 = 0x0101_0101_0101_0101;
const BYTE_HIGHS: u64 = 0x8080_8080_8080_8080;

fn word_at(s: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"))
}

/// The first non-zero byte of `s` at or after `i`.
pub(crate) fn next_nonzero(s: &[u8], mut i: usize) -> Option<usize> {
    while i + 16 <= s.len() {
        let (a, b) = (word_at(s, i), word_at(s, i + 8));
        if a != 0 {
            return Some(i + (a.trailing_zeros() / 8) as usize);
        }
        if b != 0 {
            return Some(i + 8 + (b.trailing_zeros() / 8) as usize);
        }
        i += 16;
    }
    s[i..].iter().position(|&u| u != 0).map(|k| i + k)
}

/// The first zero byte of `s` at or after `i`.
pub(crate) fn next_zero(s: &[u8], mut i: usize) -> Option<usize> {
    let zeros = |w: u64| w.wrapping_sub(BYTE_ONES) & !w & BYTE_HIGHS;
    while i + 16 <= s.len() {
        let (a, b) = (zeros(word_at(s, i)), zeros(word_at(s, i + 8)));
        if a != 0 {
            return Some(i + (a.trailing_zeros() / 8) as usize);
        }
        if b != 0 {
            return Some(i + 8 + (b.trailing_zeros() / 8) as usize);
        }
        i += 16;
    }
    s[i..].iter().position(|&u| u == 0).map(|k| i + k)
}

/// The last non-zero byte, finding its block branch-free first.
pub(crate) fn last_nonzero(s: &[u8]) -> Option<usize> {
    let mut end = s.len();
    for block in s.rchunks_exact(32) {
        if block.iter().fold(0, |acc, &u| acc | u) != 0 {
            break;
        }
        end -= 32;
    }
    s[..end].iter().rposition(|&u| u != 0)
}

/// The first index from `i` on whose byte is not `value` (or the length): eight bytes are
/// compared at a time, since runs in masks are hundreds of pixels long.
fn run_end(bits: &[u8], mut i: usize, value: u8) -> usize {
    let same = u64::from_le_bytes([value; 8]);
    while let Some(chunk) = bits.get(i..i + 8) {
        let differ = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ same;
        if differ != 0 {
            return i + (differ.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < bits.len() && bits[i] == value {
        i += 1;
    }
    i
}
