//! Parity of the Qwen3-VL family with transformers' `Qwen3VLForConditionalGeneration` on the
//! tiny random checkpoints made by scripts/make_tiny_qwen3_vl.py: the processor's patches and
//! grids, prompt ids, merged image tokens and DeepStack features, logits of left-padded batches
//! (1e-4), and greedy, stop-token and beam outputs, single and batched (identical tokens).

use super::*;
use vista::model::qwen3_vl::Qwen3VlModel;

pub(crate) const QWEN: [&str; 2] = ["qwen3_vl_tiny_gqa", "qwen3_vl_tiny_mha_tied"];

pub(crate) struct QwenFixture {
    pub(crate) model: Qwen3VlModel,
    pub(crate) tensors: HashMap<String, Tensor>,
    pub(crate) expected: Value,
}

pub(crate) fn qwen(name: &str) -> QwenFixture {
    let dir = root().join(name);
    let model = Qwen3VlModel::load(&dir, "cpu", "f32").unwrap_or_else(|e| panic!("{name}: {e}"));
    let tensors =
        candle_core::safetensors::load(dir.join("expected/tensors.safetensors"), &Device::Cpu)
            .unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected/expected.json")).unwrap())
            .unwrap();
    QwenFixture { model, tensors, expected }
}

fn cases(f: &QwenFixture) -> impl Iterator<Item = (&String, &Value)> {
    f.expected["cases"].as_object().unwrap().iter()
}

#[test]
fn qwen_patches_match_the_image_processor() {
    for name in QWEN {
        let f = qwen(name);
        for image in f.expected["images"].as_array().unwrap() {
            let image = image.as_str().unwrap();
            let p = f.model.patches(&image_bytes(image), u64::MAX).unwrap();
            let grid = f.tensors[&format!("image_grid_thw.{image}")].to_vec1::<f32>().unwrap();
            assert_eq!(grid, vec![1.0, p.grid_h as f32, p.grid_w as f32], "{name} {image}");
            // The processor's [patches, channels * 2 frames * patch * patch]: one frame twice.
            let want = &f.tensors[&format!("pixel_values.{image}")];
            let (n, values) = want.dims2().unwrap();
            let frames = want.reshape((n, 3, 2, values / 6)).unwrap();
            let first = frames.narrow(2, 0, 1).unwrap();
            assert_eq!(max_abs_diff(&first, &frames.narrow(2, 1, 1).unwrap()), 0.0);
            let ours = Tensor::from_vec(p.data, first.dims(), &Device::Cpu).unwrap();
            let d = max_abs_diff(&ours, &first);
            assert!(d < 1e-5, "{name} {image}: max diff {d}");
        }
    }
}

#[test]
fn qwen_prompts_tokenize_as_the_chat_template() {
    for name in QWEN {
        let f = qwen(name);
        let image_token = f.model.config.image_token_id;
        let m2 = f.model.config.vision_config.spatial_merge_size.pow(2);
        for (key, case) in cases(&f) {
            for (r, row) in case["rows"].as_array().unwrap().iter().enumerate() {
                let names: Vec<&str> =
                    row["images"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
                let instruction = row["instruction"].as_str().unwrap();
                for template in [Template::Qwen, Template::VicunaV1] {
                    let pieces = f.model.prompt(template, instruction, names.len()).unwrap();
                    let mut flat = Vec::new();
                    for piece in pieces {
                        match piece {
                            Piece::Tokens(t) => flat.extend(t),
                            Piece::Image(k) => {
                                let p = f.model.patches(&image_bytes(names[k]), u64::MAX).unwrap();
                                flat.extend(std::iter::repeat_n(
                                    image_token,
                                    p.grid_h * p.grid_w / m2,
                                ));
                            }
                        }
                    }
                    assert_eq!(flat, ids(&case["input_ids"][r]), "{name} {key} row {r}");
                }
            }
        }
    }
}

#[test]
fn qwen_forward_pass_matches_transformers() {
    for name in QWEN {
        let f = qwen(name);
        for (key, case) in cases(&f) {
            let Some(want) = f.tensors.get(&format!("{key}.logits")) else {
                continue;
            };
            let reqs = requests(case);
            let patches: Vec<_> = reqs
                .iter()
                .flat_map(|r| r.images.iter().map(|b| f.model.patches(b, u64::MAX).unwrap()))
                .collect();
            let (tokens, stacks) =
                f.model.vision.forward(&patches, &Device::Cpu, DType::F32).unwrap();
            let d = max_abs_diff(&tokens, &f.tensors[&format!("{key}.image_tokens")]);
            assert!(d < 1e-4, "{name} {key} image tokens: {d}");
            for (i, s) in stacks.iter().enumerate() {
                let d = max_abs_diff(s, &f.tensors[&format!("{key}.deepstack.{i}")]);
                assert!(d < 1e-4, "{name} {key} deepstack {i}: {d}");
            }
            let (logits, pads) = f.model.prompt_logits(&reqs, Template::Qwen).unwrap();
            assert_eq!(logits.dims(), want.dims(), "{name} {key}");
            let width = logits.dim(1).unwrap();
            for (r, &p) in pads.iter().enumerate() {
                let ours = logits.get(r).unwrap().narrow(0, p, width - p).unwrap();
                let theirs = want.get(r).unwrap().narrow(0, p, width - p).unwrap();
                let d = max_abs_diff(&ours, &theirs);
                assert!(d < 1e-4, "{name} {key} row {r} logits: {d}");
            }
        }
    }
}

#[test]
fn qwen_generation_matches_transformers_batched_and_single() {
    for name in QWEN {
        let f = qwen(name);
        let base = f.model.text.decode_options(&GenerateSettings::default());
        assert_generation_matches(name, &f.expected, &base, |_, reqs, opts| {
            f.model.generate_ids(reqs, Template::Qwen, opts)
        });
    }
}

/// The loader picks the family from config.json; a row that cannot run fails alone.
#[test]
fn qwen_loads_by_model_type_and_bad_rows_fail_alone() {
    let f = qwen(QWEN[0]);
    assert_bad_rows_fail_alone(QWEN[0], "qwen3_vl", &f.expected, |ids| {
        f.model.text.decode(ids).unwrap()
    });
}

/// `vista generate` on a Qwen3-VL checkpoint: two images by their markers, the recorded answer.
#[test]
fn qwen_cli_entry_point_answers() {
    let f = qwen(QWEN[1]);
    assert_cli_answers(QWEN[1], &f.expected, |ids| f.model.text.decode(ids).unwrap());
}

/// Answers read as transformers decodes them (`skip_special_tokens=True`): every recorded text,
/// and Qwen's control tokens, which a model may well generate, never reach an answer.
#[test]
fn qwen_answers_decode_as_transformers() {
    for name in QWEN {
        let f = qwen(name);
        assert_texts_match(name, &f.expected, |ids| f.model.text.decode(ids).unwrap());
        let tok = &f.model.text.tokenizer;
        let plain = ids(&f.expected["cases"]["single"]["generated"][0]);
        let mut mixed = Vec::new();
        for (t, control) in plain.iter().zip(["<|vision_end|>", "<|image_pad|>", "<|im_start|>"]) {
            mixed.extend([tok.token_to_id(control).unwrap(), *t]);
        }
        mixed.extend(&plain[3..]);
        assert_eq!(f.model.text.decode(&mixed).unwrap(), f.model.text.decode(&plain).unwrap());
    }
}
