#!/usr/bin/env python3
"""Small fixtures in the benchmarks' own file layouts for the newer importers (run by hand; CI
never runs Python), each with malformed records the importer must skip; tests/eval.rs states the
samples and skip reasons each importer must produce.

Writes under tests/fixtures/eval/:
  karpathy_coco.json        Karpathy's dataset_coco.json layout (filepath, filename, cocoid,
                            split, sentences[].raw), one image without sentences
  nlvr2_dev.json            NLVR2 statements, JSON lines (identifier, sentence, label, ...),
                            one bad label, one pair whose images are missing, one non-JSON line
  nlvr2/                    the image pairs, <pair>-img0.png / -img1.png
  vg_regions.json           Visual Genome region_descriptions.json layout, one empty box and
                            one region without a phrase
  refs_regions.json         RefCOCOg-style refs (one object each, on distinct images) over
                            instances.json, for region captioning
  coseg/images/<group>/     co-segmentation groups (iCoSeg's layout: images/<class>/*.jpg and
  coseg/masks/<group>/      ground truth <class>/*.png, non-zero = foreground); one image
                            without a mask and one mask of the wrong size

Requires numpy and Pillow.  Usage: python3 scripts/make_import_fixtures.py
"""
import json
import os

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "eval")
rng = np.random.default_rng(11)


def dump(name, data):
    with open(os.path.join(ROOT, name), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def karpathy():
    images = []
    splits = ["test", "test", "val", "restval", "test"]
    for k, split in enumerate(splits):
        cocoid = 1 + k
        sents = [{"raw": r, "tokens": r.lower().rstrip(".").split(), "imgid": k, "sentid": 10 * k + j}
                 for j, r in enumerate(["A red square on a table. ", "Two shapes near a box.",
                                        " A blue box with a red square."][: 2 + k % 2])]
        if k == 4:
            sents = []  # malformed: no sentences
        images.append({"filepath": "val2014", "filename": "COCO_val2014_%012d.jpg" % cocoid,
                       "imgid": k, "split": split, "sentences": sents,
                       "sentids": [s["sentid"] for s in sents], "cocoid": cocoid})
    dump("karpathy_coco.json", {"images": images, "dataset": "coco"})


def png(path, seed):
    r = np.random.default_rng(seed)
    Image.fromarray(r.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(path)


def nlvr2():
    os.makedirs(os.path.join(ROOT, "nlvr2"), exist_ok=True)
    lines = []
    for k in range(4):
        pair = "dev-%d-0" % (100 + k)
        if k != 3:  # the last pair's images are missing
            for side in range(2):
                png(os.path.join(ROOT, "nlvr2", "%s-img%d.png" % (pair, side)), 10 * k + side)
        lines.append(json.dumps({"identifier": "%s-%d" % (pair, k % 2), "sentence": "Statement %d about two images." % k,
                                 "label": "True" if k % 2 else "False", "left_url": "http://x/l.jpg",
                                 "right_url": "http://x/r.jpg", "synset": "n0", "query": "q", "writer": "w",
                                 "validation": {}, "extra_validations": {}}))
    lines.insert(2, json.dumps({"identifier": "dev-100-0-3", "sentence": "Bad label.", "label": "maybe"}))
    lines.insert(4, '{"identifier": "dev-101-0-2", "sentence": ')
    with open(os.path.join(ROOT, "nlvr2_dev.json"), "w") as f:
        f.write("\n".join(lines) + "\n")


def vg():
    data = [
        {"id": 1, "regions": [
            {"region_id": 501, "width": 10, "height": 8, "image_id": 1, "phrase": "a red square", "y": 3, "x": 4},
            {"region_id": 502, "width": 0, "height": 8, "image_id": 1, "phrase": "nothing", "y": 3, "x": 4},
            {"region_id": 503, "width": 20, "height": 12, "image_id": 1, "phrase": " the blue box ", "y": 10, "x": 12}]},
        {"id": 2, "regions": [
            {"region_id": 504, "width": 6, "height": 6, "image_id": 2, "y": 1, "x": 1},
            {"region_id": 505, "width": 14, "height": 20, "image_id": 2, "phrase": "two shapes", "y": 5, "x": 7}]},
    ]
    dump("vg_regions.json", data)


def refs_regions():
    words = ["a red square on the left", "the blue box", "two shapes near the table", "the small red box",
             "a square with a blue border", "the shape at the top", "a box on the table", "the left shape"]
    out, sent_id = [], 900
    for k, ann_id in enumerate([101, 103, 105, 107, 109, 111]):
        sents = []
        for j in range(2 + k % 2):
            sent_id += 1
            w = words[(k + 3 * j) % len(words)]
            sents.append({"tokens": w.split(), "raw": w.capitalize() + ".", "sent_id": sent_id, "sent": w})
        out.append({"sent_ids": [s["sent_id"] for s in sents], "file_name": "x.jpg", "ann_id": ann_id,
                    "ref_id": 600 + k, "image_id": 1 + k, "split": "val", "sentences": sents,
                    "category_id": 1})
    dump("refs_regions.json", out)


COSEG = {  # group -> [(name, width, height, (x0, y0, x1, y1) of the object)]
    "bear": [("b1", 30, 20, (5, 4, 18, 15)), ("b2", 24, 24, (8, 6, 20, 22)), ("b3", 20, 28, (2, 10, 15, 25)),
             ("b4", 16, 16, None)],  # b4: no mask file
    "kite": [("k1", 26, 18, (10, 2, 24, 12)), ("k2", 18, 26, (3, 3, 10, 9)), ("k3", 20, 20, (4, 4, 12, 12))],
}


def coseg():
    for group, items in COSEG.items():
        os.makedirs(os.path.join(ROOT, "coseg", "images", group), exist_ok=True)
        os.makedirs(os.path.join(ROOT, "coseg", "masks", group), exist_ok=True)
        for k, (name, w, h, box) in enumerate(items):
            png_sized(os.path.join(ROOT, "coseg", "images", group, name + ".png"), 100 + k + 10 * len(group), w, h)
            if box is None:
                continue
            m = np.zeros((h, w), dtype=np.uint8)
            x0, y0, x1, y1 = box
            m[y0:y1, x0:x1] = 255
            if name == "k3":
                m = np.zeros((h + 1, w), dtype=np.uint8)  # wrong size: skipped
            Image.fromarray(m).save(os.path.join(ROOT, "coseg", "masks", group, name + ".png"))


def png_sized(path, seed, w, h):
    r = np.random.default_rng(seed)
    Image.fromarray(r.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


if __name__ == "__main__":
    karpathy()
    nlvr2()
    vg()
    refs_regions()
    coseg()
    print("fixtures written to", os.path.normpath(ROOT))
