//! Binary masks and their interchange formats: PNG, COCO RLE (compressed string or counts list)
//! and COCO polygons, byte-compatible with pycocotools.
//!
//! A [`Mask`] stores one byte per pixel (0 or 1) in **column-major** order (`x * height + y`),
//! the order COCO RLE runs over, so RLE encoding, decoding, areas and IoUs are single passes.
//!
//! Polygon coordinates follow pycocotools (COCO's frame): pixel `(x, y)` is the square
//! `[x, x + 1] x [y, y + 1]`, and it belongs to a polygon when the scan-line rule of `rleFrPoly`
//! (boundary upsampled 5x, then the crossing of every pixel column) puts it inside: in effect
//! when its centre `(x + 0.5, y + 0.5)` is inside, ties decided by that rule's rounding. [`Mask::from_polygons`]
//! ports that rule exactly, so its RLE equals `pycocotools.mask.frPyObjects` + `merge`.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, ListArray, ListBuilder, StringBuilder, StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int64Type};
use datafusion::common::{exec_datafusion_err, Result};

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
        super::png_mask::decode(bytes)
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
        let mut counts = Vec::new();
        let mut prev = 0u8;
        let mut run = 0u64;
        for &b in &self.bits {
            if b != prev {
                counts.push(run);
                run = 0;
                prev = b;
            }
            run += 1;
        }
        counts.push(run);
        counts
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
pub(super) fn next_nonzero(s: &[u8], mut i: usize) -> Option<usize> {
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
pub(super) fn next_zero(s: &[u8], mut i: usize) -> Option<usize> {
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
fn last_nonzero(s: &[u8]) -> Option<usize> {
    let mut end = s.len();
    for block in s.rchunks_exact(32) {
        if block.iter().fold(0, |acc, &u| acc | u) != 0 {
            break;
        }
        end -= 32;
    }
    s[..end].iter().rposition(|&u| u != 0)
}

/// A mask as COCO run lengths: column-major runs over `height * width` pixels, background
/// first. Area, box and IoU are computed on the runs, in time proportional to the number of
/// runs rather than pixels (pycocotools' `area`, `toBbox`, `iou`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rle {
    pub height: usize,
    pub width: usize,
    pub counts: Vec<u64>,
}

impl Rle {
    /// Checks that the runs cover exactly `height * width` pixels.
    pub fn new(height: usize, width: usize, counts: Vec<u64>) -> std::result::Result<Rle, String> {
        let total: u64 = counts.iter().sum();
        let want = (height * width) as u64;
        if total != want {
            return Err(format!(
                "RLE counts sum to {total}, expected height*width = {height}*{width} = {want}"
            ));
        }
        Ok(Rle { height, width, counts })
    }

    pub fn from_mask(m: &Mask) -> Rle {
        Rle { height: m.height, width: m.width, counts: m.counts() }
    }

    pub fn to_mask(&self) -> Mask {
        Mask::from_counts(self.height, self.width, &self.counts)
            .expect("Rle::new checked that the runs cover the mask")
    }

    /// Foreground runs as `[start, end)` pixel offsets (column-major).
    fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut pos = 0u64;
        self.counts.iter().enumerate().filter_map(move |(i, &c)| {
            let start = pos;
            pos += c;
            (i % 2 == 1 && c > 0).then_some((start, pos))
        })
    }

    pub fn area(&self) -> u64 {
        self.counts.iter().skip(1).step_by(2).sum()
    }

    /// Pixels in both masks and in either (`None` when the sizes differ).
    pub fn intersection_union(&self, other: &Rle) -> Option<(u64, u64)> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let (mut a, mut b) = (self.runs().peekable(), other.runs().peekable());
        let mut inter = 0u64;
        while let (Some(&(a0, a1)), Some(&(b0, b1))) = (a.peek(), b.peek()) {
            let (lo, hi) = (a0.max(b0), a1.min(b1));
            if hi > lo {
                inter += hi - lo;
            }
            if a1 <= b1 {
                a.next();
            } else {
                b.next();
            }
        }
        Some((inter, self.area() + other.area() - inter))
    }

    /// Intersection over union; two empty masks give 0 (as pycocotools' `iou`).
    pub fn iou(&self, other: &Rle) -> std::result::Result<f64, String> {
        let (i, u) = self.intersection_union(other).ok_or_else(|| {
            format!(
                "masks differ in size: {}x{} vs {}x{} (width x height)",
                self.width, self.height, other.width, other.height
            )
        })?;
        Ok(if u == 0 { 0.0 } else { i as f64 / u as f64 })
    }

    /// Tight pixel box `(x_min, y_min, x_max, y_max)`, inclusive; `None` for an empty mask.
    pub fn bbox(&self) -> Option<(usize, usize, usize, usize)> {
        let h = self.height as u64;
        let (mut x0, mut y0, mut x1, mut y1) = (u64::MAX, u64::MAX, 0, 0);
        for (start, end) in self.runs() {
            let (xs, xe) = (start / h, (end - 1) / h);
            let (ys, ye) = if xs == xe { (start % h, (end - 1) % h) } else { (0, h - 1) };
            x0 = x0.min(xs);
            x1 = x1.max(xe);
            y0 = y0.min(ys);
            y1 = y1.max(ye);
        }
        (x0 != u64::MAX).then_some((x0 as usize, y0 as usize, x1 as usize, y1 as usize))
    }

    /// Rasterises COCO polygons (pixel coordinates) and unions them, as pycocotools'
    /// `frPyObjects` + `merge`, without a bitmap: each polygon's runs come from `rleFrPoly` and
    /// the union merges runs. Polygons with fewer than 3 points add nothing.
    pub fn from_polygons(height: usize, width: usize, polygons: &[Vec<f64>]) -> Rle {
        let drawn: Vec<&Vec<f64>> = polygons.iter().filter(|p| p.len() >= 6).collect();
        if let [one] = drawn[..] {
            // One polygon's counts are already canonical: no union to take.
            return Rle { height, width, counts: poly_counts(one, height, width) };
        }
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for p in drawn {
            let counts = poly_counts(p, height, width);
            let r = Rle { height, width, counts };
            runs.extend(r.runs());
        }
        Rle::from_runs(height, width, runs)
    }

    /// The canonical runs of the union of foreground intervals `[start, end)`.
    fn from_runs(height: usize, width: usize, mut runs: Vec<(u64, u64)>) -> Rle {
        runs.sort_unstable();
        let mut counts = Vec::with_capacity(2 * runs.len() + 1);
        let mut pos = 0u64;
        let mut current: Option<(u64, u64)> = None;
        let emit = |(s, e): (u64, u64), counts: &mut Vec<u64>, pos: &mut u64| {
            counts.push(s - *pos);
            counts.push(e - s);
            *pos = e;
        };
        for (s, e) in runs.into_iter().filter(|(s, e)| e > s) {
            current = match current {
                Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
                Some(c) => {
                    emit(c, &mut counts, &mut pos);
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        if let Some(c) = current {
            emit(c, &mut counts, &mut pos);
        }
        let total = (height * width) as u64;
        if pos < total || counts.is_empty() {
            counts.push(total - pos);
        }
        Rle { height, width, counts }
    }

    /// The mask cropped to its box, with the box's top-left corner: contours traced on the crop
    /// and shifted by it are the full mask's contours, at a fraction of the pixels.
    pub fn crop(&self) -> Option<(Mask, usize, usize)> {
        let (x0, y0, x1, y1) = self.bbox()?;
        let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
        let mut m = Mask::empty(cw, ch);
        let h = self.height as u64;
        for (start, end) in self.runs() {
            let mut p = start;
            while p < end {
                let (x, y) = ((p / h) as usize, (p % h) as usize);
                let col_end = ((p / h) + 1) * h;
                let stop = end.min(col_end);
                let n = (stop - p) as usize;
                let base = (x - x0) * ch + (y - y0);
                m.bits[base..base + n].fill(1);
                p = stop;
            }
        }
        Some((m, x0, y0))
    }
}

/// Decodes pycocotools' compressed counts (LEB128-like, 6 bits per char from '0', deltas
/// against the count two places back from the fourth count on).
pub fn decode_counts(s: &str) -> std::result::Result<Vec<u64>, String> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u64> = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let mut x: i64 = 0;
        let mut k = 0;
        loop {
            let Some(&ch) = bytes.get(p) else {
                return Err(format!("compressed RLE string ends inside a count at byte {p}"));
            };
            if !(48..48 + 64).contains(&ch) {
                return Err(format!(
                    "compressed RLE string has an invalid character {:?} at byte {p}",
                    ch as char
                ));
            }
            if k >= 12 {
                return Err("compressed RLE string has a count longer than 12 characters".into());
            }
            let c = (ch - 48) as i64;
            x |= (c & 0x1f) << (5 * k);
            p += 1;
            k += 1;
            if c & 0x20 == 0 {
                if c & 0x10 != 0 {
                    x |= -1i64 << (5 * k);
                }
                break;
            }
        }
        if counts.len() > 2 {
            x += counts[counts.len() - 2] as i64;
        }
        if x < 0 {
            return Err(format!(
                "compressed RLE string decodes to a negative count at count {}",
                counts.len() + 1
            ));
        }
        counts.push(x as u64);
    }
    Ok(counts)
}

/// Encodes counts as pycocotools' compressed string (`rleToString`).
pub fn encode_counts(counts: &[u64]) -> String {
    let mut s = Vec::with_capacity(counts.len() * 2);
    for (i, &c) in counts.iter().enumerate() {
        let mut x = c as i64;
        if i > 2 {
            x -= counts[i - 2] as i64;
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            s.push(c + 48);
            if !more {
                break;
            }
        }
    }
    String::from_utf8(s).expect("the encoding writes ASCII 48..112 only")
}

/// pycocotools `rleFrPoly`: counts of one polygon (at least 3 points), ported step by step so the
/// result is the same RLE. C's `(int)` truncates toward zero, hence `as i64` on doubles.
fn poly_counts(xy: &[f64], h: usize, w: usize) -> Vec<u64> {
    let scale = 5.0f64;
    let k = xy.len() / 2;
    let corner = |j: usize| {
        let j = j % k;
        ((scale * xy[2 * j] + 0.5) as i64, (scale * xy[2 * j + 1] + 0.5) as i64)
    };
    // pycocotools walks every point of the upsampled outline and records a boundary where x
    // changes; the points are streamed here instead of stored (u, v in its code). A boundary
    // between two points is recorded only when the smaller x, xu, makes (xu + 0.5) / 5 - 0.5 a
    // whole number, which is exactly when xu = 2 (mod 5); the float test below still decides.
    let mut a: Vec<u64> = Vec::new();
    let (hf, wf) = (h as f64, w as f64);
    let emit = |a: &mut Vec<u64>, xu: i64, v_low: i64| {
        if (xu - 2).rem_euclid(5) != 0 {
            return;
        }
        let xd = (xu as f64 + 0.5) / scale - 0.5;
        if xd.floor() != xd || xd < 0.0 || xd > wf - 1.0 {
            return;
        }
        let yd = ((v_low as f64 + 0.5) / scale - 0.5).clamp(0.0, hf).ceil();
        a.push(xd as u64 * h as u64 + yd as u64);
    };
    let mut prev: Option<(i64, i64)> = None;
    let visit = |a: &mut Vec<u64>, prev: &mut Option<(i64, i64)>, u: i64, v: i64| {
        if let Some((pu, pv)) = prev.replace((u, v)) {
            if u != pu {
                emit(a, if u < pu { u } else { u - 1 }, v.min(pv));
            }
        }
    };
    for j in 0..k {
        let ((mut xs, mut ys), (mut xe, mut ye)) = (corner(j), corner(j + 1));
        let dx = (xe - xs).abs();
        let dy = (ys - ye).abs();
        let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if flip {
            std::mem::swap(&mut xs, &mut xe);
            std::mem::swap(&mut ys, &mut ye);
        }
        let s = if dx >= dy { (ye - ys) as f64 / dx as f64 } else { (xe - xs) as f64 / dy as f64 };
        if dx >= dy {
            // x moves by one every step: only one step in five can record a boundary, and
            // which ones is known in advance (the order of `a` does not matter: it is sorted).
            let t_of = |d: i64| if flip { dx - d } else { d };
            let v_of = |t: i64| (ys as f64 + s * t as f64 + 0.5) as i64;
            visit(&mut a, &mut prev, xs + t_of(0), v_of(t_of(0)));
            // Between steps d - 1 and d the smaller x is xs + (flip ? dx - d : d - 1).
            let offset = if flip { xs + dx - 2 } else { 3 - xs };
            let mut d = offset.rem_euclid(5);
            if d == 0 {
                d = 5;
            }
            while d <= dx {
                let (t0, t1) = (t_of(d - 1), t_of(d));
                emit(&mut a, xs + t0.min(t1), v_of(t0).min(v_of(t1)));
                d += 5;
            }
            // The edge's last point is what the next edge's first point is compared with.
            if dx > 0 {
                prev = Some((xs + t_of(dx), v_of(t_of(dx))));
            }
        } else {
            // y moves by one every step and x by at most one, monotonically: a boundary can only
            // be recorded where x changes from c to c + 1 or back with c = 2 (mod 5). Each such
            // step is found from its estimate and confirmed with the same expression.
            let t_of = |d: i64| if flip { dy - d } else { d };
            let u_of = |t: i64| (xs as f64 + s * t as f64 + 0.5) as i64;
            visit(&mut a, &mut prev, u_of(t_of(0)), t_of(0) + ys);
            let (u0, u1) = (u_of(0), u_of(dy));
            let (lo, hi) = (u0.min(u1), u0.max(u1));
            let mut c = lo + (2 - lo).rem_euclid(5);
            while c < hi {
                // The first t whose x is past c (the order of `a` does not matter).
                let crossed = |t: i64| if u1 > u0 { u_of(t) > c } else { u_of(t) <= c };
                let estimate = ((c as f64 + 0.5 - xs as f64) / s).ceil();
                let mut t = if estimate.is_finite() { (estimate as i64).clamp(1, dy) } else { 1 };
                while t > 1 && crossed(t - 1) {
                    t -= 1;
                }
                while !crossed(t) {
                    t += 1;
                }
                emit(&mut a, c, ys + t - 1);
                c += 5;
            }
            prev = Some((u_of(t_of(dy)), t_of(dy) + ys));
        }
    }
    boundaries_to_counts(a, h, w)
}

/// pycocotools' last step of `rleFrPoly`: the column-major positions where the fill toggles,
/// sorted, as run lengths (a zero-length run merges its neighbours).
fn boundaries_to_counts(mut a: Vec<u64>, h: usize, w: usize) -> Vec<u64> {
    a.push((h * w) as u64);
    a.sort_unstable();
    let mut prev = 0u64;
    for t in a.iter_mut() {
        let cur = *t;
        *t -= prev;
        prev = cur;
    }
    let mut b: Vec<u64> = vec![a[0]];
    let mut j = 1;
    while j < a.len() {
        if a[j] > 0 {
            b.push(a[j]);
            j += 1;
        } else {
            j += 1;
            if j < a.len() {
                *b.last_mut().expect("b starts non-empty") += a[j];
                j += 1;
            }
        }
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Arrow columns of masks

/// The Arrow type of RLE outputs: `struct<size: list<int32>, counts: utf8>` (COCO's `{size:
/// [h, w], counts}`).
pub fn rle_type() -> DataType {
    DataType::Struct(rle_fields())
}

fn rle_fields() -> Fields {
    Fields::from(vec![
        Field::new("size", DataType::new_list(DataType::Int32, true), true),
        Field::new("counts", DataType::Utf8, true),
    ])
}

/// Something that can be written as COCO RLE: a decoded [`Mask`] or its runs ([`Rle`]).
pub trait RleSource {
    /// `(height, width)`.
    fn size(&self) -> (usize, usize);
    /// pycocotools' compressed counts string.
    fn rle_string(&self) -> String;
}

impl RleSource for Mask {
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn rle_string(&self) -> String {
        Mask::rle_string(self)
    }
}

impl RleSource for Rle {
    fn size(&self) -> (usize, usize) {
        (self.height, self.width)
    }
    fn rle_string(&self) -> String {
        encode_counts(&self.counts)
    }
}

/// Builds an RLE struct column (compressed counts) from masks; `None` rows are NULL.
pub fn rle_array<'a, T: RleSource + 'a>(
    masks: impl IntoIterator<Item = Option<&'a T>>,
) -> ArrayRef {
    let mut sizes = ListBuilder::new(Int32Builder::new());
    let mut counts = StringBuilder::new();
    let mut nulls = Vec::new();
    for m in masks {
        match m {
            Some(m) => {
                let (h, w) = m.size();
                sizes.values().append_value(h as i32);
                sizes.values().append_value(w as i32);
                sizes.append(true);
                counts.append_value(m.rle_string());
                nulls.push(true);
            }
            None => {
                sizes.append(false);
                counts.append_null();
                nulls.push(false);
            }
        }
    }
    let arrays: Vec<ArrayRef> = vec![Arc::new(sizes.finish()), Arc::new(counts.finish())];
    Arc::new(
        StructArray::try_new(rle_fields(), arrays, Some(nulls.into()))
            .expect("the RLE struct's children match its fields"),
    )
}

/// Builds a `list<rle struct>` column: one list of masks per row (GRES: every object).
pub fn rle_list_array<T: RleSource>(rows: &[Option<Vec<T>>]) -> ArrayRef {
    let flat: Vec<&T> = rows.iter().flatten().flatten().collect();
    let values = rle_array(flat.into_iter().map(Some));
    let offsets = datafusion::arrow::buffer::OffsetBuffer::from_lengths(
        rows.iter().map(|r| r.as_ref().map_or(0, Vec::len)),
    );
    let nulls: Vec<bool> = rows.iter().map(Option::is_some).collect();
    Arc::new(
        ListArray::try_new(
            Arc::new(Field::new("item", rle_type(), true)),
            offsets,
            values,
            Some(nulls.into()),
        )
        .expect("offsets come from the rows"),
    )
}

/// Whether a column type holds one mask per row (PNG bytes, an RLE struct, or a polygon struct).
pub fn is_mask_type(dt: &DataType) -> bool {
    match dt {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Struct(f) => {
            f.find("size").is_some() && (f.find("counts").is_some() || f.find("polygons").is_some())
        }
        _ => false,
    }
}

/// Whether a column type holds a list of masks per row (several objects, GRES).
pub fn is_mask_list_type(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) => is_mask_type(f.data_type()),
        _ => false,
    }
}

/// Reads a mask column row by row. Accepted types:
/// - Binary / LargeBinary / BinaryView: PNG bytes (non-zero = foreground);
/// - `struct<size: list<int>, counts: utf8 | binary | list<int>>`: COCO RLE, `size` = `[h, w]`;
/// - `struct<size: list<int>, polygons: list<list<double>>>`: COCO polygons in pixels.
///
/// The outer error is for an unsupported column type; each row is `Ok(None)` for NULL,
/// `Ok(Some(mask))`, or `Err(reason)` (corrupt PNG, counts that do not sum to h*w, ...).
///
/// Rows are decoded lazily, one at a time as the iterator advances: a batch of large masks is
/// never held decoded at once (a 640x480 mask is 300 KB; 8192 of them would be 2.5 GB).
pub fn read_masks(func: &str, arr: &ArrayRef) -> Result<MaskRows<'static>> {
    Ok(Box::new(read_rles(func, arr)?.map(|r| r.map(|m| m.map(|rle| rle.to_mask())))))
}

/// Reads a mask column as run lengths, without decoding bitmaps: area, box and IoU are
/// computed on the runs (as pycocotools does), and contours on a crop to the object's box.
/// Accepts what [`read_masks`] accepts; PNG masks and polygons are rasterised and encoded.
/// The rows own their data (the array is shared, not borrowed), so a list column's values can
/// be read by the rows of the list.
pub fn read_rles(func: &str, arr: &ArrayRef) -> Result<RleRows<'static>> {
    match arr.data_type() {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let png = cast(arr, &DataType::LargeBinary)?;
            Ok(Box::new((0..png.len()).map(move |i| {
                let b = png.as_binary::<i64>();
                if b.is_null(i) {
                    Ok(None)
                } else {
                    Mask::from_png(b.value(i)).map(|m| Some(Rle::from_mask(&m)))
                }
            })))
        }
        DataType::Struct(_) => read_struct_rles(func, arr.as_struct()),
        DataType::Null => Ok(Box::new((0..arr.len()).map(|_| Ok(None)))),
        other => Err(exec_datafusion_err!(
            "{func}: a mask must be PNG bytes or a COCO RLE struct<size, counts>, got {other}"
        )),
    }
}

/// The rows of a mask column as run lengths, read as they are iterated.
pub type RleRows<'a> = Box<dyn Iterator<Item = std::result::Result<Option<Rle>, String>> + 'a>;

/// The rows of a list-of-masks column, decoded as they are read.
pub type MaskListRows<'a> =
    Box<dyn Iterator<Item = std::result::Result<Option<Vec<Mask>>, String>> + 'a>;

/// One decoded row of a mask column: NULL, a mask, or why the row is not a mask.
pub type MaskRow = std::result::Result<Option<Mask>, String>;

/// The rows of a mask column, decoded as they are read.
pub type MaskRows<'a> = Box<dyn Iterator<Item = MaskRow> + 'a>;

/// Reads a `list<mask>` column: each row a list of masks (any type [`read_masks`] accepts),
/// decoded a row at a time like [`read_masks`].
pub fn read_mask_lists<'a>(func: &str, arr: &'a ArrayRef) -> Result<MaskListRows<'a>> {
    let list = match arr.data_type() {
        DataType::List(_) => arr.as_list::<i32>().clone(),
        DataType::LargeList(f) => cast(arr, &DataType::List(f.clone()))?.as_list::<i32>().clone(),
        other => return Err(exec_datafusion_err!("{func}: expected a list of masks, got {other}")),
    };
    // The values are read in order; each row takes its slice of them.
    let mut masks = read_masks(func, list.values())?;
    let offsets: Vec<usize> = list.value_offsets().iter().map(|o| *o as usize).collect();
    let nulls: Vec<bool> = (0..list.len()).map(|i| list.is_null(i)).collect();
    // A sliced list starts part-way into its values.
    for _ in 0..offsets.first().copied().unwrap_or(0) {
        masks.next();
    }
    Ok(Box::new((0..nulls.len()).map(move |row| {
        let n = offsets[row + 1] - offsets[row];
        let mut v = Vec::with_capacity(n);
        let mut first_error = None;
        for k in 0..n {
            match masks.next().unwrap_or(Ok(None)) {
                Ok(Some(m)) => v.push(m),
                Ok(None) => {
                    first_error.get_or_insert(format!("mask {} of the list is NULL", k + 1));
                }
                Err(e) => {
                    first_error.get_or_insert(format!("mask {} of the list: {e}", k + 1));
                }
            }
        }
        if nulls[row] {
            return Ok(None);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(Some(v)),
        }
    })))
}

fn read_struct_rles(func: &str, st: &StructArray) -> Result<RleRows<'static>> {
    let st = st.clone();
    let size = st.column_by_name("size").ok_or_else(|| {
        exec_datafusion_err!("{func}: an RLE mask struct needs a `size` field [h, w]")
    })?;
    // Sizes are read as floats so that a fractional size (a float column from a JSON file) is
    // refused instead of truncated; every integer a mask side can hold is exact in f64.
    let size = cast(size, &DataType::new_list(DataType::Float64, true))
        .map_err(|e| exec_datafusion_err!("{func}: RLE `size` must be a list of integers: {e}"))?;
    let size = size.as_list::<i32>();
    let whole = |x: f64| (x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64);
    let sizes: Vec<Option<(i64, i64)>> = (0..st.len())
        .map(|i| {
            if size.is_null(i) {
                return None;
            }
            let v = size.value(i);
            let v = v.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            if v.len() != 2 || v.null_count() != 0 {
                return None;
            }
            Some((whole(v.value(0))?, whole(v.value(1))?))
        })
        .collect();
    enum Counts {
        Text(Vec<Option<String>>),
        List(ListArray),
        Polygons(ListArray),
    }
    let counts = if let Some(c) = st.column_by_name("counts") {
        match c.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                let c = cast(c, &DataType::Utf8)?;
                Counts::Text(c.as_string::<i32>().iter().map(|s| s.map(str::to_string)).collect())
            }
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                let vals = crate::common::bytes_values(func, c)?;
                Counts::Text(
                    vals.into_iter()
                        .map(|b| b.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                )
            }
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::FixedSizeList(..) => {
                let c = cast(c, &DataType::new_list(DataType::Int64, true)).map_err(|e| {
                    exec_datafusion_err!("{func}: RLE `counts` list must hold integers: {e}")
                })?;
                Counts::List(c.as_list::<i32>().clone())
            }
            other => {
                return Err(exec_datafusion_err!(
                    "{func}: RLE `counts` must be a string or a list of integers, got {other}"
                ))
            }
        }
    } else {
        let p = st.column_by_name("polygons").expect("is_mask_type checked for counts or polygons");
        let p = cast(p, &DataType::new_list(DataType::new_list(DataType::Float64, true), true))
            .map_err(|e| {
                exec_datafusion_err!("{func}: `polygons` must be a list of lists of numbers: {e}")
            })?;
        Counts::Polygons(p.as_list::<i32>().clone())
    };
    Ok(Box::new((0..st.len()).map(move |i| {
        if st.is_null(i) {
            return Ok(None);
        }
        let null_counts = match &counts {
            Counts::Text(t) => t[i].is_none(),
            Counts::List(l) | Counts::Polygons(l) => l.is_null(i),
        };
        if sizes[i].is_none() && null_counts {
            return Ok(None);
        }
        let (h, w) = sizes[i].ok_or("RLE `size` must be [height, width] of whole numbers")?;
        if h < 0 || w < 0 {
            return Err(format!("RLE size [{h}, {w}] is not a valid [height, width]"));
        }
        crate::limits::check_mask("RLE mask", w as u64, h as u64)?;
        let (h, w) = (h as usize, w as usize);
        match &counts {
            Counts::Text(t) => {
                let s = t[i].as_deref().ok_or("RLE `counts` is NULL")?;
                Rle::new(h, w, decode_counts(s)?).map(Some)
            }
            Counts::List(l) => {
                if l.is_null(i) {
                    return Err("RLE `counts` is NULL".into());
                }
                let v = l.value(i);
                let v = v.as_primitive::<Int64Type>();
                let mut c = Vec::with_capacity(v.len());
                for x in v.iter() {
                    match x {
                        Some(x) if x >= 0 => c.push(x as u64),
                        _ => return Err("RLE counts must be non-negative integers".into()),
                    }
                }
                Rle::new(h, w, c).map(Some)
            }
            Counts::Polygons(l) => {
                if l.is_null(i) {
                    return Err("`polygons` is NULL".into());
                }
                let polys = list_of_f64_lists(&l.value(i))?;
                for p in &polys {
                    crate::limits::check_coordinates(p, w as f64, h as f64)?;
                }
                Ok(Some(Rle::from_mask(&Mask::from_polygons(h, w, &polys))))
            }
        }
    })))
}

/// A `list<double>` array (one polygon per element) as vectors; NULL elements are errors.
pub fn list_of_f64_lists(arr: &ArrayRef) -> std::result::Result<Vec<Vec<f64>>, String> {
    let l = arr.as_list::<i32>();
    (0..l.len())
        .map(|k| {
            if l.is_null(k) {
                return Err(format!("polygon {} is NULL", k + 1));
            }
            let v = l.value(k);
            let v = v.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
            if v.null_count() > 0 {
                return Err(format!("polygon {} has a NULL coordinate", k + 1));
            }
            Ok(v.values().to_vec())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pycocotools' `rleFrPoly` transcribed step by step (every outline point stored), kept as
    /// the reference the streaming `poly_counts` must equal.
    fn poly_counts_stored(xy: &[f64], h: usize, w: usize) -> Vec<u64> {
        let scale = 5.0f64;
        let k = xy.len() / 2;
        let mut x: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j] + 0.5) as i64).collect();
        let mut y: Vec<i64> = (0..k).map(|j| (scale * xy[2 * j + 1] + 0.5) as i64).collect();
        x.push(x[0]);
        y.push(y[0]);
        let mut u: Vec<i64> = Vec::new();
        let mut v: Vec<i64> = Vec::new();
        for j in 0..k {
            let (mut xs, mut xe, mut ys, mut ye) = (x[j], x[j + 1], y[j], y[j + 1]);
            let dx = (xe - xs).abs();
            let dy = (ys - ye).abs();
            let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
            if flip {
                std::mem::swap(&mut xs, &mut xe);
                std::mem::swap(&mut ys, &mut ye);
            }
            let s =
                if dx >= dy { (ye - ys) as f64 / dx as f64 } else { (xe - xs) as f64 / dy as f64 };
            if dx >= dy {
                for d in 0..=dx {
                    let t = if flip { dx - d } else { d };
                    u.push(t + xs);
                    v.push((ys as f64 + s * t as f64 + 0.5) as i64);
                }
            } else {
                for d in 0..=dy {
                    let t = if flip { dy - d } else { d };
                    v.push(t + ys);
                    u.push((xs as f64 + s * t as f64 + 0.5) as i64);
                }
            }
        }
        let mut a: Vec<u64> = Vec::new();
        for j in 1..u.len() {
            if u[j] == u[j - 1] {
                continue;
            }
            let xd = (if u[j] < u[j - 1] { u[j] } else { u[j] - 1 }) as f64;
            let xd = (xd + 0.5) / scale - 0.5;
            if xd.floor() != xd || xd < 0.0 || xd > (w as f64 - 1.0) {
                continue;
            }
            let yd = (if v[j] < v[j - 1] { v[j] } else { v[j - 1] }) as f64;
            let yd = ((yd + 0.5) / scale - 0.5).clamp(0.0, h as f64).ceil();
            a.push(xd as u64 * h as u64 + yd as u64);
        }
        boundaries_to_counts(a, h, w)
    }

    #[test]
    fn streamed_polygon_rasterising_equals_the_stored_transcription() {
        let mut next = crate::test_util::xorshift(0x2545_f491_4f6c_dd1du64);
        for case in 0..5000 {
            // Mostly small images; every tenth up to 700 pixels (long edges).
            let side = if case % 10 == 0 { 700 } else { 60 };
            let (w, h) = (1 + (next() % side) as usize, 1 + (next() % side) as usize);
            let k = 3 + (next() % 12) as usize;
            // Coordinates a little outside the image too, with fractions, repeats and
            // axis-parallel edges.
            let xy: Vec<f64> = (0..2 * k)
                .map(|i| {
                    let side = if i % 2 == 0 { w } else { h } as f64;
                    match next() % 8 {
                        0 => 0.0,
                        1 => side,
                        _ => (next() % 10_000) as f64 / 10_000.0 * (side + 4.0) - 2.0,
                    }
                })
                .collect();
            assert_eq!(
                poly_counts(&xy, h, w),
                poly_counts_stored(&xy, h, w),
                "case {case}: {w}x{h} {xy:?}"
            );
        }
    }

    #[test]
    fn counts_round_trip_through_the_string_codec() {
        let counts = vec![0, 3, 100000, 1, 2, 70, 5000000, 0, 3];
        assert_eq!(decode_counts(&encode_counts(&counts)).unwrap(), counts);
    }

    #[test]
    fn bad_rle_is_an_error() {
        assert!(Mask::from_counts(2, 2, &[1, 2]).unwrap_err().contains("sum to 3"));
        assert!(decode_counts("0\x7f").is_err());
        assert!(decode_counts("3").is_ok());
        assert!(decode_counts("R").is_err(), "continuation bit set at the end");
    }

    #[test]
    fn png_round_trip_and_box() {
        let mut m = Mask::empty(5, 3);
        m.set(1, 0, true);
        m.set(3, 2, true);
        let back = Mask::from_png(&m.to_png()).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.bbox(), Some((1, 0, 3, 2)));
        assert_eq!(m.area(), 2);
        assert!(Mask::from_png(b"\x89PNG junk").is_err());
    }

    #[test]
    fn polygon_square_fills_like_pycocotools() {
        // pycocotools: frPyObjects([[0,0,10,0,10,10,0,10]], 20, 20) has area 100 (pixels 0..9).
        let m = Mask::from_polygons(20, 20, &[vec![0.0, 0.0, 10.0, 0.0, 10.0, 10.0, 0.0, 10.0]]);
        assert_eq!(m.area(), 100);
        assert_eq!(m.bbox(), Some((0, 0, 9, 9)));
        assert_eq!(Mask::from_polygons(20, 20, &[vec![0.0, 0.0, 10.0, 0.0]]).area(), 0);
    }

    #[test]
    fn iou_of_different_sizes_is_an_error() {
        let a = Mask::empty(3, 3);
        let b = Mask::empty(3, 4);
        assert!(a.iou(&b).unwrap_err().contains("differ in size"));
    }

    /// Masks of random blobs (deterministic LCG), several sizes, some empty or full.
    fn random_masks() -> Vec<Mask> {
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let mut out = vec![Mask::empty(7, 5), Mask { width: 4, height: 3, bits: vec![1; 12] }];
        for _ in 0..40 {
            let (w, h) = (3 + next() % 30, 3 + next() % 20);
            let mut m = Mask::empty(w, h);
            for _ in 0..(1 + next() % 4) {
                let (cx, cy, r) = (next() % w, next() % h, 1 + next() % 6);
                for x in 0..w {
                    for y in 0..h {
                        if x.abs_diff(cx).pow(2) + y.abs_diff(cy).pow(2) <= r * r {
                            m.set(x, y, true);
                        }
                    }
                }
            }
            out.push(m);
        }
        out
    }

    #[test]
    fn run_length_area_box_and_iou_equal_the_bitmap_ones() {
        let masks = random_masks();
        for a in &masks {
            let ra = Rle::from_mask(a);
            assert_eq!(ra.area(), a.area());
            assert_eq!(ra.bbox(), a.bbox());
            assert_eq!(&ra.to_mask(), a);
            if let Some((crop, x0, y0)) = ra.crop() {
                for x in 0..a.width {
                    for y in 0..a.height {
                        let inside =
                            x >= x0 && y >= y0 && x - x0 < crop.width && y - y0 < crop.height;
                        let c = inside && crop.get(x - x0, y - y0);
                        assert_eq!(c, a.get(x, y), "crop differs at ({x}, {y})");
                    }
                }
            } else {
                assert_eq!(a.area(), 0);
            }
            for b in masks.iter().filter(|b| b.width == a.width && b.height == a.height) {
                let rb = Rle::from_mask(b);
                assert_eq!(ra.intersection_union(&rb), a.intersection_union(b));
            }
        }
        let (a, b) = (Rle::from_mask(&masks[0]), Rle::from_mask(&masks[1]));
        assert!(a.iou(&b).unwrap_err().contains("differ in size"));
    }

    #[test]
    fn polygon_union_by_runs_is_canonical() {
        // Two overlapping squares and one disjoint: the union's runs must be those of the bitmap.
        let polys = vec![
            vec![1.0, 1.0, 6.0, 1.0, 6.0, 6.0, 1.0, 6.0],
            vec![4.0, 4.0, 9.0, 4.0, 9.0, 9.0, 4.0, 9.0],
            vec![12.0, 0.0, 14.0, 0.0, 14.0, 3.0],
        ];
        let r = Rle::from_polygons(10, 15, &polys);
        let mut bitmap = Mask::empty(15, 10);
        for p in &polys {
            let one = Rle::from_polygons(10, 15, std::slice::from_ref(p)).to_mask();
            for (b, o) in bitmap.bits.iter_mut().zip(&one.bits) {
                *b |= o;
            }
        }
        assert_eq!(r.counts, bitmap.counts());
        assert_eq!(Rle::from_polygons(4, 4, &[]).counts, vec![16]);
    }
}
