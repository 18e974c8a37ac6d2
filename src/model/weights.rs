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

/// Identifies a checkpoint by every byte that decides its answers: `config.json`, the SHA-256
/// of each weight shard (as the Hugging Face Hub shows it) and the tokenizer files beside them.
/// Two checkpoints that differ in one weight differ here, so a job never resumes with another
/// model's chunks. It starts with config.json's `model_type`. Shard digests are cached by (path, size, modification time) in
/// [`digest_cache_path`], so a resume does not read 14 GB again.
pub fn fingerprint(dir: &Path, config_json: &[u8], files: &[PathBuf]) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"config.json\0");
    h.update(config_json);
    let mut cache = DigestCache::load();
    for f in files {
        let digest = cache.digest(f)?;
        h.update(f.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        h.update(b"\0");
        h.update(digest.as_bytes());
    }
    cache.save();
    for name in TOKENIZER_FILES {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            h.update(name.as_bytes());
            h.update(b"\0");
            h.update(Sha256::digest(&bytes));
        }
    }
    let d = h.finalize();
    // The family first, so that output metadata says which code wrote the answers.
    let family = serde_json::from_slice::<serde_json::Value>(config_json)
        .ok()
        .and_then(|v| v.get("model_type")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "instructblip".to_string());
    Ok(format!("{family}-{}", hex(&d[..8])))
}

/// Files besides the weights whose bytes change what a model writes.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "qformer_tokenizer/tokenizer.json",
    "qformer_tokenizer/tokenizer_config.json",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of one file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// `$XDG_CACHE_HOME/vista/weight-digests.json` (or `~/.cache/...`): shard digests by file.
pub fn digest_cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("vista").join("weight-digests.json"))
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct DigestCache {
    /// "canonical path" -> (size, mtime in ns, sha256 hex).
    files: std::collections::BTreeMap<String, (u64, u128, String)>,
    #[serde(skip)]
    dirty: bool,
}

impl DigestCache {
    fn load() -> DigestCache {
        digest_cache_path()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn digest(&mut self, path: &Path) -> Result<String, String> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let key = key.to_string_lossy().to_string();
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        if let Some((size, t, d)) = self.files.get(&key) {
            if *size == meta.len() && *t == mtime {
                return Ok(d.clone());
            }
        }
        let d = sha256_file(path)?;
        self.files.insert(key, (meta.len(), mtime, d.clone()));
        self.dirty = true;
        Ok(d)
    }

    /// Best effort: a cache that cannot be written only costs a rehash next time.
    fn save(&self) {
        if !self.dirty {
            return;
        }
        let Some(path) = digest_cache_path() else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
        if let Ok(text) = serde_json::to_string(self) {
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two checkpoints that differ in one weight byte (anywhere in the file) differ; the cache
    /// notices a file rewritten in place.
    #[test]
    fn every_weight_byte_is_in_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache"));
        let w = dir.path().join("model.safetensors");
        let mut bytes = vec![0u8; 4096];
        std::fs::write(&w, &bytes).unwrap();
        let a = fingerprint(dir.path(), b"{}", std::slice::from_ref(&w)).unwrap();
        assert_eq!(a, fingerprint(dir.path(), b"{}", std::slice::from_ref(&w)).unwrap());
        bytes[3000] = 1;
        std::fs::write(&w, &bytes).unwrap();
        // Same size; the modification time may not have moved within the clock's resolution.
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&w).unwrap().set_modified(t).unwrap();
        let b = fingerprint(dir.path(), b"{}", std::slice::from_ref(&w)).unwrap();
        assert_ne!(a, b);
        std::fs::write(&w, b"abc").unwrap();
        assert_eq!(
            sha256_file(&w).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
