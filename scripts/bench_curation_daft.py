#!/usr/bin/env python3
"""Peer benchmark: the RES curation job (COCO polygons -> 32-point contour targets) in Daft + OpenCV.

    pip install daft pycocotools opencv-python-headless numpy   # measured with daft 0.7.26
    python3 scripts/make_coco_bench.py 2000 /tmp/coco_bench
    python3 scripts/bench_curation_daft.py /tmp/coco_bench/instances.json /tmp/res_daft.parquet [--points 32]

Job, per non-crowd annotation (Daft native runner, not Ray):
  1. json.load the instances file; one row per annotation with iscrowd == 0: ann_id, image_id,
     width, height (from its image), segmentation as a JSON string; daft.from_pydict.
  2. A Daft batch UDF (`@daft.func.batch`, falling back to `@daft.udf` on old versions), per row:
     pycocotools frPyObjects(polys, h, w) + merge + decode -> mask; cv2.findContours(RETR_EXTERNAL,
     CHAIN_APPROX_NONE), the largest contour (cv2.contourArea); `points` points evenly spaced by
     arc length along the closed contour (linear interpolation between contour pixels, starting at
     OpenCV's first contour point); target text `[x0, y0, x1, y1, ...]` = point / (width, height)
     with 3 decimals; the target's points (the 3-decimal values times width/height, rounded to
     pixels) rasterised with cv2.fillPoly; recon_iou = IoU of that raster with the mask.
  3. Columns sample_id ('coco-res-<ann_id>'), image_id, target, recon_iou; written with Daft's
     write_parquet (single_file=True, so OUT_PARQUET is the file).
Prints one JSON line: rows, seconds (json.load to Parquet written), load_seconds, rows_per_s,
peak_rss_mb (ru_maxrss of this process), peak_rss_child_mb (ru_maxrss of the largest child, i.e. a
UDF worker process when Daft runs the UDF out of process; 0 otherwise), daft version, UDF flavour,
use_process / batch_size (flags; default: Daft decides / Daft's batch size).
"""
import argparse
import json
import os
import resource
import shutil
import time

import cv2
import daft
import numpy as np
import pycocotools.mask as cm
from daft import DataType


def sequence(seg_json, w, h, n):
    """(target text, reconstruction IoU) of one annotation."""
    seg = json.loads(seg_json)
    if isinstance(seg, list):
        rle = cm.merge(cm.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):
        rle = cm.frPyObjects(seg, h, w)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode()}
    mask = cm.decode(rle)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return "[]", 0.0
    c = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    # closed polyline: segment lengths, cumulative arc length, n evenly spaced positions
    nxt = np.roll(c, -1, axis=0)
    seglen = np.linalg.norm(nxt - c, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    total = cum[-1]
    if total == 0:  # single-pixel contour
        pts = np.repeat(c[:1], n, axis=0)
    else:
        t = np.arange(n) * (total / n)
        i = np.clip(np.searchsorted(cum, t, side="right") - 1, 0, len(c) - 1)
        f = ((t - cum[i]) / np.where(seglen[i] > 0, seglen[i], 1.0))[:, None]
        pts = c[i] + f * (nxt[i] - c[i])
    norm = np.round(pts / [w, h], 3)
    target = "[" + ", ".join(f"{v:.3f}" for v in norm.ravel()) + "]"
    recon = np.zeros((h, w), np.uint8)
    cv2.fillPoly(recon, [np.round(norm * [w, h]).astype(np.int32)], 1)
    inter = int(np.count_nonzero(recon & mask))
    union = int(np.count_nonzero(recon | mask))
    return target, (inter / union if union else 0.0)


RET = DataType.struct({"target": DataType.string(), "recon_iou": DataType.float64()})


def make_udf(n, use_process=None, batch_size=None):
    if hasattr(daft, "func") and hasattr(daft.func, "batch"):
        @daft.func.batch(return_dtype=RET, unnest=True, use_process=use_process, batch_size=batch_size)
        def contour_target(seg, width, height):
            out = [sequence(s, w, h, n) for s, w, h in zip(seg.to_pylist(), width.to_pylist(), height.to_pylist())]
            return [{"target": t, "recon_iou": iou} for t, iou in out]
        return contour_target, "daft.func.batch"

    @daft.udf(return_dtype=RET)
    def contour_target_old(seg, width, height):
        out = [sequence(s, w, h, n) for s, w, h in zip(seg.to_pylist(), width.to_pylist(), height.to_pylist())]
        return [{"target": t, "recon_iou": iou} for t, iou in out]
    return contour_target_old, "daft.udf"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("instances")
    ap.add_argument("out_parquet")
    ap.add_argument("--points", type=int, default=32)
    ap.add_argument("--use-process", choices=["auto", "true", "false"], default="auto",
                    help="daft.func.batch use_process (auto: Daft decides)")
    ap.add_argument("--batch-size", type=int, default=None, help="daft.func.batch batch_size (default: Daft's)")
    args = ap.parse_args()
    daft.set_runner_native()
    cv2.setNumThreads(1)
    if os.path.isdir(args.out_parquet):
        shutil.rmtree(args.out_parquet)
    elif os.path.exists(args.out_parquet):
        os.remove(args.out_parquet)

    t0 = time.perf_counter()
    with open(args.instances) as f:
        coco = json.load(f)
    sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    cols = {"ann_id": [], "image_id": [], "width": [], "height": [], "segmentation": []}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0) or a["image_id"] not in sizes:
            continue
        w, h = sizes[a["image_id"]]
        cols["ann_id"].append(a["id"])
        cols["image_id"].append(a["image_id"])
        cols["width"].append(w)
        cols["height"].append(h)
        cols["segmentation"].append(json.dumps(a["segmentation"]))
    del coco
    df = daft.from_pydict(cols)
    t_load = time.perf_counter() - t0

    use_process = {"auto": None, "true": True, "false": False}[args.use_process]
    udf, flavour = make_udf(args.points, use_process, args.batch_size)
    df = df.select(
        (daft.lit("coco-res-") + df["ann_id"].cast(DataType.string())).alias("sample_id"),
        df["image_id"],
        udf(df["segmentation"], df["width"], df["height"]),
    )
    df.write_parquet(args.out_parquet, single_file=True)
    secs = time.perf_counter() - t0
    rows = len(cols["ann_id"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # largest UDF worker, if any
    print(json.dumps({"rows": rows, "seconds": round(secs, 3), "load_seconds": round(t_load, 3),
                      "rows_per_s": round(rows / secs, 1), "peak_rss_mb": round(peak, 1),
                      "peak_rss_child_mb": round(peak_child, 1),
                      "daft": daft.__version__, "udf": flavour, "points": args.points,
                      "use_process": args.use_process, "batch_size": args.batch_size}))


if __name__ == "__main__":
    main()
