#!/usr/bin/env python3
"""A tiny COCO-style data set (images + instances + captions) for the COCO importer and curation.

    pip install numpy pillow pycocotools imagehash   # imagehash optional (phash, informational)
    python3 scripts/make_coco_fixture.py

Writes tests/fixtures/coco/:
  images/*.png    small RGB scenes (64x48 .. 120x96): a smooth textured background with a little
                  noise and 1-5 flat, saturated objects drawn with PIL. Categories (non-contiguous
                  ids): 1 ball (circle), 3 box (rectangle), 7 kite (triangle / diamond),
                  12 cup (irregular polygon).
  instances.json  COCO instances, keys in the order info, licenses, ANNOTATIONS, images,
                  categories (annotations before images on purpose). Segmentation kinds: one
                  polygon, several polygons for one object (a box cut in two), iscrowd=1
                  uncompressed RLE (a crowd of balls), iscrowd=0 compressed RLE (counts string),
                  a tiny object (area < 20). bbox and area are pycocotools' toBbox / area of the
                  segmentation. Malformed records (ids >= 900), one fault each, see BAD below.
  captions.json   COCO captions (info, images, annotations{id, image_id, caption}), 2-3 per image.
  expected.json   per valid annotation id: image_id, category_id, iscrowd, bbox ([x, y, w, h],
                  pycocotools toBbox of the merged mask), area, rle (compressed counts string as
                  pycocotools gives it: polygons -> frPyObjects(polys, h, w) + merge, uncompressed
                  RLE -> frPyObjects, compressed as is), size [h, w], seg_kind (polygon,
                  polygons, rle_uncompressed, rle_compressed; informational);
                  skipped: [{kind, id, reason}]; images {id: {file_name, width, height}} (valid
                  ones); categories; duplicates [[a, b]] (pairs meant as duplicates: one exact
                  pixel copy written with another PNG compression level, one JPEG-q85 round trip);
                  coseg_pairs: every pair of valid images whose category sets meet in exactly
                  one category that has exactly one (non-crowd) annotation in each image;
                  phash {file_name: hex} if imagehash is importable (informational only).
Deterministic (fixed seed); re-running rewrites the same bytes.
"""
import io
import json
import math
import os
import shutil
from itertools import combinations

import numpy as np
import pycocotools.mask as cm
from PIL import Image, ImageDraw

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "coco")
rng = np.random.default_rng(20260417)

CATS = {1: "ball", 3: "box", 7: "kite", 12: "cup"}
BALL, BOX, KITE, CUP = 1, 3, 7, 12
COLOURS = {
    "red": (230, 25, 30), "green": (20, 190, 40), "blue": (25, 55, 235), "yellow": (245, 225, 15),
    "white": (252, 252, 252), "black": (8, 8, 8), "orange": (250, 135, 0), "purple": (145, 35, 200),
}
BACKGROUNDS = [(128, 118, 100), (96, 110, 122), (118, 128, 104), (132, 112, 118), (104, 104, 110)]


# ---------------------------------------------------------------------------------------------
# drawing helpers


def background(w, h):
    base = np.array(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], np.float64)
    # smooth texture: coarse random field, bilinearly upsampled, plus a gradient and mild noise
    gh, gw = max(2, h // 12), max(2, w // 12)
    coarse = rng.normal(0, 14, (gh, gw, 3))
    smooth = np.stack([np.asarray(Image.fromarray(coarse[..., c].astype(np.float32), "F")
                                  .resize((w, h), Image.BILINEAR)) for c in range(3)], -1)
    ramp = np.linspace(-10, 10, w)[None, :, None] * (1 if rng.random() < 0.5 else -1)
    noise = rng.integers(-2, 3, (h, w, 3))
    return np.clip(base + smooth + ramp + noise, 0, 255).astype(np.uint8)


def circle_poly(cx, cy, r, k=20):
    return [round(v, 2) for t in range(k)
            for v in (cx + r * math.cos(2 * math.pi * t / k), cy + r * math.sin(2 * math.pi * t / k))]


def rect_poly(x, y, w, h):
    return [float(x), float(y), float(x + w), float(y), float(x + w), float(y + h), float(x), float(y + h)]


def kite_poly(cx, cy, r):
    if rng.random() < 0.5:  # diamond kite
        return [round(v, 2) for v in (cx, cy - r, cx + 0.6 * r, cy - 0.2 * r, cx, cy + r, cx - 0.6 * r, cy - 0.2 * r)]
    a0 = rng.uniform(0, 2 * math.pi)  # triangle
    return [round(v, 2) for t in range(3)
            for v in (cx + r * math.cos(a0 + 2 * math.pi * t / 3), cy + r * math.sin(a0 + 2 * math.pi * t / 3))]


def cup_poly(cx, cy, r):
    k = int(rng.integers(6, 10))
    angles = np.sort(rng.uniform(0, 2 * math.pi, k))
    radii = rng.uniform(0.55, 1.0, k) * r
    return [round(float(v), 2) for a, rr in zip(angles, radii) for v in (cx + rr * math.cos(a), cy + rr * math.sin(a))]


def poly_rle(polys, h, w):
    return cm.merge(cm.frPyObjects(polys, h, w))


def uncompressed(mask):
    """COCO uncompressed RLE of a binary mask: column-major runs, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, cur, run = [], 0, 0
    for v in flat:
        if v == cur:
            run += 1
        else:
            counts.append(run)
            cur, run = v, 1
    counts.append(run)
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def compressed(mask):
    r = cm.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


# ---------------------------------------------------------------------------------------------
# scenes: (file stem, width, height, [(category, colour, kind)])
#   kind: "poly" (one polygon), "split" (box in two polygons), "rle" (compressed RLE, iscrowd 0),
#         "crowd" (several small balls, one iscrowd=1 uncompressed RLE), "tiny" (area < 20)

SCENES = [
    ("scene_01", 96, 72, [(BALL, "red", "poly"), (BOX, "blue", "poly")]),
    ("scene_02", 120, 96, [(KITE, "yellow", "poly"), (KITE, "orange", "poly"), (KITE, "purple", "poly"), (CUP, "green", "poly")]),
    ("scene_03", 80, 64, [(BALL, "white", "poly"), (BALL, "orange", "poly"), (BOX, "green", "split")]),
    ("scene_04", 64, 48, [(CUP, "purple", "poly"), (BALL, "yellow", "poly")]),
    ("scene_05", 112, 84, [(BALL, "red", "crowd"), (BOX, "yellow", "poly")]),
    ("scene_06", 100, 80, [(KITE, "blue", "rle"), (CUP, "white", "poly"), (CUP, "red", "poly")]),
    ("scene_07", 120, 90, [(BOX, "black", "poly"), (BOX, "orange", "poly"), (KITE, "green", "poly"), (BALL, "purple", "rle")]),
    ("scene_08", 72, 56, [(KITE, "red", "poly"), (BALL, "blue", "poly")]),
    ("scene_09", 88, 66, [(BOX, "red", "poly"), (BOX, "white", "poly"), (BOX, "blue", "poly")]),
    ("scene_10", 104, 78, [(BALL, "green", "poly"), (KITE, "white", "poly"), (KITE, "black", "poly"), (CUP, "yellow", "poly"), (BOX, "purple", "tiny")]),
    ("scene_11", 120, 96, [(BALL, "blue", "poly"), (BOX, "green", "poly"), (KITE, "red", "poly"), (CUP, "orange", "poly"), (CUP, "black", "rle")]),
]
NEAR_DUP = ("scene_12", "scene_01")   # scene_01 through JPEG q85, saved as PNG
EXACT_DUP = ("scene_13", "scene_09")  # scene_09's pixels, PNG written with another compression level
BAD_IMAGE = ("scene_14", 900, 80, 60)  # image entry missing "width"


def place(w, h, taken, size):
    """A free square of side `size` (2 px apart from the others), as (x, y)."""
    for _ in range(2000):
        x = int(rng.integers(2, w - size - 1))
        y = int(rng.integers(2, h - size - 1))
        if all(x + size + 2 <= a or a + s + 2 <= x or y + size + 2 <= b or b + s + 2 <= y for a, b, s in taken):
            taken.append((x, y, size))
            return x, y
    raise RuntimeError("no room")


def draw_scene(w, h, objects):
    """Returns (pixels, [(category, colour, segmentation, iscrowd)])."""
    img = Image.fromarray(background(w, h))
    draw = ImageDraw.Draw(img)
    taken, anns = [], []
    cap = min(w, h)
    for cat, colour, kind in objects:
        rgb = COLOURS[colour]
        if kind == "tiny":
            x, y = place(w, h, taken, 5)
            poly = rect_poly(x + 1, y + 1, 3, 4)
            draw.polygon(poly, fill=rgb)
            anns.append((cat, colour, [poly], 0))
            continue
        if kind == "crowd":
            # 4-5 small balls close together, one crowd annotation (uncompressed RLE)
            x, y = place(w, h, taken, min(40, cap - 6))
            m = Image.new("L", (w, h), 0)
            md = ImageDraw.Draw(m)
            for _ in range(int(rng.integers(4, 6))):
                r = int(rng.integers(3, 6))
                cx = x + int(rng.integers(r, 40 - r))
                cy = y + int(rng.integers(r, 40 - r))
                md.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
            mask = np.asarray(m) > 0
            img.paste(Image.new("RGB", (w, h), rgb), (0, 0), Image.fromarray((mask * 255).astype(np.uint8)))
            draw = ImageDraw.Draw(img)
            anns.append((cat, colour, uncompressed(mask), 1))
            continue
        size = int(rng.integers(max(10, cap // 5), max(12, cap // 5) + cap // 4))
        x, y = place(w, h, taken, size)
        r = size / 2
        cx, cy = x + r, y + r
        if kind == "rle":
            # drawn into a mask with PIL's own primitives, annotated as compressed RLE
            m = Image.new("L", (w, h), 0)
            md = ImageDraw.Draw(m)
            if cat == BALL:
                md.ellipse([x, y, x + size - 1, y + size - 1], fill=1)
            elif cat == KITE:
                md.polygon(kite_poly(cx, cy, r - 0.5), fill=1)
            else:
                md.polygon(cup_poly(cx, cy, r - 0.5), fill=1)
            mask = np.asarray(m) > 0
            img.paste(Image.new("RGB", (w, h), rgb), (0, 0), Image.fromarray((mask * 255).astype(np.uint8)))
            draw = ImageDraw.Draw(img)
            anns.append((cat, colour, compressed(mask), 0))
            continue
        if kind == "split":
            # a box in two parts with a strip of background between them: two polygons
            bw, bh = size, max(8, int(size * 0.7))
            gap = 3
            left = (bw - gap) // 2
            p1 = rect_poly(x, y, left, bh)
            p2 = rect_poly(x + left + gap, y, bw - left - gap, bh)
            draw.polygon(p1, fill=rgb)
            draw.polygon(p2, fill=rgb)
            anns.append((cat, colour, [p1, p2], 0))
            continue
        if cat == BALL:
            poly = circle_poly(cx, cy, r - 0.5)
        elif cat == BOX:
            bw = size
            bh = max(6, int(size * rng.uniform(0.5, 1.0)))
            poly = rect_poly(x, y, bw - 1, bh - 1)
        elif cat == KITE:
            poly = kite_poly(cx, cy, r - 0.5)
        else:
            poly = cup_poly(cx, cy, r - 0.5)
        draw.polygon(poly, fill=rgb)
        anns.append((cat, colour, [poly], 0))
    return np.asarray(img), anns


def rle_of(seg, h, w):
    """The merged compressed RLE pycocotools gives for a segmentation."""
    if isinstance(seg, list):
        return poly_rle(seg, h, w)
    if isinstance(seg["counts"], list):
        return cm.frPyObjects(seg, h, w)
    return {"size": seg["size"], "counts": seg["counts"].encode("ascii")}


def box_area(rle):
    return [float(v) for v in cm.toBbox(rle).tolist()], int(cm.area(rle))


# ---------------------------------------------------------------------------------------------


def main():
    img_dir = os.path.join(OUT, "images")
    if os.path.isdir(img_dir):
        shutil.rmtree(img_dir)
    os.makedirs(img_dir)

    images, annotations, expected_anns, captions = [], [], {}, []
    ann_id = 1
    pixels, scene_anns = {}, {}
    image_ids = {}

    def add_image(iid, stem, w, h):
        fn = stem + ".png"
        images.append({"id": iid, "file_name": fn, "width": w, "height": h, "license": 1,
                       "date_captured": "2026-04-17 12:00:00"})
        image_ids[stem] = iid
        return fn

    def add_anns(iid, w, h, anns):
        nonlocal ann_id
        for cat, colour, seg, crowd in anns:
            rle = rle_of(seg, h, w)
            bbox, area = box_area(rle)
            annotations.append({"id": ann_id, "image_id": iid, "category_id": cat, "segmentation": seg,
                                "area": float(area), "bbox": bbox, "iscrowd": crowd})
            kind = (("polygon" if len(seg) == 1 else "polygons") if isinstance(seg, list) else
                    ("rle_uncompressed" if isinstance(seg["counts"], list) else "rle_compressed"))
            expected_anns[str(ann_id)] = {"image_id": iid, "category_id": cat, "iscrowd": crowd, "bbox": bbox,
                                          "area": area, "rle": rle["counts"].decode("ascii"), "size": [h, w],
                                          "seg_kind": kind}
            ann_id += 1

    # regular scenes
    iid = 1
    for stem, w, h, objects in SCENES:
        px, anns = draw_scene(w, h, objects)
        fn = add_image(iid, stem, w, h)
        Image.fromarray(px).save(os.path.join(img_dir, fn), optimize=True)
        pixels[stem], scene_anns[stem] = px, anns
        add_anns(iid, w, h, anns)
        iid += 1

    # near duplicate: JPEG q85 round trip, saved as PNG; same annotations
    stem, src = NEAR_DUP
    buf = io.BytesIO()
    Image.fromarray(pixels[src]).save(buf, format="JPEG", quality=85)
    px = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    h, w = px.shape[:2]
    fn = add_image(iid, stem, w, h)
    Image.fromarray(px).save(os.path.join(img_dir, fn), optimize=True)
    pixels[stem], scene_anns[stem] = px, scene_anns[src]
    add_anns(iid, w, h, scene_anns[src])
    iid += 1

    # exact pixel duplicate, other file name, other PNG compression level (bytes differ)
    stem, src = EXACT_DUP
    px = pixels[src]
    h, w = px.shape[:2]
    fn = add_image(iid, stem, w, h)
    Image.fromarray(px).save(os.path.join(img_dir, fn), compress_level=1)
    pixels[stem], scene_anns[stem] = px, scene_anns[src]
    add_anns(iid, w, h, scene_anns[src])
    iid += 1

    valid_ids = {im["id"] for im in images}

    # ---- malformed records (ids >= 900), one fault each ----
    skipped = []
    s1 = images[0]  # scene_01 (96x72)
    W, H = s1["width"], s1["height"]
    ok_poly = [rect_poly(3, 3, 10, 8)]
    ok_rle = poly_rle(ok_poly, H, W)
    ok_bbox, ok_area = box_area(ok_rle)

    def bad(aid, reason, **over):
        a = {"id": aid, "image_id": s1["id"], "category_id": BOX, "segmentation": ok_poly,
             "area": float(ok_area), "bbox": ok_bbox, "iscrowd": 0}
        for k, v in over.items():
            if v is None:
                a.pop(k)
            else:
                a[k] = v
        annotations.append(a)
        skipped.append({"kind": "annotation", "id": aid, "reason": reason})

    bad(901, "missing_bbox", bbox=None)
    bad(902, "bad_bbox", bbox=ok_bbox[:3])
    bad(903, "odd_polygon", segmentation=[[3.0, 3.0, 13.0, 3.0, 13.0, 11.0, 3.0]])
    bad(904, "short_polygon", segmentation=[[3.0, 3.0, 13.0, 11.0]])
    bad(905, "unknown_image", image_id=9999)
    bad(906, "unknown_category", category_id=99)
    bad(907, "bad_segmentation", segmentation=5)
    mis = compressed(np.pad(np.ones((8, 10), bool), ((3, 39), (3, 37))))  # 50x50, image is 72x96
    mis_bbox, mis_area = box_area({"size": mis["size"], "counts": mis["counts"].encode()})
    bad(908, "rle_size_mismatch", segmentation=mis, bbox=mis_bbox, area=float(mis_area))

    # an image entry with no "width" (its file exists) and one otherwise fine annotation on it
    stem, bid, bw, bh = BAD_IMAGE
    px, anns = draw_scene(bw, bh, [(BALL, "red", "poly")])
    Image.fromarray(px).save(os.path.join(img_dir, stem + ".png"), optimize=True)
    images.append({"id": bid, "file_name": stem + ".png", "height": bh, "license": 1,
                   "date_captured": "2026-04-17 12:00:00"})
    skipped.append({"kind": "image", "id": bid, "reason": "missing_width"})
    cat, colour, seg, crowd = anns[0]
    rle = rle_of(seg, bh, bw)
    bb, ar = box_area(rle)
    annotations.append({"id": 909, "image_id": bid, "category_id": cat, "segmentation": seg,
                        "area": float(ar), "bbox": bb, "iscrowd": crowd})
    # its image is not a valid image, so to the importer this is an unknown image
    skipped.append({"kind": "annotation", "id": 909, "reason": "unknown_image"})

    # ---- self checks ----
    areas = [e["area"] for e in expected_anns.values()]
    assert min(areas) < 20, areas
    for e in expected_anns.values():
        assert e["area"] > 0
    kinds = set()
    for a in annotations:
        if a["id"] >= 900:
            continue
        s = a["segmentation"]
        kinds.add("poly%d" % len(s) if isinstance(s, list) else
                  ("rle_list" if isinstance(s["counts"], list) else "rle_str") + str(a["iscrowd"]))
    assert {"poly1", "poly2", "rle_list1", "rle_str0"} <= kinds, kinds

    # ---- categories per image, co-segmentation pairs ----
    per_image = {}
    for a in annotations:
        if str(a["id"]) in expected_anns:
            per_image.setdefault(a["image_id"], []).append((a["category_id"], a["iscrowd"]))
    coseg = []
    by_id = {im["id"]: im for im in images if im["id"] in valid_ids}
    for i, j in combinations(sorted(valid_ids), 2):
        ci = {c for c, _ in per_image[i]}
        cj = {c for c, _ in per_image[j]}
        common = ci & cj
        if len(common) != 1:
            continue
        c = next(iter(common))
        if per_image[i].count((c, 0)) == 1 and per_image[j].count((c, 0)) == 1 and \
                len([1 for k, _ in per_image[i] if k == c]) == 1 and len([1 for k, _ in per_image[j] if k == c]) == 1:
            coseg.append({"images": [by_id[i]["file_name"], by_id[j]["file_name"]], "category_id": c})
    assert len(coseg) >= 2, coseg

    # ---- captions ----
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    cap_id = 1
    cap_images = []
    for im in images:
        if im["id"] not in valid_ids:
            continue
        stem = im["file_name"][:-4]
        anns = scene_anns[stem]
        cap_images.append({"id": im["id"], "file_name": im["file_name"], "width": im["width"], "height": im["height"]})
        counts = {}
        for cat, _, _, crowd in anns:
            counts[cat] = counts.get(cat, 0) + (100 if crowd else 1)  # a crowd reads as "several"
        parts = []
        for cat, n in counts.items():
            name = CATS[cat]
            parts.append(f"a {name}" if n == 1 else f"{words.get(n, 'several')} {name}{'es' if name == 'box' else 's'}")
        listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        coloured = [f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {CATS[cat]}" if not crowd else f"a group of {colour} {CATS[cat]}s"
                    for cat, colour, _, crowd in anns]
        col = coloured[0] if len(coloured) == 1 else ", ".join(coloured[:-1]) + " and " + coloured[-1]
        texts = [f"{listed} on a textured background.", f"{col[0].upper()}{col[1:]}."]
        if len(anns) >= 3 or im["id"] % 2 == 0:
            texts.append(f"A simple picture with {words.get(len(anns), str(len(anns)))} "
                         f"object{'s' if len(anns) > 1 else ''}.")
        texts[0] = texts[0][0].upper() + texts[0][1:]
        for t in texts:
            captions.append({"id": cap_id, "image_id": im["id"], "caption": t})
            cap_id += 1

    # ---- write ----
    categories = [{"supercategory": "object", "id": k, "name": v} for k, v in CATS.items()]
    info = {"description": "vista COCO importer fixture (scripts/make_coco_fixture.py)", "version": "1.0",
            "year": 2026, "contributor": "vista", "date_created": "2026-04-17"}
    licenses = [{"id": 1, "name": "CC0 1.0", "url": "https://creativecommons.org/publicdomain/zero/1.0/"}]
    instances = {"info": info, "licenses": licenses, "annotations": annotations, "images": images,
                 "categories": categories}
    with open(os.path.join(OUT, "instances.json"), "w") as f:
        json.dump(instances, f, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(OUT, "captions.json"), "w") as f:
        json.dump({"info": info, "images": cap_images, "annotations": captions}, f, indent=1)
        f.write("\n")

    names = {im["id"]: im["file_name"] for im in images}
    duplicates = [[names[image_ids[EXACT_DUP[1]]], names[image_ids[EXACT_DUP[0]]]],
                  [names[image_ids[NEAR_DUP[1]]], names[image_ids[NEAR_DUP[0]]]]]
    expected = {
        "annotations": expected_anns,
        "skipped": skipped,
        "images": {str(im["id"]): {"file_name": im["file_name"], "width": im["width"], "height": im["height"]}
                   for im in images if im["id"] in valid_ids},
        "categories": categories,
        "duplicates": duplicates,
        "coseg_pairs": coseg,
    }
    try:
        import imagehash
        expected["phash"] = {im["file_name"]: str(imagehash.phash(Image.open(os.path.join(img_dir, im["file_name"]))))
                             for im in images}
        expected["phash_note"] = f"imagehash {imagehash.__version__} phash (hash_size 8), informational only"
    except ImportError:
        pass
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print(f"{len(valid_ids)} valid images, {len(expected_anns)} valid annotations, {len(skipped)} skipped records, "
          f"{len(captions)} captions, {len(coseg)} coseg pairs, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
