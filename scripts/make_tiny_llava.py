#!/usr/bin/env python3
"""Builds tiny random-weight LLaVA-1.5 checkpoints (llava-hf layout) and records what transformers
does with them, for the parity tests in tests/llava.rs.

Run by hand (CI never runs Python):

    pip install torch transformers tokenizers safetensors pillow numpy
    python3 scripts/make_tiny_llava.py

Writes tests/fixtures/model/<name>/ (a checkpoint directory exactly as
`LlavaForConditionalGeneration.save_pretrained` + `LlavaProcessor.save_pretrained` write it) and
tests/fixtures/model/<name>/expected/:
  tensors.safetensors  pixel_values per image, and for the recorded batches the selected vision
                       features, the projected image tokens and the logits
  expected.json        token ids of every prompt, greedy / stop-token / beam outputs, single and
                       batched with left padding
The tokenizer, the random init and the input images are those of make_tiny_checkpoints.py.
"""

import os
import shutil
import sys

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tiny_checkpoints import ROOT, chat_case, chat_cases, cut_at_stop, left_pad, llama_tokenizer, make_images, randomize, save_expected  # noqa: E402,E501

try:  # transformers 5 names the PIL backend explicitly; 4.x has only the PIL one.
    from transformers import CLIPImageProcessorPil as ClipProcessor
except ImportError:
    from transformers import CLIPImageProcessor as ClipProcessor


def llava_prompt(instruction, n_images):
    """Mirror of src/model/prompt.rs (`llava`): llava-hf's chat template for one user turn, images
    without a marker first, each followed by a newline."""
    if instruction.count("<image>") == 0:
        instruction = "<image>\n" * n_images + instruction
    return f"USER: {instruction} ASSISTANT:"


def build(name, seed, vision, text, feature_layer, strategy, projector_bias):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(seed)

    tok = llama_tokenizer(text.pop("bpe_vocab"), coords=False)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    text_cfg = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        hidden_act="silu",
        **text,
    )
    vision_cfg = CLIPVisionConfig(hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=16, **vision)
    per_side = vision["image_size"] // vision["patch_size"]
    n_tokens = per_side * per_side + (1 if strategy == "full" else 0)
    cfg = LlavaConfig(
        vision_config=vision_cfg.to_dict(),
        text_config=text_cfg.to_dict(),
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=feature_layer,
        vision_feature_select_strategy=strategy,
        image_seq_length=n_tokens,
        multimodal_projector_bias=projector_bias,
        tie_word_embeddings=text.get("tie_word_embeddings", False),
    )
    model = LlavaForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    model.config._attn_implementation = "eager"

    improc = ClipProcessor(
        size={"shortest_edge": vision["image_size"]},
        crop_size={"height": vision["image_size"], "width": vision["image_size"]},
        do_center_crop=True,
        do_convert_rgb=True,
    )
    processor = LlavaProcessor(
        image_processor=improc,
        tokenizer=tok,
        patch_size=vision["patch_size"],
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=1,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)

    images = make_images(os.path.join(ROOT, "images"))
    img_names = sorted(images)
    pix = {n: improc(images[n], return_tensors="pt")["pixel_values"] for n in img_names}
    tensors = {f"pixel_values.{n}": pix[n][0].contiguous() for n in img_names}
    cases = {}

    def run_case(key, rows, extra_eos=None, beams=1, max_new=10, min_new=0, record_tensors=False):
        """rows: list of (instruction, [image names]); one left-padded batch."""
        ids_rows, pix_rows = [], []
        for instr, names in rows:
            ids = tok(llava_prompt(instr, len(names)))["input_ids"]
            expanded = []
            for t in ids:
                expanded.extend([image_token_id] * n_tokens if t == image_token_id else [t])
            ids_rows.append(expanded)
            pix_rows.extend(pix[n] for n in names)
        input_ids, attn, width = left_pad(ids_rows, tok.pad_token_id)
        pixel_values = torch.cat(pix_rows, 0)
        eos = [tok.eos_token_id] + (extra_eos or [])
        with torch.no_grad():
            out = model.generate(
                pixel_values=pixel_values,
                input_ids=input_ids,
                attention_mask=attn,
                eos_token_id=eos,
                pad_token_id=tok.pad_token_id,
                do_sample=False,
                num_beams=beams,
                max_new_tokens=max_new,
                min_new_tokens=min_new,
            )
            new = out[:, width:].tolist()
            if record_tensors:
                feats = model.get_image_features(pixel_values=pixel_values)
                feats = getattr(feats, "pooler_output", feats)
                if isinstance(feats, (list, tuple)):
                    feats = torch.stack(list(feats))
                logits = model(input_ids=input_ids, attention_mask=attn, pixel_values=pixel_values).logits
                tensors[f"{key}.image_tokens"] = feats.reshape(pixel_values.shape[0], n_tokens, -1).contiguous()
                tensors[f"{key}.logits"] = logits.contiguous()
                tensors[f"{key}.attention_mask"] = attn.float().contiguous()
        gen = cut_at_stop(new, eos)
        cases[key] = chat_case("llava", rows, ids_rows, eos, beams, max_new, min_new, gen, tok)
        return gen

    chat_cases(run_case, img_names)

    save_expected(name, os.path.join(out, "expected"), tensors, {
        "image_token_id": image_token_id,
        "image_tokens_per_image": n_tokens,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "images": img_names,
        "cases": cases,
    })


def main():
    torch.set_num_threads(2)
    # Features of the second-to-last layer without the class token (llava-1.5's setting),
    # grouped-query attention, a 30 px crop of 6 px patches.
    build(
        "llava_tiny_default_gqa",
        seed=3,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                    image_size=30, patch_size=6),
        text=dict(bpe_vocab=400, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  rms_norm_eps=1e-5, tie_word_embeddings=False),
        feature_layer=-2,
        strategy="default",
        projector_bias=True,
    )
    # The last layer with the class token ('full'), multi-head attention, a projector without
    # biases, tied embeddings.
    build(
        "llava_tiny_full_mha",
        seed=4,
        vision=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                    image_size=28, patch_size=7),
        text=dict(bpe_vocab=350, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                  rms_norm_eps=1e-6, tie_word_embeddings=True),
        feature_layer=-1,
        strategy="full",
        projector_bias=False,
    )


if __name__ == "__main__":
    sys.exit(main())
