//! A deterministic set of small masks (96-128 px a side) for the reconstruction tests: at this
//! size the boundary is a large share of the area, so where a polygon puts its edges (pixel
//! edges or pixel centres) shows in the IoU. Shapes: smooth random blobs, stars, rotated
//! rectangles, ellipses, rings (a hole), thin parts (1-px lines on a blob), diagonal-only pixel
//! chains, shapes cut by the image border, several components, and single pixels.

use std::collections::VecDeque;

use super::mask::Mask;
use crate::test_util::xorshift;

/// A mask drawn as text rows, `#` foreground (row y of the text is image row y).
pub fn mask_from_rows(rows: &[&str]) -> Mask {
    let (h, w) = (rows.len(), rows[0].len());
    let mut m = Mask::empty(w, h);
    for (y, r) in rows.iter().enumerate() {
        for (x, c) in r.chars().enumerate() {
            m.set(x, y, c == '#');
        }
    }
    m
}

/// The small masks, each with a name (`kind-k`). Random angles are drawn from ranges written
/// with 4 decimals (the pinned IoUs depend on them), hence the allowed lint.
#[allow(clippy::approx_constant)]
pub(crate) fn small_masks() -> Vec<(String, Mask)> {
    let mut next = xorshift(0x005e_ed0f_5a11);
    let mut unit = move || (next() % 1_000_000) as f64 / 1_000_000.0;
    let mut out = Vec::new();
    let kinds = [
        "blob",
        "star",
        "rectangle",
        "ellipse",
        "ring",
        "thin",
        "diagonal",
        "border",
        "several",
        "pixel",
    ];
    for kind in kinds {
        for v in 0..5 {
            let w = 96 + (unit() * 33.0) as usize;
            let h = 96 + (unit() * 33.0) as usize;
            let (wf, hf) = (w as f64, h as f64);
            let (cx, cy) =
                ((wf * (0.35 + 0.3 * unit())).round(), (hf * (0.35 + 0.3 * unit())).round());
            let r0 = wf.min(hf) * (0.18 + 0.15 * unit());
            let harmonics: Vec<(f64, f64, f64)> = (2..6)
                .map(|f| (f as f64, 0.25 * unit() / (f as f64 - 1.0), unit() * 6.283))
                .collect();
            let rot = unit() * 3.1416;
            let aspect = 0.35 + 0.5 * unit();
            let spikes = 4.0 + (unit() * 5.0).floor();
            let mut m = Mask::empty(w, h);
            let radial = |x: f64, y: f64, cx: f64, cy: f64, r0: f64| {
                let (dx, dy) = (x - cx, y - cy);
                let t = dy.atan2(dx);
                let r = r0
                    * (1.0 + harmonics.iter().map(|&(f, a, p)| a * (f * t + p).cos()).sum::<f64>());
                dx * dx + dy * dy <= r * r
            };
            let rotated = |x: f64, y: f64| {
                let (dx, dy) = (x - cx, y - cy);
                (dx * rot.cos() + dy * rot.sin(), -dx * rot.sin() + dy * rot.cos())
            };
            for x in 0..w {
                for y in 0..h {
                    let (xf, yf) = (x as f64, y as f64);
                    let on = match kind {
                        "blob" => radial(xf, yf, cx, cy, r0),
                        "star" => {
                            let (dx, dy) = (xf - cx, yf - cy);
                            let t = dy.atan2(dx) + rot;
                            let r = r0 * (0.55 + 0.45 * (spikes * t).cos().abs().powf(3.0));
                            dx * dx + dy * dy <= r * r
                        }
                        "rectangle" => {
                            let (u, v) = rotated(xf, yf);
                            u.abs() <= r0 && v.abs() <= r0 * aspect
                        }
                        "ellipse" => {
                            let (u, v) = rotated(xf, yf);
                            (u / r0).powi(2) + (v / (r0 * aspect)).powi(2) <= 1.0
                        }
                        "ring" => {
                            let (dx, dy) = (xf - cx, yf - cy);
                            let d2 = dx * dx + dy * dy;
                            d2 <= r0 * r0 && d2 > (r0 * aspect * 0.8).powi(2)
                        }
                        "thin" => {
                            // A blob with 1-px-wide lines leaving it (4-connected and diagonal).
                            let (u, v) = rotated(xf, yf);
                            radial(xf, yf, cx, cy, r0 * 0.6)
                                || (u > 0.0 && u < r0 * 1.6 && v.abs() < 0.5)
                                || (x as f64 - cx).abs() < 0.5 && yf < cy
                                || (y == x * h / w && xf > cx)
                        }
                        "diagonal" => {
                            // A solid square with pixel chains that touch it and each other only
                            // at corners (8-connected, not 4-connected).
                            let (dx, dy) = (xf - cx, yf - cy);
                            let sq = dx.abs() <= r0 * 0.5 && dy.abs() <= r0 * 0.5;
                            let chain = dx > 0.0 && dx == dy && dx < r0 * 1.5;
                            let chain2 = dx < 0.0 && dx == -dy && -dx < r0 * 1.2;
                            let chain3 = dx < 0.0 && dx == dy && -dx < r0 * 1.3;
                            sq || chain || chain2 || chain3
                        }
                        "border" => {
                            // Cut by one or two edges of the image.
                            let (ex, ey) = match v % 4 {
                                0 => (0.0, cy),
                                1 => (wf, cy),
                                2 => (cx, 0.0),
                                _ => (wf, hf),
                            };
                            radial(xf, yf, ex, ey, r0 * 1.4)
                        }
                        "several" => {
                            radial(xf, yf, cx, cy, r0 * 0.7)
                                || radial(xf, yf, wf * 0.15, hf * 0.2, r0 * 0.35)
                                || radial(xf, yf, wf * 0.85, hf * 0.8, r0 * 0.45)
                        }
                        _ => x == (cx as usize) && y == (cy as usize),
                    };
                    m.set(x, y, on);
                }
            }
            out.push((format!("{kind}-{v}"), m));
        }
    }
    out
}

/// The component of `seed` (8-connected) with every background pixel it encloses: the
/// background not 4-connected to the image's edge once the other components are ignored.
pub(crate) fn filled_component(m: &Mask, seed: (i32, i32)) -> Mask {
    let (w, h) = (m.width as i32, m.height as i32);
    let inside = |x: i32, y: i32| x >= 0 && y >= 0 && x < w && y < h;
    let mut comp = Mask::empty(m.width, m.height);
    let mut queue = VecDeque::from([seed]);
    comp.set(seed.0 as usize, seed.1 as usize, true);
    while let Some((x, y)) = queue.pop_front() {
        for dx in -1..=1 {
            for dy in -1..=1 {
                let (u, v) = (x + dx, y + dy);
                if inside(u, v)
                    && m.get(u as usize, v as usize)
                    && !comp.get(u as usize, v as usize)
                {
                    comp.set(u as usize, v as usize, true);
                    queue.push_back((u, v));
                }
            }
        }
    }
    // Background reachable from the frame around the image, 4-connected.
    let mut outside = vec![false; ((w + 2) * (h + 2)) as usize];
    let at = |x: i32, y: i32| ((x + 1) * (h + 2) + y + 1) as usize;
    let mut queue = VecDeque::from([(-1, -1)]);
    outside[at(-1, -1)] = true;
    while let Some((x, y)) = queue.pop_front() {
        for (dx, dy) in [(0, 1), (1, 0), (0, -1), (-1, 0)] {
            let (u, v) = (x + dx, y + dy);
            if u < -1 || v < -1 || u > w || v > h || outside[at(u, v)] {
                continue;
            }
            if inside(u, v) && comp.get(u as usize, v as usize) {
                continue;
            }
            outside[at(u, v)] = true;
            queue.push_back((u, v));
        }
    }
    let mut filled = Mask::empty(m.width, m.height);
    for x in 0..w {
        for y in 0..h {
            filled.set(x as usize, y as usize, !outside[at(x, y)]);
        }
    }
    filled
}
