#!/usr/bin/env python3
"""Fixtures for the `contour` functions, computed with the reference tools.

    pip install pycocotools opencv-python-headless scikit-image
    python3 scripts/make_contour_fixtures.py

Writes tests/fixtures/contour/:
  masks.json     512x512 masks (real silhouettes from scikit-image's sample data and generated
                 shapes) as pycocotools compressed RLE, with pycocotools' area/bbox/iou, OpenCV's
                 outer contours (findContours RETR_EXTERNAL, CHAIN_APPROX_NONE), the holes of those
                 (RETR_TREE), the uniform-16 reconstruction IoU through pycocotools' polygon
                 rasteriser, and the VistaLLM authors' adaptive sampling (res.py, N=16).
  polygons.json  random polygons rasterised with pycocotools frPyObjects + merge.
  png.json       small masks written as PNG in several modes, with their RLE.
Deterministic (fixed seeds).
"""
import base64
import io
import json
import math
import os

import cv2
import numpy as np
import pycocotools.mask as cm
from PIL import Image
from scipy import ndimage
from skimage import data, filters, transform

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "contour")
S = 512
rng = np.random.default_rng(20261126)


def fit(img_bool_or_float, thresh=0.5):
    """Scale a 2-D mask/probability image to fit 512x512 (bilinear), centre it, threshold."""
    a = np.asarray(img_bool_or_float, dtype=np.float64)
    h, w = a.shape
    k = (S - 16) / max(h, w)
    a = transform.resize(a, (max(1, round(h * k)), max(1, round(w * k))), order=1, anti_aliasing=False)
    out = np.zeros((S, S))
    oy, ox = (S - a.shape[0]) // 2, (S - a.shape[1]) // 2
    out[oy:oy + a.shape[0], ox:ox + a.shape[1]] = a
    return out > thresh


def largest(m):
    lab, n = ndimage.label(m, structure=np.ones((3, 3)))
    if n == 0:
        return m
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    return lab == (1 + int(np.argmax(sizes)))


def poly_mask(points):
    m = np.zeros((S, S), np.uint8)
    cv2.fillPoly(m, [np.round(np.array(points)).astype(np.int32)], 1)
    return m > 0


def star(cx, cy, r0, r1, k, rot=0.0):
    pts = []
    for i in range(2 * k):
        r = r1 if i % 2 == 0 else r0
        t = rot + math.pi * i / k
        pts.append((cx + r * math.cos(t), cy + r * math.sin(t)))
    return pts


def smooth_blob(sigma, level, seed):
    """Smoothed noise plus a central bump, thresholded: an organic blob near the centre."""
    r = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(r.standard_normal((S, S)), sigma)
    yy, xx = np.mgrid[0:S, 0:S]
    bump = 1.5 * (1 - (np.hypot(xx - S / 2, yy - S / 2) / 200.0) ** 2)
    return f / f.std() + bump > level


def real_masks():
    yield "horse", "organic silhouette", fit(data.horse() == 0)
    cam = filters.gaussian(data.camera(), 1.0, preserve_range=True)
    yield "cameraman", "organic silhouette", largest(fit(cam < 40))
    coins = filters.gaussian(data.coins()[30:], 1.5, preserve_range=True)
    coins = ndimage.binary_fill_holes(coins > filters.threshold_otsu(coins))
    coins = fit(coins)
    lab, n = ndimage.label(coins)
    sizes = ndimage.sum(coins, lab, range(1, n + 1))
    coins = np.isin(lab, 1 + np.flatnonzero(sizes > 300))
    yield "coins", "several components", coins
    yield "one_coin", "blob", largest(coins)
    text = data.text()
    yield "text", "thin parts", fit(text < filters.threshold_otsu(text))
    logo = filters.gaussian(data.logo()[..., :3].mean(axis=2), 1.0, preserve_range=True)
    yield "logo", "several components", fit(logo < 235)
    yield "logo_part", "organic silhouette", largest(fit(logo < 235))
    ph = data.shepp_logan_phantom()
    yield "phantom", "holes", fit(ph > 0.05)
    cat = filters.gaussian(data.chelsea()[..., 0], 2.0, preserve_range=True)
    yield "cat", "organic silhouette", largest(fit(cat > 140))
    coffee = filters.gaussian(data.coffee().mean(axis=2), 2.0, preserve_range=True)
    yield "coffee", "thin parts", largest(fit(coffee > 170))
    astro = filters.gaussian(data.astronaut()[..., 2], 2.0, preserve_range=True)
    yield "astronaut", "organic silhouette", largest(fit(astro > 150))


def generated_masks():
    yield "star5", "sharp corners", poly_mask(star(256, 256, 90, 230, 5, -math.pi / 2))
    yield "star12", "sharp corners", poly_mask(star(256, 256, 150, 240, 12, 0.1))
    rect = cv2.boxPoints(((256, 256), (380, 140), 27.0))
    yield "rotated_rect", "sharp corners", poly_mask(rect)
    yield "l_shape", "sharp corners", poly_mask([(60, 40), (200, 40), (200, 330), (460, 330), (460, 470), (60, 470)])
    yield "triangle", "sharp corners", poly_mask([(30, 480), (256, 20), (490, 400)])
    yy, xx = np.mgrid[0:S, 0:S]
    yield "ellipse", "smooth", ((xx - 256) / 230.0) ** 2 + ((yy - 256) / 130.0) ** 2 <= 1
    ring = (np.hypot(xx - 256, yy - 256) <= 220) & (np.hypot(xx - 230, yy - 270) > 110)
    yield "ring", "holes", ring
    yield "blob_a", "blob", largest(smooth_blob(30, 0.3, 1))
    yield "blob_b", "blob", largest(smooth_blob(18, 0.5, 2))
    yield "blob_holes", "holes", largest(smooth_blob(12, -0.3, 3))
    cres = (np.hypot(xx - 256, yy - 256) <= 220) & (np.hypot(xx - 300, yy - 256) > 200)
    yield "crescent", "thin parts", cres
    plus = np.zeros((S, S), bool)
    plus[250:262, 40:470] = True
    plus[40:470, 120:126] = True
    plus[60:120, 300:480] = True
    yield "thin_cross", "thin parts", plus
    yield "blobs", "several components", data.binary_blobs(length=S, blob_size_fraction=0.12, volume_fraction=0.25, rng=5)
    gear = np.hypot(xx - 256, yy - 256) <= 170 + 40 * (np.cos(12 * np.arctan2(yy - 256, xx - 256)) > 0)
    yield "gear", "sharp corners", gear & (np.hypot(xx - 256, yy - 256) > 50)
    spiral = np.zeros((S, S), np.uint8)
    pts = [(256 + 8 * t * math.cos(t), 256 + 8 * t * math.sin(t)) for t in np.linspace(0.5, 28, 600)]
    cv2.polylines(spiral, [np.round(np.array(pts)).astype(np.int32)], False, 1, thickness=9)
    yield "spiral", "thin parts", spiral > 0


def flat(c):
    return c.reshape(-1, 2).astype(int).ravel().tolist()


def enc(m):
    return cm.encode(np.asfortranarray(m.astype(np.uint8)))


def vistallm_adaptive(contour, n=16, pre=40):
    """VistaLLM_Test res.py: convert_mask_anno + compute_breaks + adaptive_sampling (stable ties)."""
    interval = math.ceil(len(contour) / pre)
    p = np.asarray(contour[::interval], dtype=np.float64)
    k = len(p)
    if k <= n:
        return p.astype(int).ravel().tolist()
    score = np.full(k, 180.0)
    for i in range(1, k - 1):
        p1, p2, p3 = p[i - 1], p[i], p[i + 1]
        d1, d2 = p3 - p1, p1 - p2
        score[i] = abs(d1[0] * d2[1] - d1[1] * d2[0]) / np.linalg.norm(p3 - p1)
    order = np.argsort(score, kind="stable")
    keep = np.delete(np.arange(k), order[: k - n])
    return p[keep].astype(int).ravel().tolist()


def uniform_iou(m, contour, n):
    """mask -> n evenly spaced contour points -> pycocotools polygon -> IoU with the mask."""
    pts = contour.reshape(-1, 2)
    idx = [i * len(pts) // n for i in range(n)] if len(pts) > n else list(range(len(pts)))
    poly = pts[idx].astype(np.float64).ravel().tolist()
    if len(poly) < 6:
        return 0.0
    r = cm.merge(cm.frPyObjects([poly], m.shape[0], m.shape[1]))
    return float(cm.iou([r], [enc(m)], [0])[0][0])


def main():
    os.makedirs(OUT, exist_ok=True)
    masks = []
    for name, cat, m in list(real_masks()) + list(generated_masks()):
        m = np.ascontiguousarray(m.astype(np.uint8))
        assert m.shape == (S, S) and m.any(), name
        r = enc(m)
        ext, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        tree, hier = cv2.findContours(m, cv2.RETR_TREE, cv2.CHAIN_APPROX_NONE)
        holes = []
        if hier is not None:
            for i, (nx, pv, ch, par) in enumerate(hier[0]):
                if par >= 0 and hier[0][par][3] < 0:
                    holes.append(flat(tree[i]))
        big = max(ext, key=lambda c: int(largest_pixels(m, c)))
        masks.append({
            "name": name,
            "category": cat,
            "size": [S, S],
            "counts": r["counts"].decode(),
            "area": int(cm.area(r)),
            "bbox": [float(v) for v in cm.toBbox(r)],
            "contours": [flat(c) for c in ext],
            "holes": holes,
            "uniform16_iou": uniform_iou(m, big, 16),
            "vistallm16": vistallm_adaptive(big.reshape(-1, 2)),
        })
        print(f"{name:14s} area {masks[-1]['area']:6d}  contours {len(ext)}  holes {len(holes)}")
    for a, b in zip(masks, masks[1:] + masks[:1]):
        ra = {"size": a["size"], "counts": a["counts"].encode()}
        rb = {"size": b["size"], "counts": b["counts"].encode()}
        a["iou_next"] = float(cm.iou([ra], [rb], [0])[0][0])
    # Uncompressed counts for a few masks, to test the list form.
    for m in masks[:3]:
        d = cm.decode({"size": m["size"], "counts": m["counts"].encode()})
        m["counts_list"] = rle_counts_list(d)
    dump("masks.json", masks)

    polys = []
    for case in range(80):
        h, w = int(rng.integers(5, 160)), int(rng.integers(5, 160))
        objs = []
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(3, 30))
            if case % 4 == 0:  # star-shaped, mostly inside
                cx, cy = rng.uniform(0, w), rng.uniform(0, h)
                t = np.sort(rng.uniform(0, 2 * math.pi, k))
                rr = rng.uniform(0.1, 0.7, k) * max(h, w)
                xy = np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], 1)
            elif case % 4 == 1:  # on the pixel grid (integers and halves)
                xy = np.round(rng.uniform(-2, [w + 2, h + 2], (k, 2)) * 2) / 2
            else:  # arbitrary, self-intersecting, partly outside
                xy = rng.uniform(-0.2, 1.2, (k, 2)) * [w, h]
            objs.append([float(v) for v in xy.ravel()])
        r = cm.merge(cm.frPyObjects(objs, h, w))
        polys.append({"height": h, "width": w, "polygons": objs, "counts": r["counts"].decode(), "area": int(cm.area(r))})
    dump("polygons.json", polys)

    pngs = []
    small = np.zeros((7, 9), np.uint8)
    small[1:5, 2:7] = 1
    small[6, 0] = 1
    small[3, 8] = 1
    for mode in ["L", "1", "P", "RGB", "RGBA", "I;16", "LA"]:
        arr = small * (1 if mode == "P" else 200)
        if mode in ("RGB", "RGBA"):
            rgb = np.zeros(small.shape + (3,), np.uint8)
            rgb[..., 2] = small * 3  # only the blue channel set: still foreground
            img = Image.fromarray(rgb, "RGB")
            if mode == "RGBA":
                img = img.convert("RGBA")
        elif mode == "P":
            img = Image.fromarray(arr.astype(np.uint8), "L").convert("P")
            img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        elif mode == "I;16":
            img = Image.fromarray(arr.astype(np.uint16))
        elif mode == "LA":
            img = Image.fromarray(arr.astype(np.uint8), "L").convert("LA")
        elif mode == "1":
            img = Image.fromarray(arr.astype(np.uint8), "L").convert("1", dither=Image.Dither.NONE)
        else:
            img = Image.fromarray(arr.astype(np.uint8), "L")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        back = np.array(Image.open(io.BytesIO(buf.getvalue())))
        if back.ndim == 3:
            back = back[..., :3].any(axis=2) if mode != "LA" else back[..., 0]
        assert ((back != 0) == (small != 0)).all(), mode
        pngs.append({"mode": mode, "png_base64": base64.b64encode(buf.getvalue()).decode(),
                     "size": [7, 9], "counts": enc(small)["counts"].decode()})
    dump("png.json", pngs)


def largest_pixels(m, contour):
    lab, _ = ndimage.label(m, structure=np.ones((3, 3)))
    x, y = contour.reshape(-1, 2)[0]
    return (lab == lab[y, x]).sum()


def rle_counts_list(d):
    v = d.ravel(order="F")
    counts, prev, run = [], 0, 0
    for b in v:
        if b != prev:
            counts.append(run)
            run, prev = 0, b
        run += 1
    counts.append(run)
    return counts


def dump(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
