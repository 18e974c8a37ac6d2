#!/usr/bin/env python3
"""Benchmark: caption metrics from Python on the COCO-val-sized corpus of bench_metrics.py
(5,000 images x 5 references, the same seeded synthetic text): pycocoevalcap (Java
PTBTokenizer + Bleu(4) + Rouge + Cider, as COCOEvalCap.evaluate runs them) against the
`vista` package, whole calls from Python lists included, on the same machine and run.

    pip install ./python            # the release wheel (or maturin build --release)
    python3 scripts/bench_python.py [--images 5000] [--refs 5] [--repeat 3]

vista is timed two ways: `vista.metrics.caption_scores(preds, refs)` (lists in, dict out) and
`caption_scores` in SQL on a `datafusion.SessionContext` after `vista.register(ctx)` (pandas
in). Each is run `--repeat` times in this process; the first call (which builds the session)
and the fastest are reported. Prints one JSON object: seconds, ratios, scores (which must agree
to 1e-9).
"""
import argparse
import io
import json
import os
import random
import sys
import time
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_metrics import caption  # noqa: E402  (the corpus generator)

import pandas as pd  # noqa: E402
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # noqa: E402

import vista  # noqa: E402


def timed(f, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return {"first_seconds": times[0], "best_seconds": min(times)}, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--refs", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(5)
    gts = {i: [{"caption": caption(rng)} for _ in range(args.refs)] for i in range(args.images)}
    res = {i: [{"caption": caption(rng)}] for i in range(args.images)}
    preds = [res[i][0]["caption"] for i in range(args.images)]
    refs = [[c["caption"] for c in gts[i]] for i in range(args.images)]

    def pycoco():
        with redirect_stderr(io.StringIO()), redirect_stdout(io.StringIO()):
            tok = PTBTokenizer()
            g, r = tok.tokenize(gts), tok.tokenize(res)
            bleu, _ = Bleu(4).compute_score(g, r)
        rouge, _ = Rouge().compute_score(g, r)
        cider, _ = Cider().compute_score(g, r)
        return {"cider_d": float(cider), "bleu_4": float(bleu[3]), "rouge_l": float(rouge)}

    def lists():
        return vista.metrics.caption_scores(preds, refs)

    import datafusion

    ctx = datafusion.SessionContext()
    vista.register(ctx)
    ctx.from_pandas(pd.DataFrame({"pred": preds, "refs": refs}), "caps")

    def sql():
        return ctx.sql("SELECT caption_scores(pred, refs) AS s FROM caps").to_pylist()[0]["s"]

    t_py, py = timed(pycoco, args.repeat)
    t_lists, v_lists = timed(lists, args.repeat)
    t_sql, v_sql = timed(sql, args.repeat)
    keys = ("cider_d", "bleu_4", "rouge_l")
    report = {
        "images": args.images,
        "refs_per_image": args.refs,
        "cpus": os.cpu_count(),
        "pycocoevalcap": {**t_py, **py},
        "vista_metrics": {**t_lists, **{k: v_lists[k] for k in keys}},
        "vista_in_datafusion": {**t_sql, **{k: v_sql[k] for k in keys}},
        "speedup_metrics_first": t_py["best_seconds"] / t_lists["first_seconds"],
        "speedup_metrics_best": t_py["best_seconds"] / t_lists["best_seconds"],
        "speedup_datafusion_best": t_py["best_seconds"] / t_sql["best_seconds"],
        "agree": all(
            abs(py[k] - v[k]) <= 1e-9 * max(1.0, abs(py[k])) for v in (v_lists, v_sql) for k in keys
        ),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
