//! Border following (Suzuki & Abe 1985) with 8-connectivity, reproducing OpenCV's
//! `findContours(..., RETR_EXTERNAL, CHAIN_APPROX_NONE)`: the same start pixel, direction and
//! point list for every outer contour, in OpenCV's output order (last found first). Holes of
//! the outer components are traced too, so they can be exposed on request.

use super::mask::Mask;

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
pub fn contours(mask: &Mask, components: Components, holes: bool) -> Vec<Contour> {
    let borders = follow_borders(mask);
    // Outer borders whose parent is the frame: OpenCV's RETR_EXTERNAL, listed last found first.
    let outer: Vec<usize> = (0..borders.len())
        .rev()
        .filter(|&i| !borders[i].hole && borders[i].parent.is_none())
        .collect();
    let chosen: Vec<usize> = match components {
        Components::All => (0..outer.len()).collect(),
        Components::Largest if outer.len() <= 1 => (0..outer.len()).collect(),
        Components::Largest => {
            let seeds: Vec<(i32, i32)> = outer.iter().map(|&i| borders[i].points[0]).collect();
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
        let i = outer[k];
        out.push(Contour { points: borders[i].points.clone(), hole: false });
        if holes {
            for j in (0..borders.len()).rev() {
                if borders[j].hole && borders[j].parent == Some(i) {
                    out.push(Contour { points: borders[j].points.clone(), hole: true });
                }
            }
        }
    }
    out
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

/// Suzuki-Abe algorithm 1 on a copy of the mask with a one-pixel background frame.
fn follow_borders(mask: &Mask) -> Vec<Border> {
    LABELS.with(|cell| {
        let mut f = cell.borrow_mut();
        fill_labels(mask, &mut f);
        scan(mask.width as i32, mask.height as i32, &mut f)
    })
}

/// Writes the mask row-major into `f` (1 = foreground) inside a zero frame. The mask is
/// column-major: copy eight columns at a time so reads stay sequential and writes contiguous.
fn fill_labels(mask: &Mask, f: &mut Vec<i32>) {
    let (w, h) = (mask.width, mask.height);
    let stride = w + 2;
    f.resize(stride * (h + 2), 0);
    f[..stride].fill(0);
    f[(h + 1) * stride..].fill(0);
    for y in 0..h {
        f[(y + 1) * stride] = 0;
        f[(y + 1) * stride + w + 1] = 0;
    }
    for x0 in (0..w).step_by(8) {
        let cols = (w - x0).min(8);
        for y in 0..h {
            let row = &mut f[(y + 1) * stride + x0 + 1..][..cols];
            for (k, v) in row.iter_mut().enumerate() {
                *v = mask.bits[(x0 + k) * h + y] as i32;
            }
        }
    }
}

fn scan(w: i32, h: i32, f: &mut [i32]) -> Vec<Border> {
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
                match f[i + 1..end].iter().position(|&u| u != 0) {
                    Some(k) => i += k + 1,
                    None => break,
                }
                continue;
            }
            if v == 1 && f[i - 1] != 0 && f[i + 1] == 1 {
                i += f[i + 1..end].iter().position(|&u| u != 1).unwrap_or(end - i - 1);
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

/// Follows one border from `(x0, y0)`, `from` being the direction of the background pixel that
/// started it; labels the border pixels and returns them in OpenCV's order.
fn follow(f: &mut [i32], stride: i32, x0: i32, y0: i32, from: usize, nbd: i32) -> Vec<(i32, i32)> {
    let idx = |x: i32, y: i32| ((y + 1) * stride + x + 1) as usize;
    let nz = |f: &[i32], x: i32, y: i32, s: usize| f[idx(x + DX[s & 7], y + DY[s & 7])] != 0;
    // Clockwise search for the first foreground neighbour, starting after `from`.
    let mut s = from;
    let mut found = false;
    for _ in 0..8 {
        s = (s + 7) & 7;
        if nz(f, x0, y0, s) {
            found = true;
            break;
        }
        if s == from {
            break;
        }
    }
    if !found {
        f[idx(x0, y0)] = -nbd;
        return vec![(x0, y0)];
    }
    let (x1, y1) = (x0 + DX[s], y0 + DY[s]);
    let (mut x3, mut y3) = (x0, y0);
    let mut points = Vec::new();
    loop {
        // Counter-clockwise search from the direction after the previous pixel.
        let mut t = s;
        loop {
            t += 1;
            if nz(f, x3, y3, t) {
                break;
            }
        }
        // Direction 0 (right, = 8) was examined and empty: the pixel is a right border.
        let crossed_right = t > 8;
        s = t & 7;
        let i3 = idx(x3, y3);
        if crossed_right {
            f[i3] = -nbd;
        } else if f[i3] == 1 {
            f[i3] = nbd;
        }
        points.push((x3, y3));
        let (x4, y4) = (x3 + DX[s], y3 + DY[s]);
        if x4 == x0 && y4 == y0 && x3 == x1 && y3 == y1 {
            break;
        }
        x3 = x4;
        y3 = y4;
        s = (s + 4) & 7;
    }
    points
}

/// Foreground pixels 8-connected to each seed (flood fills sharing one visited map: the
/// seeds lie in distinct components).
fn component_pixels(mask: &Mask, seeds: &[(i32, i32)]) -> Vec<u64> {
    let (w, h) = (mask.width as i32, mask.height as i32);
    let mut seen = vec![false; if seeds.is_empty() { 0 } else { mask.bits.len() }];
    let mut stack = Vec::new();
    seeds
        .iter()
        .map(|&seed| {
            let mut count = 0u64;
            let i = (seed.0 * h + seed.1) as usize;
            if !seen[i] {
                seen[i] = true;
                stack.push(seed);
            }
            while let Some((x, y)) = stack.pop() {
                count += 1;
                for s in 0..8 {
                    let (nx, ny) = (x + DX[s], y + DY[s]);
                    if nx < 0 || ny < 0 || nx >= w || ny >= h {
                        continue;
                    }
                    let i = (nx * h + ny) as usize;
                    if mask.bits[i] != 0 && !seen[i] {
                        seen[i] = true;
                        stack.push((nx, ny));
                    }
                }
            }
            count
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_from_rows(rows: &[&str]) -> Mask {
        let (h, w) = (rows.len(), rows[0].len());
        let mut m = Mask::empty(w, h);
        for (y, r) in rows.iter().enumerate() {
            for (x, c) in r.chars().enumerate() {
                m.set(x, y, c == '#');
            }
        }
        m
    }

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
                ((1, 6), true),
                ((1, 1), false)
            ]
        );
        assert_eq!(c[3].points[1], (2, 5));
        let largest = contours(&m, Components::Largest, false);
        assert_eq!(largest.len(), 1);
        // (5,5) and (1,5) both have 8 pixels: the tie keeps the one OpenCV lists first.
        assert_eq!(largest[0].points[0], (5, 5));
        assert_eq!(component_pixels(&m, &[(1, 5), (1, 1)]), vec![8, 4]);
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
