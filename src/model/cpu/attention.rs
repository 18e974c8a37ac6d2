//! Scaled dot-product attention for f32 on the CPU in one pass per (sequence, head).
//!
//! Written as tensor ops, attention copies q, k and v into head-major order, runs one batched
//! GEMM over all heads (each too small for `gemm` to thread well), materialises the scores,
//! adds the mask, runs softmax with a scalar `expf`, and copies the output back to token-major
//! order. Here each (sequence, head) is one task: two single-threaded GEMMs that read q, k and
//! v where they lie (any strides) and write the output in place, with the mask and a vectorised
//! softmax applied to a score tile that stays in cache.

use candle_core::{Result, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::common as cpu_f32;

/// softmax(q·kᵀ · scale + bias) · v, or `None` where this path does not apply (not CPU f32, or
/// part of an autograd graph): the caller then runs the same maths as tensor ops.
///
/// q [b, tq, h, d] and k, v [b, tk, hkv, d] in that logical order with any strides, as long as
/// `d` is contiguous; query head `i` reads key/value head `i / (h / hkv)`. `bias` is additive,
/// contiguous, [b, 1 or h, 1 or tq, tk]. Returns [b, tq, h * d].
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    scale: f64,
) -> Result<Option<Tensor>> {
    if ![Some(q), Some(k), Some(v), bias].into_iter().flatten().all(cpu_f32::applies) {
        return Ok(None);
    }
    let Some(shape) = Shape::of(q, k, v, bias)? else {
        return Ok(None);
    };
    let (qg, ql) = q.storage_and_layout();
    let (kg, kl) = k.storage_and_layout();
    let (vg, vl) = v.storage_and_layout();
    let (Some(qd), Some(kd), Some(vd)) =
        (cpu_f32::data(&qg, ql)?, cpu_f32::data(&kg, kl)?, cpu_f32::data(&vg, vl)?)
    else {
        return Ok(None);
    };
    let bias_guard = bias.map(|m| m.storage_and_layout());
    let bias_data = match &bias_guard {
        Some((g, l)) => match cpu_f32::data(g, l)? {
            Some(m) => Some(m),
            None => return Ok(None),
        },
        None => None,
    };
    let out = shape.run(Inputs { q: qd, k: kd, v: vd, bias: bias_data }, scale);
    drop((qg, kg, vg, bias_guard));
    let Shape { b, tq, h, d, .. } = shape;
    Tensor::from_vec(out, (b, tq, h * d), q.device()).map(Some)
}

/// The sizes and strides of one attention call, checked against each other.
#[derive(Clone, Copy)]
struct Shape {
    b: usize,
    tq: usize,
    h: usize,
    d: usize,
    tk: usize,
    hkv: usize,
    /// Strides of q, k and v over (sequence, token, head).
    qs: [usize; 3],
    ks: [usize; 3],
    vs: [usize; 3],
    /// The bias's (heads, rows), each 1 where it broadcasts.
    bias: Option<(usize, usize)>,
}

/// The data of q, k, v and the bias, as candle's storages hold them.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    bias: Option<&'a [f32]>,
}

impl Shape {
    /// Checks that the operands fit each other: an error where they cannot, `None` where this
    /// path cannot read them (a non-contiguous head dimension or bias).
    fn of(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Option<Shape>> {
        let (b, tq, h, d) = q.dims4()?;
        let (kb, tk, hkv, kd) = k.dims4()?;
        if v.dims4()? != (kb, tk, hkv, kd) || kb != b || kd != d || hkv == 0 || h % hkv != 0 {
            candle_core::bail!(
                "attention: q {:?}, k {:?}, v {:?} do not fit",
                q.dims(),
                k.dims(),
                v.dims()
            )
        }
        let strides = |t: &Tensor| -> Option<[usize; 3]> {
            let s = t.layout().stride();
            (s[3] == 1 || t.dim(3).ok()? == 1).then(|| [s[0], s[1], s[2]])
        };
        let (Some(qs), Some(ks), Some(vs)) = (strides(q), strides(k), strides(v)) else {
            return Ok(None);
        };
        let bias = match bias {
            Some(m) => {
                let (mb, mh, mq, mk) = m.dims4()?;
                let heads_ok = mh == 1 || mh == h;
                let rows_ok = mq == 1 || mq == tq;
                if mb != b || !heads_ok || !rows_ok || mk != tk {
                    candle_core::bail!(
                        "attention: mask {:?} does not fit scores [{b}, {h}, {tq}, {tk}]",
                        m.dims()
                    )
                }
                if !m.is_contiguous() {
                    return Ok(None);
                }
                Some((mh, mq))
            }
            None => None,
        };
        Ok(Some(Shape { b, tq, h, d, tk, hkv, qs, ks, vs, bias }))
    }

    /// Runs every (sequence, head) as one task and returns the output, [b, tq, h * d].
    fn run(self, x: Inputs<'_>, scale: f64) -> Vec<f32> {
        let Shape { b, tq, h, d, tk, .. } = self;
        let mut out = vec![0f32; b * tq * h * d];
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..b * h).into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, task| {
            let (bi, hi) = (task / h, task % h);
            scores.resize(tq * tk, 0.0);
            self.head_scores(x, bi, hi, scale, scores);
            self.head_output(x, bi, hi, scores, out_ptr);
        });
        out
    }

    /// softmax(q·kᵀ · scale + bias) of head `hi` of sequence `bi` into `scores` [tq, tk].
    fn head_scores(&self, x: Inputs<'_>, bi: usize, hi: usize, scale: f64, scores: &mut [f32]) {
        let Shape { tq, h, d, tk, hkv, qs, ks, .. } = *self;
        let kh = hi / (h / hkv);
        let q0 = &x.q[bi * qs[0] + hi * qs[2]..];
        let k0 = &x.k[bi * ks[0] + kh * ks[2]..];
        // SAFETY: every pointer stays inside its tensor: the strides and sizes come from
        // candle's layouts of these very storages, and `scores` holds tq x tk values.
        unsafe {
            gemm(
                tq,
                tk,
                d,
                scores.as_mut_ptr(),
                1,
                tk as isize,
                false,
                q0.as_ptr(),
                1,
                qs[1] as isize,
                k0.as_ptr(),
                ks[1] as isize,
                1,
                0.0,
                scale as f32,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
        for (i, row) in scores.chunks_exact_mut(tk).enumerate() {
            if let (Some(m), Some((mh, mq))) = (x.bias, self.bias) {
                let at = ((bi * mh + if mh == 1 { 0 } else { hi }) * mq
                    + if mq == 1 { 0 } else { i })
                    * tk;
                for (s, &add) in row.iter_mut().zip(&m[at..at + tk]) {
                    *s += add;
                }
            }
            softmax_in_place(row);
        }
    }

    /// scores · v of head `hi` of sequence `bi`, written to that head's columns of `out`.
    fn head_output(&self, x: Inputs<'_>, bi: usize, hi: usize, scores: &[f32], out: SendPtr) {
        let Shape { tq, h, d, tk, hkv, vs, .. } = *self;
        let kh = hi / (h / hkv);
        let v0 = &x.v[bi * vs[0] + kh * vs[2]..];
        // SAFETY: as in `head_scores`; the output tile of (bi, hi) is disjoint from every other
        // task's.
        unsafe {
            gemm(
                tq,
                d,
                tk,
                out.get().add((bi * tq * h + hi) * d),
                1,
                (h * d) as isize,
                false,
                scores.as_ptr(),
                1,
                tk as isize,
                v0.as_ptr(),
                1,
                vs[1] as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint regions of the buffer the pointer points into.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Softmax of one row: subtract the maximum, exponentiate, normalise (candle's order).
fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if cpu_f32::has_avx512() {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { avx512::softmax(row) };
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = cpu_f32::exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::model::cpu::common::avx512::exp;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax(row: &mut [f32]) {
        let n = row.len();
        let p = row.as_mut_ptr();
        let tail: __mmask16 = ((1u32 << (n % 16)) - 1) as u16;
        let full = n - n % 16;
        let mut maxv = _mm512_set1_ps(f32::NEG_INFINITY);
        for i in (0..full).step_by(16) {
            maxv = _mm512_max_ps(maxv, _mm512_loadu_ps(p.add(i)));
        }
        maxv = _mm512_mask_max_ps(maxv, tail, maxv, _mm512_maskz_loadu_ps(tail, p.add(full)));
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(maxv));
        let mut sum = _mm512_setzero_ps();
        for i in (0..full).step_by(16) {
            let e = exp(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), max));
            _mm512_storeu_ps(p.add(i), e);
            sum = _mm512_add_ps(sum, e);
        }
        if tail != 0 {
            let e = exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, p.add(full)), max));
            _mm512_mask_storeu_ps(p.add(full), tail, e);
            sum = _mm512_mask_add_ps(sum, tail, sum, e);
        }
        let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
        for i in (0..full).step_by(16) {
            _mm512_storeu_ps(p.add(i), _mm512_mul_ps(_mm512_loadu_ps(p.add(i)), inv));
        }
        if tail != 0 {
            let v = _mm512_maskz_loadu_ps(tail, p.add(full));
            _mm512_mask_storeu_ps(p.add(full), tail, _mm512_mul_ps(v, inv));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>, scale: f64) -> Tensor {
        let (b, tq, h, d) = q.dims4().unwrap();
        let hkv = k.dim(2).unwrap();
        let heads = |t: &Tensor, rep: usize| {
            let t = t.transpose(1, 2).unwrap().contiguous().unwrap();
            let (b, hh, tt, d) = t.dims4().unwrap();
            t.unsqueeze(2)
                .unwrap()
                .expand((b, hh, rep, tt, d))
                .unwrap()
                .reshape((b, hh * rep, tt, d))
                .unwrap()
        };
        let (qh, kh, vh) = (heads(q, 1), heads(k, h / hkv), heads(v, h / hkv));
        let mut s = (qh.matmul(&kh.t().unwrap()).unwrap() * scale).unwrap();
        if let Some(m) = bias {
            s = s.broadcast_add(m).unwrap();
        }
        let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        p.matmul(&vh).unwrap().transpose(1, 2).unwrap().reshape((b, tq, h * d)).unwrap()
    }

    #[test]
    fn equals_tensor_ops_for_strided_inputs_masks_and_grouped_heads() {
        let dev = Device::Cpu;
        for &(b, tq, tk, h, hkv, d, mask) in &[
            (2, 5, 5, 3, 3, 8, 0u8),
            (2, 1, 9, 4, 2, 16, 1),
            (3, 4, 7, 2, 1, 5, 2),
            (1, 17, 17, 2, 2, 64, 3),
        ] {
            // k and v as views into one fused [b, tk, 2, hkv, d] tensor, like the ViT's qkv.
            let q = Tensor::randn(0f32, 1., (b, h, tq, d), &dev).unwrap().transpose(1, 2).unwrap();
            let kv = Tensor::randn(0f32, 1., (b, tk, 2, hkv, d), &dev).unwrap();
            let k = kv.narrow(2, 0, 1).unwrap().squeeze(2).unwrap();
            let v = kv.narrow(2, 1, 1).unwrap().squeeze(2).unwrap();
            let bias = match mask {
                0 => None,
                1 => Some(Tensor::randn(0f32, 1., (b, 1, 1, tk), &dev).unwrap()),
                2 => Some(Tensor::randn(0f32, 1., (b, h, tq, tk), &dev).unwrap()),
                _ => {
                    let causal: Vec<f32> =
                        (0..tq * tk).map(|i| if i % tk > i / tk { -1e30 } else { 0.0 }).collect();
                    Some(
                        Tensor::from_vec(causal, (1, 1, tq, tk), &dev)
                            .unwrap()
                            .repeat((b, 1, 1, 1))
                            .unwrap(),
                    )
                }
            };
            let got = attention(&q, &k, &v, bias.as_ref(), 0.3).unwrap().unwrap();
            let want = reference(&q, &k, &v, bias.as_ref(), 0.3);
            let diff =
                (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "{b} {tq} {tk} {h} {hkv} {d} mask {mask}: {diff}");
        }
    }
}
