//! Hand-written f32 kernels for CPU inference: the layers in `nn` and the attention of the
//! vision, Q-Former and LLaMA blocks call them where they apply (CPU f32 tensors outside any
//! autograd graph) and run candle's tensor ops elsewhere.

pub mod activation;
pub mod attention;
pub mod common;
pub mod linear;
pub mod ops;
