//! Border following (Suzuki & Abe 1985) with 8-connectivity, reproducing OpenCV's
//! `findContours(..., RETR_EXTERNAL, CHAIN_APPROX_NONE)`: the same start pixel, direction and
//! point list for every outer contour, in OpenCV's output order (last found first). Holes of
//! the outer components are traced too, so they can be exposed on request. The largest outer
//! contour alone (what a sequence needs) takes a shorter road: components from column runs, and
//! only that one border followed (`largest_outer`).

use super::mask::{next_nonzero, next_zero, Mask};

/// One traced border: pixel coordinates of its boundary pixels, in border-following order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contour {
    pub points: Vec<(i32, i32)>,
    pub hole: bool,
}

/// Which outer contours to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Components {
    /// The component with the most foreground pixels (ties: the one OpenCV lists first).
    Largest,
    /// Every outer contour, in OpenCV's order.
    All,
}

// Neighbour offsets by OpenCV's chain code: 0 = right, then counter-clockwise on screen
// (y grows downwards): 1 = up-right, 2 = up, ... 7 = down-right.
const DX: [i32; 8] = [1, 1, 0, -1, -1, -1, 0, 1];
const DY: [i32; 8] = [0, -1, -1, -1, 0, 1, 1, 1];

/// Outer contours (and, with `holes`, each one's holes right after it).
///
/// The mask is column-major, so the borders are followed on its transpose (where a raster scan
/// reads memory in order) and mapped back: transposing mirrors the image, so each border comes
/// back as the same closed walk in the opposite direction. Reversing it and starting it where
/// OpenCV does (the top-left pixel, the step into it from the first foreground neighbour found
/// clockwise from up-left) gives OpenCV's point list exactly. Holes are the same closed walks
/// as OpenCV's (`RETR_CCOMP`/`RETR_TREE`), started at their top-left pixel.
pub fn contours(mask: &Mask, components: Components, holes: bool) -> Vec<Contour> {
    if components == Components::Largest && !holes {
        return largest_outer(mask).into_iter().collect();
    }
    all_contours(mask, components, holes)
}

/// [`contours`] by a full Suzuki-Abe scan of a label image (every border, holes included).
fn all_contours(mask: &Mask, components: Components, holes: bool) -> Vec<Contour> {
    let borders = follow_borders(mask);
    // Outer borders whose parent is the frame (RETR_EXTERNAL), in OpenCV's order: last found
    // first, i.e. by start pixel (y, x) descending.
    let mut outer: Vec<(usize, (i32, i32))> = (0..borders.len())
        .filter(|&i| !borders[i].hole && borders[i].parent.is_none())
        .map(|i| (i, top_left(&borders[i].points)))
        .collect();
    outer.sort_by_key(|&(_, p)| std::cmp::Reverse((p.1, p.0)));
    let chosen: Vec<usize> = match components {
        Components::All => (0..outer.len()).collect(),
        Components::Largest if outer.len() <= 1 => (0..outer.len()).collect(),
        Components::Largest => {
            let seeds: Vec<(i32, i32)> = outer.iter().map(|&(_, p)| p).collect();
            let pixels = component_pixels(mask, &seeds);
            // Strictly greater: ties keep the contour OpenCV lists first.
            let mut best: Option<usize> = None;
            for k in 0..outer.len() {
                if best.is_none_or(|b| pixels[k] > pixels[b]) {
                    best = Some(k);
                }
            }
            best.into_iter().collect()
        }
    };
    let mut out = Vec::new();
    for k in chosen {
        let (i, start) = outer[k];
        out.push(Contour { points: opencv_walk(mask, &borders[i].points, start), hole: false });
        if holes {
            let mut hs: Vec<(usize, (i32, i32))> = (0..borders.len())
                .filter(|&j| borders[j].hole && borders[j].parent == Some(i))
                .map(|j| (j, top_left(&borders[j].points)))
                .collect();
            hs.sort_by_key(|&(_, p)| std::cmp::Reverse((p.1, p.0)));
            for (j, p) in hs {
                let walk: Vec<(i32, i32)> = borders[j].points.iter().rev().copied().collect();
                let r = walk.iter().position(|&q| q == p).unwrap_or(0);
                out.push(Contour { points: [&walk[r..], &walk[..r]].concat(), hole: true });
            }
        }
    }
    out
}

/// The first pixel of a border in raster order (smallest y, then x).
fn top_left(points: &[(i32, i32)]) -> (i32, i32) {
    *points.iter().min_by_key(|p| (p.1, p.0)).expect("a border has a pixel")
}

/// An outer border traced on the transpose (mirrored walk) as OpenCV lists it: reversed, and
/// rotated to start at `start` right after OpenCV's last point, the first foreground neighbour
/// of `start` clockwise from up-left (right, down-right, down, down-left: nothing is above).
fn opencv_walk(mask: &Mask, mirrored: &[(i32, i32)], start: (i32, i32)) -> Vec<(i32, i32)> {
    let walk: Vec<(i32, i32)> = mirrored.iter().rev().copied().collect();
    let n = walk.len();
    let (w, h) = (mask.width as i32, mask.height as i32);
    let fg =
        |x: i32, y: i32| x >= 0 && y >= 0 && x < w && y < h && mask.get(x as usize, y as usize);
    let last = [0usize, 7, 6, 5]
        .iter()
        .map(|&s| (start.0 + DX[s], start.1 + DY[s]))
        .find(|&(x, y)| fg(x, y));
    let r = (0..n)
        .find(|&r| walk[r] == start && last.is_none_or(|l| walk[(r + n - 1) % n] == l))
        .unwrap_or(0);
    [&walk[r..], &walk[..r]].concat()
}

struct Border {
    points: Vec<(i32, i32)>,
    hole: bool,
    parent: Option<usize>,
}

thread_local! {
    // The label image is as large as the mask (4 bytes a pixel); reusing it per thread avoids a
    // fresh allocation and its page faults on every row of a query.
    static LABELS: std::cell::RefCell<Vec<i32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Suzuki-Abe algorithm 1 on the transposed mask with a one-pixel background frame; points come
/// back in mask coordinates (in the mirrored walk order).
fn follow_borders(mask: &Mask) -> Vec<Border> {
    LABELS.with(|cell| {
        let mut f = cell.borrow_mut();
        fill_transposed(mask, &mut f);
        let mut borders = scan(mask.height as i32, mask.width as i32, &mut f, &mask.bits);
        for b in &mut borders {
            for p in &mut b.points {
                *p = (p.1, p.0);
            }
        }
        borders
    })
}

/// Writes the transpose of the mask row-major into `f` (1 = foreground) inside a zero frame:
/// row x of the transpose is column x of the column-major mask, a straight copy.
fn fill_transposed(mask: &Mask, f: &mut Vec<i32>) {
    let (w, h) = (mask.width, mask.height);
    let stride = h + 2;
    f.resize(stride * (w + 2), 0);
    f[..stride].fill(0);
    f[(w + 1) * stride..].fill(0);
    for x in 0..w {
        let row = &mut f[(x + 1) * stride..(x + 2) * stride];
        row[0] = 0;
        row[h + 1] = 0;
        for (d, &b) in row[1..=h].iter_mut().zip(&mask.bits[x * h..(x + 1) * h]) {
            *d = b as i32;
        }
    }
}

/// `bits` is the image scanned, row-major, one byte a pixel (the mask's columns): background
/// runs are skipped there, reading a quarter of the bytes.
fn scan(w: i32, h: i32, f: &mut [i32], bits: &[u8]) -> Vec<Border> {
    let stride = w + 2;
    let mut borders: Vec<Border> = Vec::new();
    // Border number NBD as in the paper: 1 is the frame, borders are 2, 3, ...
    let mut nbd = 1i32;
    for y in 0..h {
        let mut lnbd = 1i32;
        let base = ((y + 1) * stride + 1) as usize;
        let end = base + w as usize;
        let mut i = base;
        while i < end {
            let v = f[i];
            // Runs of background and the inside of runs of unvisited foreground change nothing:
            // skip them (only run ends can start a border or carry a label).
            if v == 0 {
                let b = (y * w) as usize + (i - base);
                match next_nonzero(&bits[b + 1..b + (end - i)], 0) {
                    Some(k) => i += k + 1,
                    None => break,
                }
                continue;
            }
            if v == 1 && f[i - 1] != 0 && f[i + 1] == 1 {
                i += first_not(&f[i + 1..end], 1).unwrap_or(end - i - 1);
                continue;
            }
            let (x, left, right) = ((i - base) as i32, f[i - 1], f[i + 1]);
            let start = if v == 1 && left == 0 {
                Some((false, 4usize))
            } else if v >= 1 && right == 0 {
                if v > 1 {
                    lnbd = v;
                }
                Some((true, 0usize))
            } else {
                None
            };
            if let Some((hole, from)) = start {
                nbd += 1;
                let prev = (lnbd >= 2).then(|| (lnbd - 2) as usize);
                let parent = match prev {
                    None => None,
                    Some(p) if borders[p].hole == hole => borders[p].parent,
                    Some(p) => Some(p),
                };
                let points = follow(f, stride, x, y, from, nbd);
                borders.push(Border { points, hole, parent });
            }
            let v = f[i];
            if v != 1 {
                lnbd = v.abs();
            }
            i += 1;
        }
    }
    borders
}

/// The first position in `s` whose value is not `v`; whole blocks of 16 are tested with a
/// branch-free OR so the common long runs compile to vector code.
fn first_not(s: &[i32], v: i32) -> Option<usize> {
    let mut i = 0;
    for block in s.chunks_exact(16) {
        if block.iter().fold(0, |acc, &u| acc | (u ^ v)) != 0 {
            break;
        }
        i += 16;
    }
    s[i..].iter().position(|&u| u != v).map(|k| i + k)
}

/// Follows one border from `(x0, y0)`, `from` being the direction of the background pixel that
/// started it; labels the border pixels and returns them in OpenCV's order.
fn follow(f: &mut [i32], stride: i32, x0: i32, y0: i32, from: usize, nbd: i32) -> Vec<(i32, i32)> {
    // Neighbour offsets in the padded buffer, twice over so a search may run past direction 7.
    let off: [isize; 16] = std::array::from_fn(|s| (DX[s & 7] + DY[s & 7] * stride) as isize);
    let i0 = ((y0 + 1) * stride + x0 + 1) as usize;
    let at = |i: usize, s: usize| i.wrapping_add_signed(off[s]);
    // Clockwise search for the first foreground neighbour, starting after `from`.
    let mut s = from;
    let mut found = false;
    for _ in 0..8 {
        s = (s + 7) & 7;
        if f[at(i0, s)] != 0 {
            found = true;
            break;
        }
        if s == from {
            break;
        }
    }
    if !found {
        f[i0] = -nbd;
        return vec![(x0, y0)];
    }
    let i1 = at(i0, s);
    let (mut i3, mut x3, mut y3) = (i0, x0, y0);
    let mut points = Vec::new();
    loop {
        // Counter-clockwise search from the direction after the previous pixel.
        let mut t = s + 1;
        while f[at(i3, t)] == 0 {
            t += 1;
        }
        // Direction 0 (right, = 8) was examined and empty: the pixel is a right border.
        if t > 8 {
            f[i3] = -nbd;
        } else if f[i3] == 1 {
            f[i3] = nbd;
        }
        s = t & 7;
        points.push((x3, y3));
        let i4 = at(i3, s);
        if i4 == i0 && i3 == i1 {
            break;
        }
        i3 = i4;
        x3 += DX[s];
        y3 += DY[s];
        s = (s + 4) & 7;
    }
    points
}

/// The outer contour of the largest component, as `all_contours(mask, Largest, false)` gives it,
/// without a label image or a scan of every border: components, their sizes and whether a hole
/// of another component encloses them come from column runs, and only the chosen border is
/// followed, on the bitmap itself.
fn largest_outer(mask: &Mask) -> Option<Contour> {
    let (runs, k, (x0, y0)) = largest_component(mask)?;
    // That run's first pixel starts the component's outer border in the transposed scan.
    let x = runs.column_of(k);
    let mirrored: Vec<(i32, i32)> = follow_outer(mask, runs.runs[k].0 as i32, x as i32)
        .into_iter()
        .map(|(tx, ty)| (ty, tx))
        .collect();
    Some(Contour { points: opencv_walk(mask, &mirrored, (x0, y0)), hole: false })
}

/// The top-left pixel `(x, y)` of the component `contours(mask, Largest, false)` traces (the
/// largest 8-connected component that no hole of another encloses); `None` for an empty mask.
pub fn largest_start(mask: &Mask) -> Option<(i32, i32)> {
    largest_component(mask).map(|(_, _, p)| p)
}

/// The chosen component of [`largest_outer`]: the column runs, the component's first run in
/// scan order and its top-left pixel.
fn largest_component(mask: &Mask) -> Option<(ColumnRuns, usize, (i32, i32))> {
    let mut runs = ColumnRuns::new(mask);
    let n = runs.runs.len();
    // Per component (indexed by its root): pixels, first run in scan order, top-left pixel.
    let mut size = vec![0u64; n];
    let mut first: Vec<usize> = vec![usize::MAX; n];
    let mut top_left: Vec<(u32, u32)> = vec![(u32::MAX, u32::MAX); n];
    let mut roots = Vec::new();
    for x in 0..mask.width {
        for k in runs.first[x]..runs.first[x + 1] {
            let r = runs.root(k);
            let (s, e) = runs.runs[k];
            size[r] += (e - s) as u64;
            if first[r] == usize::MAX {
                first[r] = k;
                roots.push(r);
            }
            top_left[r] = top_left[r].min((s, x as u32));
        }
    }
    // The largest component that no hole encloses (RETR_EXTERNAL); ties go to the one OpenCV
    // lists first, the one whose top-left pixel comes last in raster order.
    let outside = if roots.len() > 1 { runs.outside(&first, &roots) } else { vec![true; n] };
    let best =
        roots.iter().copied().filter(|&r| outside[r]).max_by_key(|&r| (size[r], top_left[r]))?;
    let (y0, x0) = top_left[best];
    Some((runs, first[best], (x0 as i32, y0 as i32)))
}

/// Suzuki-Abe border following of one outer border in the transposed view of the mask (row y
/// of the view is column y of the mask), from `(x0, y0)` whose left neighbour is background:
/// the walk `follow` makes, testing the bitmap instead of a label image (labels never steer an
/// outer border's walk). Points in the view's coordinates.
fn follow_outer(mask: &Mask, x0: i32, y0: i32) -> Vec<(i32, i32)> {
    let (tw, th) = (mask.height as i32, mask.width as i32);
    let fg = |x: i32, y: i32, s: usize| {
        let (x, y) = (x + DX[s & 7], y + DY[s & 7]);
        x >= 0 && y >= 0 && x < tw && y < th && mask.bits[(y * tw + x) as usize] != 0
    };
    let from = 4;
    let mut s = from;
    let mut found = false;
    for _ in 0..8 {
        s = (s + 7) & 7;
        if fg(x0, y0, s) {
            found = true;
            break;
        }
        if s == from {
            break;
        }
    }
    if !found {
        return vec![(x0, y0)];
    }
    let (x1, y1) = (x0 + DX[s], y0 + DY[s]);
    let (mut x3, mut y3) = (x0, y0);
    let mut points = Vec::new();
    // Away from the image's edge every neighbour exists: test it by offset, unchecked by
    // coordinates (most of a border's pixels).
    let off: [isize; 8] = std::array::from_fn(|s| (DX[s] + DY[s] * tw) as isize);
    let bits = &mask.bits[..];
    loop {
        let mut t = s + 1;
        if x3 > 0 && y3 > 0 && x3 < tw - 1 && y3 < th - 1 {
            let i3 = (y3 * tw + x3) as usize;
            while bits[i3.wrapping_add_signed(off[t & 7])] == 0 {
                t += 1;
            }
        } else {
            while !fg(x3, y3, t) {
                t += 1;
            }
        }
        s = t & 7;
        points.push((x3, y3));
        let (x4, y4) = (x3 + DX[s], y3 + DY[s]);
        if (x4, y4) == (x0, y0) && (x3, y3) == (x1, y1) {
            break;
        }
        (x3, y3) = (x4, y4);
        s = (s + 4) & 7;
    }
    points
}

/// The foreground runs of each column, joined into 8-connected components with union-find, so
/// that the cost follows the number of runs, not of pixels.
struct ColumnRuns {
    /// `[start, end)` in y, column by column.
    runs: Vec<(u32, u32)>,
    /// Index of the first run of each column, and the total at the end.
    first: Vec<usize>,
    parent: Vec<usize>,
    height: u32,
}

impl ColumnRuns {
    fn new(mask: &Mask) -> ColumnRuns {
        let (w, h) = (mask.width, mask.height);
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut first = Vec::with_capacity(w + 1);
        for x in 0..w {
            first.push(runs.len());
            let col = &mask.bits[x * h..(x + 1) * h];
            let mut y = 0;
            while let Some(s) = next_nonzero(col, y) {
                let e = next_zero(col, s).unwrap_or(h);
                runs.push((s as u32, e as u32));
                y = e;
            }
        }
        first.push(runs.len());
        let mut me =
            ColumnRuns { parent: (0..runs.len()).collect(), runs, first, height: h as u32 };
        for x in 1..w {
            let (mut a, a_end) = (me.first[x - 1], me.first[x]);
            let (mut b, b_end) = (me.first[x], me.first[x + 1]);
            while a < a_end && b < b_end {
                let (ra, rb) = (me.runs[a], me.runs[b]);
                // 8-connected: touching diagonally is enough.
                if ra.0 <= rb.1 && rb.0 <= ra.1 {
                    me.union(a, b);
                }
                if ra.1 < rb.1 {
                    a += 1;
                } else {
                    b += 1;
                }
            }
        }
        me
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (pa, pb) = (self.root(a), self.root(b));
        self.parent[pa.max(pb)] = pa.min(pb);
    }

    fn column_of(&self, k: usize) -> usize {
        self.first.partition_point(|&f| f <= k) - 1
    }

    /// Pixels per component, at each root's index.
    fn sizes(&mut self) -> Vec<u64> {
        let mut size = vec![0u64; self.runs.len()];
        for i in 0..self.runs.len() {
            let r = self.root(i);
            size[r] += (self.runs[i].1 - self.runs[i].0) as u64;
        }
        size
    }

    /// For each component (by root, with `first[root]` its first run in scan order), whether
    /// its surrounding background is the outside of the image: RETR_EXTERNAL keeps exactly
    /// those components, the others lie in a hole of another. The background is joined with
    /// 4-connectivity, the dual of the foreground's 8; a component's surrounding background is
    /// the one just above its first run, which nothing of the component can enclose.
    fn outside(&mut self, first: &[usize], roots: &[usize]) -> Vec<bool> {
        let h = self.height;
        let w = self.first.len() - 1;
        // Background runs: the gaps between foreground runs, column by column.
        let mut gaps: Vec<(u32, u32)> = Vec::with_capacity(self.runs.len() + w);
        let mut gap_first = Vec::with_capacity(w + 1);
        for x in 0..w {
            gap_first.push(gaps.len());
            let mut y = 0;
            for &(s, e) in &self.runs[self.first[x]..self.first[x + 1]] {
                if s > y {
                    gaps.push((y, s));
                }
                y = e;
            }
            if y < h {
                gaps.push((y, h));
            }
        }
        gap_first.push(gaps.len());
        let mut parent: Vec<u32> = (0..gaps.len() as u32).collect();
        fn root(parent: &mut [u32], mut i: usize) -> usize {
            while parent[i] as usize != i {
                parent[i] = parent[parent[i] as usize];
                i = parent[i] as usize;
            }
            i
        }
        for x in 1..w {
            let (mut a, a_end) = (gap_first[x - 1], gap_first[x]);
            let (mut b, b_end) = (gap_first[x], gap_first[x + 1]);
            while a < a_end && b < b_end {
                let (ga, gb) = (gaps[a], gaps[b]);
                // 4-connected: the runs must share a row.
                if ga.0 < gb.1 && gb.0 < ga.1 {
                    let (pa, pb) = (root(&mut parent, a), root(&mut parent, b));
                    parent[pa.max(pb)] = pa.min(pb) as u32;
                }
                if ga.1 < gb.1 {
                    a += 1;
                } else {
                    b += 1;
                }
            }
        }
        // Gaps on the image's edge touch the outside: every gap of the first and last column,
        // and a column's gaps that start at its top or end at its bottom.
        let mut open = vec![false; gaps.len()];
        for x in 0..w {
            let (lo, hi) = (gap_first[x], gap_first[x + 1]);
            for (g, &(s, e)) in gaps.iter().enumerate().take(hi).skip(lo) {
                if x == 0 || x == w - 1 || s == 0 || e == h {
                    let r = root(&mut parent, g);
                    open[r] = true;
                }
            }
        }
        let mut result = vec![false; self.runs.len()];
        for &r in roots {
            let k = first[r];
            let s = self.runs[k].0;
            result[r] = s == 0 || {
                // Gaps and runs alternate down a column: the gap just above run k.
                let x = self.column_of(k);
                let leading = (self.runs[self.first[x]].0 > 0) as usize;
                let g = gap_first[x] + (k - self.first[x]) + leading - 1;
                debug_assert_eq!(gaps[g].1, s);
                open[root(&mut parent, g)]
            };
        }
        result
    }
}

/// Foreground pixels of the 8-connected component of each seed.
fn component_pixels(mask: &Mask, seeds: &[(i32, i32)]) -> Vec<u64> {
    let mut runs = ColumnRuns::new(mask);
    let size = runs.sizes();
    seeds
        .iter()
        .map(|&(x, y)| {
            let (lo, hi) = (runs.first[x as usize], runs.first[x as usize + 1]);
            let k = lo + runs.runs[lo..hi].partition_point(|r| r.1 as i32 <= y);
            if k < hi && runs.runs[k].0 as i32 <= y {
                size[runs.root(k)]
            } else {
                0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contour::test_masks::mask_from_rows;

    #[test]
    fn square_with_a_diagonal_tail_matches_opencv() {
        // cv2.findContours on this mask (RETR_EXTERNAL, CHAIN_APPROX_NONE) gives:
        // [[1,1],[1,2],[1,3],[2,3],[3,3],[4,4],[3,3],[3,2],[3,1],[2,1]]
        let m = mask_from_rows(&["......", ".###..", ".###..", ".###..", "....#.", "......"]);
        let c = contours(&m, Components::All, false);
        assert_eq!(c.len(), 1);
        let want =
            vec![(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (4, 4), (3, 3), (3, 2), (3, 1), (2, 1)];
        assert_eq!(c[0].points, want);
    }

    #[test]
    fn components_come_last_found_first_and_holes_follow_their_outer() {
        // The example of make_contour_fixtures.py's sanity check; OpenCV lists the starts
        // (2,9), (5,5), (1,5), (1,1) and the hole of the third starts at (1,6), (2,5).
        let mut m = Mask::empty(12, 12);
        for (x0, x1, y0, y1) in [(1, 3, 1, 3), (5, 9, 5, 7), (1, 4, 5, 8), (2, 3, 9, 10)] {
            for x in x0..x1 {
                for y in y0..y1 {
                    m.set(x, y, true);
                }
            }
        }
        m.set(2, 6, false);
        let c = contours(&m, Components::All, true);
        let starts: Vec<_> = c.iter().map(|c| (c.points[0], c.hole)).collect();
        assert_eq!(
            starts,
            vec![
                ((2, 9), false),
                ((5, 5), false),
                ((1, 5), false),
                ((2, 5), true),
                ((1, 1), false)
            ]
        );
        let largest = contours(&m, Components::Largest, false);
        assert_eq!(largest.len(), 1);
        // (5,5) and (1,5) both have 8 pixels: the tie keeps the one OpenCV lists first.
        assert_eq!(largest[0].points[0], (5, 5));
        assert_eq!(component_pixels(&m, &[(1, 5), (1, 1)]), vec![8, 4]);
    }

    /// The run-based path for the largest outer contour gives what the full scan gives, on
    /// random masks dense with components, holes, components inside holes and diagonal touches.
    #[test]
    fn largest_outer_equals_the_full_scan() {
        let mut next = crate::test_util::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let mut nested = 0;
        for case in 0..4000 {
            let (w, h) = (1 + (next() % 14) as usize, 1 + (next() % 14) as usize);
            let density = 30 + next() % 50;
            let mut m = Mask::empty(w, h);
            for x in 0..w {
                for y in 0..h {
                    m.set(x, y, next() % 100 < density);
                }
            }
            // Half the cases get rectangular rings drawn over the noise: whatever noise is
            // inside a ring and does not touch it lies in a hole.
            if case % 2 == 0 {
                for _ in 0..1 + next() % 3 {
                    let (x0, y0) = ((next() as usize) % w, (next() as usize) % h);
                    let (x1, y1) =
                        (x0 + (next() as usize) % (w - x0), y0 + (next() as usize) % (h - y0));
                    for x in x0..=x1 {
                        for y in y0..=y1 {
                            let edge = x == x0 || x == x1 || y == y0 || y == y1;
                            let gap = x == x0 + 1 || x + 1 == x1 || y == y0 + 1 || y + 1 == y1;
                            if edge || gap {
                                m.set(x, y, edge);
                            }
                        }
                    }
                }
            }
            let fast = contours(&m, Components::Largest, false);
            let full = all_contours(&m, Components::Largest, false);
            assert_eq!(fast, full, "case {case}: {w}x{h} {:?}", m.bits);
            let all = all_contours(&m, Components::All, false).len();
            let any = follow_borders(&m).iter().filter(|b| !b.hole).count();
            nested += (any > all) as usize;
        }
        // The cases include components that lie in a hole of another.
        assert!(nested > 40, "{nested}");
    }

    #[test]
    fn a_larger_component_inside_a_hole_is_not_external() {
        // A one-pixel ring (52 pixels) around an 8x8 block (64 pixels): RETR_EXTERNAL lists
        // only the ring, so the ring is the largest outer contour.
        let mut m = Mask::empty(14, 14);
        for i in 0..14 {
            for (x, y) in [(i, 0), (i, 13), (0, i), (13, i)] {
                m.set(x, y, true);
            }
        }
        for x in 3..11 {
            for y in 3..11 {
                m.set(x, y, true);
            }
        }
        let c = contours(&m, Components::Largest, false);
        assert_eq!(c, all_contours(&m, Components::Largest, false));
        assert_eq!((c[0].points[0], c[0].points.len()), ((0, 0), 52));
    }

    #[test]
    fn full_and_single_pixel_masks() {
        let mut m = Mask::empty(3, 2);
        m.bits.fill(1);
        let c = contours(&m, Components::All, false);
        assert_eq!(c[0].points, vec![(0, 0), (0, 1), (1, 1), (2, 1), (2, 0), (1, 0)]);
        let mut one = Mask::empty(3, 3);
        one.set(1, 1, true);
        assert_eq!(contours(&one, Components::All, false)[0].points, vec![(1, 1)]);
        assert!(contours(&Mask::empty(3, 3), Components::Largest, false).is_empty());
    }
}
