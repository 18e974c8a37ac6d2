//! The CPU kernels of `activation` as candle custom ops, so that `nn`'s layers apply them to
//! tensors (fresh copies or in place).

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Result, Shape};

use super::activation::{self, gelu_f32};
use super::common as cpu_f32;

/// An elementwise activation: its AVX-512 kernel over a slice, used where the CPU has it, and
/// its scalar form.
#[derive(Clone, Copy)]
struct Elementwise {
    name: &'static str,
    scalar: fn(f32) -> f32,
    #[cfg(target_arch = "x86_64")]
    avx512: unsafe fn(&mut [f32]),
}

impl Elementwise {
    /// In place over `values`, in parallel chunks.
    fn run(self, values: &mut [f32]) {
        use rayon::prelude::*;
        values.par_chunks_mut(1 << 14).for_each(|chunk| {
            #[cfg(target_arch = "x86_64")]
            if cpu_f32::has_avx512() {
                // SAFETY: the CPU has AVX-512F, the kernels' only requirement.
                return unsafe { (self.avx512)(chunk) };
            }
            chunk.iter_mut().for_each(|x| *x = (self.scalar)(*x));
        });
    }

    /// Where a contiguous `layout` lies in its storage.
    fn offsets(&self, layout: &Layout) -> Result<(usize, usize)> {
        layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: expects a contiguous tensor", self.name))
        })
    }

    /// `run` on a copy of the tensor's values.
    fn copied(self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("{}: expects f32", self.name)
        };
        let (start, end) = self.offsets(layout)?;
        let mut out = values[start..end].to_vec();
        self.run(&mut out);
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    /// `run` over the tensor's own storage.
    fn in_place(self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let CpuStorage::F32(values) = storage else {
            candle_core::bail!("{}: expects f32", self.name)
        };
        let (start, end) = self.offsets(layout)?;
        self.run(&mut values[start..end]);
        Ok(())
    }
}

/// GELU with the exact erf, through `activation`'s rational approximation.
const GELU_ERF: Elementwise = Elementwise {
    name: "gelu-erf-f32",
    scalar: gelu_f32,
    #[cfg(target_arch = "x86_64")]
    avx512: activation::avx512::gelu_in_place,
};

/// GELU with the exact erf (`GELU_ERF`), in parallel chunks, as a copy or in place.
pub(crate) struct FastGeluErf;

impl CustomOp1 for FastGeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-f32"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        GELU_ERF.copied(storage, layout)
    }
}

impl InplaceOp1 for FastGeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-f32-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        GELU_ERF.in_place(storage, layout)
    }
}

/// CLIP's QuickGELU, `x * sigmoid(1.702 x)`, in place, in parallel chunks (AVX-512 where the CPU
/// has it; candle's elementwise ops run on one thread with a scalar `expf`).
pub(crate) struct QuickGelu;

impl InplaceOp1 for QuickGelu {
    fn name(&self) -> &'static str {
        "quick-gelu-f32-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        Elementwise {
            name: "quick-gelu-f32",
            scalar: activation::quick_gelu_f32,
            #[cfg(target_arch = "x86_64")]
            avx512: activation::avx512::quick_gelu_in_place,
        }
        .in_place(storage, layout)
    }
}

/// GELU's tanh approximation (`gelu_pytorch_tanh`), in place, in parallel chunks (AVX-512 where
/// the CPU has it).
pub(crate) struct GeluTanh;

impl InplaceOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh-f32-in-place"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        Elementwise {
            name: "gelu-tanh-f32",
            scalar: activation::gelu_tanh_f32,
            #[cfg(target_arch = "x86_64")]
            avx512: activation::avx512::gelu_tanh_in_place,
        }
        .in_place(storage, layout)
    }
}

/// `silu(gate) * up` over `gate`; only for CPUs with AVX-512 (`nn::swiglu_in_place` checks).
pub(crate) struct SwiGlu;

impl InplaceOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu-f32-in-place"
    }

    fn cpu_fwd(
        &self,
        gate: &mut CpuStorage,
        gl: &Layout,
        up: &CpuStorage,
        ul: &Layout,
    ) -> Result<()> {
        use rayon::prelude::*;
        let (CpuStorage::F32(g), CpuStorage::F32(u)) = (gate, up) else {
            candle_core::bail!("swiglu-f32: expects f32")
        };
        let (Some((g0, g1)), Some((u0, u1))) = (gl.contiguous_offsets(), ul.contiguous_offsets())
        else {
            candle_core::bail!("swiglu-f32: expects contiguous tensors")
        };
        let (g, u) = (&mut g[g0..g1], &u[u0..u1]);
        g.par_chunks_mut(1 << 14).zip(u.par_chunks(1 << 14)).for_each(|(g, u)| {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: swiglu_in_place only comes here on a CPU with AVX-512F.
            unsafe {
                activation::avx512::swiglu_in_place(g, u)
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (g, u);
        });
        Ok(())
    }
}
