#!/usr/bin/env python3
"""Builds tiny random-weight Qwen3-VL checkpoints and records what transformers does with them,
for the parity tests in tests/model/qwen3_vl.rs.

Run by hand (CI never runs Python):

    pip install torch transformers tokenizers safetensors pillow numpy
    python3 scripts/make_tiny_qwen3_vl.py

Writes tests/fixtures/model/<name>/ (`Qwen3VLForConditionalGeneration.save_pretrained`, the
tokenizer and the image processor's preprocessor_config.json) and <name>/expected/:
  tensors.safetensors  pixel_values and image_grid_thw per image; for the recorded batches the
                       merged image features, the DeepStack features, the 3-D position ids and the
                       logits
  expected.json        token ids of every prompt, greedy / stop-token / beam outputs, single and
                       batched with left padding
The input images are those of make_tiny_checkpoints.py.
"""

import os
import shutil
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_checkpoints import CORPUS, ROOT, chat_case, chat_cases, cut_at_stop, left_pad, make_images, randomize, save_expected  # noqa: E402,E501

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]


def qwen_tokenizer(vocab_size):
    """A Qwen2-style byte-level BPE tokenizer (no BOS), with Qwen's special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.padding_side = "left"
    return fast


def qwen_prompt(instruction, n_images):
    """Mirror of src/model/prompt.rs (`qwen`): Qwen3-VL's chat template for one user turn; each
    image is `<|vision_start|><|image_pad|><|vision_end|>`, those without a marker first."""
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    if instruction.count("<image>") == 0:
        instruction = image * n_images + instruction
    else:
        instruction = instruction.replace("<image>", image)
    return f"<|im_start|>user\n{instruction}<|im_end|>\n<|im_start|>assistant\n"


def build(name, seed, vision, text, min_pixels, max_pixels):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(seed)

    tok = qwen_tokenizer(text.pop("bpe_vocab"))
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tok), pad_token_id=ids["<|endoftext|>"], **text),
        vision_config=dict(hidden_act="gelu_pytorch_tanh", in_channels=3, temporal_patch_size=2, **vision),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=text.get("tie_word_embeddings", False),
    )
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    model.config._attn_implementation = "eager"
    improc = Qwen2VLImageProcessorPil(
        patch_size=vision["patch_size"],
        temporal_patch_size=2,
        merge_size=vision["spatial_merge_size"],
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    improc.save_pretrained(out)

    images = make_images(os.path.join(ROOT, "images"))
    img_names = sorted(images)
    proc = {n: improc(images[n], return_tensors="pt") for n in img_names}
    tensors = {}
    for n in img_names:
        tensors[f"pixel_values.{n}"] = proc[n]["pixel_values"].contiguous()
        tensors[f"image_grid_thw.{n}"] = proc[n]["image_grid_thw"][0].float()
    merge2 = vision["spatial_merge_size"] ** 2
    cases = {}

    def run_case(key, rows, extra_eos=None, beams=1, max_new=10, min_new=0, record_tensors=False):
        ids_rows, names_all = [], []
        for instr, names in rows:
            prompt_ids = tok(qwen_prompt(instr, len(names)))["input_ids"]
            expanded, k = [], 0
            for t in prompt_ids:
                if t == ids["<|image_pad|>"]:
                    thw = proc[names[k]]["image_grid_thw"][0]
                    expanded.extend([t] * int(thw.prod() // merge2))
                    k += 1
                else:
                    expanded.append(t)
            ids_rows.append(expanded)
            names_all.extend(names)
        pad = ids["<|endoftext|>"]
        input_ids, attn, width = left_pad(ids_rows, pad)
        pixel_values = torch.cat([proc[n]["pixel_values"] for n in names_all], 0)
        grid = torch.cat([proc[n]["image_grid_thw"] for n in names_all], 0)
        mm = (input_ids == ids["<|image_pad|>"]).int()
        eos = [ids["<|im_end|>"]] + (extra_eos or [])
        with torch.no_grad():
            gen_out = model.generate(
                input_ids=input_ids, attention_mask=attn, pixel_values=pixel_values, image_grid_thw=grid,
                mm_token_type_ids=mm, eos_token_id=eos, pad_token_id=pad, do_sample=False, num_beams=beams,
                max_new_tokens=max_new, min_new_tokens=min_new,
            )
            new = gen_out[:, width:].tolist()
            if record_tensors:
                feats = model.model.get_image_features(pixel_values=pixel_values, image_grid_thw=grid)
                tensors[f"{key}.image_tokens"] = torch.cat(list(feats.pooler_output), 0).contiguous()
                for i, d in enumerate(feats.deepstack_features):
                    d = torch.cat(list(d), 0) if isinstance(d, (list, tuple)) else d
                    tensors[f"{key}.deepstack.{i}"] = d.contiguous()
                pos, deltas = model.model.get_rope_index(input_ids, mm, image_grid_thw=grid, attention_mask=attn)
                tensors[f"{key}.position_ids"] = pos.float().contiguous()
                tensors[f"{key}.rope_deltas"] = deltas.float().contiguous()
                logits = model(input_ids=input_ids, attention_mask=attn, pixel_values=pixel_values,
                               image_grid_thw=grid, mm_token_type_ids=mm).logits
                tensors[f"{key}.logits"] = logits.contiguous()
        gen = cut_at_stop(new, eos)
        cases[key] = chat_case("qwen", rows, ids_rows, eos, beams, max_new, min_new, gen, tok)
        return gen

    chat_cases(run_case, img_names)

    save_expected(name, os.path.join(out, "expected"), tensors, {
        "special_tokens": ids,
        "images": img_names,
        "cases": cases,
    })


def main():
    torch.set_num_threads(2)
    # DeepStack from the first two of three vision layers, grouped-query attention, 8 px patches
    # merged 2x2 (a 16 px grid), images resized to 16 px multiples within 16x16..64x64 pixels.
    build(
        "qwen3_vl_tiny_gqa",
        seed=5,
        vision=dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=8,
                    spatial_merge_size=2, out_hidden_size=48, num_position_embeddings=16,
                    deepstack_visual_indexes=[0, 1]),
        text=dict(bpe_vocab=500, hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=1024,
                  rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2],
                                   "mrope_interleaved": True}),
        min_pixels=16 * 16,
        max_pixels=64 * 64,
    )
    # One DeepStack layer, multi-head attention, tied embeddings, a 3x3 learned position grid
    # resampled to every image's grid, a larger pixel budget (more image tokens).
    build(
        "qwen3_vl_tiny_mha_tied",
        seed=6,
        vision=dict(depth=2, hidden_size=24, intermediate_size=48, num_heads=2, patch_size=4,
                    spatial_merge_size=2, out_hidden_size=32, num_position_embeddings=9,
                    deepstack_visual_indexes=[1]),
        text=dict(bpe_vocab=450, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, head_dim=8, max_position_embeddings=1024,
                  rms_norm_eps=1e-6, tie_word_embeddings=True,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1],
                                   "mrope_interleaved": True}),
        min_pixels=8 * 8,
        max_pixels=40 * 40,
    )


if __name__ == "__main__":
    sys.exit(main())
