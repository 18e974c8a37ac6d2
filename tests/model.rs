//! Parity of the candle model with transformers' InstructBLIP on the tiny random checkpoints in
//! tests/fixtures/model (made by scripts/make_tiny_checkpoints.py): preprocessing, vision
//! features, Q-Former query outputs, image tokens, logits (1e-4), and greedy, stop-token and
//! beam outputs, single and batched with left padding (identical tokens).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use vista::model::generate::DecodeOptions;
use vista::model::prompt::{Piece, Prompt, Template};
use vista::model::{llama::KvCache, VistaModel};
use vista_udfs::generate::{GenerateRequest, GenerateSettings, VisionLanguageModel};

#[path = "model/device.rs"]
mod device;
#[path = "model/llava.rs"]
mod llava;
#[path = "model/llava_next.rs"]
mod llava_next;
#[path = "model/qwen3_vl.rs"]
mod qwen3_vl;

const CHECKPOINTS: [&str; 2] = ["tiny_xattn1_mha_coords", "tiny_xattn2_gqa_odd"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/model")
}

struct Fixture {
    model: VistaModel,
    tensors: HashMap<String, Tensor>,
    expected: Value,
}

fn fixture(name: &str) -> Fixture {
    let dir = root().join(name);
    let model = VistaModel::load(&dir, "cpu", "f32").unwrap_or_else(|e| panic!("{name}: {e}"));
    let tensors =
        candle_core::safetensors::load(dir.join("expected/tensors.safetensors"), &Device::Cpu)
            .unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected/expected.json")).unwrap())
            .unwrap();
    Fixture { model, tensors, expected }
}

fn image_bytes(name: &str) -> Arc<[u8]> {
    std::fs::read(root().join("images").join(name)).unwrap().into()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn template(case: &Value) -> Template {
    Template::parse(case["mode"].as_str().unwrap()).unwrap()
}

fn requests(case: &Value) -> Vec<GenerateRequest> {
    case["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| GenerateRequest {
            instruction: r["instruction"].as_str().unwrap().to_string(),
            images: r["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| image_bytes(n.as_str().unwrap()))
                .collect(),
        })
        .collect()
}

#[test]
fn preprocessing_matches_the_image_processor() {
    let f = fixture(CHECKPOINTS[0]);
    for name in f.expected["images"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        for (pad, key) in [(false, "pixel_values"), (true, "pixel_values_square")] {
            let ours = f.model.preprocess.run(&image_bytes(name), pad, u64::MAX).unwrap();
            let s = f.model.preprocess.size;
            let ours = Tensor::from_vec(ours, (3, s, s), &Device::Cpu).unwrap();
            let diff = max_abs_diff(&ours, &f.tensors[&format!("{key}.{name}")]);
            assert!(diff < 1e-5, "{key} {name}: max diff {diff}");
        }
    }
}

#[test]
fn prompts_tokenize_as_transformers() {
    for name in CHECKPOINTS {
        let f = fixture(name);
        let image_token = f.expected["image_token_id"].as_u64().unwrap() as u32;
        let q = f.model.num_query_tokens();
        for (key, case) in f.expected["cases"].as_object().unwrap() {
            for (r, row) in case["rows"].as_array().unwrap().iter().enumerate() {
                let instr = row["instruction"].as_str().unwrap();
                let n = row["images"].as_array().unwrap().len();
                let prompt = f.model.prompt(template(case), instr, n).unwrap();
                assert_eq!(
                    prompt.flat_ids(q, image_token),
                    ids(&case["input_ids"][r]),
                    "{name} {key} row {r}"
                );
                assert_eq!(
                    f.model.qformer_ids(&prompt.qformer_text).unwrap(),
                    ids(&case["qformer_input_ids"][r]),
                    "{name} {key} row {r}"
                );
            }
        }
    }
}

/// Vision features, Q-Former outputs, image tokens and logits for every recorded forward pass.
#[test]
fn forward_pass_matches_transformers() {
    for name in CHECKPOINTS {
        let f = fixture(name);
        let m = &f.model;
        for (key, case) in f.expected["cases"].as_object().unwrap() {
            let Some(want_logits) = f.tensors.get(&format!("{key}.logits")) else {
                continue;
            };
            let tmpl = template(case);
            let pixel_key =
                if tmpl == Template::Raw { "pixel_values" } else { "pixel_values_square" };
            let mut pixels = Vec::new();
            let mut qrows = Vec::new();
            let mut prompts = Vec::new();
            for row in case["rows"].as_array().unwrap() {
                let names = row["images"].as_array().unwrap();
                let prompt =
                    m.prompt(tmpl, row["instruction"].as_str().unwrap(), names.len()).unwrap();
                for n in names {
                    pixels.push(f.tensors[&format!("{pixel_key}.{}", n.as_str().unwrap())].clone());
                    qrows.push(m.qformer_ids(&prompt.qformer_text).unwrap());
                }
                prompts.push(prompt);
            }
            let pixels = Tensor::stack(&pixels, 0).unwrap();
            let (qids, qmask) = m.qformer_batch(&qrows).unwrap();
            let vision = m.net.vision.forward(&pixels).unwrap();
            let d = max_abs_diff(&vision, &f.tensors[&format!("{key}.vision")]);
            assert!(d < 1e-4, "{name} {key} vision: {d}");
            let queries = m.net.query_outputs(&vision, &qids, &qmask).unwrap();
            let d = max_abs_diff(&queries, &f.tensors[&format!("{key}.qformer")]);
            assert!(d < 1e-4, "{name} {key} qformer: {d}");
            let tokens = m.net.image_tokens(&pixels, &qids, &qmask).unwrap();
            let d = max_abs_diff(&tokens, &f.tensors[&format!("{key}.image_tokens")]);
            assert!(d < 1e-4, "{name} {key} image tokens: {d}");

            // Left-padded batch, as the recorded run: logits compared where the mask is 1.
            let rows = blip_rows(m, &prompts, &tokens);
            assert_logits(&m.net.llm, &rows, want_logits, &format!("{name} {key}"));
        }
    }
}

/// Each prompt's embeddings, its images' tokens taken in order from `tokens` [images, Q, hidden].
fn blip_rows(m: &VistaModel, prompts: &[Prompt], tokens: &Tensor) -> Vec<Tensor> {
    let mut image = 0;
    prompts
        .iter()
        .map(|p| {
            let n = p.pieces.iter().filter(|x| matches!(x, Piece::Image(_))).count();
            let toks: Vec<Tensor> = (image..image + n).map(|k| tokens.get(k).unwrap()).collect();
            image += n;
            m.prompt_embeds(p, &toks).unwrap()
        })
        .collect()
}

/// Logits [rows, width, vocab] of prompt embeddings run as one left-padded batch, as the
/// recorded runs did, and each row's padding.
fn padded_logits(llm: &vista::model::llama::Llama, rows: &[Tensor]) -> (Tensor, Vec<usize>) {
    let width = rows.iter().map(|r| r.dim(0).unwrap()).max().unwrap();
    let hidden = rows[0].dim(1).unwrap();
    let pads: Vec<usize> = rows.iter().map(|r| width - r.dim(0).unwrap()).collect();
    let padded: Vec<Tensor> = rows
        .iter()
        .zip(&pads)
        .map(|(r, &p)| {
            let z = Tensor::zeros((p, hidden), r.dtype(), r.device()).unwrap();
            Tensor::cat(&[&z, r], 0).unwrap()
        })
        .collect();
    let positions: Vec<Vec<u32>> =
        pads.iter().map(|&p| (0..width).map(|j| j.saturating_sub(p) as u32).collect()).collect();
    let mut cache = KvCache::new(llm.layers());
    let logits = llm
        .forward(&Tensor::stack(&padded, 0).unwrap(), &positions, &pads, &mut cache, true)
        .unwrap();
    (logits, pads)
}

/// Compares logits where the attention mask is 1.
fn assert_logits(llm: &vista::model::llama::Llama, rows: &[Tensor], want: &Tensor, what: &str) {
    let (logits, pads) = padded_logits(llm, rows);
    assert_eq!(logits.dims(), want.dims(), "{what}");
    let width = logits.dim(1).unwrap();
    for (r, &p) in pads.iter().enumerate() {
        let ours = logits.get(r).unwrap().narrow(0, p, width - p).unwrap();
        let theirs = want.get(r).unwrap().narrow(0, p, width - p).unwrap();
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-4, "{what} row {r} logits: {d}");
    }
}

/// A case's decoding options: its length, beams and stop tokens over a model's defaults.
fn options(case: &Value, base: DecodeOptions) -> DecodeOptions {
    DecodeOptions {
        max_new_tokens: case["max_new_tokens"].as_u64().unwrap() as usize,
        min_new_tokens: case["min_new_tokens"].as_u64().unwrap_or(0) as usize,
        num_beams: case["num_beams"].as_u64().unwrap() as usize,
        stop: ids(&case["stop_ids"]),
        ..base
    }
}

/// Every recorded case of checkpoint `name` through `generate_ids(case, requests, options)`:
/// batched as recorded, and each row alone, identical to transformers' tokens.
fn assert_generation_matches(
    name: &str,
    expected: &Value,
    base: &DecodeOptions,
    generate_ids: impl Fn(&Value, &[GenerateRequest], &DecodeOptions) -> Vec<Result<Vec<u32>, String>>,
) {
    for (key, case) in expected["cases"].as_object().unwrap() {
        let reqs = requests(case);
        let opts = options(case, base.clone());
        let want: Vec<Vec<u32>> = case["generated"].as_array().unwrap().iter().map(ids).collect();
        let batched: Vec<Vec<u32>> =
            generate_ids(case, &reqs, &opts).into_iter().map(Result::unwrap).collect();
        assert_eq!(batched, want, "{name} {key} batched");
        for (r, req) in reqs.iter().enumerate() {
            let single = generate_ids(case, std::slice::from_ref(req), &opts).pop().unwrap();
            assert_eq!(single.unwrap(), want[r], "{name} {key} row {r} alone");
        }
    }
}

/// Checkpoint `name` through `load_model`: its fingerprint names `family`, and in the recorded
/// `batch` case with a corrupt image inserted as row 1 and a marker mismatch appended as row 4,
/// the recorded rows give their recorded texts and the two bad rows their own errors. Returns
/// the model, the case and the recorded texts for more checks.
fn assert_bad_rows_fail_alone<'a>(
    name: &str,
    family: &str,
    expected: &'a Value,
    decode: impl Fn(&[u32]) -> String,
) -> (Arc<dyn VisionLanguageModel>, &'a Value, Vec<String>) {
    let model = vista::model::load_model(&root().join(name), "cpu", "f32").unwrap();
    assert!(model.fingerprint().starts_with(&format!("{family}-")), "{}", model.fingerprint());
    let case = &expected["cases"]["batch"];
    let mut reqs = requests(case);
    reqs.insert(
        1,
        GenerateRequest { images: vec![Arc::from(&b"not an image"[..])], instruction: "x".into() },
    );
    reqs.push(GenerateRequest {
        images: vec![image_bytes("rgb_40x30.png")],
        instruction: "<image> and <image>".into(),
    });
    let settings = GenerateSettings { max_new_tokens: 10, ..Default::default() };
    let out = model.generate_detailed(&reqs, &settings);
    let want: Vec<String> =
        case["generated"].as_array().unwrap().iter().map(|g| decode(&ids(g))).collect();
    let texts: Vec<&str> =
        [0, 2, 3].iter().map(|&i| out[i].as_ref().unwrap().text.as_str()).collect();
    assert_eq!(texts, want, "{name}");
    assert!(out[0].as_ref().unwrap().truncated, "10 tokens without a stop token");
    let err = out[1].as_ref().unwrap_err();
    assert!(err.starts_with("image 1: "), "{err}");
    let err = out[4].as_ref().unwrap_err();
    assert_eq!(err, "the instruction has 2 <image> markers but the row has 1 images");
    (model, case, want)
}

/// `vista generate` on checkpoint `name`: the two-image case's prompt gives its recorded answer.
fn assert_cli_answers(name: &str, expected: &Value, decode: impl Fn(&[u32]) -> String) {
    let case = &expected["cases"]["multi_image"];
    let row = &case["rows"][0];
    let images: Vec<PathBuf> = row["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| root().join("images").join(n.as_str().unwrap()))
        .collect();
    let settings = GenerateSettings { max_new_tokens: 10, ..Default::default() };
    let instruction = row["instruction"].as_str().unwrap();
    let text = vista::model::generate_cli(
        &root().join(name),
        "cpu",
        "f32",
        &images,
        instruction,
        &settings,
    )
    .unwrap();
    assert_eq!(text, decode(&ids(&case["generated"][0])));
}

/// Every recorded case's generated ids decode to the text transformers recorded for them.
fn assert_texts_match(name: &str, expected: &Value, decode: impl Fn(&[u32]) -> String) {
    for (key, case) in expected["cases"].as_object().unwrap() {
        let texts = case["text"].as_array().unwrap();
        for (g, t) in case["generated"].as_array().unwrap().iter().zip(texts) {
            assert_eq!(decode(&ids(g)), t.as_str().unwrap(), "{name} {key}");
        }
    }
}

/// Greedy and beam outputs of every recorded case, from encoded images through our own
/// preprocessing and prompt assembly: batched as recorded, and each row alone.
#[test]
fn generation_matches_transformers_batched_and_single() {
    for name in CHECKPOINTS {
        let f = fixture(name);
        let base = f.model.decode_options(&GenerateSettings::default());
        assert_generation_matches(name, &f.expected, &base, |case, reqs, opts| {
            f.model.generate_ids(reqs, template(case), opts)
        });
    }
}

#[test]
fn text_output_through_the_trait() {
    let f = fixture(CHECKPOINTS[0]);
    let case = &f.expected["cases"]["vicuna_batch"];
    let settings = GenerateSettings { max_new_tokens: 10, ..Default::default() };
    let texts: Vec<String> =
        f.model.generate(&requests(case), &settings).into_iter().map(Result::unwrap).collect();
    let want: Vec<String> = case["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| f.model.decode(&ids(g)).unwrap())
        .collect();
    assert_eq!(texts, want);
    assert!(texts.iter().all(|t| !t.is_empty()));
    assert!(f.model.fingerprint().starts_with("instructblip-"));
}

#[test]
fn bad_rows_fail_alone() {
    let f = fixture(CHECKPOINTS[1]);
    let good = GenerateRequest {
        instruction: "What is the man holding?".into(),
        images: vec![image_bytes("rgb_40x30.png")],
    };
    let corrupt = GenerateRequest {
        instruction: "What is the man holding?".into(),
        images: vec![Arc::from(&b"\x89PNG broken"[..])],
    };
    let mismatched = GenerateRequest {
        instruction: "Compare <image> and <image>.".into(),
        images: vec![image_bytes("rgb_40x30.png")],
    };
    let settings = GenerateSettings { max_new_tokens: 4, ..Default::default() };
    let out = f.model.generate(&[corrupt, good.clone(), mismatched], &settings);
    let alone = f.model.generate(&[good], &settings).pop().unwrap().unwrap();
    assert!(out[0].as_ref().unwrap_err().contains("image 1: cannot decode"), "{:?}", out[0]);
    assert_eq!(out[1].as_ref().unwrap(), &alone);
    assert!(out[2].as_ref().unwrap_err().contains("2 <image> markers"), "{:?}", out[2]);
    let bad = GenerateSettings { prompt_template: "chatml".into(), ..settings };
    assert!(f.model.generate(&[corrupt_free()], &bad)[0].is_err());
}

fn corrupt_free() -> GenerateRequest {
    GenerateRequest { instruction: "hi".into(), images: vec![image_bytes("grey_23x50.png")] }
}

#[test]
fn sampling_is_seeded_and_rowwise() {
    let f = fixture(CHECKPOINTS[0]);
    let reqs = requests(&f.expected["cases"]["vicuna_batch"]);
    let settings = |seed| GenerateSettings {
        max_new_tokens: 8,
        temperature: 1.5,
        top_p: 0.95,
        seed,
        ..Default::default()
    };
    let run = |reqs: &[GenerateRequest], seed| {
        f.model
            .generate_ids(reqs, Template::VicunaV1, &f.model.decode_options(&settings(seed)))
            .into_iter()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    let a = run(&reqs, 3);
    assert_eq!(a, run(&reqs, 3));
    assert_ne!(a, run(&reqs, 4));
    for (r, req) in reqs.iter().enumerate() {
        assert_eq!(run(std::slice::from_ref(req), 3)[0], a[r], "row {r}");
    }
    let greedy = &f.expected["cases"]["vicuna_batch"]["generated"];
    let g = ids(&greedy[0]);
    assert_ne!(a[0], g[..8].to_vec(), "sampling at temperature 1.5 drew the greedy answer");
}

fn copy_checkpoint(name: &str, to: &Path) {
    let from = root().join(name);
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    if !from.join("qformer_tokenizer").is_dir() {
        return;
    }
    std::fs::create_dir_all(to.join("qformer_tokenizer")).unwrap();
    for entry in std::fs::read_dir(from.join("qformer_tokenizer")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("qformer_tokenizer").join(entry.file_name())).unwrap();
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let path = dir.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint(CHECKPOINTS[1], tmp.path());
    edit_config(tmp.path(), |c| c["vision_config"]["num_hidden_layers"] = 4.into());
    let err = VistaModel::load(tmp.path(), "cpu", "f32").err().unwrap();
    assert!(
        err.contains("missing tensor `vision_model.encoder.layers.3.self_attn.qkv.weight` (expected shape [144, 48])"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint(CHECKPOINTS[0], tmp.path());
    edit_config(tmp.path(), |c| c["text_config"]["intermediate_size"] = 72.into());
    let err = VistaModel::load(tmp.path(), "cpu", "f32").err().unwrap();
    assert!(
        err.contains("tensor `language_model.model.layers.0.mlp.gate_proj.weight` has shape [64, 32], expected [72, 32]"),
        "{err}"
    );
}

#[test]
fn devices_and_dtypes_are_checked() {
    assert!(vista::model::parse_device("cpu").is_ok());
    assert!(vista::model::parse_device("tpu:0").is_err());
    if !cfg!(feature = "cuda") {
        let err = vista::model::parse_device("cuda:0").unwrap_err();
        assert!(err.contains("--features cuda"), "{err}");
    }
    assert_eq!(vista::model::parse_dtype("bf16").unwrap(), DType::BF16);
    assert!(vista::model::parse_dtype("int8").is_err());
}

#[test]
fn coordinate_tokens_survive_decoding() {
    let f = fixture(CHECKPOINTS[0]);
    let tok = &f.model.text.tokenizer;
    let want = ["<b_st>", "<bin_0>", "<bin_1000>", "<b_sep>", "<m_st>", "<p_ed>"];
    let ids: Vec<u32> = want.iter().map(|t| tok.token_to_id(t).unwrap()).collect();
    assert_eq!(f.model.decode(&ids).unwrap().replace(' ', ""), want.concat());
}

#[test]
fn cli_entry_point_answers() {
    let dir = root().join(CHECKPOINTS[1]);
    let settings = GenerateSettings { max_new_tokens: 5, ..Default::default() };
    let images = [root().join("images/rgb_40x30.png"), root().join("images/rgba_33x33.png")];
    let text = vista::model::generate_cli(
        &dir,
        "cpu",
        "f32",
        &images,
        "Compare <image> with <image>.",
        &settings,
    )
    .unwrap();
    assert!(!text.is_empty());
    let err =
        vista::model::generate_cli(&dir, "cpu", "f32", &[root().join("nope.png")], "x", &settings)
            .unwrap_err();
    assert!(err.to_string().contains("nope.png"));
}

/// The vista half of scripts/bench_model.sh (ignored in normal runs): greedy generation of
/// exactly VISTA_BENCH_NEW tokens (default 32) for batches of VISTA_BENCH_BATCHES images
/// (default "1,8") on the checkpoint in VISTA_BENCH_MODEL, preprocessing included; prints one
/// JSON line per batch size. Every family: InstructBLIP on the VistaLLM prompt, LLaVA and
/// Qwen3-VL on their chat turns (`model_type` in config.json, as `vista::model::load_model`
/// tells them apart).
#[test]
#[ignore]
fn bench_generate() {
    use vista::model::llava::LlavaModel;
    let dir = PathBuf::from(std::env::var("VISTA_BENCH_MODEL").expect("VISTA_BENCH_MODEL"));
    let device = std::env::var("VISTA_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    let dtype = std::env::var("VISTA_BENCH_DTYPE").unwrap_or_else(|_| "f32".into());
    let new: usize = std::env::var("VISTA_BENCH_NEW").map_or(32, |v| v.parse().unwrap());
    let batches: Vec<usize> = std::env::var("VISTA_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,8".into())
        .split(',')
        .map(|b| b.parse().unwrap())
        .collect();
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let family = config["model_type"].as_str().unwrap_or("instructblip").to_string();
    // Exactly `new` tokens: no stop token (transformers: min_new_tokens = max_new_tokens). The
    // trait's `generate` stops on EOS, so each family's own `generate_ids` runs here.
    let settings = GenerateSettings::default();
    let no_stop =
        |opts: DecodeOptions| DecodeOptions { max_new_tokens: new, stop: Vec::new(), ..opts };
    type GenerateIds = Box<dyn Fn(&[GenerateRequest]) -> Vec<Result<Vec<u32>, String>>>;
    let t0 = std::time::Instant::now();
    let generate_ids: GenerateIds = match family.as_str() {
        "llava" | "llava_next" => {
            let model = LlavaModel::load(&dir, &device, &dtype).unwrap();
            let opts = no_stop(model.text.decode_options(&settings));
            Box::new(move |reqs| model.generate_ids(reqs, Template::Llava, &opts))
        }
        "qwen3_vl" => {
            let model = vista::model::qwen3_vl::Qwen3VlModel::load(&dir, &device, &dtype).unwrap();
            let opts = no_stop(model.text.decode_options(&settings));
            Box::new(move |reqs| model.generate_ids(reqs, Template::Qwen, &opts))
        }
        _ => {
            let model = VistaModel::load(&dir, &device, &dtype).unwrap();
            let opts = no_stop(model.decode_options(&settings));
            Box::new(move |reqs| model.generate_ids(reqs, Template::VicunaV1, &opts))
        }
    };
    let load_s = t0.elapsed().as_secs_f64();
    // LLaVA's and Qwen's images go first (scripts/bench_model.py LLAVA_PROMPT, qwen_prompt).
    let instruction = if family == "instructblip" {
        "Describe this image <image> as simply as possible."
    } else {
        "Describe this image as simply as possible."
    };
    let images: Vec<Arc<[u8]>> =
        (0..8).map(|i| std::fs::read(dir.join(format!("bench_{i}.png"))).unwrap().into()).collect();
    for &b in &batches {
        let reqs: Vec<GenerateRequest> = (0..b)
            .map(|i| GenerateRequest {
                instruction: instruction.into(),
                images: vec![images[i % images.len()].clone()],
            })
            .collect();
        let once = || {
            for r in generate_ids(&reqs) {
                assert_eq!(r.unwrap().len(), new);
            }
        };
        once();
        let reps = 3;
        let t = std::time::Instant::now();
        for _ in 0..reps {
            once();
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "{{\"impl\": \"vista\", \"device\": \"{device}\", \"dtype\": \"{dtype}\", \"batch\": {b}, \"new_tokens\": {new}, \"seconds\": {s:.4}, \"images_per_s\": {:.3}, \"load_seconds\": {load_s:.3}}}",
            b as f64 / s
        );
    }
}

/// Where the time of `bench_generate` goes (the same steps in transformers:
/// `scripts/bench_model.py phases`): the vision encoder on 8 images, the Q-Former, a prefill of
/// 8 x 80 tokens and 20 decoding steps of 8 rows after it (docs/model.md has the command).
#[test]
#[ignore]
fn bench_phases() {
    let dir = PathBuf::from(std::env::var("VISTA_BENCH_MODEL").expect("VISTA_BENCH_MODEL"));
    let model = VistaModel::load(&dir, "cpu", "f32").unwrap();
    let (b, s) = (8, model.preprocess.size);
    // VISTA_BENCH_PHASES=vision,prefill runs only those (e.g. under a profiler).
    let only = std::env::var("VISTA_BENCH_PHASES").ok();
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.split(',').any(|p| p == name));
    let print = |name: &str, ms: f64| {
        println!("{{\"impl\": \"vista\", \"phase\": \"{name}\", \"ms\": {ms:.2}}}");
    };
    let time = |name: &str, reps: usize, f: &mut (dyn FnMut() + Send)| {
        if !wanted(name) {
            return;
        }
        // In candle's thread pool, as generation runs.
        Device::Cpu.with_context(|| {
            f();
            let t = std::time::Instant::now();
            for _ in 0..reps {
                f();
            }
            print(name, t.elapsed().as_secs_f64() * 1e3 / reps as f64);
        });
    };
    let pixels = Tensor::randn(0f32, 1., (b, 3, s, s), &Device::Cpu).unwrap();
    let net = &model.net;
    time("vision", 3, &mut || {
        net.vision.forward(&pixels).unwrap();
    });
    if wanted("qformer") {
        let feats = net.vision.forward(&pixels).unwrap();
        let ids = Tensor::new(&[[5u32; 12]; 8], &Device::Cpu).unwrap();
        let mask = Tensor::ones((b, 12), DType::F32, &Device::Cpu).unwrap();
        time("qformer", 5, &mut || {
            net.query_outputs(&feats, &ids, &mask).unwrap();
        });
    }
    let hidden = model.config.text_config.hidden_size;
    let embeds = Tensor::randn(0f32, 1., (b, 80, hidden), &Device::Cpu).unwrap();
    let positions: Vec<Vec<u32>> = (0..b).map(|_| (0..80).collect()).collect();
    let pads = vec![0; b];
    let prefill = |cache: &mut KvCache| {
        net.llm.forward(&embeds, &positions, &pads, cache, false).unwrap();
    };
    time("prefill", 3, &mut || prefill(&mut KvCache::new(net.llm.layers())));
    // 20 successive steps after the prefill, the cache growing from 80 to 100 positions (the
    // second of two runs).
    if wanted("decode_step") {
        let step = Tensor::randn(0f32, 1., (b, 1, hidden), &Device::Cpu).unwrap();
        let mut decode_ms = 0.0;
        Device::Cpu.with_context(|| {
            for _ in 0..2 {
                let mut cache = KvCache::new(net.llm.layers());
                prefill(&mut cache);
                let t = std::time::Instant::now();
                for p in 80..100u32 {
                    let pos: Vec<Vec<u32>> = (0..b).map(|_| vec![p]).collect();
                    net.llm.forward(&step, &pos, &pads, &mut cache, false).unwrap();
                }
                decode_ms = t.elapsed().as_secs_f64() * 1e3 / 20.0;
            }
        });
        print("decode_step", decode_ms);
    }
}

/// 16-bit grey is scaled (not clipped) to 8 bits; CMYK JPEGs decode to the RGB PIL reads
/// (mean per channel within 2 levels: the JPEG decoders differ slightly).
#[test]
fn other_input_modes_become_rgb() {
    let dir = root().join("modes");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let grey =
        vista::model::preprocess::decode_rgb(&std::fs::read(dir.join("grey16_20x12.png")).unwrap())
            .unwrap();
    assert_eq!(grey.dimensions(), (20, 12));
    assert_eq!(grey.get_pixel(0, 0).0, [0, 0, 0]);
    assert_eq!(grey.get_pixel(19, 11).0, [255, 255, 255]);
    let cmyk =
        vista::model::preprocess::decode_rgb(&std::fs::read(dir.join("cmyk_24x16.jpg")).unwrap())
            .unwrap();
    assert_eq!(cmyk.dimensions(), (24, 16));
    let want = &expected["cmyk_24x16.jpg"]["mean_rgb"];
    for c in 0..3 {
        let mean = cmyk.pixels().map(|p| f64::from(p.0[c])).sum::<f64>() / (24.0 * 16.0);
        let w = want[c].as_f64().unwrap();
        assert!((mean - w).abs() < 2.0, "channel {c}: {mean} vs PIL {w}");
    }
}
