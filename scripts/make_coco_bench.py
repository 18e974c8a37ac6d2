#!/usr/bin/env python3
"""Synthetic COCO instances file for the curation benchmark (no image files).

    pip install numpy pycocotools
    python3 scripts/make_coco_bench.py N OUT_DIR [--seed 7]

Writes OUT_DIR/instances.json (keys info, licenses, images, annotations, categories) with N
object annotations, 4 per image on 640x480 images (the last image may hold fewer), categories
1 ball, 3 box, 7 kite, 12 cup, one object of each per image. Each mask is one random star-shaped polygon (8-40 vertices at
sorted random angles, radii 0.45-1.0 of the object's radius), object diameter 20-300 px, kept
inside the image; iscrowd 0. bbox and area are pycocotools' toBbox / area of
frPyObjects([poly], h, w). Deterministic for a given (N, seed).
"""
import argparse
import json
import math
import os

import numpy as np
import pycocotools.mask as cm

W, H = 640, 480
PER_IMAGE = 4
CATS = {1: "ball", 3: "box", 7: "kite", 12: "cup"}


def star_polygon(rng):
    k = int(rng.integers(8, 41))
    d = float(rng.uniform(20, 300))
    r = d / 2
    cx = float(rng.uniform(r, W - r))
    cy = float(rng.uniform(r, H - r)) if d < H else H / 2
    angles = np.sort(rng.uniform(0, 2 * math.pi, k))
    radii = rng.uniform(0.45, 1.0, k) * r
    xs = np.clip(cx + radii * np.cos(angles), 0, W)
    ys = np.clip(cy + radii * np.sin(angles), 0, H)
    return [round(float(v), 2) for x, y in zip(xs, ys) for v in (x, y)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cat_ids = list(CATS)
    images, annotations = [], []
    n_images = (args.n + PER_IMAGE - 1) // PER_IMAGE
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": W, "height": H})
    for a in range(args.n):
        poly = star_polygon(rng)
        rle = cm.frPyObjects([poly], H, W)[0]
        annotations.append({
            "id": a + 1,
            "image_id": a // PER_IMAGE + 1,
            # The 4 objects of an image have 4 different categories, so every object is a
            # REC/RES target ("the <category>" is unambiguous) and both jobs do all N masks.
            "category_id": cat_ids[a % PER_IMAGE],
            "segmentation": [poly],
            "area": float(cm.area(rle)),
            "bbox": [float(v) for v in cm.toBbox(rle).tolist()],
            "iscrowd": 0,
        })
    out = {
        "info": {"description": f"vista curation benchmark, N={args.n}, seed={args.seed}", "year": 2026},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"supercategory": "object", "id": k, "name": v} for k, v in CATS.items()],
    }
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "instances.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(json.dumps({"annotations": args.n, "images": n_images, "path": path, "bytes": os.path.getsize(path)}))


if __name__ == "__main__":
    main()
