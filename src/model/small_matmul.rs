//! `x · wᵀ` for a few rows of `x` (decoding: one row per sequence) on CPUs with AVX-512.
//!
//! A general GEMM packs `w` into panels before every call, which for 8 rows costs more than the
//! multiplication: `gemm`'s AVX-512 path takes 360 µs for 8x512 · 512x1376, PyTorch 64 µs. Here
//! `w` stays in its checkpoint layout ([out, in], row-major) and each output is a dot product of
//! an `x` row and a `w` row, computed in 4x4 blocks (16 accumulators) so each loaded vector feeds
//! four FMAs. Each output's summation order depends only on `in`, never on how many rows are in
//! the batch, so a row's result is bit-identical alone or batched.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape};
use rayon::prelude::*;

/// Up to this many rows the dot-product kernel beats `gemm` (see `scripts/bench_model.sh`).
pub const MAX_ROWS: usize = 32;

/// Whether this CPU runs the kernel; otherwise callers use candle's matmul.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The op `x [m, k] · w [n, k]ᵀ -> [m, n]`, both operands f32 and contiguous.
pub struct SmallMatmul;

impl CustomOp2 for SmallMatmul {
    fn name(&self) -> &'static str {
        "small-matmul-f32"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (xs, ws) else {
            candle_core::bail!("small-matmul-f32: expects f32 operands")
        };
        let (Some((x0, x1)), Some((w0, w1))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("small-matmul-f32: expects contiguous operands")
        };
        let (m, k) = xl.shape().dims2()?;
        let (n, k2) = wl.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("small-matmul-f32: inner dimensions {k} and {k2} differ")
        }
        let mut y = vec![0f32; m * n];
        matmul(&x[x0..x1], &w[w0..w1], m, n, k, &mut y);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

/// Output columns per parallel task: small enough to balance two to a few dozen threads, large
/// enough that the task overhead stays under ~2% of a 512-wide dot-product block.
const COLUMNS_PER_TASK: usize = 64;

fn matmul(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, y: &mut [f32]) {
    let tasks = n.div_ceil(COLUMNS_PER_TASK);
    // Each task writes a column range of every row; collect per-task tiles, then scatter.
    let tiles: Vec<Vec<f32>> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            let c0 = t * COLUMNS_PER_TASK;
            let cols = COLUMNS_PER_TASK.min(n - c0);
            let mut tile = vec![0f32; m * cols];
            columns(x, &w[c0 * k..(c0 + cols) * k], m, cols, k, &mut tile);
            tile
        })
        .collect();
    for (t, tile) in tiles.iter().enumerate() {
        let c0 = t * COLUMNS_PER_TASK;
        let cols = tile.len() / m.max(1);
        for r in 0..m {
            y[r * n + c0..r * n + c0 + cols].copy_from_slice(&tile[r * cols..(r + 1) * cols]);
        }
    }
}

/// `tile [m, cols] = x [m, k] · w [cols, k]ᵀ`.
fn columns(x: &[f32], w: &[f32], m: usize, cols: usize, k: usize, tile: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above).
        unsafe { avx512::columns(x, w, m, cols, k, tile) };
        return;
    }
    for r in 0..m {
        for c in 0..cols {
            tile[r * cols + c] =
                x[r * k..(r + 1) * k].iter().zip(&w[c * k..(c + 1) * k]).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn columns(x: &[f32], w: &[f32], m: usize, cols: usize, k: usize, tile: &mut [f32]) {
        let mut c = 0;
        while c < cols {
            let nr = if cols - c >= 4 { 4 } else { 1 };
            let mut r = 0;
            while r < m {
                let left = m - r;
                match (left.min(4), nr) {
                    (4, 4) => block::<4, 4>(x, w, r, c, k, cols, tile),
                    (3, 4) => block::<3, 4>(x, w, r, c, k, cols, tile),
                    (2, 4) => block::<2, 4>(x, w, r, c, k, cols, tile),
                    (1, 4) => block::<1, 4>(x, w, r, c, k, cols, tile),
                    (4, _) => block::<4, 1>(x, w, r, c, k, cols, tile),
                    (3, _) => block::<3, 1>(x, w, r, c, k, cols, tile),
                    (2, _) => block::<2, 1>(x, w, r, c, k, cols, tile),
                    _ => block::<1, 1>(x, w, r, c, k, cols, tile),
                }
                r += left.min(4);
            }
            c += nr;
        }
    }

    /// Rows r..r+MR of x against w rows c..c+NR, into tile[.., c..c+NR].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const MR: usize, const NR: usize>(
        x: &[f32],
        w: &[f32],
        r: usize,
        c: usize,
        k: usize,
        cols: usize,
        tile: &mut [f32],
    ) {
        debug_assert!((r + MR) * k <= x.len() && (c + NR) * k <= w.len());
        let xp = x.as_ptr().add(r * k);
        let wp = w.as_ptr().add(c * k);
        let mut acc = [[_mm512_setzero_ps(); NR]; MR];
        let mut i = 0;
        while i + 16 <= k {
            let mut wv = [_mm512_setzero_ps(); NR];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(wp.add(j * k + i));
            }
            for (a, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_loadu_ps(xp.add(a * k + i));
                for (j, s) in row.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(xv, wv[j], *s);
                }
            }
            i += 16;
        }
        if i < k {
            let mask: __mmask16 = (1u32 << (k - i)) as u16 - 1;
            let mut wv = [_mm512_setzero_ps(); NR];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask, wp.add(j * k + i));
            }
            for (a, row) in acc.iter_mut().enumerate() {
                let xv = _mm512_maskz_loadu_ps(mask, xp.add(a * k + i));
                for (j, s) in row.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(xv, wv[j], *s);
                }
            }
        }
        for (a, row) in acc.iter().enumerate() {
            for (j, s) in row.iter().enumerate() {
                tile[(r + a) * cols + c + j] = _mm512_reduce_add_ps(*s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block shape and tail (rows 1..9, columns not a multiple of 4 or of a task, inner
    /// sizes below, at and off a vector) against a plain f64 product.
    #[test]
    fn matches_a_plain_product() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for &(m, n, k) in
            &[(1, 1, 1), (1, 7, 16), (3, 5, 17), (4, 130, 33), (8, 67, 512), (9, 4, 15)]
        {
            let x: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| next()).collect();
            let mut y = vec![0f32; m * n];
            matmul(&x, &w, m, n, k, &mut y);
            for r in 0..m {
                for c in 0..n {
                    let want: f64 = (0..k).map(|i| x[r * k + i] as f64 * w[c * k + i] as f64).sum();
                    let got = y[r * n + c] as f64;
                    assert!(
                        (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                        "{m}x{n}x{k} [{r},{c}]"
                    );
                }
            }
            // A row alone gives the same bits as in the batch.
            let mut alone = vec![0f32; n];
            matmul(&x[(m - 1) * k..], &w, 1, n, k, &mut alone);
            assert_eq!(alone, y[(m - 1) * n..]);
        }
    }
}
#[cfg(test)]
mod tmp_bench {
    use super::*;
    #[test]
    #[ignore]
    fn tmp_bench_small() {
        for &(m, k, n) in &[
            (8usize, 512usize, 1376usize),
            (8, 1376, 512),
            (8, 512, 512),
            (1, 512, 1376),
            (16, 512, 1376),
            (32, 512, 1376),
        ] {
            let x = vec![0.1f32; m * k];
            let w = vec![0.2f32; n * k];
            let mut y = vec![0f32; m * n];
            let reps = 2000;
            matmul(&x, &w, m, n, k, &mut y);
            let t = std::time::Instant::now();
            for _ in 0..reps {
                matmul(&x, &w, m, n, k, &mut y);
            }
            let s = t.elapsed().as_secs_f64() / reps as f64;
            eprintln!(
                "{m}x{k}x{n}: {:.1} us {:.1} GFLOP/s",
                s * 1e6,
                2.0 * (m * k * n) as f64 / s / 1e9
            );
        }
    }
}
