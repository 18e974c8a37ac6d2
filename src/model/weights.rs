//! Memory-mapped checkpoint weights (`model.safetensors` or a sharded
//! `model.safetensors.index.json`), read through a `VarBuilder` whose errors name the tensor and
//! the shape the model expected.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

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

struct Entry {
    shard: usize,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A backend over the memory-mapped shards that reports missing or misshapen tensors by name.
/// Each tensor is copied once, from the mapped pages into its device tensor, and those pages
/// are then handed back to the kernel (`MADV_DONTNEED`), so loading never holds the weights
/// twice: peak memory stays near the size of the weights.
struct Checked {
    maps: Vec<memmap2::Mmap>,
    index: HashMap<String, Entry>,
}

impl Checked {
    fn open(files: &[PathBuf]) -> Result<Self, String> {
        let mut maps = Vec::new();
        let mut index = HashMap::new();
        for (shard, path) in files.iter().enumerate() {
            let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            // SAFETY: mapped read-only; like every mmap-based loader we rely on nobody
            // truncating the file while the model loads.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| format!("{}: cannot map: {e}", path.display()))?;
            let (header, meta) = safetensors::SafeTensors::read_metadata(&map)
                .map_err(|e| format!("{}: not a safetensors file: {e}", path.display()))?;
            let base = 8 + header;
            for (name, info) in meta.tensors() {
                index.insert(
                    name,
                    Entry {
                        shard,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        start: base + info.data_offsets.0,
                        end: base + info.data_offsets.1,
                    },
                );
            }
            maps.push(map);
        }
        Ok(Checked { maps, index })
    }

    fn load(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let e = self.index.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!("checkpoint is missing tensor `{name}`"))
        })?;
        let map = &self.maps[e.shard];
        let bytes = map.get(e.start..e.end).ok_or_else(|| {
            candle_core::Error::Msg(format!("checkpoint tensor `{name}` lies outside its file"))
        })?;
        let view = safetensors::tensor::TensorView::new(e.dtype, e.shape.clone(), bytes)
            .map_err(|err| candle_core::Error::Msg(format!("checkpoint tensor `{name}`: {err}")))?;
        let tensor = candle_core::safetensors::Load::load(&view, dev)?;
        // SAFETY: a private read-only file mapping: dropped pages are read again from the file
        // if anything touches them later.
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, e.start, e.end - e.start)
        };
        Ok(tensor)
    }
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
        let entry = self.index.get(name).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "checkpoint is missing tensor `{name}` (expected shape {:?})",
                s.dims()
            ))
        })?;
        if entry.shape != s.dims() {
            return Err(candle_core::Error::Msg(format!(
                "checkpoint tensor `{name}` has shape {:?}, expected {:?}",
                entry.shape,
                s.dims()
            )));
        }
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Opens the checkpoint's weights memory-mapped.
pub fn var_builder(
    files: &[PathBuf],
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>, String> {
    Ok(VarBuilder::from_backend(Box::new(Checked::open(files)?), dtype, device.clone()))
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
