//! Scenes of simple shapes on textured backgrounds, rendered with exact per-object masks.
//!
//! A scene is a square image cut into a 3x3 grid; each object sits in its own cell (so its named
//! position is unambiguous), objects are drawn in order (later ones on top), and the mask of an
//! object is the part of it that stays visible. Scenes whose masks would be awkward as ground
//! truth (an object mostly hidden, split in two, or with a hole) are drawn again.

use vista_udfs::seeded::SplitMix64 as Rng;

/// Shapes, with their plural and indefinite article (for templated text).
pub const SHAPES: &[(&str, &str, &str)] = &[
    ("circle", "circles", "a"),
    ("square", "squares", "a"),
    ("triangle", "triangles", "a"),
    ("star", "stars", "a"),
    ("ellipse", "ellipses", "an"),
    ("cross", "crosses", "a"),
];

/// Object colours: name and RGB, saturated so that they stand out from the muted backgrounds.
pub const COLORS: &[(&str, [u8; 3])] = &[
    ("red", [215, 35, 35]),
    ("green", [30, 160, 55]),
    ("blue", [35, 75, 215]),
    ("yellow", [240, 200, 20]),
    ("purple", [135, 50, 185]),
    ("black", [20, 20, 20]),
];

/// Sizes and the radius range of each, as a fraction of the image side (disjoint ranges, so the
/// size of an object is never in doubt).
pub const SIZES: &[(&str, f64, f64)] = &[("small", 0.07, 0.095), ("large", 0.14, 0.19)];

/// Grid cells in reading order, with the phrase that places something there.
pub const POSITIONS: &[(&str, &str)] = &[
    ("top left", "at the top left"),
    ("top", "at the top"),
    ("top right", "at the top right"),
    ("left", "on the left"),
    ("center", "in the center"),
    ("right", "on the right"),
    ("bottom left", "at the bottom left"),
    ("bottom", "at the bottom"),
    ("bottom right", "at the bottom right"),
];

/// Background textures (named as adjectives: "on a striped background").
pub const BACKGROUNDS: &[&str] = &["striped", "checkered", "speckled"];

/// Muted background tones; a texture alternates two of them.
const TONES: &[[u8; 3]] = &[
    [205, 205, 205],
    [175, 175, 180],
    [225, 215, 195],
    [190, 200, 215],
    [160, 165, 155],
    [235, 235, 230],
];

/// Visible part an object must keep of its own area when others cover it.
const MIN_VISIBLE: f64 = 0.6;
const MAX_ATTEMPTS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Index into [`SHAPES`], [`COLORS`], [`SIZES`], [`POSITIONS`].
    pub shape: usize,
    pub color: usize,
    pub size: usize,
    pub cell: usize,
    pub cx: f64,
    pub cy: f64,
    pub radius: f64,
    /// The visible mask, row-major, one bool per pixel.
    pub mask: Vec<bool>,
    /// Visible pixels.
    pub area: u64,
    /// Box of the visible mask in pixel space: pixel edges, `[x0, y0, x1, y1]` with `x1 = last
    /// column + 1` (the COCO convention, so `x1 - x0` is the width in pixels).
    pub bbox: [u32; 4],
    /// A visible pixel near the middle of the object (pixel centre), for point questions.
    pub point: [f64; 2],
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub side: u32,
    /// Index into [`BACKGROUNDS`].
    pub background: usize,
    /// Objects in drawing order (the last is on top).
    pub objects: Vec<Object>,
    /// RGB pixels, row-major.
    pub rgb: Vec<u8>,
}

/// Draws scene `index` of a run: 1 to `max_objects` objects (at most 9, one per grid cell).
pub fn generate(seed: u64, index: u64, side: u32, max_objects: usize) -> Scene {
    let mut rng = Rng::for_item(seed, index);
    let max_objects = max_objects.clamp(1, POSITIONS.len());
    for _ in 0..MAX_ATTEMPTS {
        let n = rng.range_usize(1, max_objects);
        if let Some(scene) = try_scene(&mut rng, side, n) {
            return scene;
        }
    }
    // A single object is always accepted; reaching here needs a pathological image size.
    loop {
        if let Some(scene) = try_scene(&mut rng, side, 1) {
            return scene;
        }
    }
}

fn try_scene(rng: &mut Rng, side: u32, n: usize) -> Option<Scene> {
    let s = side as f64;
    let cell = s / 3.0;
    let mut cells: Vec<usize> = (0..POSITIONS.len()).collect();
    rng.shuffle(&mut cells);
    let mut objects = Vec::with_capacity(n);
    for &c in &cells[..n] {
        let size = rng.below(SIZES.len());
        let (_, lo, hi) = SIZES[size];
        let radius = rng.range_f64(lo, hi) * s;
        // The centre stays in the middle 60% of its cell (its position is unambiguous) and far
        // enough from the border that nothing is cut off by the frame.
        let (col, row) = ((c % 3) as f64, (c / 3) as f64);
        let cx = centre_in(rng, col * cell, cell, radius, s)?;
        let cy = centre_in(rng, row * cell, cell, radius, s)?;
        objects.push(Object {
            shape: rng.below(SHAPES.len()),
            color: rng.below(COLORS.len()),
            size,
            cell: c,
            cx,
            cy,
            radius,
            mask: Vec::new(),
            area: 0,
            bbox: [0; 4],
            point: [0.0; 2],
        });
    }
    let background = rng.below(BACKGROUNDS.len());
    let mut rgb = render_background(rng, background, side);

    // Each pixel belongs to the topmost object covering it.
    let npx = (side * side) as usize;
    let mut owner: Vec<Option<usize>> = vec![None; npx];
    let mut own_area = vec![0u64; n];
    for (i, o) in objects.iter().enumerate() {
        for y in 0..side {
            for x in 0..side {
                if inside(o, x as f64 + 0.5, y as f64 + 0.5) {
                    owner[(y * side + x) as usize] = Some(i);
                    own_area[i] += 1;
                }
            }
        }
    }
    for (i, o) in objects.iter_mut().enumerate() {
        o.mask = owner.iter().map(|w| *w == Some(i)).collect();
        o.area = o.mask.iter().filter(|&&b| b).count() as u64;
        if own_area[i] == 0 || (o.area as f64) < MIN_VISIBLE * own_area[i] as f64 {
            return None;
        }
        if !one_piece_without_holes(&o.mask, side as usize) {
            return None;
        }
        o.bbox = bbox(&o.mask, side as usize);
        o.point = inner_point(&o.mask, side as usize);
    }
    for (p, w) in owner.iter().enumerate() {
        if let Some(i) = w {
            rgb[3 * p..3 * p + 3].copy_from_slice(&COLORS[objects[*i].color].1);
        }
    }
    Some(Scene { side, background, objects, rgb })
}

/// A centre coordinate in the middle 60% of the cell starting at `start`, at least `radius + 1`
/// from both image borders; `None` when the two ranges do not meet (a tiny image).
fn centre_in(rng: &mut Rng, start: f64, cell: f64, radius: f64, side: f64) -> Option<f64> {
    let lo = (start + 0.2 * cell).max(radius + 1.0);
    let hi = (start + 0.8 * cell).min(side - radius - 1.0);
    (lo < hi).then(|| rng.range_f64(lo, hi))
}

/// Whether the point (px, py) (a pixel centre) lies inside the object's shape.
fn inside(o: &Object, px: f64, py: f64) -> bool {
    let (dx, dy, r) = (px - o.cx, py - o.cy, o.radius);
    match SHAPES[o.shape].0 {
        "circle" => dx * dx + dy * dy <= r * r,
        "square" => dx.abs() <= 0.8 * r && dy.abs() <= 0.8 * r,
        "ellipse" => (dx / r).powi(2) + (dy / (0.55 * r)).powi(2) <= 1.0,
        "cross" => {
            let (arm, half) = (0.95 * r, 0.32 * r);
            (dx.abs() <= arm && dy.abs() <= half) || (dx.abs() <= half && dy.abs() <= arm)
        }
        "triangle" => in_polygon(&regular(3, r, r, o.cx, o.cy), px, py),
        "star" => in_polygon(&regular(5, r, 0.45 * r, o.cx, o.cy), px, py),
        other => unreachable!("unknown shape {other}"),
    }
}

/// Vertices of a regular polygon (inner == outer) or star pointing up, around (cx, cy).
fn regular(points: usize, outer: f64, inner: f64, cx: f64, cy: f64) -> Vec<(f64, f64)> {
    let star = inner != outer;
    let k = if star { 2 * points } else { points };
    (0..k)
        .map(|i| {
            let a = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / k as f64;
            let r = if star && i % 2 == 1 { inner } else { outer };
            (cx + r * a.cos(), cy + r * a.sin())
        })
        .collect()
}

/// Even-odd point-in-polygon test.
fn in_polygon(poly: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut j = poly.len() - 1;
    for i in 0..poly.len() {
        let ((xi, yi), (xj, yj)) = (poly[i], poly[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn render_background(rng: &mut Rng, kind: usize, side: u32) -> Vec<u8> {
    let a = rng.below(TONES.len());
    let b = (a + 1 + rng.below(TONES.len() - 1)) % TONES.len();
    let (ta, tb) = (TONES[a], TONES[b]);
    let period = rng.range_usize(4, 8) as u32;
    let diagonal = rng.below(3);
    let mut rgb = Vec::with_capacity((side * side * 3) as usize);
    for y in 0..side {
        for x in 0..side {
            let second = match BACKGROUNDS[kind] {
                "striped" => {
                    let t = match diagonal {
                        0 => y,
                        1 => x,
                        _ => x + y,
                    };
                    (t / period) % 2 == 1
                }
                "checkered" => (x / period + y / period) % 2 == 1,
                "speckled" => rng.below(3) == 0,
                other => unreachable!("unknown background {other}"),
            };
            rgb.extend_from_slice(if second { &tb } else { &ta });
        }
    }
    rgb
}

/// One 4-connected piece whose background is 8-connected to the outside (no holes): the shape a
/// single polygon can describe.
fn one_piece_without_holes(mask: &[bool], side: usize) -> bool {
    let Some(start) = mask.iter().position(|&b| b) else { return false };
    let total = mask.iter().filter(|&&b| b).count();
    if flood(side, side, start, |p| mask[p], false) != total {
        return false;
    }
    // Background reachable from a one-pixel frame around the image, in a padded grid.
    let w = side + 2;
    let padded_bg = |p: usize| {
        let (x, y) = (p % w, p / w);
        x == 0 || y == 0 || x == w - 1 || y == w - 1 || !mask[(y - 1) * side + (x - 1)]
    };
    let background = w * w - total;
    flood(w, w, 0, padded_bg, true) == background
}

/// Size of the connected region of `member` pixels containing `start` (4- or 8-connected).
fn flood(w: usize, h: usize, start: usize, member: impl Fn(usize) -> bool, eight: bool) -> usize {
    let mut seen = vec![false; w * h];
    let mut stack = vec![start];
    seen[start] = true;
    let mut count = 0;
    while let Some(p) = stack.pop() {
        count += 1;
        let (x, y) = ((p % w) as isize, (p / w) as isize);
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                if (dx == 0 && dy == 0) || (!eight && dx != 0 && dy != 0) {
                    continue;
                }
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                    continue;
                }
                let q = ny as usize * w + nx as usize;
                if !seen[q] && member(q) {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
    }
    count
}

fn bbox(mask: &[bool], side: usize) -> [u32; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (side, side, 0, 0);
    for (p, _) in mask.iter().enumerate().filter(|(_, &b)| b) {
        let (x, y) = (p % side, p / side);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x + 1);
        y1 = y1.max(y + 1);
    }
    [x0 as u32, y0 as u32, x1 as u32, y1 as u32]
}

/// The visible pixel farthest from the mask's edge (ties: first in reading order), as its
/// centre: a point that clearly belongs to the object even when it is partly covered.
fn inner_point(mask: &[bool], side: usize) -> [f64; 2] {
    let dist = chessboard_distance(mask, side);
    let best =
        (0..mask.len()).filter(|&p| mask[p]).max_by_key(|&p| (dist[p], std::cmp::Reverse(p)));
    let p = best.expect("masks are never empty");
    [(p % side) as f64 + 0.5, (p / side) as f64 + 0.5]
}

/// Distance (in 8-connected steps) from each foreground pixel to the nearest background pixel
/// or image border; two passes.
fn chessboard_distance(mask: &[bool], side: usize) -> Vec<u32> {
    let inf = u32::MAX / 2;
    let mut d: Vec<u32> = mask.iter().map(|&b| if b { inf } else { 0 }).collect();
    let at = |d: &Vec<u32>, x: isize, y: isize| -> u32 {
        if x < 0 || y < 0 || x >= side as isize || y >= side as isize {
            0
        } else {
            d[y as usize * side + x as usize]
        }
    };
    for y in 0..side as isize {
        for x in 0..side as isize {
            let p = y as usize * side + x as usize;
            if d[p] == 0 {
                continue;
            }
            let m =
                [at(&d, x - 1, y), at(&d, x - 1, y - 1), at(&d, x, y - 1), at(&d, x + 1, y - 1)];
            d[p] = d[p].min(m.iter().min().unwrap() + 1);
        }
    }
    for y in (0..side as isize).rev() {
        for x in (0..side as isize).rev() {
            let p = y as usize * side + x as usize;
            if d[p] == 0 {
                continue;
            }
            let m =
                [at(&d, x + 1, y), at(&d, x + 1, y + 1), at(&d, x, y + 1), at(&d, x - 1, y + 1)];
            d[p] = d[p].min(m.iter().min().unwrap() + 1);
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_partition_the_object_pixels() {
        for i in 0..30 {
            let s = generate(3, i, 64, 4);
            let mut covered = vec![0u8; 64 * 64];
            for o in &s.objects {
                for (p, &b) in o.mask.iter().enumerate() {
                    covered[p] += b as u8;
                    if b {
                        assert_eq!(&s.rgb[3 * p..3 * p + 3], &COLORS[o.color].1);
                    }
                }
                let [x0, y0, x1, y1] = o.bbox;
                assert!(x0 < x1 && y0 < y1);
                let (px, py) = (o.point[0] as usize, o.point[1] as usize);
                assert!(o.mask[py * 64 + px]);
            }
            assert!(covered.iter().all(|&c| c <= 1));
        }
    }

    #[test]
    fn holes_and_split_masks_are_rejected() {
        let side = 5;
        let ring: Vec<bool> = (0..25)
            .map(|p| p != 12 && (p % 5 != 0 && p % 5 != 4 && p / 5 != 0 && p / 5 != 4))
            .collect();
        assert!(!one_piece_without_holes(&ring, side));
        let mut two = vec![false; 25];
        two[0] = true;
        two[24] = true;
        assert!(!one_piece_without_holes(&two, side));
        let mut blob = vec![false; 25];
        for p in [6, 7, 8, 11, 12, 13] {
            blob[p] = true;
        }
        assert!(one_piece_without_holes(&blob, side));
    }
}
