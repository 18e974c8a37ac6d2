#!/usr/bin/env python3
"""Benchmark: vista's contour functions vs an OpenCV + NumPy reference, same machine, same masks.

    pip install pycocotools opencv-python-headless numpy
    cargo build --release --example bench_contour
    python3 scripts/bench_contour.py [--rust target/release/examples/bench_contour] [--rounds 20]

Masks: the 26 512x512 fixture masks (tests/fixtures/contour/masks.json), decoded before timing.
"RLE -> sequence" starts from the stored form (compressed COCO RLE): pycocotools decode + the same
reference, vs vista's run-length path (only the object's box is decoded).
Reference, single-threaded (cv2.setNumThreads(1)):
  mask -> sequence: cv2.findContours(RETR_EXTERNAL, CHAIN_APPROX_NONE), the largest contour by
    cv2.contourArea, then NumPy: `adaptive` = turning angle at every contour point at a scale of
    +-k points (k = len / (4 n)), keep the n largest in contour order; `uniform` = n evenly
    spaced indices; both normalised by width/height.
  sequence -> mask: cv2.fillPoly of the points (scaled back to pixels) on a 512x512 canvas.
vista (Rust, `--example bench_contour`, one thread): mask_sequence (trace + sampling) and
polygon_mask (pycocotools-exact rasteriser). Prints a Markdown table with the ratios.

PNG files (--png, needs `cargo build --release --example bench_png`): 200 512x512
8-bit greyscale PNG masks (the fixtures, shifted) written to a temporary folder, then
  decode: cv2.imread(p, IMREAD_UNCHANGED) per file vs vista's Mask::from_png (file read included
    on both sides, one thread), also for the same masks saved by PIL as 1-bit greyscale and as
    palette PNGs;
  pipeline, whole process timed from outside (interpreter or binary start, imports, reading,
    exit): vista's SQL `rle_encode(read_bytes(p))` -> `mask_to_sequence(m, 32, 'adaptive')` ->
    `polygon_to_mask` -> `mask_iou` on 1 and 2 partitions, vs this script's --ref-pipeline
    (imread, findContours + NumPy angle sampling as above, fillPoly, NumPy IoU) on 1 and 2
    worker processes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
N = 32


def ref_sequence(m, n, method):
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    k = len(c)
    if k <= n:
        idx = np.arange(k)
    elif method == "uniform":
        idx = (np.arange(n) * k) // n
    else:
        s = max(1, k // (4 * n))
        a = np.roll(c, s, axis=0) - c
        b = np.roll(c, -s, axis=0) - c
        cosang = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
        theta = np.pi - np.arccos(np.clip(cosang, -1, 1))
        idx = np.sort(np.argsort(-theta, kind="stable")[:n])
    h, w = m.shape
    return (c[idx] / [w, h]).ravel()


def ref_mask(seq, h, w):
    canvas = np.zeros((h, w), np.uint8)
    pts = np.round(seq.reshape(-1, 2) * [w, h]).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 1)
    return canvas


def timed(rounds, count, f):
    f()
    t = time.perf_counter()
    for _ in range(rounds):
        f()
    return (time.perf_counter() - t) * 1e6 / (rounds * count)


def ref_pipeline_one(path):
    m = (cv2.imread(path, cv2.IMREAD_UNCHANGED) > 0).astype(np.uint8)
    back = ref_mask(ref_sequence(m, N, "adaptive"), *m.shape)
    return np.logical_and(m, back).sum() / np.logical_or(m, back).sum()


def ref_pipeline(folder, workers):
    """The reference pipeline over every PNG in `folder`, in `workers` processes."""
    cv2.setNumThreads(1)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".png"))
    if workers == 1:
        ious = [ref_pipeline_one(f) for f in files]
    else:
        from multiprocessing import Pool

        with Pool(workers) as pool:
            ious = pool.map(ref_pipeline_one, files, chunksize=len(files) // workers)
    print(json.dumps({"files": len(files), "mean_iou": float(np.mean(ious))}))


def whole_process(cmd, runs=3):
    """Best wall-clock seconds of `runs` runs of a command, and its last output line."""
    best, out = None, ""
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, out.splitlines()[-1]


def png_bench(masks, bench_png, rounds, count=200):
    folder = tempfile.mkdtemp(prefix="vista_png_")
    for i in range(count):
        m = np.roll(masks[i % len(masks)], (i // len(masks)) * 7, axis=1)
        cv2.imwrite(os.path.join(folder, f"{i:04d}.png"), m * 255)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    cv_us = timed(rounds, len(files), lambda: [cv2.imread(f, cv2.IMREAD_UNCHANGED) for f in files])
    out = subprocess.run([bench_png, "decode", folder, str(rounds)], capture_output=True, text=True, check=True)
    ours_us = json.loads(out.stdout.strip().splitlines()[-1])["us_per_file"]
    print(f"\n{count} PNG masks of 512x512 (8-bit greyscale), in {folder}\n")
    print("| step | OpenCV | vista | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| decode one PNG file (us) | {cv_us:.1f} | {ours_us:.1f} | {cv_us / ours_us:.2f}x |")
    # The same masks as 1-bit greyscale and as palette PNGs (PIL writes both).
    from PIL import Image

    for mode, label in (("1", "1-bit greyscale"), ("P", "palette")):
        other = tempfile.mkdtemp(prefix=f"vista_png_{mode}_")
        for f in files:
            img = Image.fromarray(cv2.imread(f, cv2.IMREAD_UNCHANGED))
            img = img.convert("1") if mode == "1" else img.convert("P")
            img.save(os.path.join(other, os.path.basename(f)))
        other_files = sorted(os.path.join(other, f) for f in os.listdir(other))
        cv_other = timed(rounds, len(other_files), lambda: [cv2.imread(f, cv2.IMREAD_UNCHANGED) for f in other_files])
        out = subprocess.run([bench_png, "decode", other, str(rounds)], capture_output=True, text=True, check=True)
        ours_other = json.loads(out.stdout.strip().splitlines()[-1])["us_per_file"]
        print(f"| decode one PNG file, {label} (us) | {cv_other:.1f} | {ours_other:.1f} | {cv_other / ours_other:.2f}x |")
    for p in (1, 2):
        ref_s, ref_out = whole_process([sys.executable, os.path.abspath(__file__), "--ref-pipeline", folder, "--workers", str(p)])
        ours_s, ours_out = whole_process([bench_png, "pipeline", folder, str(p)])
        print(
            f"| whole pipeline, {p} partition(s) (s; mean IoU {json.loads(ref_out)['mean_iou']:.4f} vs "
            f"{json.loads(ours_out)['mean_iou']:.4f}) | {ref_s:.3f} | {ours_s:.3f} | {ref_s / ours_s:.2f}x |"
        )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--png", action="store_true", help="also benchmark PNG files (decode and the whole pipeline)")
    ap.add_argument("--bench-png", default=os.path.join(ROOT, "target", "release", "examples", "bench_png"))
    ap.add_argument("--ref-pipeline", metavar="DIR", help="run the reference pipeline on DIR and exit")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rust", default=os.path.join(ROOT, "target", "release", "examples", "bench_contour"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sql-rows", type=int, default=2000)
    args = ap.parse_args()
    if args.ref_pipeline:
        return ref_pipeline(args.ref_pipeline, args.workers)
    import pycocotools.mask as cm

    cv2.setNumThreads(1)
    recs = json.load(open(os.path.join(ROOT, "tests", "fixtures", "contour", "masks.json")))
    masks = [np.ascontiguousarray(cm.decode({"size": r["size"], "counts": r["counts"].encode()})) for r in recs]
    ref = {}
    for method in ("adaptive", "uniform"):
        to_seq = timed(args.rounds, len(masks), lambda: [ref_sequence(m, N, method) for m in masks])
        seqs = [ref_sequence(m, N, method) for m in masks]
        to_mask = timed(args.rounds, len(masks), lambda: [ref_mask(s, *m.shape) for s, m in zip(seqs, masks)])
        rles = [{"size": r["size"], "counts": r["counts"].encode()} for r in recs]
        from_rle = timed(args.rounds, len(rles), lambda: [ref_sequence(np.ascontiguousarray(cm.decode(r)), N, method) for r in rles])
        ref[method] = (to_seq, to_mask, from_rle)
    out = subprocess.run([args.rust, str(args.rounds), str(args.sql_rows)], capture_output=True, text=True, check=True)
    rust, sql = {}, []
    for line in out.stdout.splitlines():
        r = json.loads(line)
        if r["bench"] == "rust":
            rust[r["method"]] = (r["mask_to_sequence_us"], r["sequence_to_mask_us"], r["rle_to_sequence_us"])
        else:
            sql.append(r)
    print(f"{len(masks)} masks of 512x512, n = {N}, single thread, microseconds per mask\n")
    print("| step | method | OpenCV + NumPy | vista | speed-up |")
    print("|---|---|---:|---:|---:|")
    for method in ("adaptive", "uniform"):
        for k, step in enumerate(("mask -> sequence", "sequence -> mask", "RLE -> sequence (decode included)")):
            a, b = ref[method][k], rust[method][k]
            print(f"| {step} | {method} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    print("\nSQL `mask_to_sequence` over many rows (RLE input, decode included):\n")
    print("| partitions | rows/s | speed-up |")
    print("|---:|---:|---:|")
    for r in sql:
        print(f"| {r['partitions']} | {r['rows_per_s']:.0f} | {r['speedup']:.2f}x |")
    if args.png:
        png_bench(masks, args.bench_png, args.rounds)


if __name__ == "__main__":
    main()
