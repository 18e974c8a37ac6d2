#!/usr/bin/env python3
"""Benchmark: caption metrics on a COCO-val-sized set (5,000 images x 5 references, synthetic
text) with pycocoevalcap (Java PTBTokenizer + Bleu(4) + Rouge + Cider) and with vista
(benches/bench_metrics.rs: SQL aggregates cider_d, bleu, rouge_l), on the same machine.

    cargo build --release --example bench_metrics
    python3 scripts/bench_metrics.py [--images 5000] [--refs 5]

Reports seconds end to end (raw strings, tokenisation included) and on pre-tokenized input,
the ratios, the scores of both (they must agree), and vista's peak memory.
"""
import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout, redirect_stderr

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

NOUNS = ("man woman dog cat boy girl horse giraffe zebra elephant bus train plate pizza table "
         "street beach wave kite frisbee skateboard laptop phone bench umbrella bird sheep cow "
         "surfboard motorcycle bicycle car truck kitchen bathroom sink toilet bed couch").split()
ADJ = "red blue white black small large young old wooden green yellow brown tall little".split()
VERB = ("riding sitting standing holding eating playing walking looking flying lying carrying "
        "parked covered filled").split()
PREP = "on in with near next to under over at of behind by".split()


def caption(rng):
    words = ["a", rng.choice(ADJ), rng.choice(NOUNS), rng.choice(["is", "are", ""]), rng.choice(VERB),
             rng.choice(PREP), rng.choice(["a", "the", "some"]), rng.choice(ADJ), rng.choice(NOUNS)]
    if rng.random() < 0.5:
        words += [rng.choice(PREP), "the", rng.choice(NOUNS)]
    s = " ".join(w for w in words if w)
    s = s[0].upper() + s[1:]
    return s + rng.choice([".", ".", "", " .", "!", "'s", ", too."])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--refs", type=int, default=5)
    ap.add_argument("--exe", default=os.path.join(ROOT, "target", "release", "examples", "bench_metrics"),
                    help="the vista benchmark binary (default: the release build)")
    ap.add_argument("--keep-data", help="also write the evaluation set (JSON) to this path")
    args = ap.parse_args()
    rng = random.Random(5)
    gts = {i: [{"caption": caption(rng)} for _ in range(args.refs)] for i in range(args.images)}
    res = {i: [{"caption": caption(rng)}] for i in range(args.images)}

    # pycocoevalcap, end to end (as COCOEvalCap.evaluate: tokenize, then the scorers)
    t0 = time.perf_counter()
    with redirect_stderr(io.StringIO()):
        tok = PTBTokenizer()
        gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    t1 = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts_t, res_t)
    rouge, _ = Rouge().compute_score(gts_t, res_t)
    cider, _ = Cider().compute_score(gts_t, res_t)
    t2 = time.perf_counter()
    py = {"raw_seconds": t2 - t0, "tokenize_seconds": t1 - t0, "pretokenized_seconds": t2 - t1,
          "cider_d": float(cider), "bleu_4": float(bleu[3]), "rouge_l": float(rouge),
          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    rows = [{"id": i, "pred": res[i][0]["caption"], "refs": [c["caption"] for c in gts[i]],
             "pred_tok": res_t[i][0], "refs_tok": gts_t[i]} for i in range(args.images)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(rows, f)
    exe = args.exe
    if not os.path.exists(exe):
        sys.exit("build it first: cargo build --release --example bench_metrics")
    if args.keep_data:
        with open(args.keep_data, "w") as k:
            json.dump(rows, k)
    out = subprocess.run([exe, f.name], check=True, capture_output=True, text=True).stdout
    os.unlink(f.name)
    vista = json.loads(out.strip().splitlines()[-1])

    report = {
        "images": args.images, "refs_per_image": args.refs, "cpus": os.cpu_count(), "vista_binary": exe,
        "pycocoevalcap": py, "vista": vista,
        "speedup_end_to_end": py["raw_seconds"] / vista["raw"]["seconds"],
        "speedup_pretokenized": py["pretokenized_seconds"] / vista["pretokenized"]["seconds"],
        "agree": {k: bool(abs(py[k] - vista["raw"][k]) <= 1e-9 * max(1.0, abs(py[k])))
                  for k in ("cider_d", "bleu_4", "rouge_l")},
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
