//! The activations of the CPU f32 fast paths in `nn`: GELU (exact erf form and tanh
//! approximation), CLIP's QuickGELU and the gated SiLU of LLaMA's MLP, as scalar forms and
//! AVX-512 kernels over a slice.

use super::common as cpu_f32;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU's tanh approximation (`gelu_pytorch_tanh`), with tanh as 1 - 2 / (e^2y + 1).
pub fn gelu_tanh_f32(x: f32) -> f32 {
    let y = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    // e^2y overflows to inf for large y, giving tanh = 1 as it should.
    let tanh = 1.0 - 2.0 / (cpu_f32::exp((2.0 * y).min(88.0)) + 1.0);
    x * 0.5 * (1.0 + tanh)
}

/// CLIP's QuickGELU, `x * sigmoid(1.702 x)`. The exponent is capped at 88, where `exp` stays
/// finite and the result is 0 to f32 precision.
pub fn quick_gelu_f32(x: f32) -> f32 {
    x / (1.0 + cpu_f32::exp((-1.702 * x).min(88.0)))
}

/// GELU with erf, `x/2 · (1 + erf(x/√2))`, in f32.
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

// erf for f32 as a ratio of odd and even polynomials on [-4, 4] (erf is +-1 to f32 precision
// beyond): the coefficients Eigen and XNNPACK use; max abs error 4.2e-7 against `math.erf`,
// measured on 200,001 points of [-6, 6].
const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.9546e-3,
    -1.609_603_3e-2,
];
const ERF_Q: [f32; 5] =
    [-1.456_607_2e-5, -2.133_740_6e-4, -1.682_827e-3, -7.373_329_2e-3, -1.426_474e-2];

fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ERF_P[1..].iter().fold(ERF_P[0], |p, &c| p * x2 + c);
    let q = ERF_Q[1..].iter().fold(ERF_Q[0], |q, &c| q * x2 + c);
    x * p / q
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{ERF_P, ERF_Q, SQRT_2_OVER_PI};
    use crate::model::cpu::common::avx512::exp;
    use std::arch::x86_64::*;

    /// `f` over 16 lanes at a time, the tail masked.
    #[inline(always)]
    unsafe fn map_in_place(values: &mut [f32], f: impl Fn(__m512) -> __m512) {
        let n = values.len();
        let p = values.as_mut_ptr();
        let mut i = 0;
        while i < n {
            let mask: __mmask16 = if n - i >= 16 { 0xffff } else { ((1u32 << (n - i)) - 1) as u16 };
            let x = _mm512_maskz_loadu_ps(mask, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), mask, f(x));
            i += 16;
        }
    }

    /// [`gelu_tanh_f32`](super::gelu_tanh_f32) in place (the scalar form does not vectorise:
    /// its `round` is a libm call on the baseline target).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gelu_tanh_in_place(values: &mut [f32]) {
        map_in_place(values, |x| {
            let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
            let y = _mm512_mul_ps(
                _mm512_set1_ps(SQRT_2_OVER_PI),
                _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044_715), x),
            );
            let two_y = _mm512_min_ps(_mm512_add_ps(y, y), _mm512_set1_ps(88.0));
            let e = _mm512_add_ps(exp(two_y), _mm512_set1_ps(1.0));
            let tanh = _mm512_sub_ps(_mm512_set1_ps(1.0), _mm512_div_ps(_mm512_set1_ps(2.0), e));
            let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
            _mm512_fmadd_ps(half_x, tanh, half_x)
        })
    }

    /// [`quick_gelu_f32`](super::quick_gelu_f32) in place.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quick_gelu_in_place(values: &mut [f32]) {
        map_in_place(values, |x| {
            let e =
                exp(_mm512_min_ps(_mm512_mul_ps(x, _mm512_set1_ps(-1.702)), _mm512_set1_ps(88.0)));
            _mm512_div_ps(x, _mm512_add_ps(e, _mm512_set1_ps(1.0)))
        })
    }

    /// `g = g / (1 + e^-g) * u`, 16 lanes at a time. e^-g is capped at e^88 (finite), where
    /// silu is 0 to f32 precision anyway.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn swiglu_in_place(g: &mut [f32], u: &[f32]) {
        let n = g.len().min(u.len());
        let (gp, up) = (g.as_mut_ptr(), u.as_ptr());
        let mut i = 0;
        while i < n {
            let mask: __mmask16 = if n - i >= 16 { 0xffff } else { ((1u32 << (n - i)) - 1) as u16 };
            let x = _mm512_maskz_loadu_ps(mask, gp.add(i));
            let neg = _mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(88.0));
            let denom = _mm512_add_ps(_mm512_set1_ps(1.0), super::super::common::avx512::exp(neg));
            let silu = _mm512_div_ps(x, denom);
            let out = _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mask, up.add(i)));
            _mm512_mask_storeu_ps(gp.add(i), mask, out);
            i += 16;
        }
    }

    /// `gelu_f32` on 16 lanes at a time (the scalar loop does not vectorise: `clamp` keeps NaN
    /// semantics the compiler will not drop).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gelu_in_place(values: &mut [f32]) {
        let n = values.len();
        let dst = values.as_mut_ptr();
        let src = dst as *const f32;
        let mut i = 0;
        while i < n {
            let mask: __mmask16 = if n - i >= 16 { 0xffff } else { ((1u32 << (n - i)) - 1) as u16 };
            let x = _mm512_maskz_loadu_ps(mask, src.add(i));
            let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
            let z = _mm512_min_ps(_mm512_max_ps(z, _mm512_set1_ps(-4.0)), _mm512_set1_ps(4.0));
            let z2 = _mm512_mul_ps(z, z);
            let mut p = _mm512_set1_ps(ERF_P[0]);
            for &c in &ERF_P[1..] {
                p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(c));
            }
            let mut q = _mm512_set1_ps(ERF_Q[0]);
            for &c in &ERF_Q[1..] {
                q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(c));
            }
            let erf = _mm512_div_ps(_mm512_mul_ps(z, p), q);
            let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
            _mm512_mask_storeu_ps(dst.add(i), mask, _mm512_fmadd_ps(half_x, erf, half_x));
            i += 16;
        }
    }
}
