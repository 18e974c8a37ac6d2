//! The last step of `adaptive` sampling on the boundary: a local search that moves the vertices
//! of the sampled polygon to raise its IoU with the region the boundary encloses (the filled
//! component), counting pixels the way `polygon_to_mask` fills them (a pixel is in when its
//! centre is inside, even-odd).
//!
//! Moving vertex `V` (between `A` and `B`) to `V'` changes the filled pixels by exactly the
//! pixels of the triangles `A V B` and `A V' B` taken together even-odd (the crossings of every
//! other edge stay), so a move is scored from the pixels of those two thin triangles alone,
//! column by column, against bitmaps of the current polygon and of the target. Each vertex tries
//! steps of one and half a pixel along the axes and keeps the first that raises the IoU; sweeps
//! repeat until none does (at most [`SWEEPS`]).

/// At most this many passes over the vertices.
const SWEEPS: usize = 16;
const STEPS: [(f64, f64); 8] = [
    (1.0, 0.0),
    (-1.0, 0.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (0.7, 0.7),
    (-0.7, 0.7),
    (0.7, -0.7),
    (-0.7, -0.7),
];

/// Column-major bitmaps of a window `[x0, x0 + w) x [y0, y0 + h)` of the image.
struct Window {
    x0: i64,
    y0: i64,
    w: i64,
    h: i64,
    target: Vec<u8>,
    current: Vec<u8>,
}

/// The y where the edge `p -> q` crosses the vertical line `x = xc`, if it does; an edge counts
/// when exactly one end has `x <= xc`, so every closed polygon crosses a line an even number of
/// times and crossings add up even-odd.
fn crossing(p: (f64, f64), q: (f64, f64), xc: f64) -> Option<f64> {
    if (p.0 <= xc) == (q.0 <= xc) {
        return None;
    }
    Some(p.1 + (q.1 - p.1) * (xc - p.0) / (q.0 - p.0))
}

/// First pixel row whose centre is at or below `y`: rows `[row(a), row(b))` have centres in
/// `[a, b)`.
fn row(y: f64) -> i64 {
    (y - 0.5).ceil() as i64
}

impl Window {
    /// Calls `f(x, y0, y1)` for each column of the window and each run `[y0, y1)` of pixel
    /// rows inside `poly` (centre rule, even-odd), clipped to the window. Each edge drops its
    /// crossings into the columns it spans, so the cost follows the outline's length.
    fn runs(&self, poly: &[(f64, f64)], mut f: impl FnMut(i64, i64, i64)) {
        let mut cols: Vec<Vec<f64>> = vec![Vec::new(); self.w as usize];
        for i in 0..poly.len() {
            let (p, q) = (poly[i], poly[(i + 1) % poly.len()]);
            let (lo, hi) = (p.0.min(q.0), p.0.max(q.0));
            let xa = ((lo - 0.5).floor() as i64).max(self.x0);
            let xb = (hi.ceil() as i64).min(self.x0 + self.w);
            for x in xa..xb {
                if let Some(y) = crossing(p, q, x as f64 + 0.5) {
                    cols[(x - self.x0) as usize].push(y);
                }
            }
        }
        for (k, ys) in cols.iter_mut().enumerate() {
            ys.sort_by(f64::total_cmp);
            for pair in ys.chunks_exact(2) {
                let (a, b) = (row(pair[0]).max(self.y0), row(pair[1]).min(self.y0 + self.h));
                if a < b {
                    f(self.x0 + k as i64, a, b);
                }
            }
        }
    }

    fn at(&self, x: i64, y: i64) -> usize {
        ((x - self.x0) * self.h + (y - self.y0)) as usize
    }

    /// Pixels that moving `b` to `b2` (between `a` and `c`) adds to or removes from the polygon:
    /// `(change of its area, change of its intersection with the target)`; with `apply` the
    /// current bitmap is updated too.
    fn delta(
        &mut self,
        a: (f64, f64),
        b: (f64, f64),
        b2: (f64, f64),
        c: (f64, f64),
        apply: bool,
    ) -> (i64, i64) {
        let (lo, hi) =
            [a, b, b2, c].iter().fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.0), h.max(p.0)));
        let (xa, xb) = (
            (lo - 0.5).floor().max(self.x0 as f64) as i64,
            (hi.ceil() as i64).min(self.x0 + self.w),
        );
        let (mut d_area, mut d_inter) = (0i64, 0i64);
        let mut ys: Vec<(f64, bool)> = Vec::with_capacity(6);
        for x in xa..xb {
            let xc = x as f64 + 0.5;
            ys.clear();
            // The two triangles share the edge c -> a, which cancels: only the four moving edges.
            for (p, q) in [(a, b), (b, c), (a, b2), (b2, c)] {
                if let Some(y) = crossing(p, q, xc) {
                    ys.push((y, true));
                }
            }
            if ys.is_empty() {
                continue;
            }
            ys.sort_by(|u, v| u.0.total_cmp(&v.0));
            for pair in ys.chunks_exact(2) {
                let (r0, r1) = (row(pair[0].0).max(self.y0), row(pair[1].0).min(self.y0 + self.h));
                for y in r0..r1 {
                    let i = self.at(x, y);
                    let (p, t) = (self.current[i] as i64, self.target[i] as i64);
                    // In the polygon: leaves it; outside: joins it.
                    let s = 1 - 2 * p;
                    d_area += s;
                    d_inter += s * t;
                    if apply {
                        self.current[i] ^= 1;
                    }
                }
            }
        }
        (d_area, d_inter)
    }
}

/// Moves the vertices of `poly` (pixel frame, inside `[0, width] x [0, height]`) to raise the
/// IoU of its filled pixels with those of `target`, the boundary polygon (integer corners), and
/// moves vertices from where they matter least to where they matter most. `anchors[k]` is the
/// index in `walk` (the boundary, one corner per unit step) of the contour point vertex `k` was
/// chosen at, increasing: the arc between two anchors is where a new vertex of that edge is
/// sought.
pub fn refine(
    poly: &mut Vec<(f64, f64)>,
    anchors: &mut Vec<usize>,
    walk: &[(i32, i32)],
    target: &[(i32, i32)],
    width: usize,
    height: usize,
) {
    if poly.len() < 3 || target.len() < 3 {
        return;
    }
    // The window: both polygons and a margin for the moves, inside the image.
    let margin = 2.0 * SCALES[0];
    let (mut lx, mut ly, mut hx, mut hy) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    let corners = target.iter().map(|&(x, y)| (x as f64, y as f64));
    for (x, y) in poly.iter().copied().chain(corners) {
        lx = lx.min(x);
        ly = ly.min(y);
        hx = hx.max(x);
        hy = hy.max(y);
    }
    let x0 = (lx - margin).floor().max(0.0) as i64;
    let y0 = (ly - margin).floor().max(0.0) as i64;
    let x1 = (hx + margin).ceil().min(width as f64) as i64;
    let y1 = (hy + margin).ceil().min(height as f64) as i64;
    let (w, h) = (x1 - x0, y1 - y0);
    if w <= 0 || h <= 0 {
        return;
    }
    let size = (w * h) as usize;
    let mut win = Window { x0, y0, w, h, target: vec![0; size], current: vec![0; size] };
    let tpoly: Vec<(f64, f64)> = target.iter().map(|&(x, y)| (x as f64, y as f64)).collect();
    for (poly, is_target) in [(&tpoly[..], true), (&poly[..], false)] {
        let mut spans = Vec::new();
        win.runs(poly, |x, a, b| spans.push((x, a, b)));
        for (x, a, b) in spans {
            let s = win.at(x, a);
            let buf = if is_target { &mut win.target } else { &mut win.current };
            buf[s..s + (b - a) as usize].fill(1);
        }
    }
    let t_area: i64 = win.target.iter().map(|&v| v as i64).sum();
    let area: i64 = win.current.iter().map(|&v| v as i64).sum();
    let inter: i64 = win.target.iter().zip(&win.current).map(|(&a, &b)| (a & b) as i64).sum();
    let mut s =
        Search { win, t_area, area, inter, bounds: (x0 as f64, y0 as f64, x1 as f64, y1 as f64) };
    for _ in 0..=poly.len() {
        s.local(poly);
        if !s.relocate(poly, anchors, walk) {
            break;
        }
    }
}

/// Pixel counts of the search: the current polygon's area and its intersection with the target.
struct Search {
    win: Window,
    t_area: i64,
    area: i64,
    inter: i64,
    bounds: (f64, f64, f64, f64),
}

/// Step lengths a vertex tries, longest first, each in the eight directions of [`STEPS`].
const SCALES: [f64; 6] = [16.0, 8.0, 4.0, 2.0, 1.0, 0.5];

impl Search {
    fn iou_with(&self, da: i64, di: i64) -> f64 {
        let union = self.area + da + self.t_area - self.inter - di;
        if union == 0 {
            0.0
        } else {
            (self.inter + di) as f64 / union as f64
        }
    }

    /// Moves vertex `k` of `poly` to `to`, updating the counts.
    fn apply(&mut self, poly: &mut [(f64, f64)], k: usize, to: (f64, f64)) {
        let n = poly.len();
        let (a, b, c) = (poly[(k + n - 1) % n], poly[k], poly[(k + 1) % n]);
        let (da, di) = self.win.delta(a, b, to, c, true);
        self.area += da;
        self.inter += di;
        poly[k] = to;
    }

    /// Sweeps over the vertices, each taking the first step (longest first) that raises the
    /// IoU, until a sweep moves none (at most [`SWEEPS`] sweeps).
    fn local(&mut self, poly: &mut [(f64, f64)]) {
        let n = poly.len();
        let (bx0, by0, bx1, by1) = self.bounds;
        for _ in 0..SWEEPS {
            let mut moved = false;
            for k in 0..n {
                let (a, b, c) = (poly[(k + n - 1) % n], poly[k], poly[(k + 1) % n]);
                let now = self.iou_with(0, 0);
                'search: for sc in SCALES {
                    for (dx, dy) in STEPS {
                        let to = (b.0 + dx * sc, b.1 + dy * sc);
                        if to.0 < bx0 || to.1 < by0 || to.0 > bx1 || to.1 > by1 {
                            continue;
                        }
                        let (da, di) = self.win.delta(a, b, to, c, false);
                        if self.iou_with(da, di) > now + 1e-12 {
                            self.apply(poly, k, to);
                            moved = true;
                            break 'search;
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Takes out the vertex whose removal costs the least and puts one at the boundary point
    /// farthest from the edge where adding it gains the most, if that raises the IoU.
    fn relocate(
        &mut self,
        poly: &mut Vec<(f64, f64)>,
        anchors: &mut Vec<usize>,
        walk: &[(i32, i32)],
    ) -> bool {
        let n = poly.len();
        if n <= 3 {
            return false;
        }
        let before = self.iou_with(0, 0);
        let mid = |p: (f64, f64), q: (f64, f64)| ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0);
        // The cheapest removal: the vertex moved onto its neighbours' chord.
        let mut best: Option<(f64, usize)> = None;
        for k in 0..n {
            let (a, b, c) = (poly[(k + n - 1) % n], poly[k], poly[(k + 1) % n]);
            let (da, di) = self.win.delta(a, b, mid(a, c), c, false);
            let v = self.iou_with(da, di);
            if best.is_none_or(|(bv, _)| v > bv) {
                best = Some((v, k));
            }
        }
        let Some((_, k)) = best else { return false };
        let (a, b, c) = (poly[(k + n - 1) % n], poly[k], poly[(k + 1) % n]);
        self.apply(poly, k, mid(a, c));
        let (removed, removed_anchor) = (b, anchors[k]);
        poly.remove(k);
        anchors.remove(k);
        // The best insertion: on each edge, the arc point farthest from it.
        let m = walk.len();
        let n = poly.len();
        let mut best: Option<(f64, usize, usize)> = None;
        for j in 0..n {
            let (p, q) = (poly[j], poly[(j + 1) % n]);
            let (s, e) = (anchors[j], anchors[(j + 1) % n]);
            let len = if e > s { e - s } else { e + m - s };
            let (dx, dy) = (q.0 - p.0, q.1 - p.1);
            let mut far: Option<(f64, usize)> = None;
            for t in 1..len {
                let i = (s + t) % m;
                let (x, y) = (walk[i].0 as f64, walk[i].1 as f64);
                let d = ((x - p.0) * dy - (y - p.1) * dx).abs();
                if far.is_none_or(|(fd, _)| d > fd) {
                    far = Some((d, i));
                }
            }
            let Some((_, i)) = far else { continue };
            let x = (walk[i].0 as f64, walk[i].1 as f64);
            let (da, di) = self.win.delta(p, mid(p, q), x, q, false);
            let v = self.iou_with(da, di);
            if best.is_none_or(|(bv, _, _)| v > bv) {
                best = Some((v, j, i));
            }
        }
        match best {
            Some((v, j, i)) if v > before + 1e-12 => {
                let (p, q) = (poly[j], poly[(j + 1) % n]);
                poly.insert(j + 1, mid(p, q));
                anchors.insert(j + 1, i);
                self.apply(poly, j + 1, (walk[i].0 as f64, walk[i].1 as f64));
                // Keep the anchors increasing from the smallest.
                let r = (0..anchors.len()).min_by_key(|&t| anchors[t]).unwrap_or(0);
                poly.rotate_left(r);
                anchors.rotate_left(r);
                true
            }
            _ => {
                // Put the removed vertex back.
                poly.insert(k, mid(a, c));
                anchors.insert(k, removed_anchor);
                self.apply(poly, k, removed);
                false
            }
        }
    }
}
