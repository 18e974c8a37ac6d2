#!/usr/bin/env python3
"""Builds tiny random-weight LLaVA-NeXT checkpoints (llava-hf layout) and records what
transformers does with them, for the parity tests in tests/model/llava_next.rs.

Run by hand (CI never runs Python):

    pip install torch transformers tokenizers safetensors pillow numpy
    python3 scripts/make_tiny_llava_next.py

Writes tests/fixtures/model/<name>/ (as `LlavaNextForConditionalGeneration.save_pretrained` +
`LlavaNextProcessor.save_pretrained` write it) and <name>/expected/:
  tensors.safetensors  pixel_values per image (base image and tiles), and for the recorded
                       batches the packed image features of every image in order and the logits
  expected.json        image sizes and token counts per image, token ids of every prompt as the
                       processor expands them, greedy / stop-token / beam outputs, single and
                       batched with left padding
Tokenizer, random init, images and cases are those of make_tiny_llava.py / make_tiny_checkpoints.py.
"""

import os
import shutil
import sys

import torch
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                          LlavaNextImageProcessorPil, LlavaNextProcessor)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_checkpoints import ROOT, chat_case, chat_cases, cut_at_stop, left_pad, llama_tokenizer, make_images, randomize, save_expected  # noqa: E402,E501
from make_tiny_llava import llava_prompt  # noqa: E402


def build(name, seed, vision, text, feature_layer, pinpoints):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(seed)

    tok = llama_tokenizer(text.pop("bpe_vocab"), coords=False)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    text_cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id, hidden_act="silu", **text)
    vision_cfg = CLIPVisionConfig(hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16, **vision)
    size = vision["image_size"]
    cfg = LlavaNextConfig(
        vision_config=vision_cfg.to_dict(),
        text_config=text_cfg.to_dict(),
        image_token_index=image_token_id,
        vision_feature_layer=feature_layer,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=pinpoints,
        image_seq_length=(size // vision["patch_size"]) ** 2,
        tie_word_embeddings=text.get("tie_word_embeddings", False),
    )
    model = LlavaNextForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    model.config._attn_implementation = "eager"

    improc = LlavaNextImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                        image_grid_pinpoints=pinpoints)
    processor = LlavaNextProcessor(image_processor=improc, tokenizer=tok, patch_size=vision["patch_size"],
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1)
    model.save_pretrained(out)
    processor.save_pretrained(out)

    images = make_images(os.path.join(ROOT, "images"))
    img_names = sorted(images)
    pre = {n: improc(images[n], return_tensors="pt") for n in img_names}
    pix = {n: pre[n]["pixel_values"][0] for n in img_names}
    sizes = {n: pre[n]["image_sizes"][0].tolist() for n in img_names}
    counts = {n: processor(text="<image>", images=images[n])["input_ids"][0].count(image_token_id)
              for n in img_names}
    tensors = {f"pixel_values.{n}": pix[n].contiguous() for n in img_names}
    cases = {}

    def run_case(key, rows, extra_eos=None, beams=1, max_new=10, min_new=0, record_tensors=False):
        """rows: list of (instruction, [image names]); one left-padded batch."""
        ids_rows, names = [], []
        for instr, row_names in rows:
            text = llava_prompt(instr, len(row_names))
            ids = processor(text=text, images=[images[n] for n in row_names] or None)["input_ids"][0]
            assert ids.count(image_token_id) == sum(counts[n] for n in row_names)
            ids_rows.append(ids)
            names.extend(row_names)
        input_ids, attn, width = left_pad(ids_rows, tok.pad_token_id)
        most = max(pix[n].shape[0] for n in names)
        pixel_values = torch.stack([torch.cat([pix[n], pix[n].new_zeros(most - pix[n].shape[0], *pix[n].shape[1:])])
                                    for n in names])
        image_sizes = torch.tensor([sizes[n] for n in names])
        inputs = dict(pixel_values=pixel_values, image_sizes=image_sizes, input_ids=input_ids, attention_mask=attn)
        eos = [tok.eos_token_id] + (extra_eos or [])
        with torch.no_grad():
            out = model.generate(**inputs, eos_token_id=eos, pad_token_id=tok.pad_token_id, do_sample=False,
                                 num_beams=beams, max_new_tokens=max_new, min_new_tokens=min_new)
            if record_tensors:
                feats = model.get_image_features(pixel_values=pixel_values, image_sizes=image_sizes).pooler_output
                tensors[f"{key}.image_features"] = torch.cat(list(feats)).contiguous()
                tensors[f"{key}.logits"] = model(**inputs).logits.contiguous()
        gen = cut_at_stop(out[:, width:].tolist(), eos)
        cases[key] = chat_case("llava", rows, ids_rows, eos, beams, max_new, min_new, gen, tok)
        return gen

    chat_cases(run_case, img_names)

    save_expected(name, os.path.join(out, "expected"), tensors, {
        "image_token_id": image_token_id,
        "image_sizes": sizes,
        "image_tokens": counts,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "images": img_names,
        "cases": cases,
    })


def main():
    torch.set_num_threads(2)
    # 28 px tiles of 7 px patches in a 1x2 or 2x2 grid; the second-to-last layer, grouped-query
    # attention. The 2x2 grid's feature map loses padding rows of the 40x30 image and padding
    # columns of the 23x50 one.
    build(
        "llava_next_tiny_a",
        seed=5,
        vision=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
                    image_size=28, patch_size=7),
        text=dict(bpe_vocab=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  rms_norm_eps=1e-5, tie_word_embeddings=False),
        feature_layer=-2,
        pinpoints=[[28, 56], [56, 56]],
    )
    # 24 px tiles of 6 px patches, 3x1 for the 23x50 image; the first and the last layers
    # concatenated, multi-head attention, tied embeddings.
    build(
        "llava_next_tiny_b",
        seed=8,
        vision=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                    image_size=24, patch_size=6),
        text=dict(bpe_vocab=350, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                  rms_norm_eps=1e-6, tie_word_embeddings=True),
        feature_layer=[1, -1],
        pinpoints=[[24, 72], [72, 24], [48, 48], [24, 48], [48, 24]],
    )


if __name__ == "__main__":
    sys.exit(main())
