//! AdamW with decoupled weight decay, global-norm gradient clipping and a warm-up + cosine
//! schedule. candle_nn's `AdamW` keeps its moments private; resuming a run needs them saved
//! with the checkpoint, so the (few-line) update lives here.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Tensor, Var};

#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Gradients are rescaled so that their global L2 norm is at most this (0 = off).
    pub clip_norm: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.01,
            clip_norm: 1.0,
        }
    }
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    /// Updates taken so far (bias correction).
    pub t: u64,
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

/// Linear warm-up to `peak` over `warmup` steps, then cosine decay to `peak * floor` at `total`.
pub fn schedule(step: usize, total: usize, warmup: usize, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (floor + (1.0 - floor) * cosine)
}

impl AdamW {
    pub fn new(cfg: AdamWConfig) -> Self {
        AdamW { cfg, t: 0, moments: BTreeMap::new() }
    }

    /// One update of `vars` with the summed gradients `grads` (divided by `scale`) at rate `lr`;
    /// returns the gradients' global norm before clipping.
    pub fn step(
        &mut self,
        vars: &BTreeMap<String, Var>,
        grads: &HashMap<String, Tensor>,
        scale: f64,
        lr: f64,
    ) -> candle_core::Result<f64> {
        let mut sq = 0f64;
        for g in grads.values() {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let norm = sq.sqrt() / scale;
        let mut factor = 1.0 / scale;
        if self.cfg.clip_norm > 0.0 && norm > self.cfg.clip_norm {
            factor *= self.cfg.clip_norm / norm;
        }
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (name, var) in vars {
            let Some(g) = grads.get(name) else { continue };
            let g = (g * factor)?;
            let (m, v) = match self.moments.remove(name) {
                Some(mv) => mv,
                None => (g.zeros_like()?, g.zeros_like()?),
            };
            let m = ((m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            let v = ((v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            // Decay matrices only: norms, biases and embeddings' scales stay undecayed.
            let decay = if var.rank() >= 2 { c.weight_decay } else { 0.0 };
            let theta = ((var.as_tensor() * (1.0 - lr * decay))? - (update * lr)?)?;
            var.set(&theta)?;
            self.moments.insert(name.clone(), (m, v));
        }
        Ok(norm)
    }

    /// Writes the moments to `optimizer.safetensors` in `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let mut all = HashMap::new();
        for (k, (m, v)) in &self.moments {
            all.insert(format!("m.{k}"), m.clone());
            all.insert(format!("v.{k}"), v.clone());
        }
        let path = dir.join("optimizer.safetensors");
        candle_core::safetensors::save(&all, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Restores the moments saved by [`AdamW::save`]; `t` comes from the trainer state.
    pub fn load(&mut self, dir: &Path, t: u64, device: &candle_core::Device) -> Result<(), String> {
        let path = dir.join("optimizer.safetensors");
        let all = candle_core::safetensors::load(&path, device)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.moments.clear();
        for (k, m) in &all {
            if let Some(name) = k.strip_prefix("m.") {
                let v = all
                    .get(&format!("v.{name}"))
                    .ok_or_else(|| format!("{}: moment `v.{name}` missing", path.display()))?;
                self.moments.insert(name.to_string(), (m.clone(), v.clone()));
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        assert!((schedule(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((schedule(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((schedule(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((schedule(55, 100, 10, 1.0, 0.1) - 0.55).abs() < 1e-12);
        assert!((schedule(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_the_closed_form_first_step() {
        // The first bias-corrected Adam step moves each weight by lr * sign(g) (|g| >> eps).
        let dev = candle_core::Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[[1.0f32, -2.0]], &dev).unwrap()).unwrap();
        let vars: BTreeMap<String, Var> = [("w".to_string(), w.clone())].into();
        let grads: HashMap<String, Tensor> =
            [("w".to_string(), Tensor::new(&[[0.5f32, -0.25]], &dev).unwrap())].into();
        let cfg = AdamWConfig { weight_decay: 0.1, clip_norm: 0.0, ..Default::default() };
        let mut opt = AdamW::new(cfg);
        opt.step(&vars, &grads, 1.0, 0.01).unwrap();
        let got = w.as_tensor().to_vec2::<f32>().unwrap();
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) + 0.01];
        assert!((got[0][0] as f64 - want[0]).abs() < 1e-6, "{got:?}");
        assert!((got[0][1] as f64 - want[1]).abs() < 1e-6, "{got:?}");
    }
}
