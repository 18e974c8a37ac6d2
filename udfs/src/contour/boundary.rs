//! The outer boundary of a mask's largest component along pixel edges (crack following), the
//! contour that `mask_to_sequence` samples by default.
//!
//! Frame: pixel `(x, y)` is the unit square `[x, x + 1] x [y, y + 1]` (COCO's and pycocotools'
//! polygon frame: `polygon_to_mask` fills a pixel when its centre `(x + 0.5, y + 0.5)` is
//! inside). The boundary's vertices are pixel corners, so no pixel centre lies on it, and the
//! polygon through them rasterises to exactly the pixels it encloses: the component with its
//! holes filled. (A polygon through the boundary pixels' own coordinates, OpenCV's contour,
//! runs along the top-left corners of those pixels and so drops the right and bottom ones.)
//!
//! The component is the one [`trace::largest_start`] picks (8-connected, the largest that no
//! hole of another component encloses, as for `mask_contour`). Its boundary is walked with the
//! component on the left, starting at the top-left corner of its top-left pixel and going down
//! first (the same sense as OpenCV's contour). At each corner the walk looks at the two pixels
//! ahead: the right one set turns right (a diagonal neighbour is connected under
//! 8-connectivity, so the walk goes round it rather than cutting it off), else the left one set
//! goes straight, else it turns left. Where two pixels of the component touch only at a corner
//! the walk passes that corner twice and touches itself there without crossing, which the
//! even-odd fill treats as one region.

use super::mask::Mask;
use super::trace;

// Directions in walking order for a left turn: down, right, up, left (y grows downwards).
const STEP: [(i32, i32); 4] = [(0, 1), (1, 0), (0, -1), (-1, 0)];
// Pixels ahead-left and ahead-right of a corner `(cx, cy)` when facing each direction, as
// offsets from the corner to the pixel's own top-left corner.
const AHEAD_LEFT: [(i32, i32); 4] = [(0, 0), (0, -1), (-1, -1), (-1, 0)];
const AHEAD_RIGHT: [(i32, i32); 4] = [(-1, 0), (0, 0), (0, -1), (-1, -1)];

/// The corners of the largest component's outer boundary, one per unit step (so consecutive
/// corners are one pixel edge apart and the list's length is the perimeter), in walking order
/// from the top-left corner of its top-left pixel. `None` for an empty mask.
pub fn largest_boundary(mask: &Mask) -> Option<Vec<(i32, i32)>> {
    let start = trace::largest_start(mask)?;
    Some(walk(mask, start))
}

/// Corners of the boundary walk that starts at the top-left corner of `start`, a pixel whose
/// left and upper neighbours (and upper-left) are not in its component.
pub fn walk(mask: &Mask, start: (i32, i32)) -> Vec<(i32, i32)> {
    let (w, h) = (mask.width as i32, mask.height as i32);
    let bits = &mask.bits[..];
    let fg = |x: i32, y: i32| x >= 0 && y >= 0 && x < w && y < h && bits[(x * h + y) as usize] != 0;
    let mut out = Vec::new();
    let (mut cx, mut cy) = start;
    let mut d = 0usize;
    loop {
        out.push((cx, cy));
        cx += STEP[d].0;
        cy += STEP[d].1;
        if (cx, cy) == start {
            break;
        }
        let (rx, ry) = AHEAD_RIGHT[d];
        let (lx, ly) = AHEAD_LEFT[d];
        d = if fg(cx + rx, cy + ry) {
            (d + 3) & 3
        } else if fg(cx + lx, cy + ly) {
            d
        } else {
            (d + 1) & 3
        };
    }
    out
}

/// The vertices of a closed unit-step walk where it turns (collinear corners merged): the
/// polygon with the fewest vertices that draws the same outline.
pub fn turning_vertices(walk: &[(i32, i32)]) -> Vec<(i32, i32)> {
    let m = walk.len();
    (0..m)
        .filter(|&i| {
            let (p, q, r) = (walk[(i + m - 1) % m], walk[i], walk[(i + 1) % m]);
            (q.0 - p.0, q.1 - p.1) != (r.0 - q.0, r.1 - q.1)
        })
        .map(|i| walk[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contour::rasterise::polygon_mask;
    use crate::contour::space::Space;
    use crate::contour::test_masks::{filled_component, mask_from_rows, small_masks};

    /// The boundary of the largest component, rasterised by `polygon_to_mask`'s rule, is that
    /// component filled, pixel for pixel; checks the walk's shape on the way.
    fn check_round_trip(m: &Mask, what: &str) {
        let Some(b) = largest_boundary(m) else {
            assert_eq!(m.area(), 0, "{what}: no boundary for a non-empty mask");
            return;
        };
        let start = trace::largest_start(m).unwrap();
        for k in 0..b.len() {
            let (p, q) = (b[k], b[(k + 1) % b.len()]);
            assert_eq!((p.0 - q.0).abs() + (p.1 - q.1).abs(), 1, "{what}: step {k}");
        }
        let v = turning_vertices(&b);
        let flat: Vec<f64> = v.iter().flat_map(|&(x, y)| [x as f64, y as f64]).collect();
        let back = polygon_mask(&flat, m.width, m.height, Space::Pixel).unwrap().to_mask();
        let want = filled_component(m, start);
        assert_eq!(back, want, "{what}: {}x{} {:?}", m.width, m.height, m.bits);
    }

    #[test]
    fn a_square_is_four_corners_and_a_pixel_its_own_square() {
        let m = mask_from_rows(&["....", ".##.", ".##.", "...."]);
        let b = largest_boundary(&m).unwrap();
        assert_eq!(b.len(), 8);
        assert_eq!(turning_vertices(&b), vec![(1, 1), (1, 3), (3, 3), (3, 1)]);
        let one = mask_from_rows(&["#"]);
        assert_eq!(largest_boundary(&one).unwrap(), vec![(0, 0), (0, 1), (1, 1), (1, 0)]);
        assert_eq!(largest_boundary(&Mask::empty(3, 2)), None);
        let mut full = Mask::empty(3, 2);
        full.bits.fill(1);
        assert_eq!(
            turning_vertices(&largest_boundary(&full).unwrap()),
            [(0, 0), (0, 2), (3, 2), (3, 0)]
        );
    }

    #[test]
    fn diagonal_touches_keep_the_component_whole() {
        // Two pixels touching at a corner are one 8-connected component: the walk goes round
        // both and passes their shared corner twice.
        let m = mask_from_rows(&["#.", ".#"]);
        let b = largest_boundary(&m).unwrap();
        assert_eq!(b.len(), 8);
        assert_eq!(b.iter().filter(|&&p| p == (1, 1)).count(), 2);
        check_round_trip(&m, "diagonal pair");
        let m = mask_from_rows(&["#...#", ".#.#.", "..#..", ".#.#.", "#...#"]);
        check_round_trip(&m, "diagonal cross");
        // A ring closed only through diagonal touches encloses its inside (the background is
        // 4-connected), so the inside is filled.
        let m = mask_from_rows(&[".....", "..#..", ".#.#.", "..#..", "....."]);
        check_round_trip(&m, "diagonal ring");
        assert_eq!(
            polygon_mask(
                &turning_vertices(&largest_boundary(&m).unwrap())
                    .iter()
                    .flat_map(|&(x, y)| [x as f64, y as f64])
                    .collect::<Vec<_>>(),
                5,
                5,
                Space::Pixel
            )
            .unwrap()
            .area(),
            5
        );
    }

    #[test]
    fn thin_parts_borders_and_holes_round_trip() {
        for (what, rows) in [
            ("line", &["#####"][..]),
            ("column", &["#", "#", "#"][..]),
            ("cross", &[".#.", "###", ".#."][..]),
            ("comb", &["#.#.#", "#####", "#...#"][..]),
            ("ring", &["#####", "#...#", "#.#.#", "#...#", "#####"][..]),
            ("spiral", &["######", ".....#", "####.#", "#..#.#", "#....#", "######"][..]),
        ] {
            check_round_trip(&mask_from_rows(rows), what);
        }
    }

    /// Random masks dense with thin parts, diagonal touches, holes and components in holes,
    /// touching every edge of the image.
    #[test]
    fn random_masks_round_trip_to_the_filled_component() {
        let mut next = crate::test_util::xorshift(0x0b0d_a125_9e37_79b9);
        for case in 0..3000 {
            let (w, h) = (1 + (next() % 16) as usize, 1 + (next() % 16) as usize);
            let density = 20 + next() % 70;
            let mut m = Mask::empty(w, h);
            for x in 0..w {
                for y in 0..h {
                    m.set(x, y, next() % 100 < density);
                }
            }
            check_round_trip(&m, &format!("case {case}"));
        }
    }

    #[test]
    fn small_and_fixture_masks_round_trip() {
        for (name, m) in small_masks() {
            check_round_trip(&m, &name);
        }
        for (name, _, m) in crate::contour::fixture_tests::fixture_masks() {
            check_round_trip(&m, &name);
        }
    }
}
