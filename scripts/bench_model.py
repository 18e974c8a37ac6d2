#!/usr/bin/env python3
"""Benchmark side of transformers for scripts/bench_model.sh.

    python3 scripts/bench_model.py make DIR [--family instructblip|llava|llava_next|qwen3_vl]
                                                  # a random-weight checkpoint of the issue's
                                                  # small config, saved like the real ones
    python3 scripts/bench_model.py run DIR [--family instructblip|llava|qwen3_vl] [--device cpu|cuda] \
        [--dtype f32|bf16] [--batches 1,8] [--new 32] [--threads N]
    python3 scripts/bench_model.py phases DIR [--threads N]   # InstructBLIP: vision, Q-Former,
                                                  # prefill and one decoding step at batch 8

Families (default instructblip):
  instructblip  ViT 12x384 at 224 px, Q-Former 4 layers, 32 queries, LLaMA 8x512;
                InstructBlipForConditionalGeneration on the VistaLLM prompt as vista lays it
                out (query tokens at the `<image>` marker, the Q-Former reading the
                instruction alone), images padded to a square first.
  llava         LLaVA-1.5 in the llava-hf layout: CLIP ViT 12x384 at 224 px, patch 14 (256
                image tokens: the second-to-last layer without the class token), GELU
                projector, LLaMA 8x512; LlavaForConditionalGeneration on llava-hf's chat turn
                "USER: <image>\n{instruction} ASSISTANT:", the processor expanding the image
                token, CLIP's resize and centre crop.
  llava_next    LLaVA-NeXT: the llava network and processor settings with image_newline and
                LLaVA-NeXT's default grids scaled to 224 px tiles ([224, 448], [448, 224],
                [448, 448], [672, 224], [224, 672]): a 300-370x400 image goes on the
                448x448 grid, 4 tiles after the whole image; LlavaNextForConditionalGeneration.
  qwen3_vl      Qwen3-VL: vision 12x384, patch 16, merge 2, DeepStack at layers 3, 6, 9, 48x48
                learned positions; the same decoder size (8x512, head_dim 64, mrope [12, 10,
                10]); images resized within 448x448 pixels (300x400 -> 288x384: 108 image
                tokens); Qwen3VLForConditionalGeneration on Qwen's chat turn.

    python3 scripts/bench_model.py images DIR --rows N   # N distinct images under DIR/sql and
                                                  # DIR/sql/images.csv listing their paths
    python3 scripts/bench_model.py serve DIR [--family F] --batch B [--new 32] [--threads N] \
        --out FILE.jsonl                          # the whole-process peer of `vista sql`: load,
                                                  # read every image of images.csv, generate in
                                                  # batches of B, write one answer per line

`run` times `generate` (greedy, exactly --new tokens: min_new_tokens = max_new_tokens) for
batches of the benchmark images, preprocessing included, and prints one JSON line per batch
size: {"impl": "transformers", "batch": B, "seconds": S, "images_per_s": ...}. The same work
in vista: tests/model.rs `bench_generate` (see the .sh).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import make_tiny_checkpoints as tiny  # noqa: E402

INSTRUCTION = "Describe this image <image> as simply as possible."
# LLaVA's: the image goes first, on its own line (tests/model.rs `bench_generate` sends the same
# instruction, which vista's `llava` template lays out the same way).
LLAVA_INSTRUCTION = "Describe this image as simply as possible."
LLAVA_PROMPT = f"USER: <image>\n{LLAVA_INSTRUCTION} ASSISTANT:"


def bench_images(out):
    rng = np.random.default_rng(3)
    for i in range(8):
        arr = rng.integers(0, 256, (300 + 10 * i, 400, 3), dtype=np.uint8)
        Image.fromarray(arr, "RGB").save(os.path.join(out, f"bench_{i}.png"))


def sql_images(d, rows):
    """`rows` distinct images (same sizes as the benchmark images) for the whole-process run,
    and images.csv with their absolute paths in row order."""
    out = os.path.join(d, "sql")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for i in range(rows):
        p = os.path.abspath(os.path.join(out, f"img_{i:04d}.png"))
        arr = rng.integers(0, 256, (300 + 10 * (i % 8), 400, 3), dtype=np.uint8)
        Image.fromarray(arr, "RGB").save(p)
        paths.append(p)
    with open(os.path.join(out, "images.csv"), "w") as f:
        f.write("path\n" + "".join(p + "\n" for p in paths))


def report(once, device, dtype, batch, new, threads):
    """Times `once` (one batch's generate), mean of 3 after a warm-up, as one JSON line."""
    once()
    reps = 3
    t0 = time.perf_counter()
    for _ in range(reps):
        once()
    s = (time.perf_counter() - t0) / reps
    print(json.dumps({"impl": "transformers", "device": device, "dtype": dtype, "batch": batch,
                      "new_tokens": new, "seconds": round(s, 4),
                      "images_per_s": round(batch / s, 3), "threads": threads}))


def make(out, family="instructblip"):
    if family in ("llava", "llava_next"):
        return make_llava(out, next_=family == "llava_next")
    if family == "qwen3_vl":
        return make_qwen3_vl(out)
    if family != "instructblip":
        raise SystemExit(f"unknown family {family!r} (instructblip, llava, llava_next, qwen3_vl)")
    from transformers import (
        BlipImageProcessorPil,
        InstructBlipConfig,
        InstructBlipForConditionalGeneration,
        InstructBlipProcessor,
        LlamaConfig,
    )

    os.makedirs(out, exist_ok=True)
    tok = tiny.llama_tokenizer(1000, coords=True)
    qtok = tiny.qformer_tokenizer(os.path.join(out, "_tmp_qtok"))
    text_cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2048,
        rms_norm_eps=1e-6, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    cfg = InstructBlipConfig(
        vision_config=dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12,
                           num_attention_heads=6, image_size=224, patch_size=14, qkv_bias=True),
        qformer_config=dict(vocab_size=len(qtok), hidden_size=384, intermediate_size=1536,
                            num_hidden_layers=4, num_attention_heads=6,
                            cross_attention_frequency=2, pad_token_id=qtok.pad_token_id),
        text_config=text_cfg.to_dict(),
        num_query_tokens=32,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
    )
    model = InstructBlipForConditionalGeneration(cfg).eval()
    tiny.randomize(model, 11)
    improc = BlipImageProcessorPil(size={"height": 224, "width": 224})
    proc = InstructBlipProcessor(image_processor=improc, tokenizer=tok, qformer_tokenizer=qtok,
                                 num_query_tokens=32)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    import shutil

    shutil.rmtree(os.path.join(out, "_tmp_qtok"))
    bench_images(out)
    print("wrote", out)


def make_llava(out, next_=False):
    """The LLaVA-1.5 counterpart of `make`: the same LLaMA, a CLIP tower of the same size. With
    `next_`, LLaVA-NeXT: the same network plus `image_newline`, images tiled on LLaVA-NeXT's
    default grids scaled to 224 px tiles."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
        LlavaProcessor,
    )

    try:  # transformers 5 names the PIL backend explicitly; 4.x has only the PIL one.
        from transformers import CLIPImageProcessorPil as ClipProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ClipProcessor

    os.makedirs(out, exist_ok=True)
    tok = tiny.llama_tokenizer(1000, coords=False)  # `<image>` is one of its special tokens
    text_cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2048,
        rms_norm_eps=1e-5, hidden_act="silu", bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    vision_cfg = CLIPVisionConfig(
        hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=6,
        image_size=224, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        projection_dim=512,
    )
    common = dict(
        vision_config=vision_cfg.to_dict(),
        text_config=text_cfg.to_dict(),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        projector_hidden_act="gelu",
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=(224 // 14) ** 2,
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )
    size = dict(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    proc_args = dict(tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                     num_additional_image_tokens=1)
    if next_:
        pinpoints = [[224, 448], [448, 224], [448, 448], [672, 224], [224, 672]]
        model = LlavaNextForConditionalGeneration(LlavaNextConfig(image_grid_pinpoints=pinpoints, **common)).eval()
        improc = LlavaNextImageProcessorPil(image_grid_pinpoints=pinpoints, **size)
        proc = LlavaNextProcessor(image_processor=improc, **proc_args)
    else:
        model = LlavaForConditionalGeneration(LlavaConfig(**common)).eval()
        improc = ClipProcessor(do_center_crop=True, do_convert_rgb=True, **size)
        proc = LlavaProcessor(image_processor=improc, **proc_args)
    tiny.randomize(model, 11)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    bench_images(out)
    print("wrote", out)


def make_qwen3_vl(out):
    """A Qwen3-VL of the same decoder size, saved as `save_pretrained` writes it."""
    import make_tiny_qwen3_vl as tq
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    os.makedirs(out, exist_ok=True)
    tok = tq.qwen_tokenizer(1000)
    ids = {t: tok.convert_tokens_to_ids(t) for t in tq.SPECIAL}
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, head_dim=64, max_position_embeddings=4096,
                         rms_norm_eps=1e-6, pad_token_id=ids["<|endoftext|>"],
                         rope_parameters={"rope_type": "default", "rope_theta": 5e6, "mrope_section": [12, 10, 10],
                                          "mrope_interleaved": True}),
        vision_config=dict(depth=12, hidden_size=384, intermediate_size=1536, num_heads=6, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=512,
                           num_position_embeddings=2304, deepstack_visual_indexes=[3, 6, 9],
                           hidden_act="gelu_pytorch_tanh"),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    tiny.randomize(model, 12)
    improc = Qwen2VLImageProcessorPil(patch_size=16, temporal_patch_size=2, merge_size=2,
                                      size={"shortest_edge": 32 * 32, "longest_edge": 448 * 448},
                                      image_mean=[0.5] * 3, image_std=[0.5] * 3)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    improc.save_pretrained(out)
    bench_images(out)
    print("wrote", out)


def qwen3_vl_generator(d, device, dt, new):
    """`generator` for Qwen3-VL: the image processor and the chat turn by hand (the processor
    class also wants a video processor), as scripts/make_tiny_qwen3_vl.py does."""
    import make_tiny_qwen3_vl as tq
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    model = Qwen3VLForConditionalGeneration.from_pretrained(d, dtype=dt).to(device).eval()
    tok = AutoTokenizer.from_pretrained(d)
    improc = Qwen2VLImageProcessorPil.from_pretrained(d)
    pad_id = tok.convert_tokens_to_ids("<|image_pad|>")

    def generate(images):
        px = improc(images, return_tensors="pt")
        per = (px["image_grid_thw"].prod(-1) // 4).tolist()
        rows = []
        for n in per:
            row = []
            for t in tok(tq.qwen_prompt(LLAVA_INSTRUCTION, 1))["input_ids"]:
                row.extend([t] * n if t == pad_id else [t])
            rows.append(row)
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        attn = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=attn,
                                 pixel_values=px["pixel_values"].to(device, dt),
                                 image_grid_thw=px["image_grid_thw"].to(device),
                                 mm_token_type_ids=(input_ids == pad_id).int(), do_sample=False,
                                 num_beams=1, max_new_tokens=new, min_new_tokens=new)
        if device == "cuda":
            torch.cuda.synchronize()
        return out[:, width:].tolist()

    return generate, tok


def instructblip_generator(d, device, dt, new):
    """`generator` for InstructBLIP on VistaLLM's prompt as vista lays it out (and as
    scripts/make_tiny_checkpoints.py records it): the images' query tokens at the `<image>`
    marker of the Vicuna turn, the Q-Former reading the instruction alone, images padded to a
    white square. Answers keep the coordinate tokens (special tokens of this tokenizer), as
    vista's do."""
    from transformers import InstructBlipForConditionalGeneration, InstructBlipProcessor

    model = InstructBlipForConditionalGeneration.from_pretrained(d, dtype=dt).to(device).eval()
    proc = InstructBlipProcessor.from_pretrained(d)
    tok, qtok = proc.tokenizer, proc.qformer_tokenizer
    image_id = model.config.image_token_index
    queries = model.config.num_query_tokens
    row = []
    for t in tok(tiny.vicuna_prompt(INSTRUCTION, 1))["input_ids"]:
        row.extend([image_id] * queries if t == image_id else [t])
    qrow = qtok(tiny.qformer_text(INSTRUCTION))["input_ids"]
    hidden = {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}

    class Decoder:
        @staticmethod
        def decode(ids, skip_special_tokens=True):
            return tok.decode([t for t in ids if t not in hidden], skip_special_tokens=False)

    def generate(images):
        b = len(images)
        px = proc.image_processor([tiny.expand2square(im) for im in images], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                pixel_values=px["pixel_values"].to(device, dt),
                input_ids=torch.tensor([row] * b, device=device),
                attention_mask=torch.ones(b, len(row), dtype=torch.long, device=device),
                qformer_input_ids=torch.tensor([qrow] * b, device=device),
                qformer_attention_mask=torch.ones(b, len(qrow), dtype=torch.long, device=device),
                do_sample=False, num_beams=1, max_new_tokens=new, min_new_tokens=new)
        if device == "cuda":
            torch.cuda.synchronize()
        return out[:, len(row):].tolist()

    return generate, Decoder


def generator(d, family, device, dtype, new, threads):
    """The family's model from DIR and `generate(images)`: greedy, exactly `new` tokens
    (min_new_tokens = max_new_tokens), preprocessing included, one left-padded batch; it returns
    the new tokens of each row. Also the tokenizer."""
    torch.set_num_threads(threads)
    dt = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    if family == "qwen3_vl":
        return qwen3_vl_generator(d, device, dt, new)
    if family in ("llava", "llava_next"):
        from transformers import (
            LlavaForConditionalGeneration,
            LlavaNextForConditionalGeneration,
            LlavaNextProcessor,
            LlavaProcessor,
        )

        net, processor = ((LlavaNextForConditionalGeneration, LlavaNextProcessor) if family == "llava_next"
                          else (LlavaForConditionalGeneration, LlavaProcessor))
        model = net.from_pretrained(d, dtype=dt).to(device).eval()
        proc = processor.from_pretrained(d)
        prompt = LLAVA_PROMPT

        def prepare(ims):
            return ims
    elif family == "instructblip":
        return instructblip_generator(d, device, dt, new)
    else:
        raise SystemExit(f"unknown family {family!r} (instructblip, llava, llava_next, qwen3_vl)")
    proc.tokenizer.padding_side = "left"

    def generate(images):
        inputs = proc(images=prepare(images), text=[prompt] * len(images), return_tensors="pt",
                      padding=True)
        width = inputs["input_ids"].shape[1]
        inputs = {k: v.to(device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(dt)
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=new,
                                 min_new_tokens=new)
        if device == "cuda":
            torch.cuda.synchronize()
        return out[:, width:].tolist()

    return generate, proc.tokenizer


def run(d, device, dtype, batches, new, threads, family="instructblip"):
    generate, _ = generator(d, family, device, dtype, new, threads)
    images = [Image.open(os.path.join(d, f"bench_{i % 8}.png")).convert("RGB") for i in range(max(batches))]
    for b in batches:
        report(lambda: generate(images[:b]), device, dtype, b, new, threads)


def serve(d, family, device, dtype, batch, new, threads, out):
    """The whole-process peer of `vista sql ... vista_generate(read_bytes(path), ...)`: every
    image of DIR/sql/images.csv, read and answered in batches of `batch`, the texts written to
    `out` (one JSON line per row). Prints the load and generate seconds as one JSON line."""
    t0 = time.perf_counter()
    generate, tok = generator(d, family, device, dtype, new, threads)
    load_s = time.perf_counter() - t0
    with open(os.path.join(d, "sql", "images.csv")) as f:
        paths = [line.strip() for line in f.readlines()[1:] if line.strip()]
    t1 = time.perf_counter()
    with open(out, "w") as f:
        for i in range(0, len(paths), batch):
            images = [Image.open(p).convert("RGB") for p in paths[i:i + batch]]
            for p, ids in zip(paths[i:i + batch], generate(images)):
                f.write(json.dumps({"path": p, "text": tok.decode(ids, skip_special_tokens=True)}) + "\n")
    print(json.dumps({"impl": "transformers", "batch": batch, "rows": len(paths), "new_tokens": new,
                      "load_seconds": round(load_s, 3),
                      "generate_seconds": round(time.perf_counter() - t1, 3), "threads": threads}))


def phases(d, threads):
    """The steps of tests/model.rs `bench_phases`, timed the same way (one warm-up, then the
    mean of several runs): where the time of `run` goes."""
    from transformers import InstructBlipForConditionalGeneration

    torch.set_num_threads(threads)
    model = InstructBlipForConditionalGeneration.from_pretrained(d).eval()
    b, s = 8, model.config.vision_config.image_size

    def time_it(name, reps, f):
        f()
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        ms = (time.perf_counter() - t0) * 1e3 / reps
        print(json.dumps({"impl": "transformers", "phase": name, "ms": round(ms, 2)}))

    with torch.inference_mode():
        pixels = torch.randn(b, 3, s, s)
        time_it("vision", 3, lambda: model.vision_model(pixels))
        feats = model.vision_model(pixels)[0]
        ids = torch.full((b, 12), 5, dtype=torch.long)
        queries = model.query_tokens.expand(b, -1, -1)
        image_mask = torch.ones(feats.shape[:2], dtype=torch.long)
        time_it("qformer", 5, lambda: model.qformer(
            input_ids=ids, attention_mask=torch.ones_like(ids), query_embeds=queries,
            encoder_hidden_states=feats, encoder_attention_mask=image_mask))
        lm = model.language_model
        embeds = torch.randn(b, 80, model.config.text_config.hidden_size)
        time_it("prefill", 3, lambda: lm(inputs_embeds=embeds, use_cache=True))
        step = torch.randn(b, 1, embeds.shape[-1])
        for _ in range(2):  # as in vista: 20 successive steps after the prefill, second run
            past = lm(inputs_embeds=embeds, use_cache=True).past_key_values
            t0 = time.perf_counter()
            for p in range(80, 100):
                pos = torch.full((b, 1), p, dtype=torch.long)
                past = lm(inputs_embeds=step, position_ids=pos, past_key_values=past,
                          use_cache=True).past_key_values
            ms = (time.perf_counter() - t0) * 1e3 / 20
        print(json.dumps({"impl": "transformers", "phase": "decode_step", "ms": round(ms, 2)}))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    cmd, d = sys.argv[1], sys.argv[2]
    opts = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    family = opts.get("--family", "instructblip")
    if cmd == "make":
        make(d, family)
    elif cmd == "phases":
        phases(d, int(opts.get("--threads", os.environ.get("RAYON_NUM_THREADS", "2"))))
    elif cmd == "images":
        sql_images(d, int(opts["--rows"]))
    elif cmd == "serve":
        serve(d, family, opts.get("--device", "cpu"), opts.get("--dtype", "f32"), int(opts["--batch"]),
              int(opts.get("--new", "32")), int(opts.get("--threads", os.environ.get("RAYON_NUM_THREADS", "2"))),
              opts["--out"])
    elif cmd == "run":
        run(d, opts.get("--device", "cpu"), opts.get("--dtype", "f32"),
            [int(x) for x in opts.get("--batches", "1,8").split(",")], int(opts.get("--new", "32")),
            int(opts.get("--threads", os.environ.get("RAYON_NUM_THREADS", "2"))), family)
    return 0


if __name__ == "__main__":
    sys.exit(main())
