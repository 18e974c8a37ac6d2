//! pycocotools' compressed counts string, and polygons to runs by its `rleFrPoly` rule.

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
pub(crate) fn poly_counts(xy: &[f64], h: usize, w: usize) -> Vec<u64> {
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
pub(crate) fn boundaries_to_counts(mut a: Vec<u64>, h: usize, w: usize) -> Vec<u64> {
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
