//! A linear layer that multiplies all leading dimensions as one matrix: candle_nn's `Linear`
//! runs a batched matmul with a broadcast weight, i.e. one small GEMM (or, while decoding, one
//! GEMV) per row, which reads the weight once per row.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::cpu::ops::{FastGeluErf, GeluTanh, QuickGelu, SwiGlu};
use super::cpu::{common as cpu_f32, linear as cpu_linear};

#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight, bias }
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let inner = xs.dim(D::Minus1)?;
        let rows = xs.elem_count() / inner.max(1);
        let xs = xs.reshape((rows, inner))?;
        let ys = match cpu_linear::forward(&xs, &self.weight, self.bias.as_ref())? {
            Some(ys) => ys,
            None => {
                let ys = xs.matmul(&self.weight.t()?)?;
                match &self.bias {
                    Some(b) => ys.broadcast_add(b)?,
                    None => ys,
                }
            }
        };
        let mut shape = dims;
        *shape.last_mut().expect("at least one dimension") = self.weight.dim(0)?;
        ys.reshape(shape)
    }
}

pub fn linear_b(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
    Ok(Linear::new(weight, bias))
}

pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    linear_b(in_dim, out_dim, true, vb)
}

// candle_nn's fused softmax, norm and RoPE kernels have no backward pass. When an input is part
// of an autograd graph (training), the same maths runs as plain tensor ops instead; inference
// keeps the fused kernels. `tests/train.rs` checks both paths agree.

/// Softmax over the last dimension.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if xs.track_op() {
        candle_nn::ops::softmax(xs, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(xs)
    }
}

/// GELU with the exact erf (the BERT Q-Former's and the ViT's `gelu`). candle's CPU kernel calls
/// a scalar `erf` per element: 10.4 ms for a 2056x1536 activation against PyTorch's 0.86 ms (2
/// threads). On CPU in f32, outside autograd graphs, a rational approximation of erf runs
/// instead, in parallel chunks, with AVX-512 intrinsics where the CPU has them (scalar
/// elsewhere: the portable loop does not vectorise).
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if !cpu_f32::applies(xs) {
        return xs.gelu_erf();
    }
    xs.contiguous()?.apply_op1_no_bwd(&FastGeluErf)
}

/// `gelu_erf` writing over its input where the fast path applies (saves an allocation the size
/// of the MLP's widest activation). `xs` must be the only handle on its storage: a fresh op
/// output that nothing else refers to.
pub fn gelu_erf_in_place(xs: Tensor) -> Result<Tensor> {
    if !cpu_f32::applies(&xs) || !xs.is_contiguous() {
        return gelu_erf(&xs);
    }
    xs.inplace_op1(&FastGeluErf)?;
    Ok(xs)
}

/// CLIP's QuickGELU `x * sigmoid(1.702 x)`, over `xs` where the CPU f32 fast path applies
/// (`xs` must be the only handle on its storage), else candle's ops.
pub fn quick_gelu_in_place(xs: Tensor) -> Result<Tensor> {
    if !cpu_f32::applies(&xs) || !xs.is_contiguous() {
        return &xs * candle_nn::ops::sigmoid(&(&xs * 1.702)?)?;
    }
    xs.inplace_op1(&QuickGelu)?;
    Ok(xs)
}

/// GELU's tanh approximation (`gelu_pytorch_tanh`), over `xs` where the CPU f32 fast path
/// applies (`xs` must be the only handle on its storage), else candle's `gelu`.
pub fn gelu_tanh_in_place(xs: Tensor) -> Result<Tensor> {
    if !cpu_f32::applies(&xs) || !xs.is_contiguous() {
        return xs.gelu();
    }
    xs.inplace_op1(&GeluTanh)?;
    Ok(xs)
}

/// LLaMA's gated MLP activation `silu(gate) * up`, written over `gate` on CPUs with AVX-512
/// (candle's `silu` calls a scalar `expf` per element and the product is one more pass: ~30 ms
/// of a 150 ms batch-8 prefill). `gate` must be the only handle on its storage (a fresh op
/// output); elsewhere, candle's ops.
pub fn swiglu_in_place(gate: Tensor, up: &Tensor) -> Result<Tensor> {
    let fast = [&gate, up].iter().all(|t| cpu_f32::applies(t) && t.is_contiguous())
        && gate.dims() == up.dims()
        && cpu_f32::has_avx512();
    if !fast {
        return candle_nn::ops::silu(&gate)? * up;
    }
    gate.inplace_op2(up, &SwiGlu)?;
    Ok(gate)
}

/// LayerNorm (`weight`, `bias`) or, without a bias and not centring, LLaMA's RMSNorm.
#[derive(Debug, Clone)]
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f32,
}

impl Module for Norm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let graph = xs.track_op() || self.weight.track_op();
        match (&self.bias, graph) {
            (Some(b), false) => {
                candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, b, self.eps)
            }
            (Some(b), true) => candle_nn::ops::layer_norm_slow(xs, &self.weight, b, self.eps),
            (None, false) => candle_nn::ops::rms_norm(&xs.contiguous()?, &self.weight, self.eps),
            (None, true) => candle_nn::ops::rms_norm_slow(xs, &self.weight, self.eps),
        }
    }
}

pub fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<Norm> {
    Ok(Norm { weight: vb.get(size, "weight")?, bias: Some(vb.get(size, "bias")?), eps: eps as f32 })
}

pub fn rms_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<Norm> {
    Ok(Norm { weight: vb.get(size, "weight")?, bias: None, eps: eps as f32 })
}

/// Rotary embedding (the rotate-half layout) of x [b, heads, t, head_dim] with per-row tables
/// cos/sin [b, t, head_dim / 2].
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !xs.track_op() {
        return candle_nn::rotary_emb::rope(xs, cos, sin);
    }
    let half = xs.dim(D::Minus1)? / 2;
    let cos = Tensor::cat(&[cos, cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[sin, sin], D::Minus1)?.unsqueeze(1)?;
    let rotated = Tensor::cat(
        &[&xs.narrow(D::Minus1, half, half)?.neg()?, &xs.narrow(D::Minus1, 0, half)?],
        D::Minus1,
    )?;
    xs.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fast_gelu_matches_candle_s_exact_erf() {
        let x = (Tensor::arange(-80_000f32, 80_000f32, &Device::Cpu).unwrap() / 8_000.0).unwrap();
        let fast = gelu_erf(&x).unwrap();
        let exact = x.gelu_erf().unwrap();
        assert!(max_diff(&fast, &exact) < 2e-6, "{}", max_diff(&fast, &exact));
        let in_place = gelu_erf_in_place(x.copy().unwrap()).unwrap();
        assert_eq!(max_diff(&in_place, &fast), 0.0);
        // The scalar fallback of CPUs without AVX-512 too.
        let scalar: Vec<f32> = x
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(crate::model::cpu::activation::gelu_f32)
            .collect();
        assert!(max_diff(&Tensor::new(scalar, &Device::Cpu).unwrap(), &exact) < 2e-6);
        // A strided view is made contiguous first.
        let m = x.reshape((400, 400)).unwrap().t().unwrap();
        assert!(max_diff(&gelu_erf(&m).unwrap(), &m.gelu_erf().unwrap()) < 2e-6);
    }

    /// The fused gated activation against candle's silu and product, over magnitudes where
    /// e^-x overflows.
    #[test]
    fn swiglu_matches_candle_s_silu_times_up() {
        let dev = Device::Cpu;
        let gate = (Tensor::arange(-4_000f32, 4_001f32, &dev).unwrap() / 40.0).unwrap();
        let up = Tensor::randn(0f32, 1., gate.dims(), &dev).unwrap();
        let want = (candle_nn::ops::silu(&gate).unwrap() * &up).unwrap();
        let got = swiglu_in_place(gate.copy().unwrap(), &up).unwrap();
        assert!(max_diff(&got, &want) < 1e-5, "{}", max_diff(&got, &want));
    }

    /// The tanh-GELU and QuickGELU kernels (AVX-512 where the CPU has it, and their scalar
    /// forms) against candle's ops, over magnitudes where the exponentials overflow.
    #[test]
    fn gelu_tanh_and_quick_gelu_match_candle() {
        use crate::model::cpu::activation::{gelu_tanh_f32, quick_gelu_f32};
        let dev = Device::Cpu;
        let x = (Tensor::arange(-40_000f32, 40_001f32, &dev).unwrap() / 400.0).unwrap();
        let scalar = |f: fn(f32) -> f32| {
            let v: Vec<f32> = x.to_vec1::<f32>().unwrap().into_iter().map(f).collect();
            Tensor::new(v, &dev).unwrap()
        };
        let want = x.gelu().unwrap();
        let got = gelu_tanh_in_place(x.copy().unwrap()).unwrap();
        assert!(max_diff(&got, &want) < 2e-5, "{}", max_diff(&got, &want));
        assert!(max_diff(&scalar(gelu_tanh_f32), &want) < 2e-5);
        let want = (&x * candle_nn::ops::sigmoid(&(&x * 1.702).unwrap()).unwrap()).unwrap();
        let got = quick_gelu_in_place(x.copy().unwrap()).unwrap();
        assert!(max_diff(&got, &want) < 2e-5, "{}", max_diff(&got, &want));
        assert!(max_diff(&scalar(quick_gelu_f32), &want) < 2e-5);
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// The autograd path (inputs in a graph) computes what the fused kernels compute, and
    /// gradients flow through it.
    #[test]
    fn graph_ops_match_fused_kernels_and_backpropagate() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 8), &dev).unwrap();
        let v = Var::from_tensor(&x).unwrap();
        let (cos, sin) = (
            Tensor::randn(0f32, 1.0, (2, 5, 4), &dev).unwrap(),
            Tensor::randn(0f32, 1.0, (2, 5, 4), &dev).unwrap(),
        );
        let w = Tensor::randn(1f32, 0.1, 8, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, 8, &dev).unwrap();
        let ln = Norm { weight: w.clone(), bias: Some(b), eps: 1e-6 };
        let rms = Norm { weight: w, bias: None, eps: 1e-6 };
        let pairs = [
            (softmax_last_dim(&x).unwrap(), softmax_last_dim(v.as_tensor()).unwrap()),
            (ln.forward(&x).unwrap(), ln.forward(v.as_tensor()).unwrap()),
            (rms.forward(&x).unwrap(), rms.forward(v.as_tensor()).unwrap()),
            (rope(&x, &cos, &sin).unwrap(), rope(v.as_tensor(), &cos, &sin).unwrap()),
            (gelu_erf(&x).unwrap(), gelu_erf(v.as_tensor()).unwrap()),
        ];
        for (i, (fused, graph)) in pairs.iter().enumerate() {
            assert!(!fused.track_op() && graph.track_op(), "op {i}");
            assert!(max_diff(fused, graph) < 1e-5, "op {i}: {}", max_diff(fused, graph));
            let grads = graph.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert!(grads.get(v.as_tensor()).is_some(), "op {i} has no gradient");
        }
    }
}
