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
        let s = if dx >= dy { (ye - ys) as f64 / dx as f64 } else { (xe - xs) as f64 / dy as f64 };
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
                    let inside = x >= x0 && y >= y0 && x - x0 < crop.width && y - y0 < crop.height;
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

/// Run lengths read eight bytes at a time equal a byte-by-byte count, for runs of every length
/// around the eight-byte steps and masks starting with either value.
#[test]
fn counts_equal_a_byte_by_byte_count() {
    let naive = |bits: &[u8]| {
        let (mut counts, mut prev, mut run) = (Vec::new(), 0u8, 0u64);
        for &b in bits {
            if b != prev {
                counts.push(run);
                (run, prev) = (0, b);
            }
            run += 1;
        }
        counts.push(run);
        counts
    };
    let mut state = 7u64;
    for len in [0usize, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 300] {
        for density in [1u64, 3, 50, 97] {
            let bits: Vec<u8> = (0..len)
                .map(|_| {
                    state =
                        state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    u8::from((state >> 33) % 100 < density)
                })
                .collect();
            let m = Mask { width: len, height: 1, bits: bits.clone() };
            assert_eq!(m.counts(), naive(&bits), "len {len}, density {density}");
        }
    }
}
