//! VistaLLM in candle: the InstructBLIP-Vicuna architecture (EVA ViT-g -> instruction-guided
//! Q-Former -> projection -> LLaMA/Vicuna) with VistaLLM's multi-image prompts, loaded from a
//! Hugging Face checkpoint directory, serving `vista_generate` through
//! [`vista_udfs::generate::VisionLanguageModel`].

pub mod config;
pub mod cpu;
pub mod generate;
pub mod instructblip;
pub mod llama;
pub mod llava;
pub mod nn;
pub mod preprocess;
pub mod prompt;
pub mod qformer;
pub mod qwen3_vl;
pub mod vision;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;
use vista_udfs::generate::{
    CoordDecode, GenerateRequest, GenerateSettings, Generation, ModelLoader, ModelSpec,
    VisionLanguageModel,
};

pub use config::Config;
pub use generate::DecodeOptions;
use instructblip::InstructBlip;
use llama::Llama;
use preprocess::Preprocess;
use prompt::{Piece, Prompt, Template};

/// A loaded checkpoint: weights on a device, both tokenizers and the image preprocessing.
pub struct VistaModel {
    pub config: Config,
    pub net: InstructBlip,
    pub text: TextSide,
    pub qformer_tokenizer: Tokenizer,
    pub preprocess: Preprocess,
    pub device: Device,
    pub dtype: DType,
    qformer_pad: u32,
    fingerprint: String,
}

/// The decoder's tokenizer and what every family does with it: stop and hidden tokens, context
/// checks, and turning generated ids into text.
pub struct TextSide {
    pub tokenizer: Tokenizer,
    stop_ids: Vec<u32>,
    /// Special tokens never shown in the text (BOS, EOS, padding, unknown; a chat family's
    /// every special token), sorted.
    hidden_ids: Vec<u32>,
    /// The coordinate tokens `<bin_0>` ..= `<bin_N>`, in coordinate order (empty for a tokenizer
    /// without them); looked up once, since decoding and training read them every batch.
    bin_ids: Arc<[u32]>,
}

impl TextSide {
    /// `tokenizer.json` of a checkpoint directory, its special tokens named by
    /// `tokenizer_config.json` (LLaMA's `<s>`, `</s>`, `<unk>` when it does not say).
    pub fn load(dir: &Path) -> Result<Self, String> {
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(format!(
                "{}: tokenizer.json missing (only the fast-tokenizer JSON is read; save the \
                 tokenizer with transformers to produce it)",
                dir.display()
            ));
        }
        let tokenizer = load_tokenizer(&tok_path)?;
        let named = |key: &str, fallback: &str| {
            configured_token(dir, key)
                .and_then(|t| tokenizer.token_to_id(&t))
                .or_else(|| tokenizer.token_to_id(fallback))
        };
        let eos = named("eos_token", "</s>").ok_or_else(|| {
            format!("{}: the tokenizer has no end-of-sequence token", dir.display())
        })?;
        let mut hidden_ids: Vec<u32> = [
            named("bos_token", "<s>"),
            Some(eos),
            named("pad_token", "<unk>"),
            named("unk_token", "<unk>"),
        ]
        .into_iter()
        .flatten()
        .collect();
        hidden_ids.sort_unstable();
        let bin_ids = (0..).map_while(|k| tokenizer.token_to_id(&format!("<bin_{k}>"))).collect();
        Ok(TextSide { tokenizer, stop_ids: vec![eos], hidden_ids, bin_ids })
    }

    /// The tokenizer of a chat family (LLaVA, Qwen3-VL): every token its `tokenizer.json` marks
    /// special is left out of the text, as the families' own decoding does
    /// (`skip_special_tokens=True`), so that control tokens such as Qwen's `<|vision_end|>`
    /// never reach an answer. VistaLLM checkpoints keep theirs: their coordinate bins are
    /// special tokens that carry the answer.
    pub fn load_chat(dir: &Path) -> Result<Self, String> {
        let mut text = Self::load(dir)?;
        let special = text.tokenizer.get_added_tokens_decoder();
        text.hidden_ids.extend(special.iter().filter(|(_, t)| t.special).map(|(&id, _)| id));
        text.hidden_ids.sort_unstable();
        text.hidden_ids.dedup();
        Ok(text)
    }

    /// Refuses an instruction that cannot fit a context of `context` tokens before tokenizing
    /// it: a token is at least one byte of text, so more bytes than `CONTEXT_BYTES_PER_TOKEN`
    /// times the context would only be tokenized to be refused.
    pub fn check_instruction(&self, instruction: &str, context: usize) -> Result<(), String> {
        const CONTEXT_BYTES_PER_TOKEN: usize = 64;
        if instruction.len() > context.saturating_mul(CONTEXT_BYTES_PER_TOKEN) {
            return Err(format!(
                "instruction of {} bytes cannot fit the model's context of {context} tokens",
                instruction.len()
            ));
        }
        Ok(())
    }

    /// A prompt (text and image tokens) must fit the decoder's context
    /// (`max_position_embeddings`): attention over a longer one allocates memory quadratic in
    /// its length, and the model was never trained on such positions.
    pub fn check_context(&self, len: usize, context: usize) -> Result<(), String> {
        if len > context {
            return Err(format!(
                "prompt of {len} tokens exceeds the model's context of {context} tokens \
                 (text_config.max_position_embeddings)"
            ));
        }
        Ok(())
    }

    /// Text of generated ids: a final stop token and BOS/EOS/padding are dropped; other special
    /// tokens (VistaLLM's `<bin_k>`, `<b_st>`, ...) are kept because they carry the answer.
    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| self.hidden_ids.binary_search(id).is_err() && !self.stop_ids.contains(id))
            .collect();
        self.tokenizer
            .decode(&ids, false)
            .map_err(|e| format!("cannot decode generated tokens: {e}"))
    }

    pub fn decode_options(&self, settings: &GenerateSettings) -> DecodeOptions {
        DecodeOptions {
            max_new_tokens: settings.max_new_tokens,
            min_new_tokens: settings.min_new_tokens,
            num_beams: settings.num_beams.max(1),
            temperature: settings.temperature,
            top_p: settings.top_p,
            seed: settings.seed,
            stop: self.stop_ids.clone(),
            length_penalty: 1.0,
            max_image_pixels: settings.max_image_pixels,
            median_bins: match settings.coord_decode {
                CoordDecode::Argmax => Arc::from([]),
                CoordDecode::Median => self.bin_ids.clone(),
            },
        }
    }

    /// The ids of the coordinate tokens `<bin_0>` ..= `<bin_N>`, in coordinate order (empty for
    /// a tokenizer without them).
    pub fn bin_ids(&self) -> &[u32] {
        &self.bin_ids
    }

    /// Each row's text, and whether it ran into the length limit: the stop token is part of
    /// the output, so a row without one at the end was cut.
    pub fn finish(
        &self,
        rows: Vec<Result<Vec<u32>, String>>,
        opts: &DecodeOptions,
    ) -> Vec<Result<Generation, String>> {
        rows.into_iter()
            .map(|r| {
                r.and_then(|ids| {
                    let stopped = ids.last().is_some_and(|t| opts.stop.contains(t));
                    let truncated = !stopped && ids.len() >= opts.max_new_tokens;
                    Ok(Generation { text: self.decode(&ids)?, truncated })
                })
            })
            .collect()
    }
}

/// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
pub fn parse_device(name: &str) -> Result<Device, String> {
    let name = name.trim().to_ascii_lowercase();
    if name.is_empty() || name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match name.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| format!("device `{name}`: expected cpu, cuda or cuda:N"))?,
        None => return Err(format!("device `{name}`: expected cpu, cuda or cuda:N")),
    };
    if !cfg!(feature = "cuda") {
        return Err(format!(
            "device `{name}`: this vista was built without CUDA; rebuild with `--features cuda`"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| format!("device `{name}`: {e}"))
}

/// `f32`, `bf16` or `f16` (also `float32`, `bfloat16`, `float16`).
pub fn parse_dtype(name: &str) -> Result<DType, String> {
    match name.trim().to_ascii_lowercase().as_str() {
        "" | "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" | "half" => Ok(DType::F16),
        other => Err(format!("dtype `{other}`: expected f32, bf16 or f16")),
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn load_tokenizer(path: &Path) -> Result<Tokenizer, String> {
    Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Q-Former's BERT tokenizer: `qformer_tokenizer/tokenizer.json`, or a WordPiece tokenizer
/// built from its `vocab.txt` as `BertTokenizerFast` would.
fn load_qformer_tokenizer(dir: &Path) -> Result<Tokenizer, String> {
    let sub = dir.join("qformer_tokenizer");
    let json = sub.join("tokenizer.json");
    if json.is_file() {
        return load_tokenizer(&json);
    }
    let vocab = sub.join("vocab.txt");
    if !vocab.is_file() {
        return Err(format!(
            "{}: no qformer_tokenizer/tokenizer.json or qformer_tokenizer/vocab.txt",
            dir.display()
        ));
    }
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    let wp = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| format!("{}: {e}", vocab.display()))?;
    let mut tok = Tokenizer::new(wp);
    let id =
        |t: &str| tok.token_to_id(t).ok_or_else(|| format!("{}: no {t} token", vocab.display()));
    let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .map_err(|e| e.to_string())?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), sep),
        ("[CLS]".into(), cls),
    )));
    Ok(tok)
}

/// A special token named in tokenizer_config.json (a string or `{"content": ...}`).
fn configured_token(dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let v = json.get(key)?;
    v.as_str().map(str::to_string).or_else(|| v.get("content")?.as_str().map(str::to_string))
}

/// A checkpoint directory's weights on `device` in `dtype`, and its fingerprint.
fn open_weights(
    dir: &Path,
    device: &str,
    dtype: &str,
) -> Result<(VarBuilder<'static>, String), String> {
    let device = parse_device(device)?;
    let dtype = parse_dtype(dtype)?;
    if device.is_cpu() {
        keep_activation_memory();
    }
    let config_text = read(&dir.join("config.json"))?;
    let files = weights::weight_files(dir)?;
    let fingerprint = weights::fingerprint(dir, config_text.as_bytes(), &files)?;
    Ok((weights::var_builder(&files, dtype, &device)?, fingerprint))
}

/// Runs a micro-batch's model work for the rows that passed their checks (`ready`, indices into
/// `results`, in the order `run` returns their ids): each gets its ids, or all get the model's
/// error. CPU memory freed by the batch goes back to the kernel after it.
fn run_ready(
    device: &Device,
    results: &mut [Result<Vec<u32>, String>],
    ready: &[usize],
    run: impl FnOnce() -> candle_core::Result<Vec<Vec<u32>>> + Send,
) {
    match device.with_context(run) {
        Ok(outs) => {
            for (&row, ids) in ready.iter().zip(outs) {
                results[row] = Ok(ids);
            }
        }
        Err(e) => {
            for &row in ready {
                results[row] = Err(format!("model error: {e}"));
            }
        }
    }
    if device.is_cpu() {
        release_activation_memory();
    }
}

/// A prompt's decoder input [len, hidden]: its token pieces embedded by `llm`, its k-th image
/// as `image(k)`.
pub fn embed_pieces(
    llm: &Llama,
    device: &Device,
    pieces: &[Piece],
    image: impl Fn(usize) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let parts = pieces
        .iter()
        .map(|piece| match piece {
            Piece::Tokens(ids) => llm.embed(&Tensor::new(ids.as_slice(), device)?),
            Piece::Image(k) => image(*k),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&parts, 0)
}

/// `VisionLanguageModel` for a family with `fingerprint`, `text` ([`TextSide`]) and
/// `generate_ids(batch, template, opts)`: the prompt template from the settings, the shared
/// decoding options, text and truncation from the ids.
macro_rules! serve_vision_language_model {
    ($family:ty) => {
        impl vista_udfs::generate::VisionLanguageModel for $family {
            fn fingerprint(&self) -> String {
                self.fingerprint.clone()
            }

            fn generate(
                &self,
                batch: &[vista_udfs::generate::GenerateRequest],
                settings: &vista_udfs::generate::GenerateSettings,
            ) -> Vec<Result<String, String>> {
                self.generate_detailed(batch, settings)
                    .into_iter()
                    .map(|r| r.map(|g| g.text))
                    .collect()
            }

            fn generate_detailed(
                &self,
                batch: &[vista_udfs::generate::GenerateRequest],
                settings: &vista_udfs::generate::GenerateSettings,
            ) -> Vec<Result<vista_udfs::generate::Generation, String>> {
                let template =
                    match $crate::model::prompt::Template::parse(&settings.prompt_template) {
                        Ok(t) => t,
                        Err(e) => return vec![Err(e); batch.len()],
                    };
                let opts = self.text.decode_options(settings);
                self.text.finish(self.generate_ids(batch, template, &opts), &opts)
            }
        }
    };
}
pub(crate) use serve_vision_language_model;

/// Every op of a CPU forward pass allocates its output (2-13 MB for the benchmark model's ViT at
/// 8 images) and frees its input. By default glibc returns such blocks to the kernel (`mmap`, or
/// trimming the heap top past 128 KB) and the next op faults them back in, zeroed: ~8% of a
/// batch-8 generation went to page faults. Blocks up to 16 MB now come from the heap, which
/// keeps up to 32 MB free at its top: batch-8 generation 0.97-1.01 -> 0.82-0.86 s; peak RSS
/// moved within its run-to-run noise (`scripts/bench_model.sh`). Process-wide, set once; other
/// allocators are left alone.
fn keep_activation_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes glibc's allocation thresholds.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        });
    }
}

/// Training holds a step's whole autograd graph, frees it at once, then builds the next from
/// blocks of the same sizes. Every block comes from the heap (no `mmap`), and up to 512 MB of
/// free heap top is kept: the memory the next step faults back in otherwise, zeroed. Stage-0
/// steps are 15-16% faster, stage-1 steps 21-28%, for up to 13% more peak RSS
/// (`scripts/bench_train_steps.sh`, docs/train.md "Training on the CPU"). Process-wide, set
/// once; a model loaded later for inference still sets the thresholds its own setting names.
pub(crate) fn keep_training_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes glibc's allocation thresholds.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        });
    }
}

/// Hands the heap's free memory back to the kernel after a batch: within a batch it is kept
/// (`keep_activation_memory`), between batches it would only add to the next batch's peak.
fn release_activation_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl VistaModel {
    pub fn load(dir: &Path, device: &str, dtype: &str) -> Result<Self, String> {
        let (vb, fingerprint) = open_weights(dir, device, dtype)?;
        Self::load_with(dir, vb, fingerprint)
    }

    /// A model directory's configuration, tokenizers and preprocessing with weights from `vb`
    /// (training builds its parameters this way).
    pub fn load_with(dir: &Path, vb: VarBuilder, fingerprint: String) -> Result<Self, String> {
        let (device, dtype) = (vb.device().clone(), vb.dtype());
        let config = Config::from_json(&read(&dir.join("config.json"))?)?;
        let net = InstructBlip::new(&config, vb).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = TextSide::load(dir)?;
        let qformer_tokenizer = load_qformer_tokenizer(dir)?;
        let preprocess = Preprocess::from_dir(dir, config.vision_config.image_size)?;
        let qformer_pad = config
            .qformer_config
            .pad_token_id
            .or_else(|| qformer_tokenizer.token_to_id("[PAD]"))
            .unwrap_or(0);
        Ok(VistaModel {
            config,
            net,
            text,
            qformer_tokenizer,
            preprocess,
            device,
            dtype,
            qformer_pad,
            fingerprint,
        })
    }

    pub fn stop_ids(&self) -> &[u32] {
        &self.text.stop_ids
    }

    pub fn num_query_tokens(&self) -> usize {
        self.config.num_query_tokens
    }

    /// The Q-Former's token ids for an instruction, cut to its position table.
    pub fn qformer_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        let mut ids = self
            .qformer_tokenizer
            .encode(text, true)
            .map_err(|e| format!("cannot tokenize the instruction for the Q-Former: {e}"))?
            .get_ids()
            .to_vec();
        let max = self.config.qformer_config.max_position_embeddings;
        if ids.len() > max {
            let last = ids[ids.len() - 1];
            ids.truncate(max - 1);
            ids.push(last);
        }
        Ok(ids)
    }

    pub fn prompt(
        &self,
        template: Template,
        instruction: &str,
        images: usize,
    ) -> Result<Prompt, String> {
        prompt::build(template, instruction, images, &self.text.tokenizer)
    }

    /// Stacks preprocessed images into [n, 3, S, S] on the model's device and dtype, freeing
    /// each image once copied (at most one image beside the batch).
    pub fn pixel_tensor(&self, images: Vec<Vec<f32>>) -> candle_core::Result<Tensor> {
        let s = self.preprocess.size;
        let n = images.len();
        let mut flat = Vec::with_capacity(images.iter().map(Vec::len).sum());
        for image in images {
            flat.extend_from_slice(&image);
        }
        Tensor::from_vec(flat, (n, 3, s, s), &self.device)?.to_dtype(self.dtype)
    }

    /// Right-pads Q-Former ids into (ids [n, L], mask [n, L]).
    pub fn qformer_batch(&self, rows: &[Vec<u32>]) -> candle_core::Result<(Tensor, Tensor)> {
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(rows.len() * width);
        let mut mask = Vec::with_capacity(rows.len() * width);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(self.qformer_pad, width - r.len()));
            mask.extend(std::iter::repeat_n(1f32, r.len()));
            mask.extend(std::iter::repeat_n(0f32, width - r.len()));
        }
        let ids = Tensor::from_vec(ids, (rows.len(), width), &self.device)?;
        let mask =
            Tensor::from_vec(mask, (rows.len(), width), &self.device)?.to_dtype(self.dtype)?;
        Ok((ids, mask))
    }

    /// The language model's input embeddings [len, hidden] for one prompt, its images' tokens
    /// being `image_tokens[k]` [Q, hidden].
    pub fn prompt_embeds(
        &self,
        prompt: &Prompt,
        image_tokens: &[Tensor],
    ) -> candle_core::Result<Tensor> {
        embed_pieces(&self.net.llm, &self.device, &prompt.pieces, |k| Ok(image_tokens[k].clone()))
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        self.text.decode(ids)
    }

    pub fn decode_options(&self, settings: &GenerateSettings) -> DecodeOptions {
        self.text.decode_options(settings)
    }

    /// Generated token ids per request (each row's own error, or its ids).
    pub fn generate_ids(
        &self,
        batch: &[GenerateRequest],
        template: Template,
        opts: &DecodeOptions,
    ) -> Vec<Result<Vec<u32>, String>> {
        struct Ready {
            row: usize,
            prompt: Prompt,
            first_image: usize,
        }
        let mut results: Vec<Result<Vec<u32>, String>> = vec![Ok(Vec::new()); batch.len()];
        let mut ready = Vec::new();
        let mut pixels: Vec<Vec<f32>> = Vec::new();
        let mut qformer_rows: Vec<Vec<u32>> = Vec::new();
        for (row, req) in batch.iter().enumerate() {
            let prepared = (|| {
                let context = self.config.text_config.max_position_embeddings;
                self.text.check_instruction(&req.instruction, context)?;
                let prompt = self.prompt(template, &req.instruction, req.images.len())?;
                self.text.check_context(prompt.len(self.num_query_tokens()), context)?;
                let qids = self.qformer_ids(&prompt.qformer_text)?;
                let imgs = req
                    .images
                    .iter()
                    .enumerate()
                    .map(|(k, bytes)| {
                        self.preprocess
                            .run(bytes, template.pads_to_square(), opts.max_image_pixels)
                            .map_err(|e| format!("image {}: {e}", k + 1))
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok::<_, String>((prompt, qids, imgs))
            })();
            match prepared {
                Ok((prompt, qids, imgs)) => {
                    ready.push(Ready { row, prompt, first_image: pixels.len() });
                    qformer_rows.extend(std::iter::repeat_n(qids, imgs.len()));
                    pixels.extend(imgs);
                }
                Err(e) => results[row] = Err(e),
            }
        }
        if ready.is_empty() {
            return results;
        }
        let run = || -> candle_core::Result<Vec<Vec<u32>>> {
            let image_tokens = if pixels.is_empty() {
                None
            } else {
                let (qids, qmask) = self.qformer_batch(&qformer_rows)?;
                Some(self.net.image_tokens(&self.pixel_tensor(pixels)?, &qids, &qmask)?)
            };
            let rows = ready
                .iter()
                .map(|r| {
                    let n = r.prompt.pieces.iter().filter(|p| matches!(p, Piece::Image(_))).count();
                    let toks = (0..n)
                        .map(|k| {
                            image_tokens.as_ref().expect("rows with images").get(r.first_image + k)
                        })
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    self.prompt_embeds(&r.prompt, &toks)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            generate::generate(&self.net.llm, &rows, opts)
        };
        let rows: Vec<usize> = ready.iter().map(|r| r.row).collect();
        run_ready(&self.device, &mut results, &rows, run);
        results
    }
}

serve_vision_language_model!(VistaModel);

/// The families `vista.model` can hold, told apart by config.json's `model_type`: VistaLLM and
/// InstructBLIP (`instructblip`), LLaVA-1.5 (`llava`), LLaVA-NeXT (`llava_next`), Qwen3-VL
/// (`qwen3_vl`).
pub fn load_model(
    dir: &Path,
    device: &str,
    dtype: &str,
) -> Result<Arc<dyn VisionLanguageModel>, String> {
    let config = read(&dir.join("config.json"))?;
    let json: serde_json::Value =
        serde_json::from_str(&config).map_err(|e| format!("{}/config.json: {e}", dir.display()))?;
    match json.get("model_type").and_then(|v| v.as_str()) {
        Some("llava") | Some("llava_next") => {
            Ok(Arc::new(llava::LlavaModel::load(dir, device, dtype)?))
        }
        Some("qwen3_vl") => Ok(Arc::new(qwen3_vl::Qwen3VlModel::load(dir, device, dtype)?)),
        Some("instructblip") | None => Ok(Arc::new(VistaModel::load(dir, device, dtype)?)),
        Some(other) => Err(format!(
            "{}/config.json: model_type `{other}` is not supported (instructblip, llava, llava_next, \
             qwen3_vl)",
            dir.display()
        )),
    }
}

/// The loader the session registers: `vista.model` is the checkpoint directory, `vista.device`
/// `cpu`/`cuda:N`, `vista.dtype` `f32`/`bf16`/`f16`.
pub fn loader() -> ModelLoader {
    Arc::new(|spec: &ModelSpec| load_model(Path::new(&spec.dir), &spec.device, &spec.dtype))
}

/// `vista generate --model DIR --image a.png [--image b.png] --prompt "..."`: one answer.
pub fn generate_cli(
    model_dir: &Path,
    device: &str,
    dtype: &str,
    images: &[PathBuf],
    prompt: &str,
    settings: &GenerateSettings,
) -> anyhow::Result<String> {
    let model = load_model(model_dir, device, dtype).map_err(anyhow::Error::msg)?;
    let images = images
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(|b| Arc::<[u8]>::from(b.into_boxed_slice()))
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = GenerateRequest { images, instruction: prompt.to_string() };
    model
        .generate(std::slice::from_ref(&request), settings)
        .pop()
        .expect("one result per request")
        .map_err(anyhow::Error::msg)
}
