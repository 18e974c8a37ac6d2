//! `x · wᵀ + b` (a linear layer) for f32 on the CPU, `w` in its checkpoint layout [out, in].
//!
//! Many rows (the ViT, the Q-Former, a prefill) go to `gemm` directly, with the bias written
//! into the destination first so the GEMM accumulates onto it: candle's matmul followed by a
//! broadcast add makes one more pass over the output and one more allocation.
//!
//! A few rows (decoding: one row per sequence) go to a dot-product kernel on CPUs with AVX-512.
//! A general GEMM packs `w` into panels before every call, which for 8 rows costs more than the
//! multiplication. Each output is a dot product of an `x` row and a `w` row, computed in 4x4
//! blocks (16 accumulators) so each loaded vector feeds four FMAs (8x2 blocks need fewer weight
//! loads but more row loads, and are slower). Each output's summation
//! order depends only on `in`, never on how many rows are in the batch, so a row's result is
//! bit-identical alone or batched.

use candle_core::{Result, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::common as cpu_f32;

/// Up to this many rows the dot-product kernel beats `gemm` (8x512x1376: 75 against 360 µs;
/// 32 rows: 248 µs, 182 GFLOP/s).
const MAX_DOT_ROWS: usize = 32;

/// `x [rows, in] · w [out, in]ᵀ + bias [out]`, or `None` where this path does not apply (not
/// CPU f32, or part of an autograd graph): the caller then uses candle's ops.
pub fn forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Option<Tensor>> {
    if ![Some(x), Some(w), bias]
        .into_iter()
        .flatten()
        .all(|t| cpu_f32::applies(t) && t.is_contiguous())
    {
        return Ok(None);
    }
    let (m, k) = x.dims2()?;
    let (n, k2) = w.dims2()?;
    if k != k2 || bias.is_some_and(|b| b.dims() != [n]) {
        candle_core::bail!(
            "linear: input {:?}, weight {:?} and bias do not fit",
            x.dims(),
            w.dims()
        )
    }
    let dot = m <= MAX_DOT_ROWS && cpu_f32::has_avx512();
    let (xg, xl) = x.storage_and_layout();
    let (wg, wl) = w.storage_and_layout();
    let bg = bias.map(|b| b.storage_and_layout());
    let (Some(xs), Some(ws)) = (cpu_f32::data(&xg, xl)?, cpu_f32::data(&wg, wl)?) else {
        return Ok(None);
    };
    let (xs, ws) = (&xs[..m * k], &ws[..n * k]);
    let bs = match &bg {
        Some((g, l)) => match cpu_f32::data(g, l)? {
            Some(b) => Some(&b[..n]),
            None => return Ok(None),
        },
        None => None,
    };
    // The destination starts as the bias (or zeros) and the product is added onto it.
    let mut y = match bs {
        Some(b) => b.repeat(m),
        None => vec![0f32; m * n],
    };
    if dot {
        dot_product(xs, ws, m, n, k, &mut y);
    } else if m > 0 && n > 0 {
        let threads = rayon::current_num_threads();
        let parallelism = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
        // SAFETY: x is [m, k], w is [n, k] (read as wᵀ: column j of wᵀ is row j of w) and y is
        // [m, n], all row-major and of exactly those sizes.
        unsafe {
            gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                bs.is_some(),
                xs.as_ptr(),
                1,
                k as isize,
                ws.as_ptr(),
                k as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
    drop((xg, wg, bg));
    Tensor::from_vec(y, (m, n), x.device()).map(Some)
}

/// Output columns per parallel task: small enough to balance two to a few dozen threads, large
/// enough that the task overhead stays under ~2% of a 512-wide dot-product block.
const COLUMNS_PER_TASK: usize = 64;

/// `y [m, n] += x [m, k] · w [n, k]ᵀ`.
fn dot_product(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, y: &mut [f32]) {
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
            for (o, t) in y[r * n + c0..r * n + c0 + cols].iter_mut().zip(&tile[r * cols..]) {
                *o += t;
            }
        }
    }
}

/// `tile [m, cols] = x [m, k] · w [cols, k]ᵀ`.
fn columns(x: &[f32], w: &[f32], m: usize, cols: usize, k: usize, tile: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if cpu_f32::has_avx512() {
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
            dot_product(&x, &w, m, n, k, &mut y);
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
            dot_product(&x[(m - 1) * k..], &w, 1, n, k, &mut alone);
            assert_eq!(alone, y[(m - 1) * n..]);
        }
    }

    /// Both paths of `forward` (few rows: the dot-product kernel; many: gemm), with and without
    /// a bias, against candle's matmul and broadcast add.
    #[test]
    fn forward_equals_candle_with_and_without_bias() {
        use candle_core::Device;
        let dev = Device::Cpu;
        for rows in [1, 5, 32, 33, 300] {
            let x = Tensor::randn(0f32, 1., (rows, 70), &dev).unwrap();
            let w = Tensor::randn(0f32, 1., (45, 70), &dev).unwrap();
            let b = Tensor::randn(0f32, 1., 45, &dev).unwrap();
            let plain = x.matmul(&w.t().unwrap()).unwrap();
            for (bias, want) in
                [(None, plain.clone()), (Some(&b), plain.broadcast_add(&b).unwrap())]
            {
                let got = forward(&x, &w, bias).unwrap().expect("CPU f32 takes this path");
                let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
                assert!(diff.to_scalar::<f32>().unwrap() < 1e-4, "{rows} rows");
            }
        }
    }
}
