//! Choosing N points of a closed contour so that the polygon through them reproduces the mask.
//!
//! The contour is the largest component's outer boundary along pixel edges (`Contour::Boundary`,
//! the default: vertices at pixel corners, see `boundary`) or OpenCV's contour through the
//! boundary pixels (`Contour::Centres`). On the boundary, a contour that turns at most N times
//! comes back whole (its turning corners, the exact outline).
//!
//! - `uniform`: N points evenly spaced along the contour, starting at its first point. On the
//!   boundary every step is one pixel edge, so this is arc-length-uniform sampling. A stronger
//!   baseline than VistaLLM's own uniform code (`contour[::ceil(M / N)]`, often fewer than N).
//! - `adaptive` (default): greedy least-area removal (Visvalingam-Whyatt): repeatedly drop the
//!   point whose triangle with its two current neighbours has the smallest area (the area the
//!   polygon gains or loses by dropping it), rescore its two neighbours, until N remain
//!   (O(M log M); collinear points go first in one pass). Then an edge refit: chords between
//!   contour points cut every convex arc, so each edge moves onto the line through the contour
//!   at 1/4 and 3/4 of its arc (where the best L1 line through a smooth arc crosses it) and
//!   each vertex becomes the crossing of its two edge lines; a crossing farther than half the
//!   shorter edge (+1 px) from the contour vertex, or on nearly parallel edges, keeps the
//!   contour vertex. On the boundary the two line points are window means of the contour
//!   (an eighth of the arc either side), which lie on a staircase's middle line rather than on
//!   its outer or inner corners.
//! - `refined`: `adaptive`, then (on the boundary) a local search that moves vertices (and
//!   relocates the least useful one) while that raises the IoU of the filled polygon with the
//!   filled component (`refine`). Tens of milliseconds on a 512 x 512 mask, so not the default.
//! - `vistallm`: the authors' published code (VistaLLM_Test `res.py`): pre-decimate to at most
//!   40 points, score interior points of the open polyline by distance to the chord, endpoints
//!   180, keep the N best in contour order; ties broken by index (NumPy's sort is unstable).
//! - `angle`: the paper's wording taken literally: the turning angle at every contour point, the
//!   N largest kept in contour order (equal angles in contour order). On a pixel contour almost
//!   every angle is 0 or a multiple of 45 degrees, so the kept points bunch up where the contour
//!   first turns; it is there so the paper's ablation can be rerun.
//!
//! Every method but `adaptive` returns points of the contour; `adaptive` may move them off it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Adaptive,
    /// `adaptive`, then the local search of `refine` on the boundary.
    Refined,
    Uniform,
    Vistallm,
    Angle,
}

impl Method {
    pub fn parse(s: &str) -> Result<Method, String> {
        match s.to_ascii_lowercase().as_str() {
            "adaptive" => Ok(Method::Adaptive),
            "refined" => Ok(Method::Refined),
            "uniform" => Ok(Method::Uniform),
            "vistallm" => Ok(Method::Vistallm),
            "angle" => Ok(Method::Angle),
            other => Err(format!(
                "method must be 'adaptive', 'refined', 'uniform', 'vistallm' or 'angle', got '{other}'"
            )),
        }
    }
}

/// The points (pixel space, clamped to the image) that `method` writes for a contour, at most
/// `n`, in contour order. Only `adaptive` moves points off the contour (see the module doc).
pub fn sequence_points(
    points: &[(i32, i32)],
    n: usize,
    method: Method,
    contour: Contour,
    width: usize,
    height: usize,
) -> Vec<(f64, f64)> {
    if contour == Contour::Boundary {
        return boundary_points(points, n, method, width, height);
    }
    let idx = sample(points, n, method);
    if matches!(method, Method::Adaptive | Method::Refined) {
        secant_points(points, &idx, width, height)
    } else {
        idx.iter().map(|&i| (points[i].0 as f64, points[i].1 as f64)).collect()
    }
}

/// [`sequence_points`] of a boundary walk (pixel corners, one per unit step). When the boundary
/// turns at most `n` times its turning corners come back: the exact outline. Otherwise
/// `uniform`, `angle` and `vistallm` pick corners of the walk, `adaptive` refits the edges on
/// the boundary's middle line, and `refined` then moves the vertices by local search (`refine`).
fn boundary_points(
    walk: &[(i32, i32)],
    n: usize,
    method: Method,
    width: usize,
    height: usize,
) -> Vec<(f64, f64)> {
    let corners = super::boundary::turning_vertices(walk);
    if corners.len() <= n {
        return corners.iter().map(|&(x, y)| (x as f64, y as f64)).collect();
    }
    let mut idx = sample(walk, n, method);
    if !matches!(method, Method::Adaptive | Method::Refined) {
        return idx.iter().map(|&i| (walk[i].0 as f64, walk[i].1 as f64)).collect();
    }
    let (xmax, ymax) = (width as f64, height as f64);
    let mut pts: Vec<(f64, f64)> = fit_edges(walk, &idx, true)
        .into_iter()
        .map(|(x, y)| (x.clamp(0.0, xmax), y.clamp(0.0, ymax)))
        .collect();
    // The search costs tens of milliseconds on a 512 x 512 mask (the greedy removal and refit
    // take about a hundred microseconds): it runs only when asked for.
    if method == Method::Refined {
        super::refine::refine(&mut pts, &mut idx, walk, &corners, width, height);
    }
    pts
}

/// Which contour a sequence samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contour {
    /// Pixel corners along the outer boundary, one per unit step (`boundary::largest_boundary`):
    /// coordinates from 0 to the width / height.
    Boundary,
    /// OpenCV's contour: the boundary pixels' own indices, from 0 to width / height - 1.
    Centres,
}

impl Contour {
    pub fn parse(s: &str) -> Result<Contour, String> {
        match s.to_ascii_lowercase().as_str() {
            "boundary" => Ok(Contour::Boundary),
            "centres" | "centers" => Ok(Contour::Centres),
            other => Err(format!("contour must be 'boundary' or 'centres', got '{other}'")),
        }
    }
}

/// The secant polygon of the chosen indices of OpenCV's contour (module doc), clamped to the
/// image's pixel indices; the contour points themselves when every point is kept.
pub fn secant_points(
    points: &[(i32, i32)],
    idx: &[usize],
    width: usize,
    height: usize,
) -> Vec<(f64, f64)> {
    let fitted = if idx.len() < points.len() {
        fit_edges(points, idx, false)
    } else {
        idx.iter().map(|&i| (points[i].0 as f64, points[i].1 as f64)).collect()
    };
    let (xmax, ymax) = (width.saturating_sub(1) as f64, height.saturating_sub(1) as f64);
    fitted.into_iter().map(|(x, y)| (x.clamp(0.0, xmax), y.clamp(0.0, ymax))).collect()
}

/// A line through two points.
type Line = ((f64, f64), (f64, f64));

/// Secant refinement of the adaptive polygon (module doc): vertex k becomes the crossing of the
/// lines fitted to its two edges, each through the arc points at 1/4 and 3/4 of the edge.
fn fit_edges(points: &[(i32, i32)], idx: &[usize], smooth: bool) -> Vec<(f64, f64)> {
    let m = points.len();
    let k = idx.len();
    let p = |i: usize| {
        let (x, y) = points[i % m];
        (x as f64, y as f64)
    };
    // Prefix sums of the closed contour taken twice, for window means that wrap.
    let prefix: Vec<(f64, f64)> = if smooth {
        let mut acc = (0.0, 0.0);
        let mut v = Vec::with_capacity(2 * m + 1);
        v.push(acc);
        for i in 0..2 * m {
            let (x, y) = p(i);
            acc = (acc.0 + x, acc.1 + y);
            v.push(acc);
        }
        v
    } else {
        Vec::new()
    };
    // The contour near index i: the point itself, or on the boundary the mean over the window
    // i - r ..= i + r (r an eighth of the edge's arc, so the two windows of an edge stay apart),
    // which lies on the staircase's middle line instead of on its outer or inner corners.
    let at = |i: usize, r: usize| {
        if !smooth || r == 0 {
            return p(i);
        }
        let lo = (i % m + m - r.min(m - 1)) % m;
        let len = 2 * r + 1;
        let (s0, s1) = (prefix[lo], prefix[lo + len.min(m)]);
        let c = len.min(m) as f64;
        ((s1.0 - s0.0) / c, (s1.1 - s0.1) / c)
    };
    // Edge t runs from idx[t] to idx[t + 1] (wrapping); arcs shorter than 4 steps keep chords.
    let lines: Vec<Option<Line>> = (0..k)
        .map(|t| {
            let (a, b) = (idx[t], idx[(t + 1) % k]);
            let len = if b > a { b - a } else { b + m - a };
            (len >= 4).then(|| {
                let q1 = a + (len as f64 * 0.25).round_ties_even() as usize;
                let q3 = a + (len as f64 * 0.75).round_ties_even() as usize;
                (at(q1, len / 8), at(q3, len / 8))
            })
        })
        .collect();
    let dist = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    (0..k)
        .map(|t| {
            let v = p(idx[t]);
            let (Some((p1, p2)), Some((p3, p4))) = (lines[(t + k - 1) % k], lines[t]) else {
                return v;
            };
            let (d1, d2) = ((p2.0 - p1.0, p2.1 - p1.1), (p4.0 - p3.0, p4.1 - p3.1));
            let den = d1.0 * d2.1 - d1.1 * d2.0;
            if den.abs() < 1e-9 {
                return v;
            }
            let s = ((p3.0 - p1.0) * d2.1 - (p3.1 - p1.1) * d2.0) / den;
            let x = (p1.0 + s * d1.0, p1.1 + s * d1.1);
            let shorter = dist(p(idx[(t + k - 1) % k]), v).min(dist(v, p(idx[(t + 1) % k])));
            if dist(x, v) > 0.5 * shorter + 1.0 {
                v
            } else {
                x
            }
        })
        .collect()
}

/// Indices (increasing) of the contour points that `method` keeps, at most `n`.
pub fn sample(points: &[(i32, i32)], n: usize, method: Method) -> Vec<usize> {
    let m = points.len();
    if m <= n {
        return (0..m).collect();
    }
    match method {
        Method::Uniform => uniform(m, n),
        Method::Adaptive | Method::Refined => adaptive(points, n),
        Method::Vistallm => vistallm(points, n),
        Method::Angle => angle(points, n),
    }
}

/// The paper's reading of adaptive sampling: the turning angle at every contour point (between
/// the steps into and out of it), the `n` largest kept, in contour order; equal angles are
/// taken in contour order.
fn angle(points: &[(i32, i32)], n: usize) -> Vec<usize> {
    let m = points.len();
    let turn: Vec<f64> = (0..m)
        .map(|i| {
            let (a, b, c) = (points[(i + m - 1) % m], points[i], points[(i + 1) % m]);
            let (u, v) = ((b.0 - a.0, b.1 - a.1), (c.0 - b.0, c.1 - b.1));
            let cross = (u.0 * v.1 - u.1 * v.0) as f64;
            let dot = (u.0 * v.0 + u.1 * v.1) as f64;
            cross.atan2(dot).abs()
        })
        .collect();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| turn[j].total_cmp(&turn[i]).then(i.cmp(&j)));
    let mut keep: Vec<usize> = order[..n].to_vec();
    keep.sort_unstable();
    keep
}

fn uniform(m: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| i * m / n).collect()
}

/// Twice the signed area of the triangle (a, b, c), exact on integer points.
fn cross(a: (i32, i32), b: (i32, i32), c: (i32, i32)) -> i64 {
    let (ax, ay) = (a.0 as i64, a.1 as i64);
    (b.0 as i64 - ax) * (c.1 as i64 - ay) - (b.1 as i64 - ay) * (c.0 as i64 - ax)
}

fn adaptive(points: &[(i32, i32)], n: usize) -> Vec<usize> {
    // Collinear points have zero area and stay at zero as their neighbours go, so greedy removal
    // takes them all first; dropping them in one linear pass leaves the heap far fewer points
    // (pixel contours are mostly straight runs). Unless that leaves fewer than n.
    let corners = non_collinear(points);
    if corners.len() >= n {
        greedy_removal(points, &corners, n)
    } else {
        greedy_removal(points, &(0..points.len()).collect::<Vec<_>>(), n)
    }
}

/// Indices of the closed contour without its collinear points (a stack pass, then the seam).
fn non_collinear(points: &[(i32, i32)]) -> Vec<usize> {
    let mut st: Vec<usize> = Vec::with_capacity(points.len());
    for i in 0..points.len() {
        while st.len() >= 2
            && cross(points[st[st.len() - 2]], points[st[st.len() - 1]], points[i]) == 0
        {
            st.pop();
        }
        st.push(i);
    }
    let mut head = 0;
    while st.len() - head >= 3 {
        let k = st.len();
        if cross(points[st[k - 2]], points[st[k - 1]], points[st[head]]) == 0 {
            st.pop();
        } else if cross(points[st[k - 1]], points[st[head]], points[st[head + 1]]) == 0 {
            head += 1;
        } else {
            break;
        }
    }
    st.drain(..head);
    st
}

/// Visvalingam-Whyatt on the closed polygon `base` (indices into `points`) down to `n` points.
fn greedy_removal(points: &[(i32, i32)], base: &[usize], n: usize) -> Vec<usize> {
    let m = base.len();
    if m <= n {
        return base.to_vec();
    }
    // Dense copies: the loop below touches these for every removal.
    let pt: Vec<(i32, i32)> = base.iter().map(|&b| points[b]).collect();
    let mut prev: Vec<u32> = (0..m).map(|i| ((i + m - 1) % m) as u32).collect();
    let mut next: Vec<u32> = (0..m).map(|i| ((i + 1) % m) as u32).collect();
    // The current cost of each point; -1 once removed.
    let mut current: Vec<i64> =
        (0..m).map(|i| cross(pt[prev[i] as usize], pt[i], pt[next[i] as usize]).abs()).collect();
    // Stale entries are skipped when their cost no longer matches.
    let mut queue = CostQueue::new(m);
    for (i, &c) in current.iter().enumerate() {
        queue.push(c, i as u32);
    }
    let mut left = m;
    while left > n {
        let Some((c, i)) = queue.pop() else { break };
        let i = i as usize;
        if c != current[i] {
            continue;
        }
        current[i] = -1;
        left -= 1;
        let (p, q) = (prev[i], next[i]);
        next[p as usize] = q;
        prev[q as usize] = p;
        for j in [p as usize, q as usize] {
            let c = cross(pt[prev[j] as usize], pt[j], pt[next[j] as usize]).abs();
            current[j] = c;
            queue.push(c, j as u32);
        }
    }
    (0..m).filter(|&i| current[i] >= 0).map(|i| base[i]).collect()
}

/// The min-priority queue of the greedy removal. Nearly every removal on a pixel contour costs a
/// few units (staircase steps cost 1), so small costs get a bucket each (constant time, instead
/// of a heap's logarithmic sift that took most of the sampling time) and only large ones go to
/// a heap. Among equal costs the order is unspecified.
struct CostQueue {
    buckets: [Vec<u32>; SMALL_COSTS],
    /// No bucket below this one holds an entry.
    lowest: usize,
    large: BinaryHeap<Reverse<(i64, u32)>>,
}

const SMALL_COSTS: usize = 64;

impl CostQueue {
    /// A queue for about `m` entries at a time.
    fn new(m: usize) -> Self {
        let mut buckets: [Vec<u32>; SMALL_COSTS] = std::array::from_fn(|_| Vec::new());
        // Pixel contours start with most points at the smallest costs.
        for b in buckets.iter_mut().take(4) {
            b.reserve(m / 2);
        }
        CostQueue { buckets, lowest: SMALL_COSTS, large: BinaryHeap::new() }
    }

    fn push(&mut self, cost: i64, i: u32) {
        match usize::try_from(cost) {
            Ok(c) if c < SMALL_COSTS => {
                self.buckets[c].push(i);
                self.lowest = self.lowest.min(c);
            }
            _ => self.large.push(Reverse((cost, i))),
        }
    }

    fn pop(&mut self) -> Option<(i64, u32)> {
        while self.lowest < SMALL_COSTS {
            if let Some(i) = self.buckets[self.lowest].pop() {
                return Some((self.lowest as i64, i));
            }
            self.lowest += 1;
        }
        self.large.pop().map(|Reverse(e)| e)
    }
}

fn vistallm(points: &[(i32, i32)], n: usize) -> Vec<usize> {
    const PRE: usize = 40;
    let interval = points.len().div_ceil(PRE);
    let idx: Vec<usize> = (0..points.len()).step_by(interval).collect();
    let k = idx.len();
    if k <= n {
        return idx;
    }
    let p = |i: usize| {
        let (x, y) = points[idx[i]];
        (x as f64, y as f64)
    };
    let mut score = vec![180.0f64; k];
    for (i, s) in score.iter_mut().enumerate().take(k - 1).skip(1) {
        let (a, b, c) = (p(i - 1), p(i), p(i + 1));
        let (ux, uy) = (c.0 - a.0, c.1 - a.1);
        let (vx, vy) = (a.0 - b.0, a.1 - b.1);
        *s = (ux * vy - uy * vx).abs() / (ux * ux + uy * uy).sqrt();
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| score[i].total_cmp(&score[j]).then(i.cmp(&j)));
    let mut keep = vec![true; k];
    for &i in &order[..k - n] {
        keep[i] = false;
    }
    (0..k).filter(|&i| keep[i]).map(|i| idx[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(side: i32) -> Vec<(i32, i32)> {
        // Border-following order of a filled square: down the left side, along the bottom, up
        // the right side, back along the top.
        let mut v = Vec::new();
        for y in 0..side {
            v.push((0, y));
        }
        for x in 1..side {
            v.push((x, side - 1));
        }
        for y in (0..side - 1).rev() {
            v.push((side - 1, y));
        }
        for x in (1..side - 1).rev() {
            v.push((x, 0));
        }
        v
    }

    #[test]
    fn adaptive_keeps_the_corners_of_a_square() {
        let pts = square(50);
        let kept: Vec<_> = sample(&pts, 4, Method::Adaptive).into_iter().map(|i| pts[i]).collect();
        assert_eq!(kept, vec![(0, 0), (0, 49), (49, 49), (49, 0)]);
        // Secant fitting leaves corners where they are.
        let seq = sequence_points(&pts, 4, Method::Adaptive, Contour::Centres, 50, 50);
        assert_eq!(seq, vec![(0.0, 0.0), (0.0, 49.0), (49.0, 49.0), (49.0, 0.0)]);
    }

    #[test]
    fn uniform_spaces_points_evenly_and_short_contours_come_back_whole() {
        assert_eq!(uniform(10, 4), vec![0, 2, 5, 7]);
        let pts = square(3);
        assert_eq!(sample(&pts, 32, Method::Adaptive).len(), pts.len());
        assert_eq!(sample(&pts, 32, Method::Uniform).len(), pts.len());
    }

    #[test]
    fn vistallm_port_pre_samples_to_forty_and_keeps_n() {
        let pts = square(100); // 396 points -> interval 10 -> 40 points
        let kept = sample(&pts, 16, Method::Vistallm);
        assert_eq!(kept.len(), 16);
        assert!(kept.iter().all(|i| i % 10 == 0));
        assert_eq!(kept[0], 0);
    }
}
