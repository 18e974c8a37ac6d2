//! A linear layer that multiplies all leading dimensions as one matrix: candle_nn's `Linear`
//! runs a batched matmul with a broadcast weight, i.e. one small GEMM (or, while decoding, one
//! GEMV) per row, which reads the weight once per row.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

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
        let out = self.weight.t()?;
        let ys = xs.reshape((rows, inner))?.matmul(&out)?;
        let ys = match &self.bias {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
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
