//! Parity of the LLaVA family with transformers' `LlavaForConditionalGeneration` on the tiny
//! random checkpoints made by scripts/make_tiny_llava.py: CLIP preprocessing, projected image
//! tokens and logits (1e-4), greedy, stop-token and beam outputs, single and batched with left
//! padding (identical tokens), and answers through `vista_generate` in SQL.

use super::*;
use vista::model::llava::LlavaModel;

pub(crate) const LLAVA: [&str; 2] = ["llava_tiny_default_gqa", "llava_tiny_full_mha"];

pub(crate) struct LlavaFixture {
    pub(crate) model: LlavaModel,
    pub(crate) tensors: HashMap<String, Tensor>,
    pub(crate) expected: Value,
}

pub(crate) fn llava(name: &str) -> LlavaFixture {
    let dir = root().join(name);
    let model = LlavaModel::load(&dir, "cpu", "f32").unwrap_or_else(|e| panic!("{name}: {e}"));
    let tensors =
        candle_core::safetensors::load(dir.join("expected/tensors.safetensors"), &Device::Cpu)
            .unwrap();
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected/expected.json")).unwrap())
            .unwrap();
    LlavaFixture { model, tensors, expected }
}

fn cases(f: &LlavaFixture) -> impl Iterator<Item = (&String, &Value)> {
    f.expected["cases"].as_object().unwrap().iter()
}

#[test]
fn llava_preprocessing_is_clips_centre_crop() {
    for name in LLAVA {
        let f = llava(name);
        assert!(f.model.preprocess.center_crop);
        let s = f.model.preprocess.size;
        for image in f.expected["images"].as_array().unwrap() {
            let image = image.as_str().unwrap();
            let ours = f.model.preprocess.run(&image_bytes(image), false, u64::MAX).unwrap();
            let ours = Tensor::from_vec(ours, (3, s, s), &Device::Cpu).unwrap();
            let d = max_abs_diff(&ours, &f.tensors[&format!("pixel_values.{image}")]);
            assert!(d < 1e-5, "{name} {image}: max diff {d}");
        }
    }
}

#[test]
fn llava_prompts_tokenize_as_the_chat_template() {
    for name in LLAVA {
        let f = llava(name);
        let image_token = f.expected["image_token_id"].as_u64().unwrap() as u32;
        let per_image = f.expected["image_tokens_per_image"].as_u64().unwrap() as usize;
        assert_eq!(f.model.config.tokens_per_image(), per_image);
        for (key, case) in cases(&f) {
            for (r, row) in case["rows"].as_array().unwrap().iter().enumerate() {
                let n = row["images"].as_array().unwrap().len();
                let instruction = row["instruction"].as_str().unwrap();
                // VistaLLM's default template name means LLaVA's own chat turn here.
                for template in [Template::Llava, Template::VicunaV1] {
                    let prompt = f.model.prompt(template, instruction, n).unwrap();
                    assert_eq!(
                        prompt.flat_ids(per_image, image_token),
                        ids(&case["input_ids"][r]),
                        "{name} {key} row {r}"
                    );
                }
            }
        }
    }
}

#[test]
fn llava_forward_pass_matches_transformers() {
    for name in LLAVA {
        let f = llava(name);
        let m = &f.model;
        for (key, case) in cases(&f) {
            let Some(want_logits) = f.tensors.get(&format!("{key}.logits")) else {
                continue;
            };
            let mut pixels = Vec::new();
            let mut prompts = Vec::new();
            for row in case["rows"].as_array().unwrap() {
                let names = row["images"].as_array().unwrap();
                for n in names {
                    pixels
                        .push(f.tensors[&format!("pixel_values.{}", n.as_str().unwrap())].clone());
                }
                let instruction = row["instruction"].as_str().unwrap();
                prompts.push(m.prompt(Template::Llava, instruction, names.len()).unwrap());
            }
            let tokens = m.net.image_tokens(&Tensor::stack(&pixels, 0).unwrap()).unwrap();
            let d = max_abs_diff(&tokens, &f.tensors[&format!("{key}.image_tokens")]);
            assert!(d < 1e-4, "{name} {key} image tokens: {d}");
            let rows = llava_rows(m, &prompts, &tokens);
            assert_logits(&m.net.llm, &rows, want_logits, &format!("{name} {key}"));
        }
    }
}

/// Each prompt's embeddings, its images' tokens taken in order from `tokens` [images, T, hidden].
pub(crate) fn llava_rows(m: &LlavaModel, prompts: &[Prompt], tokens: &Tensor) -> Vec<Tensor> {
    let mut first = 0;
    prompts
        .iter()
        .map(|p| {
            let rows = vista::model::embed_pieces(&m.net.llm, &m.device, &p.pieces, |k| {
                tokens.get(first + k)
            })
            .unwrap();
            first += p.pieces.iter().filter(|x| matches!(x, Piece::Image(_))).count();
            rows
        })
        .collect()
}

#[test]
fn llava_generation_matches_transformers_batched_and_single() {
    for name in LLAVA {
        let f = llava(name);
        let base = f.model.text.decode_options(&GenerateSettings::default());
        assert_generation_matches(name, &f.expected, &base, |_, reqs, opts| {
            f.model.generate_ids(reqs, Template::Llava, opts)
        });
    }
}

/// The loader picks the family from config.json; a row that cannot run fails alone.
#[test]
fn llava_loads_by_model_type_and_bad_rows_fail_alone() {
    let f = llava(LLAVA[0]);
    assert_bad_rows_fail_alone(LLAVA[0], "llava", &f.expected, |ids| {
        f.model.text.decode(ids).unwrap()
    });
}

#[test]
fn unknown_families_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint(LLAVA[1], tmp.path());
    edit_config(tmp.path(), |c| c["model_type"] = "qwen9_vl".into());
    let err = vista::model::load_model(tmp.path(), "cpu", "f32").err().unwrap();
    assert!(
        err.ends_with(
            "model_type `qwen9_vl` is not supported (instructblip, llava, llava_next, qwen3_vl)"
        ),
        "{err}"
    );
    edit_config(tmp.path(), |c| {
        c["model_type"] = "llava".into();
        c["vision_config"]["hidden_act"] = "gelu".into();
    });
    let err = vista::model::load_model(tmp.path(), "cpu", "f32").err().unwrap();
    assert_eq!(err, "config.json: vision_config.hidden_act `gelu` is not supported (quick_gelu)");
}

/// `vista generate` on a LLaVA checkpoint: two images by their markers, the recorded answer.
#[test]
fn llava_cli_entry_point_answers() {
    let f = llava(LLAVA[1]);
    assert_cli_answers(LLAVA[1], &f.expected, |ids| f.model.text.decode(ids).unwrap());
}

/// Answers read as transformers decodes them (`skip_special_tokens=True`): every recorded text,
/// and the `<image>` token never reaches an answer.
#[test]
fn llava_answers_decode_as_transformers() {
    for name in LLAVA {
        let f = llava(name);
        assert_texts_match(name, &f.expected, |ids| f.model.text.decode(ids).unwrap());
        let plain = ids(&f.expected["cases"]["single"]["generated"][0]);
        let image = f.model.text.tokenizer.token_to_id("<image>").unwrap();
        let mixed: Vec<u32> = plain.iter().flat_map(|&t| [image, t]).collect();
        assert_eq!(f.model.text.decode(&mixed).unwrap(), f.model.text.decode(&plain).unwrap());
    }
}
