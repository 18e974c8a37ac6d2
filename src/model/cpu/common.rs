//! What the CPU f32 inference kernels share (`linear`, `attention`, and `activation`): when they apply, whether the CPU has AVX-512, a tensor's data
//! as a slice, and a vectorisable e^x.

use candle_core::{DType, Layout, Result, Storage, Tensor};

/// A CPU f32 tensor outside any autograd graph: the kernels' fast paths take it; elsewhere
/// (GPU, other dtypes, training) candle's differentiable ops run.
pub fn applies(t: &Tensor) -> bool {
    !t.track_op() && t.dtype() == DType::F32 && t.device().is_cpu()
}

/// Whether the `avx512` kernels can run here.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The f32 data of a CPU storage from the layout's start offset (`None` on other devices).
pub fn data<'a>(storage: &'a Storage, layout: &Layout) -> Result<Option<&'a [f32]>> {
    match storage {
        Storage::Cpu(c) => Ok(Some(&c.as_slice::<f32>()?[layout.start_offset()..])),
        _ => Ok(None),
    }
}

// e^x for x <= 88 (softmax feeds x <= 0; nn::swiglu_in_place caps its argument at 88): 2^n · p(r)
// with n = round(x · log2 e) and a degree-6 polynomial on |r| <= ln2/2 (Cephes' `expf`
// coefficients), 1-2 ulp. Below -87.3 the result is 0 (`expf` gives subnormals there), so masked
// scores get exactly zero weight.
const EXP_MIN: f32 = -87.3;
const EXP_LN2_HI: f32 = 0.693_359_4;
const EXP_LN2_LO: f32 = -2.121_944_4e-4;
const EXP_POLY: [f32; 6] =
    [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 5e-1];

pub fn exp(x: f32) -> f32 {
    if x < EXP_MIN {
        return 0.0;
    }
    let n = (x * std::f32::consts::LOG2_E).round();
    let r = x - n * EXP_LN2_HI - n * EXP_LN2_LO;
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |p, &c| p * r + c);
    f32::from_bits(((n as i32 + 127) << 23) as u32) * (p * r * r + r + 1.0)
}

#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use super::{EXP_LN2_HI, EXP_LN2_LO, EXP_MIN, EXP_POLY};
    use std::arch::x86_64::*;

    /// [`exp`](super::exp) on 16 lanes.
    ///
    /// # Safety
    /// The CPU must have AVX-512F ([`has_avx512`](super::has_avx512)).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp(x: __m512) -> __m512 {
        let tiny = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(EXP_MIN));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), r);
        let mut poly = _mm512_set1_ps(EXP_POLY[0]);
        for &c in &EXP_POLY[1..] {
            poly = _mm512_fmadd_ps(poly, r, _mm512_set1_ps(c));
        }
        let e = _mm512_add_ps(_mm512_fmadd_ps(poly, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0));
        let two_n = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        )));
        _mm512_maskz_mul_ps(!tiny, two_n, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both versions of exp, against libm's on [-100, 88]: relative error under 4e-7, and
    /// exactly 0 where the result would be subnormal.
    #[test]
    fn exp_is_close_to_libm_down_to_underflow() {
        type Exp = Box<dyn Fn(f32) -> f32>;
        let mut versions: Vec<(&str, Exp)> = vec![("scalar", Box::new(exp))];
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            versions.push((
                "avx512",
                Box::new(|x| {
                    use std::arch::x86_64::*;
                    let mut out = [0f32; 16];
                    // SAFETY: the CPU has AVX-512F.
                    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), avx512::exp(_mm512_set1_ps(x))) };
                    out[0]
                }),
            ));
        }
        for (name, f) in versions {
            let mut worst = 0f32;
            for i in 0..=376_000 {
                let x = -100.0 + 188.0 * i as f32 / 376_000.0;
                let (got, want) = (f(x), x.exp());
                if want > 1e-37 {
                    worst = worst.max((got - want).abs() / want);
                } else {
                    assert!(got < 1e-36, "{name} {x}");
                }
            }
            assert!(worst < 4e-7, "{name}: relative error {worst}");
        }
    }
}
