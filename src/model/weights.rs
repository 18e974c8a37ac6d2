//! Memory-mapped checkpoint weights (`model.safetensors` or a sharded
//! `model.safetensors.index.json`), read through a `VarBuilder` whose errors name the tensor and
//! the shape the model expected.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

/// The safetensors files of a checkpoint directory, in index order.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(format!(
            "{}: neither model.safetensors nor model.safetensors.index.json found",
            dir.display()
        ));
    }
    let text = std::fs::read_to_string(&index).map_err(|e| format!("{}: {e}", index.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("{}: no `weight_map` object", index.display()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for file in map.values() {
        let name = file
            .as_str()
            .ok_or_else(|| format!("{}: weight_map values must be file names", index.display()))?;
        let path = dir.join(name);
        if !files.contains(&path) {
            if !path.is_file() {
                return Err(format!(
                    "{}: shard {name} listed in the index is missing",
                    dir.display()
                ));
            }
            files.push(path);
        }
    }
    Ok(files)
}

/// A backend that maps tensors straight from the files (one copy: file pages -> device tensor)
/// and reports missing or misshapen tensors by name.
struct Checked {
    st: MmapedSafetensors,
}

impl SimpleBackend for Checked {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let view = self.st.get(name).map_err(|_| {
            candle_core::Error::Msg(format!(
                "checkpoint is missing tensor `{name}` (expected shape {:?})",
                s.dims()
            ))
        })?;
        if view.shape() != s.dims() {
            return Err(candle_core::Error::Msg(format!(
                "checkpoint tensor `{name}` has shape {:?}, expected {:?}",
                view.shape(),
                s.dims()
            )));
        }
        self.st.load(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.st
            .load(name, dev)
            .map_err(|_| candle_core::Error::Msg(format!("checkpoint is missing tensor `{name}`")))?
            .to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.st.get(name).is_ok()
    }
}

/// Opens the checkpoint's weights memory-mapped.
pub fn var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, String> {
    // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on nobody
    // truncating them while the model is loaded.
    let st = unsafe { MmapedSafetensors::multi(files) }
        .map_err(|e| format!("cannot map weights: {e}"))?;
    Ok(VarBuilder::from_backend(Box::new(Checked { st }), dtype, device.clone()))
}

/// Hashes config.json and every shard's safetensors header (names, dtypes, shapes, offsets):
/// cheap, and changes whenever the architecture or the stored tensors' layout change.
pub fn fingerprint(config_json: &[u8], files: &[PathBuf]) -> Result<String, String> {
    let mut h = Fnv::new();
    h.write(config_json);
    for f in files {
        use std::io::Read;
        let mut file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| format!("{}: {e}", f.display()))?;
        let n = u64::from_le_bytes(len).min(100 << 20) as usize;
        let mut header = vec![0u8; n];
        file.read_exact(&mut header).map_err(|e| format!("{}: {e}", f.display()))?;
        h.write(&header);
        // Values too, but cheaply: the file size and the first KiB of data.
        let mut data = vec![0u8; 1024];
        let got = file.read(&mut data).unwrap_or(0);
        h.write(&data[..got]);
        h.write(&std::fs::metadata(f).map(|m| m.len()).unwrap_or(0).to_le_bytes());
    }
    Ok(format!("instructblip-{:016x}", h.0))
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf29ce484222325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }
}
