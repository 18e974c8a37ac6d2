#!/usr/bin/env python3
"""Builds tiny random-weight InstructBLIP-Vicuna checkpoints and records what transformers does
with them, for the parity tests in tests/model.rs.

Run by hand (CI never runs Python):

    pip install torch transformers tokenizers safetensors pillow numpy
    python3 scripts/make_tiny_checkpoints.py

Writes tests/fixtures/model/<name>/ (a checkpoint directory exactly as
`InstructBlipForConditionalGeneration.save_pretrained` + `InstructBlipProcessor.save_pretrained`
write it) and tests/fixtures/model/<name>/expected/ (recorded outputs):
  tensors.safetensors  pixel_values, vision features, Q-Former query outputs, projected image
                       tokens and logits for the recorded prompts
  expected.json        token ids of every prompt, greedy / stop-token / beam outputs, single and
                       batched with left padding
"""

import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers.image_transforms import convert_to_rgb
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertTokenizerFast,
    BlipImageProcessorPil,
    InstructBlipConfig,
    InstructBlipForConditionalGeneration,
    InstructBlipProcessor,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "model")

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

CORPUS = [
    SYSTEM,
    "USER: Describe this image as simply as possible. ASSISTANT: a cat on a red sofa.",
    "Locate the object described by the small dog in the image. There's just one specific object.",
    "Provide the outcome using the [x0, y0, x1, y1] arrangement, showing the upper-left and lower-right box positions.",
    "Tell me where the man in blue is located in the image. There's only one object.",
    "Provide the coordinates of 16 points on the object's outline.",
    "Find all items referenced by the two bowls in the image. If no object is detected, return an empty string.",
    "Can you give me a straightforward answer to my question: what colour is the bus? Consider the image when answering.",
    "Can you give me a description of the region in image?",
    "a person riding a horse on a beach near the water at sunset",
    "two zebras standing next to each other in a field of grass",
    "a plate of food with broccoli, rice and a fork on a wooden table",
    "What is the man holding? A blue umbrella. How many people are there? Three.",
    "The quick brown fox jumps over the lazy dog 0123456789 times.",
]

COORD_TOKENS = (
    ["<im_patch>", "<im_start>", "<im_end>"]
    + ["<b_st>", "<b_sep>", "<b_ed>", "<p_st>", "<p_sep>", "<p_ed>", "<m_st>", "<m_sep>", "<m_ed>"]
    + [f"<bin_{k}>" for k in range(1001)]
)


def llama_tokenizer(vocab_size, coords):
    """A LLaMA-style tokenizer.json: SentencePiece-like BPE with byte fallback, `<s>` prepended."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    fast.add_special_tokens({"additional_special_tokens": ["<image>"] + (COORD_TOKENS if coords else [])})
    fast.padding_side = "left"
    return fast


def qformer_tokenizer(tmp):
    """A BERT WordPiece tokenizer whose vocabulary is built by rule, not trained: the trainer
    orders tied merges differently from run to run, and the fixtures must regenerate byte for
    byte. Specials, every character of the lowercased corpus alone and as a `##` continuation,
    then the most frequent whole words (ties alphabetical) up to 160 entries, so that common
    words are one token and the rest split into characters."""
    pre = pre_tokenizers.BertPreTokenizer()
    norm = normalizers.BertNormalizer(lowercase=True)
    words = [w for line in CORPUS for w, _ in pre.pre_tokenize_str(norm.normalize_str(line))]
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    counts = {}
    for w in words:
        if len(w) > 1:
            counts[w] = counts.get(w, 0) + 1
    for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) == 160:
            break
        vocab.append(w)
    os.makedirs(tmp, exist_ok=True)
    with open(os.path.join(tmp, "vocab.txt"), "w") as f:
        for word in vocab:
            f.write(word + "\n")
    return BertTokenizerFast(os.path.join(tmp, "vocab.txt"), do_lower_case=True)


def randomize(model, seed):
    """transformers' own init leaves LayerNorms at 1/0, query tokens at 0 and the ViT near 0;
    draw every parameter so that each one matters for the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(0.15 * noise)


def vicuna_prompt(instruction, n_images):
    """Mirror of src/model/prompt.rs: images without a marker go first in the user turn."""
    markers = instruction.count("<image>")
    if markers == 0:
        instruction = "<image>" * n_images + " " + instruction if n_images else instruction
    return f"{SYSTEM} USER: {instruction} ASSISTANT:"


def qformer_text(instruction):
    return " ".join(instruction.replace("<image>", " ").split())


def expand2square(img):
    """VistaLLM's Expand2square on the RGB image (transparency composited onto white first)."""
    img = convert_to_rgb(img, return_numpy=True)
    img = Image.fromarray(img, "RGB")
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def make_images(dirname):
    rng = np.random.default_rng(7)
    imgs = {}
    a = np.zeros((30, 40, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, 40)[None, :]
    a[..., 1] = np.linspace(255, 0, 30)[:, None]
    a[..., 2] = rng.integers(0, 256, (30, 40))
    imgs["rgb_40x30.png"] = Image.fromarray(a, "RGB")
    b = rng.integers(0, 256, (50, 23), dtype=np.uint8)
    imgs["grey_23x50.png"] = Image.fromarray(b, "L")
    c = rng.integers(0, 256, (33, 33, 4), dtype=np.uint8)
    imgs["rgba_33x33.png"] = Image.fromarray(c, "RGBA")
    os.makedirs(dirname, exist_ok=True)
    for name, im in imgs.items():
        im.save(os.path.join(dirname, name))
    return {name: Image.open(os.path.join(dirname, name)) for name in imgs}


def make_mode_images(dirname):
    """Inputs in other modes (16-bit grey PNG, CMYK JPEG) with PIL's RGB reading of them."""
    os.makedirs(dirname, exist_ok=True)
    rng = np.random.default_rng(11)
    g16 = (np.linspace(0, 65535, 20 * 12).reshape(12, 20)).astype(np.uint16)
    Image.fromarray(g16).save(os.path.join(dirname, "grey16_20x12.png"))
    cmyk = Image.fromarray(rng.integers(0, 256, (16, 24, 4), dtype=np.uint8), "CMYK")
    cmyk.save(os.path.join(dirname, "cmyk_24x16.jpg"), quality=95)
    rgb = np.asarray(Image.open(os.path.join(dirname, "cmyk_24x16.jpg")).convert("RGB"))
    with open(os.path.join(dirname, "expected.json"), "w") as f:
        json.dump({"cmyk_24x16.jpg": {"width": 24, "height": 16, "mean_rgb": rgb.reshape(-1, 3).mean(0).tolist()},
                   "grey16_20x12.png": {"width": 20, "height": 12, "max_value": 65535}}, f, indent=1)


def cut_at_stop(new, eos):
    """What a caller gets back from each generated row: tokens up to and including the first
    stop token."""
    gen = []
    for r in new:
        cut = []
        for t in r:
            cut.append(t)
            if t in eos:
                break
        gen.append(cut)
    return gen


def left_pad(rows, pad):
    """One batch of token rows, left-padded with `pad` as the parity fixtures batch prompts:
    (input_ids, attention_mask, width)."""
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    attn = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return input_ids, attn, width


def chat_cases(run_case, img_names):
    """The cases every chat-template family records: one image, a left-padded batch (one row
    with an `<image>` marker), two images in one prompt, the batch with a stop token its first
    row really produces, and 3-beam search; the last two again with a minimum length that rules
    out the early stop token."""
    i0, i1, i2 = img_names
    run_case("single", [("What is in the photo?", [i0])], record_tensors=True)
    batch = [
        ("Describe this image as simply as possible.", [i1]),
        ("Tell me where the dog is located in <image>.", [i2]),
        ("What is the man holding? Answer in one word.", [i0]),
    ]
    gb = run_case("batch", batch, record_tensors=True)
    run_case("multi_image", [("Find the common object in <image> and <image>.", [i0, i2])], record_tensors=True)
    run_case("batch_stop", batch, extra_eos=[gb[0][3]])
    g3 = run_case("beam3", [("What is in the photo?", [i0])], beams=3, max_new=8)
    run_case("batch_stop_min", batch, extra_eos=[gb[0][3]], min_new=6)
    run_case("beam3_min", [("What is in the photo?", [i0])], extra_eos=[g3[0][1]], beams=3, max_new=8, min_new=4)


def chat_case(mode, rows, ids_rows, eos, beams, max_new, min_new, gen, tok):
    """One recorded case of a chat family: its rows, prompt ids, decoding settings, and the
    generated ids with the texts transformers decodes from them."""
    return {
        "mode": mode,
        "rows": [{"instruction": i, "images": n} for i, n in rows],
        "input_ids": ids_rows,
        "stop_ids": eos,
        "num_beams": beams,
        "max_new_tokens": max_new,
        **({"min_new_tokens": min_new} if min_new else {}),
        "generated": gen,
        "text": [tok.decode(g, skip_special_tokens=True) for g in gen],
    }


def save_expected(name, exp_dir, tensors, meta):
    """expected/tensors.safetensors (as f32) and expected/expected.json, with the versions that
    made them."""
    os.makedirs(exp_dir, exist_ok=True)
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, os.path.join(exp_dir, "tensors.safetensors"))
    meta = {"transformers": __import__("transformers").__version__, "torch": torch.__version__, **meta}
    with open(os.path.join(exp_dir, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, {k: v["generated"] for k, v in meta["cases"].items()})


def build(name, seed, vision, qformer, text, num_query, coords, shard=None):
    out = os.path.join(ROOT, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    torch.manual_seed(seed)

    tok = llama_tokenizer(text.pop("bpe_vocab"), coords)
    qtok = qformer_tokenizer(os.path.join(out, "_tmp_qtok"))
    image_token_id = tok.convert_tokens_to_ids("<image>")
    text_cfg = LlamaConfig(
        vocab_size=len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        hidden_act="silu",
        **text,
    )
    cfg = InstructBlipConfig(
        vision_config=dict(hidden_act="gelu", layer_norm_eps=1e-6, **vision),
        qformer_config=dict(vocab_size=len(qtok), pad_token_id=qtok.pad_token_id, **qformer),
        text_config=text_cfg.to_dict(),
        num_query_tokens=num_query,
        image_token_index=image_token_id,
    )
    model = InstructBlipForConditionalGeneration(cfg).eval()
    randomize(model, seed)
    model.config._attn_implementation = "eager"

    improc = BlipImageProcessorPil(
        size={"height": vision["image_size"], "width": vision["image_size"]},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        do_convert_rgb=True,
    )
    processor = InstructBlipProcessor(
        image_processor=improc, tokenizer=tok, qformer_tokenizer=qtok, num_query_tokens=num_query
    )
    model.save_pretrained(out, **({"max_shard_size": shard} if shard else {}))
    processor.save_pretrained(out)
    shutil.rmtree(os.path.join(out, "_tmp_qtok"))

    exp_dir = os.path.join(out, "expected")
    images = make_images(os.path.join(ROOT, "images"))
    img_names = sorted(images)
    tensors = {}
    cases = {}

    # raw = InstructBLIP (resize as is); vicuna_v1 = VistaLLM (white square padding first).
    pix = {n: improc(images[n], return_tensors="pt")["pixel_values"] for n in img_names}
    pix_sq = {n: improc(expand2square(images[n]), return_tensors="pt")["pixel_values"] for n in img_names}
    for n in img_names:
        tensors[f"pixel_values.{n}"] = pix[n][0].contiguous()
        tensors[f"pixel_values_square.{n}"] = pix_sq[n][0].contiguous()

    gen_kwargs = dict(do_sample=False, num_beams=1, max_new_tokens=10, min_new_tokens=0)

    def run_case(key, rows, mode, extra_eos=None, beams=1, max_new=10, record_tensors=False):
        """rows: list of (instruction, [image names]); one left-padded batch."""
        ids_rows, pix_rows, q_ids, q_masks = [], [], [], []
        for instr, names in rows:
            if mode == "raw":
                assert len(names) == 1
                text_ids = tok(instr)["input_ids"]
                ids = [image_token_id] * num_query + text_ids
                qtext = instr
            else:
                prompt = vicuna_prompt(instr, len(names))
                ids = tok(prompt)["input_ids"]
                exp = []
                for t in ids:
                    exp.extend([image_token_id] * num_query if t == image_token_id else [t])
                ids = exp
                qtext = qformer_text(instr)
            ids_rows.append(ids)
            qi = qtok(qtext)["input_ids"]
            for n in names:
                pix_rows.append(pix[n] if mode == "raw" else pix_sq[n])
                q_ids.append(qi)
        input_ids, attn, width = left_pad(ids_rows, tok.pad_token_id)
        qwidth = max(len(r) for r in q_ids)
        qformer_ids = torch.tensor([r + [qtok.pad_token_id] * (qwidth - len(r)) for r in q_ids])
        qmask = torch.tensor([[1] * len(r) + [0] * (qwidth - len(r)) for r in q_ids])
        pixel_values = torch.cat(pix_rows, 0)
        eos = [tok.eos_token_id] + (extra_eos or [])
        with torch.no_grad():
            out = model.generate(
                pixel_values=pixel_values,
                qformer_input_ids=qformer_ids,
                qformer_attention_mask=qmask,
                input_ids=input_ids,
                attention_mask=attn,
                eos_token_id=eos,
                pad_token_id=tok.pad_token_id,
                **{**gen_kwargs, "num_beams": beams, "max_new_tokens": max_new},
            )
            new = out[:, width:].tolist()
            if record_tensors:
                vis = model.vision_model(pixel_values=pixel_values).last_hidden_state
                qout = model.qformer(
                    input_ids=qformer_ids,
                    attention_mask=torch.cat([torch.ones(qformer_ids.shape[0], num_query, dtype=torch.long), qmask], 1),
                    query_embeds=model.query_tokens.expand(vis.shape[0], -1, -1),
                    encoder_hidden_states=vis,
                ).last_hidden_state[:, :num_query]
                feats = model.get_image_features(
                    pixel_values, qformer_input_ids=qformer_ids, qformer_attention_mask=qmask
                ).pooler_output
                embeds = model.get_input_embeddings()(input_ids)
                mask = (input_ids == image_token_id).unsqueeze(-1).expand_as(embeds)
                embeds = embeds.masked_scatter(mask, feats.reshape(-1, feats.shape[-1]))
                # Positions as generate() computes them: counted over real tokens only.
                pos = attn.long().cumsum(-1) - 1
                pos.masked_fill_(attn == 0, 1)
                logits = model.language_model(
                    inputs_embeds=embeds, attention_mask=attn, position_ids=pos
                ).logits
                tensors[f"{key}.vision"] = vis.contiguous()
                tensors[f"{key}.qformer"] = qout.contiguous()
                tensors[f"{key}.image_tokens"] = feats.contiguous()
                tensors[f"{key}.logits"] = logits.contiguous()
                tensors[f"{key}.attention_mask"] = attn.float().contiguous()
        gen = cut_at_stop(new, eos)
        cases[key] = {
            "mode": mode,
            "rows": [{"instruction": i, "images": n} for i, n in rows],
            "input_ids": [r for r in ids_rows],
            "qformer_input_ids": [qtok(qtext_of(i, mode))["input_ids"] for i, _ in rows],
            "stop_ids": eos,
            "num_beams": beams,
            "max_new_tokens": max_new,
            "generated": gen,
            "text": [tok.decode(g, skip_special_tokens=True) for g in gen],
        }
        return gen

    def qtext_of(instr, mode):
        return instr if mode == "raw" else qformer_text(instr)

    i0, i1, i2 = img_names[0], img_names[1], img_names[2]
    run_case("raw_single", [("What is in the photo?", [i0])], "raw", record_tensors=True)
    run_case(
        "raw_batch",
        [
            ("What is in the photo?", [i0]),
            ("Describe this image as simply as possible.", [i1]),
            ("a cat", [i2]),
        ],
        "raw",
        record_tensors=True,
    )
    for k, (instr, names) in enumerate(
        [
            ("Describe this image <image> as simply as possible.", [i1]),
            ("Tell me where the dog is located in <image>.", [i2]),
        ]
    ):
        run_case(f"vicuna_single_{k}", [(instr, names)], "vicuna_v1")
    vb = run_case(
        "vicuna_batch",
        [
            ("Describe this image <image> as simply as possible.", [i1]),
            ("Tell me where the dog is located in <image>.", [i2]),
            ("What is the man holding?", [i0]),
        ],
        "vicuna_v1",
        record_tensors=True,
    )
    run_case(
        "vicuna_multi_image",
        [("Find the common object in <image> and <image>.", [i0, i2])],
        "vicuna_v1",
        record_tensors=True,
    )
    # Stop tokens: make the first row stop early on a token it really produces.
    stop = [vb[0][3]]
    run_case(
        "vicuna_batch_stop",
        [
            ("Describe this image <image> as simply as possible.", [i1]),
            ("Tell me where the dog is located in <image>.", [i2]),
            ("What is the man holding?", [i0]),
        ],
        "vicuna_v1",
        extra_eos=stop,
    )
    run_case("raw_beam3", [("What is in the photo?", [i0])], "raw", beams=3, max_new=8)

    save_expected(name, exp_dir, tensors, {
        "image_token_id": image_token_id,
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "images": img_names,
        "cases": cases,
    })


def main():
    torch.set_num_threads(2)
    make_mode_images(os.path.join(ROOT, "modes"))
    # Cross-attention every layer, multi-head attention, the coordinate vocabulary.
    build(
        "tiny_xattn1_mha_coords",
        seed=1,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=28, patch_size=14, qkv_bias=True),
        qformer=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                     cross_attention_frequency=1, max_position_embeddings=64, layer_norm_eps=1e-12),
        text=dict(bpe_vocab=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                  rms_norm_eps=1e-6),
        num_query=4,
        coords=True,
    )
    # Cross-attention every 2nd layer, grouped-query attention, an odd image size (30 px, patch 7:
    # the convolution drops the last 2 pixels), sharded weights.
    build(
        "tiny_xattn2_gqa_odd",
        seed=2,
        vision=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=3,
                    image_size=30, patch_size=7, qkv_bias=False),
        qformer=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=4,
                     cross_attention_frequency=2, max_position_embeddings=64, layer_norm_eps=1e-12),
        text=dict(bpe_vocab=350, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                  num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=512,
                  rms_norm_eps=1e-5),
        num_query=3,
        coords=False,
        shard="60KB",
    )


if __name__ == "__main__":
    sys.exit(main())
