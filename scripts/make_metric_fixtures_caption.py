#!/usr/bin/env python3
"""Fixtures for `cider_d`, `bleu` and `rouge_l`: pycocoevalcap's own pipeline (PTBTokenizer via
Java, then Bleu(4), Rouge(), Cider()) on small evaluation sets with the edge cases of
metrics.md section 1, corpus and per-image values.

Each set records the raw captions (for the raw-string end-to-end test), the captions as
pycocoevalcap's batch PTBTokenizer returned them (for the pre-tokenized test), and the scores.
The raw captions are checked to tokenize the same alone as in pycocoevalcap's batch file (the
Java tokenizer can let a caption's last token depend on the next caption); any that do not are
reported and left out, so the end-to-end comparison is exact.

    python3 scripts/make_metric_fixtures_caption.py
Writes tests/fixtures/metrics/captions.json.
"""
import io
import json
import os
import random
import sys
from contextlib import redirect_stdout

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from make_metric_fixtures_ptb import java_tokenize, filter_punct  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "metrics", "captions.json")

SUBJ = ["a man", "a woman", "two dogs", "the cat", "A young boy", "people", "a giraffe", "an elephant",
        "the players", "a red bus", "Three children", "a plate of food"]
VERB = ["is riding", "are standing near", "sitting on", "eating", "playing with", "walking down",
        "looking at", "holding", "next to", "flying over"]
OBJ = ["a horse", "the beach", "a wave", "a pizza", "a frisbee", "the street", "a table", "a kite",
       "the field", "a skateboard", "a laptop", "some trees"]
TAIL = ["", ".", " .", "!", " in the park.", ", smiling.", " (outdoors).", " at 5 o'clock.",
        " on a sunny day...", "\u2014 quickly.", " with 2 1/2 apples.", " near Mr. Smith's house.",
        " -- wow", " won't stop", " at the U.S. Open.", " 3,000 times", " \u201cnicely\u201d",
        " & friends", " at 3.5 m/s"]


def sentence(rng):
    s = f"{rng.choice(SUBJ)} {rng.choice(VERB)} {rng.choice(OBJ)}{rng.choice(TAIL)}"
    if rng.random() < 0.5:
        s = s[0].upper() + s[1:]
    if rng.random() < 0.1:
        s = s.upper()
    return s


def random_set(rng, n_images, name):
    images = []
    for i in range(n_images):
        refs = [sentence(rng) for _ in range(rng.randint(1, 6))]
        r = rng.random()
        if r < 0.15:
            hyp = rng.choice(refs)
        elif r < 0.2:
            hyp = ""
        elif r < 0.25:
            hyp = rng.choice(["dog", "A", "the"])
        else:
            hyp = sentence(rng)
        images.append({"id": i, "hyp": hyp, "refs": refs})
    return {"name": name, "images": images}


EDGE = {"name": "edge", "images": [
    {"id": 0, "hyp": "a dog", "refs": ["a dog runs", "a dog", "a big dog runs fast"]},
    {"id": 1, "hyp": "", "refs": ["a cat sits on a mat"]},
    {"id": 2, "hyp": "cat", "refs": ["cat", "a cat"]},
    {"id": 3, "hyp": "one two three four", "refs": ["one two three", "one two three four five"]},
    {"id": 4, "hyp": "the the the the the", "refs": ["the cat", "the dog the"]},
    {"id": 5, "hyp": "He ate 2 1/2 pizzas.", "refs": ["He ate 2 1/2 pizzas!", "A man eats pizza."]},
    {"id": 6, "hyp": "A dog (brown) runs.", "refs": ["a brown dog runs", "The dog [brown] is running"]},
    {"id": 7, "hyp": "zebra", "refs": ["giraffe"]},
    {"id": 8, "hyp": "Two men can't stop", "refs": ["two men cannot stop", "Two men won't stop."]},
    {"id": 9, "hyp": "a man riding a horse on the beach", "refs": ["a man riding a horse on the beach"] * 5},
]}


def score_set(s):
    gts = {im["id"]: [{"caption": r} for r in im["refs"]] for im in s["images"]}
    res = {im["id"]: [{"caption": im["hyp"]}] for im in s["images"]}
    tok = PTBTokenizer()
    gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    with redirect_stdout(io.StringIO()):
        bleu, bleu_per = Bleu(4).compute_score(gts_t, res_t)
    rouge, rouge_per = Rouge().compute_score(gts_t, res_t)
    cider, cider_per = Cider().compute_score(gts_t, res_t)
    for k, im in enumerate(s["images"]):
        im["hyp_tok"] = res_t[im["id"]][0]
        im["refs_tok"] = gts_t[im["id"]]
        im["bleu"] = [bleu_per[n][k] for n in range(4)]
        im["rouge_l"] = float(rouge_per[k])
        im["cider_d"] = float(cider_per[k])
    s["bleu"] = list(bleu)
    s["rouge_l"] = float(rouge)
    s["cider_d"] = float(cider)
    return s


def drop_batch_effects(s):
    """Leaves out images whose captions tokenize differently alone than in the batch."""
    texts = [c for im in s["images"] for c in [im["hyp"]] + im["refs"]]
    alone = [filter_punct(o) for o in java_tokenize(texts)]
    k, keep = 0, []
    for im in s["images"]:
        n = 1 + len(im["refs"])
        toks = [im["hyp_tok"]] + im["refs_tok"]
        if toks == alone[k:k + n]:
            keep.append({"id": im["id"], "hyp": im["hyp"], "refs": im["refs"]})
        else:
            print(f"  {s['name']}: image {im['id']} depends on its neighbours in the batch file: "
                  f"{toks} vs {alone[k:k + n]}")
        k += n
    return {"name": s["name"], "images": keep}


def main():
    rng = random.Random(1234)
    sets = [EDGE, random_set(rng, 1, "one_image"), random_set(rng, 2, "two_images"),
            random_set(rng, 40, "random40"), random_set(rng, 200, "random200")]
    out = []
    for s in sets:
        s = drop_batch_effects(score_set(s))
        out.append(score_set(s))
        print(f"{s['name']}: {len(s['images'])} images, CIDEr-D {out[-1]['cider_d']:.6f}")
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
