//! A mask as COCO run lengths, with area, box, IoU and decoding computed on the runs.

use super::*;

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
