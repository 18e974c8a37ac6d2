//! The trainable parameters of a model: a `VarBuilder` backend that hands the model its tensors
//! (from a checkpoint, or freshly initialised as transformers initialises InstructBLIP) and wraps
//! those of the trained parts in `Var`s, so the forward pass builds a graph only through them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::model::generate::SplitMix64;

/// Weights' standard deviation at initialisation (`initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// Every named tensor of a model, split into trained (`Var`) and frozen ones.
#[derive(Default)]
pub struct Params {
    pub trained: BTreeMap<String, Var>,
    pub frozen: BTreeMap<String, Tensor>,
}

impl Params {
    /// All tensors by checkpoint name, with the trained ones' current values.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut all: HashMap<String, Tensor> =
            self.frozen.iter().map(|(k, t)| (k.clone(), t.clone())).collect();
        all.extend(self.trained.iter().map(|(k, v)| (k.clone(), v.as_tensor().detach())));
        all
    }

    pub fn trained_count(&self) -> usize {
        self.trained.values().map(|v| v.elem_count()).sum()
    }

    pub fn total_count(&self) -> usize {
        self.trained_count() + self.frozen.values().map(|t| t.elem_count()).sum::<usize>()
    }

    /// Writes `model.safetensors` (every tensor) into `dir`, under a temporary name first, so
    /// that a killed run never leaves a truncated file that looks like a model.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join("model.safetensors");
        let tmp = dir.join("model.safetensors.tmp");
        candle_core::safetensors::save(&self.tensors(), &tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

struct State {
    rng: SplitMix64,
    params: Params,
}

/// The backend: `source` tensors when given (a checkpoint), else a seeded initialisation;
/// `trains(name)` picks the tensors that become `Var`s.
pub struct Builder {
    source: Option<HashMap<String, Tensor>>,
    trains: Box<dyn Fn(&str) -> bool + Send + Sync>,
    state: Arc<Mutex<State>>,
}

/// Access to the parameters a [`Builder`] handed out, once the model is built.
pub struct Handle(Arc<Mutex<State>>);

impl Handle {
    pub fn take(&self) -> Params {
        std::mem::take(&mut self.0.lock().expect("parameter state").params)
    }
}

impl Builder {
    pub fn new(
        source: Option<HashMap<String, Tensor>>,
        seed: u64,
        trains: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> (Self, Handle) {
        let state =
            Arc::new(Mutex::new(State { rng: SplitMix64::new(seed), params: Params::default() }));
        (Builder { source, trains: Box::new(trains), state: state.clone() }, Handle(state))
    }

    /// Reads every tensor of a checkpoint's `model.safetensors` (or its shards).
    pub fn load_source(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>, String> {
        let mut all = HashMap::new();
        for f in crate::model::weights::weight_files(dir)? {
            let part = candle_core::safetensors::load(&f, device)
                .map_err(|e| format!("{}: {e}", f.display()))?;
            all.extend(part);
        }
        Ok(all)
    }

    pub fn into_var_builder(self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), DType::F32, device.clone())
    }

    fn initial(&self, name: &str, shape: &Shape, dev: &Device) -> candle_core::Result<Tensor> {
        if let Some(src) = &self.source {
            let t = src.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("checkpoint is missing tensor `{name}`"))
            })?;
            if t.dims() != shape.dims() {
                return Err(candle_core::Error::Msg(format!(
                    "checkpoint tensor `{name}` has shape {:?}, expected {:?}",
                    t.dims(),
                    shape.dims()
                )));
            }
            return t.to_dtype(DType::F32);
        }
        let n = shape.elem_count();
        let values: Vec<f32> = if name.ends_with("bias") {
            vec![0.0; n]
        } else if shape.rank() == 1 && name.ends_with("weight") {
            vec![1.0; n]
        } else {
            let std = init_std(name, shape.dims());
            let mut st = self.state.lock().expect("parameter state");
            (0..n).map(|_| (normal(&mut st.rng) * std) as f32).collect()
        };
        Tensor::from_vec(values, shape.clone(), dev)
    }
}

/// Standard deviation of a fresh weight: N(0, 0.02) for embeddings and query tokens, as
/// transformers initialises InstructBLIP; 1/sqrt(fan_in) for linear and convolution weights.
/// transformers' 0.02 suits models that start from pretrained parts: measured on a fresh small
/// model, it leaves the Q-Former's cross-attention uniform and its outputs almost independent
/// of the image (two different images change them by 0.4%), and training never learns to look.
/// Fan-in scaling keeps every layer's output at unit scale, so the image reaches the decoder.
fn init_std(name: &str, dims: &[usize]) -> f64 {
    let embedding = (name.contains("embed") && !name.contains("patch_embedding"))
        || name.ends_with("query_tokens");
    if embedding || dims.len() < 2 {
        return INIT_STD;
    }
    let fan_in: usize = dims[1..].iter().product();
    1.0 / (fan_in.max(1) as f64).sqrt()
}

/// A standard normal draw (Box-Muller).
pub(super) fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = rng.unit().max(1e-300);
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl SimpleBackend for Builder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.initial(name, &s, dev)?.to_dtype(dtype)?;
        let mut st = self.state.lock().expect("parameter state");
        if (self.trains)(name) {
            let var = Var::from_tensor(&t)?;
            let out = var.as_tensor().clone();
            st.params.trained.insert(name.to_string(), var);
            Ok(out)
        } else {
            st.params.frozen.insert(name.to_string(), t.clone());
            Ok(t)
        }
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        match &self.source {
            Some(src) => src
                .get(name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor `{name}`")))?
                .to_device(dev)?
                .to_dtype(dtype),
            None => Err(candle_core::Error::Msg(format!("no shape known for `{name}`"))),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        match &self.source {
            Some(src) => src.contains_key(name),
            // A fresh model has the current layout: fused qkv bias, no tied head.
            None => !name.ends_with("q_bias") && !name.ends_with("v_bias"),
        }
    }
}
