#!/usr/bin/env python3
"""Small benchmark-format fixtures for tests/eval.rs (run by hand; CI never runs Python).

Writes tests/fixtures/eval/:
  images/                 COCO-named JPEGs (and one corrupt file) the samples point to
  captions.json           COCO captions format
  vqa_questions.json      VQAv2 questions format
  vqa_annotations.json    VQAv2 annotations format
  refs.p / refs.json      RefCOCO refs pickle, and its JSON dump made with the one-liner that
                          docs/eval.md documents
  instances.json          COCO instances the refs index (polygons and one RLE segmentation)
  grefs.json              gRefCOCO refs (multi-target and no-target)
  nlvr.json               two-image true/false samples
  expected_*.json         what each importer must produce, computed here with pycocotools
                          (boxes [x,y,w,h] -> [x0,y0,x1,y1]; masks frPyObjects + merge, RLE)

Requires numpy, Pillow, pycocotools.  Usage: python3 scripts/make_eval_fixtures.py
"""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as maskUtils

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "eval")
IMAGES = os.path.join(ROOT, "images")
rng = np.random.default_rng(6)

SIZES = {1: (40, 30), 2: (30, 44), 3: (50, 50), 4: (64, 48), 5: (24, 36), 6: (33, 33)}


def file_name(image_id):
    return "COCO_val2014_%012d.jpg" % image_id


def write_images():
    os.makedirs(IMAGES, exist_ok=True)
    for image_id, (w, h) in SIZES.items():
        img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 255, 3)))
        d = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x1, y1 = int(rng.integers(x0 + 2, w)), int(rng.integers(y0 + 2, h))
            d.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        img.save(os.path.join(IMAGES, file_name(image_id)), quality=90)
    # Not an image: the on_error tests point a sample at it.
    with open(os.path.join(IMAGES, "corrupt.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not a jpeg")


def coco_images():
    return [{"id": i, "file_name": file_name(i), "width": w, "height": h, "license": 1}
            for i, (w, h) in SIZES.items()]


def captions():
    words = ["a", "red", "square", "on", "the", "table", "blue", "box", "with", "two", "shapes"]
    anns, ann_id = [], 900
    for image_id in SIZES:
        for _ in range(5):
            n = int(rng.integers(3, 8))
            anns.append({"id": ann_id, "image_id": image_id,
                         "caption": " ".join(rng.choice(words, n)).capitalize() + "."})
            ann_id -= 7
    data = {"info": {"description": "fixture"}, "images": coco_images(), "annotations": anns}
    dump("captions.json", data)
    expected = []
    for image_id in sorted(SIZES):
        caps = sorted([a for a in anns if a["image_id"] == image_id], key=lambda a: a["id"])
        w, h = SIZES[image_id]
        expected.append({"sample_id": "coco-captions-%d" % image_id, "task": "caption",
                         "image_id": str(image_id), "image_path": file_name(image_id),
                         "width": w, "height": h, "instruction": "",
                         "answers": [a["caption"] for a in caps]})
    dump("expected_captions.json", expected)


def vqa():
    questions, annotations = [], []
    answers_pool = ["yes", "no", "2", "red", "blue"]
    qid = 5000
    for image_id in SIZES:
        for k in range(2):
            qid += 3
            questions.append({"image_id": image_id, "question": "Question %d about image %d?" % (k, image_id),
                              "question_id": qid})
            ans = [str(rng.choice(answers_pool)) for _ in range(10)]
            annotations.append({"question_id": qid, "image_id": image_id, "question_type": "what",
                                "answer_type": "other", "multiple_choice_answer": max(set(ans), key=ans.count),
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                            for j, a in enumerate(ans)]})
    dump("vqa_questions.json", {"task_type": "Open-Ended", "data_type": "mscoco",
                                "data_subtype": "val2014", "questions": questions})
    dump("vqa_annotations.json", {"data_subtype": "val2014", "annotations": annotations})
    expected = []
    by_q = {a["question_id"]: a for a in annotations}
    for q in sorted(questions, key=lambda q: q["question_id"]):
        a = by_q[q["question_id"]]
        expected.append({"sample_id": "vqav2-%d" % q["question_id"], "task": "vqa",
                         "image_id": str(q["image_id"]), "image_path": file_name(q["image_id"]),
                         "instruction": q["question"], "target": a["multiple_choice_answer"],
                         "answers": [x["answer"] for x in a["answers"]]})
    dump("expected_vqa.json", expected)


def polygon(w, h):
    cx, cy = rng.uniform(w * 0.3, w * 0.7), rng.uniform(h * 0.3, h * 0.7)
    pts = []
    for t in np.linspace(0, 2 * np.pi, 7, endpoint=False):
        r = rng.uniform(0.2, 0.45) * min(w, h)
        pts += [round(float(cx + r * np.cos(t)), 2), round(float(cy + r * np.sin(t)), 2)]
    return pts


def instances():
    anns, ann_id = [], 100
    for image_id, (w, h) in SIZES.items():
        for k in range(2):
            ann_id += 1
            if image_id == 6 and k == 1:
                # An RLE (crowd) segmentation, uncompressed counts as COCO stores them.
                m = np.zeros((h, w), dtype=np.uint8, order="F")
                m[5:20, 8:25] = 1
                rle = maskUtils.encode(m)
                counts = rle_counts(m)
                seg = {"size": [h, w], "counts": counts}
                bbox = [float(v) for v in maskUtils.toBbox(rle)]
            else:
                polys = [polygon(w, h)] + ([polygon(w, h)] if k == 0 and image_id == 3 else [])
                seg = polys
                rles = maskUtils.frPyObjects(polys, h, w)
                bbox = [float(v) for v in maskUtils.toBbox(maskUtils.merge(rles))]
            anns.append({"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "area": 1.0, "bbox": [round(v, 2) + 0.25 for v in bbox], "segmentation": seg})
    data = {"images": coco_images(), "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}
    dump("instances.json", data)
    return {a["id"]: a for a in anns}


def rle_counts(m):
    """Uncompressed column-major RLE counts, as COCO's iscrowd annotations store them."""
    flat = m.flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return counts


def mask_rle(ann, h, w):
    seg = ann["segmentation"]
    if isinstance(seg, list):
        rle = maskUtils.merge(maskUtils.frPyObjects(seg, h, w))
    else:
        rle = maskUtils.frPyObjects(seg, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def xyxy(b):
    return [b[0], b[1], b[0] + b[2], b[1] + b[3]]


def refs(anns):
    out, sent_id = [], 40
    for ref_id, (ann_id, ann) in enumerate(sorted(anns.items())):
        sents = []
        for _ in range(1 + ref_id % 2):
            sent_id += 1
            sents.append({"tokens": ["the", "thing"], "raw": "The thing %d" % sent_id,
                          "sent_id": sent_id, "sent": "the thing %d" % sent_id})
        out.append({"sent_ids": [s["sent_id"] for s in sents], "file_name": "COCO_val2014_%012d_%d.jpg" % (ann["image_id"], ann_id),
                    "ann_id": ann_id, "ref_id": 300 + ref_id, "image_id": ann["image_id"],
                    "split": "val" if ref_id % 3 else "testA", "sentences": sents, "category_id": 1})
    with open(os.path.join(ROOT, "refs.p"), "wb") as f:
        pickle.dump(out, f, protocol=2)
    # The conversion documented in docs/eval.md, run as users would run it.
    cmd = ("import pickle,json,sys; json.dump(pickle.load(open(sys.argv[1],'rb')), open(sys.argv[2],'w'))")
    subprocess.run([sys.executable, "-c", cmd, os.path.join(ROOT, "refs.p"), os.path.join(ROOT, "refs.json")], check=True)
    for task in ("rec", "res"):
        expected = []
        for r in sorted(out, key=lambda r: r["ref_id"]):
            if r["split"] != "val":
                continue
            ann = anns[r["ann_id"]]
            w, h = SIZES[r["image_id"]]
            for s in r["sentences"]:
                e = {"sample_id": "refcoco-%d-%d" % (r["ref_id"], s["sent_id"]), "task": task,
                     "image_id": str(r["image_id"]), "image_path": file_name(r["image_id"]),
                     "width": w, "height": h, "instruction": s["sent"], "split": "val",
                     "boxes": [xyxy(ann["bbox"])]}
                if task == "res":
                    e["masks"] = [mask_rle(ann, h, w)]
                expected.append(e)
        dump("expected_refcoco_%s_val.json" % task, expected)


def grefs(anns):
    ids = sorted(anns)
    out = []
    targets = [[ids[0], ids[1]], [ids[2]], [-1], [ids[4], ids[5]], [-1], [ids[11]]]
    for k, t in enumerate(targets):
        image_id = anns[t[0]]["image_id"] if t[0] >= 0 else 1 + k % 6
        out.append({"ref_id": 700 + k, "image_id": image_id, "split": "val", "ann_id": t,
                    "category_id": [1 if a >= 0 else -1 for a in t], "no_target": t == [-1],
                    "sent_ids": [800 + k], "file_name": file_name(image_id),
                    "sentences": [{"tokens": [], "raw": "Objects %d" % k, "sent": "objects %d" % k, "sent_id": 800 + k}]})
    dump("grefs.json", out)
    for task in ("grec", "gres"):
        expected = []
        for r in out:
            w, h = SIZES[r["image_id"]]
            objs = [anns[a] for a in r["ann_id"] if a >= 0]
            e = {"sample_id": "grefcoco-%d-%d" % (r["ref_id"], 800 + r["ref_id"] - 700), "task": task,
                 "image_id": str(r["image_id"]), "image_path": file_name(r["image_id"]),
                 "width": w, "height": h, "instruction": r["sentences"][0]["sent"], "split": "val",
                 "boxes": [xyxy(a["bbox"]) for a in objs]}
            if task == "gres":
                e["masks"] = [mask_rle(a, h, w) for a in objs]
            expected.append(e)
        dump("expected_grefcoco_%s.json" % task, expected)


def nlvr():
    rows = []
    for k in range(4):
        a, b = 1 + k, 2 + k
        rows.append({"sample_id": "nlvr-%d" % k, "left": file_name(a), "right": file_name(b),
                     "sentence": "The left image has more shapes than the right one (%d)." % k,
                     "label": "true" if k % 2 else "false"})
    dump("nlvr.json", rows)


def dump(name, data):
    with open(os.path.join(ROOT, name), "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(ROOT, exist_ok=True)
    write_images()
    captions()
    vqa()
    anns = instances()
    refs(anns)
    grefs(anns)
    nlvr()
    print("fixtures written to", os.path.normpath(ROOT))
