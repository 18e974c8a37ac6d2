//! Parity of the LLaVA-NeXT family with transformers' `LlavaNextForConditionalGeneration` on the
//! tiny random checkpoints made by scripts/make_tiny_llava_next.py: the processor's tiles and
//! image sizes (1e-5), the token count of every image as the processor expands it, packed image
//! features and left-padded logits (1e-4), greedy, stop-token and beam outputs, single and
//! batched (identical tokens), and answers through the loader and `vista generate`.

use super::llava::{llava, LlavaFixture};
use super::*;
use vista::model::llava::{ImageSlot, LlavaModel};

pub(crate) const NEXT: [&str; 2] = ["llava_next_tiny_a", "llava_next_tiny_b"];

fn cases(f: &LlavaFixture) -> impl Iterator<Item = (&String, &Value)> {
    f.expected["cases"].as_object().unwrap().iter()
}

/// The recorded (height, width) and token count of image `name`.
fn recorded(f: &LlavaFixture, name: &str) -> ((usize, usize), usize) {
    let size = ids(&f.expected["image_sizes"][name]);
    let count = f.expected["image_tokens"][name].as_u64().unwrap() as usize;
    ((size[0] as usize, size[1] as usize), count)
}

#[test]
fn llava_next_tiles_match_the_processor() {
    for name in NEXT {
        let f = llava(name);
        assert!(f.model.anyres.is_some(), "{name}");
        let s = f.model.preprocess.size;
        for image in f.expected["images"].as_array().unwrap() {
            let image = image.as_str().unwrap();
            let ours = f.model.preprocess_image(&image_bytes(image), u64::MAX).unwrap();
            let ((h, w), count) = recorded(&f, image);
            assert_eq!((ours.height, ours.width), (h, w), "{name} {image}");
            let tiles = ours.tiles;
            assert_eq!(f.model.image_token_count(h, w), count, "{name} {image}");
            let n = tiles.len();
            let ours = Tensor::from_vec(tiles.concat(), (n, 3, s, s), &Device::Cpu).unwrap();
            let d = max_abs_diff(&ours, &f.tensors[&format!("pixel_values.{image}")]);
            assert!(d < 1e-5, "{name} {image}: max diff {d}");
        }
    }
}

/// A prompt's ids with each image's marker repeated as often as that image has tokens.
fn expanded_ids(prompt: &Prompt, counts: &[usize], marker: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for piece in &prompt.pieces {
        match piece {
            Piece::Tokens(t) => out.extend_from_slice(t),
            Piece::Image(k) => out.extend(std::iter::repeat_n(marker, counts[*k])),
        }
    }
    out
}

#[test]
fn llava_next_prompts_expand_as_the_processor() {
    for name in NEXT {
        let f = llava(name);
        let marker = f.expected["image_token_id"].as_u64().unwrap() as u32;
        for (key, case) in cases(&f) {
            for (r, row) in case["rows"].as_array().unwrap().iter().enumerate() {
                let names = row["images"].as_array().unwrap();
                let counts: Vec<usize> =
                    names.iter().map(|n| recorded(&f, n.as_str().unwrap()).1).collect();
                let instruction = row["instruction"].as_str().unwrap();
                let prompt = f.model.prompt(Template::Llava, instruction, names.len()).unwrap();
                let want = ids(&case["input_ids"][r]);
                assert_eq!(expanded_ids(&prompt, &counts, marker), want, "{name} {key}");
                let sizes: Vec<(usize, usize)> =
                    names.iter().map(|n| recorded(&f, n.as_str().unwrap()).0).collect();
                assert_eq!(f.model.prompt_len(&prompt, &slots(&sizes, 1)), want.len());
            }
        }
    }
}

/// Slots for images of `sizes` with `tiles` tiles each, laid out one after the other.
fn slots(sizes: &[(usize, usize)], tiles: usize) -> Vec<ImageSlot> {
    sizes
        .iter()
        .enumerate()
        .map(|(k, &(height, width))| ImageSlot { first: k * tiles, tiles, height, width })
        .collect()
}

/// Each recorded batch's images from the recorded tiles: packed features and the left-padded
/// batch's logits.
/// A recorded case through `m` (any device and dtype) from the recorded tiles: the packed image
/// features of its images in order [tokens, hidden], and its rows' decoder inputs.
pub(crate) fn next_inputs(m: &LlavaModel, f: &LlavaFixture, case: &Value) -> (Tensor, Vec<Tensor>) {
    let mut pixels = Vec::new();
    let mut prompts = Vec::new();
    let mut row_slots = Vec::new();
    let mut first = 0;
    for row in case["rows"].as_array().unwrap() {
        let names = row["images"].as_array().unwrap();
        let mut row_slot = Vec::new();
        for n in names {
            let n = n.as_str().unwrap();
            let tiles = &f.tensors[&format!("pixel_values.{n}")];
            let ((height, width), _) = recorded(f, n);
            let count = tiles.dim(0).unwrap();
            row_slot.push(ImageSlot { first, tiles: count, height, width });
            first += count;
            pixels.push(tiles.to_device(&m.device).unwrap().to_dtype(m.dtype).unwrap());
        }
        let instruction = row["instruction"].as_str().unwrap();
        prompts.push(m.prompt(Template::Llava, instruction, names.len()).unwrap());
        row_slots.push(row_slot);
    }
    let tokens = m.net.image_tokens(&Tensor::cat(&pixels, 0).unwrap()).unwrap();
    let packed: Vec<Tensor> =
        row_slots.iter().flatten().map(|slot| m.image_embeds(&tokens, slot).unwrap()).collect();
    let rows = prompts
        .iter()
        .zip(&row_slots)
        .map(|(p, s)| {
            vista::model::embed_pieces(&m.net.llm, &m.device, &p.pieces, |k| {
                m.image_embeds(&tokens, &s[k])
            })
            .unwrap()
        })
        .collect();
    (Tensor::cat(&packed, 0).unwrap(), rows)
}

#[test]
fn llava_next_forward_pass_matches_transformers() {
    for name in NEXT {
        let f = llava(name);
        for (key, case) in cases(&f) {
            let Some(want_logits) = f.tensors.get(&format!("{key}.logits")) else {
                continue;
            };
            let (packed, rows) = next_inputs(&f.model, &f, case);
            let d = max_abs_diff(&packed, &f.tensors[&format!("{key}.image_features")]);
            assert!(d < 1e-4, "{name} {key} image features: {d}");
            assert_logits(&f.model.net.llm, &rows, want_logits, &format!("{name} {key}"));
        }
    }
}

#[test]
fn llava_next_generation_matches_transformers_batched_and_single() {
    for name in NEXT {
        let f = llava(name);
        let base = f.model.text.decode_options(&GenerateSettings::default());
        assert_generation_matches(name, &f.expected, &base, |_, reqs, opts| {
            f.model.generate_ids(reqs, Template::Llava, opts)
        });
    }
}

/// The loader picks the family from config.json; a corrupt image, a marker mismatch or an image
/// over `max_image_pixels` fails its own row only.
#[test]
fn llava_next_loads_by_model_type_and_bad_rows_fail_alone() {
    let f = llava(NEXT[0]);
    let (model, case, want) =
        assert_bad_rows_fail_alone(NEXT[0], "llava_next", &f.expected, |ids| {
            f.model.text.decode(ids).unwrap()
        });
    // 40 x 30 = 1200 pixels is over the limit, the other two images are under it.
    let small =
        GenerateSettings { max_new_tokens: 10, max_image_pixels: 1199, ..Default::default() };
    let out = model.generate_detailed(&requests(case), &small);
    let err = out[0].as_ref().unwrap_err();
    assert!(err.starts_with("image 1: ") && !err.contains('\n'), "{err}");
    let texts: Vec<&str> = [1, 2].iter().map(|&i| out[i].as_ref().unwrap().text.as_str()).collect();
    assert_eq!(texts, want[1..]);
}

#[test]
fn llava_next_processor_must_tile_as_the_config_packs() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint(NEXT[0], tmp.path());
    edit_config(tmp.path(), |c| c["image_grid_pinpoints"] = serde_json::json!([[28, 56]]));
    let err = vista::model::load_model(tmp.path(), "cpu", "f32").err().unwrap();
    assert!(err.contains("image_grid_pinpoints [[28, 56], [56, 56]] differ"), "{err}");
    edit_config(tmp.path(), |c| c["image_grid_pinpoints"] = serde_json::json!([[28, 50]]));
    let err = vista::model::load_model(tmp.path(), "cpu", "f32").err().unwrap();
    assert!(err.contains("entry [28, 50] is not a grid of 28 px tiles"), "{err}");
}

/// `vista generate` on a LLaVA-NeXT checkpoint: two images by their markers, the recorded answer.
#[test]
fn llava_next_cli_entry_point_answers() {
    for name in NEXT {
        let f = llava(name);
        assert_cli_answers(name, &f.expected, |ids| f.model.text.decode(ids).unwrap());
    }
}

#[test]
fn llava_next_answers_decode_as_transformers() {
    for name in NEXT {
        let f = llava(name);
        assert_texts_match(name, &f.expected, |ids| f.model.text.decode(ids).unwrap());
    }
}
