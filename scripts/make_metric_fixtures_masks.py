#!/usr/bin/env python3
"""Fixtures for the box and mask metrics: `box_iou`, `box_giou`, `grec_match`, `grec_score`,
`miou`, `ciou`, `res_score`, `gres_score`.

The reference evaluators are not pip-installable and need torch/detectron2, so their scoring
code is reproduced here line by line (sources read at the commits metrics.md names):
- boxes: torchvision `box_iou` / MDETR `util/box_ops.py::generalized_box_iou` (numpy, float64);
- GREC: gRefCOCO `mdetr/datasets/refexp.py::RefExpEvaluator.summarize` @ b4b1e55 (torch.topk
  over the flattened GIoU matrix becomes numpy argmax, the first maximum; every predicted box is
  kept, as for a generative model without scores);
- RES: LAVT `test.py` @ 066bcf2 (I, U by logical and/or; IoU 0 when U = 0; Pr@0.5..0.9);
- GRES: ReLA `gres_model/evaluation/refer_evaluation.py::ReferEvaluator.evaluate`, fixed
  884ef17 and initial a389648 (+1 smoothing).
Masks are random shapes encoded as COCO RLE with pycocotools.

    python3 scripts/make_metric_fixtures_masks.py
Writes tests/fixtures/metrics/boxes.json and tests/fixtures/metrics/masks.json.
"""
import json
import os
import random

import numpy as np
from pycocotools import mask as mask_utils

HERE = os.path.dirname(__file__)
OUT_BOXES = os.path.join(HERE, "..", "tests", "fixtures", "metrics", "boxes.json")
OUT_MASKS = os.path.join(HERE, "..", "tests", "fixtures", "metrics", "masks.json")


# --- boxes: torchvision box_iou / MDETR generalized_box_iou --------------------------------
def box_area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(boxes1, boxes2):
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = np.maximum(boxes1[:, None, :2], boxes2[:, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter / union, union


def generalized_box_iou(boxes1, boxes2):
    assert (boxes1[:, 2:] >= boxes1[:, :2]).all()
    assert (boxes2[:, 2:] >= boxes2[:, :2]).all()
    iou, union = box_iou(boxes1, boxes2)
    lt = np.minimum(boxes1[:, None, :2], boxes2[:, :2])
    rb = np.maximum(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = np.clip(rb - lt, 0, None)
    area = wh[:, :, 0] * wh[:, :, 1]
    return iou - (area - union) / area


def rand_box(rng, scale=100.0):
    x0, y0 = rng.uniform(0, scale), rng.uniform(0, scale)
    return [round(x0, 3), round(y0, 3), round(x0 + rng.uniform(0.5, scale / 2), 3),
            round(y0 + rng.uniform(0.5, scale / 2), 3)]


def near(rng, b, jitter):
    return [round(v + rng.uniform(-jitter, jitter), 3) for v in b[:2]] + \
           [round(v + rng.uniform(-jitter, jitter), 3) for v in b[2:]]


# --- GREC: gRefCOCO RefExpEvaluator.summarize ------------------------------------------------
def grec_sample(pred_boxes, gt_boxes, thresh_iou=0.5):
    """One sample of summarize(); gt_boxes empty = a no-target annotation (category_id -1)."""
    no_target_flag = len(gt_boxes) == 0
    filtered = np.array(pred_boxes, dtype=np.float64).reshape(-1, 4)
    gt_all = np.array(gt_boxes if gt_boxes else [[0.0, 0.0, 0.0, 0.0]], dtype=np.float64).reshape(-1, 4)
    num_prediction, num_gt = filtered.shape[0], gt_all.shape[0]
    TP = 0
    nt = None
    if no_target_flag:
        nt = "FN" if num_prediction >= 1 else "TP"
        F_1 = 0.0 if num_prediction >= 1 else 1.0
        return dict(tp=0, fp=num_prediction, fn=0, f1=F_1, nt=nt)
    nt = "TN" if num_prediction >= 1 else "FP"
    giou = generalized_box_iou(filtered, gt_all) if num_prediction else np.zeros((0, num_gt))
    for _ in range(min(num_prediction, num_gt)):
        flat = giou.flatten()
        top_index = int(np.argmax(flat))
        if flat[top_index] < thresh_iou:
            break
        TP += 1
        giou[top_index // num_gt, :] = 0.0
        giou[:, top_index % num_gt] = 0.0
    FP, FN = num_prediction - TP, num_gt - TP
    F_1 = 2 * TP / (2 * TP + FP + FN)
    return dict(tp=TP, fp=FP, fn=FN, f1=F_1, nt=nt)


def grec_summarize(samples):
    correct = 0
    nt = {"TP": 0, "TN": 0, "FP": 0, "FN": 0}
    for s in samples:
        nt[s["nt"]] += 1
        correct += s["f1"] >= 1.0
    return {"F1_score": correct / len(samples),
            "T_acc": nt["TN"] / (nt["TN"] + nt["FP"]),
            "N_acc": nt["TP"] / (nt["TP"] + nt["FN"])}


# --- masks --------------------------------------------------------------------------------
def rand_mask(rng, h, w, p_empty=0.1):
    m = np.zeros((h, w), dtype=np.uint8)
    if rng.random() < p_empty:
        return m
    for _ in range(rng.randint(1, 3)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        m[y0:y0 + rng.randint(1, h), x0:x0 + rng.randint(1, w)] = 1
    return m


def rle(m):
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def computeIoU(pred_seg, gd_seg):
    I = np.sum(np.logical_and(pred_seg, gd_seg))
    U = np.sum(np.logical_or(pred_seg, gd_seg))
    return I, U


def lavt(samples):
    """LAVT test.py's evaluate loop."""
    eval_seg_iou_list = [.5, .6, .7, .8, .9]
    seg_correct = np.zeros(len(eval_seg_iou_list), dtype=np.int32)
    cum_I, cum_U, mean_IoU, seg_total = 0, 0, [], 0
    for pred, gt in samples:
        I, U = computeIoU(pred, gt)
        this_iou = 0.0 if U == 0 else I * 1.0 / U
        mean_IoU.append(this_iou)
        cum_I += I
        cum_U += U
        for n, t in enumerate(eval_seg_iou_list):
            seg_correct[n] += (this_iou >= t)
        seg_total += 1
    return {"miou": float(np.mean(np.array(mean_IoU))), "ciou": float(cum_I / cum_U),
            "pr": [float(seg_correct[n] / seg_total) for n in range(5)], "n": seg_total,
            "per_iou": [float(v) for v in mean_IoU]}


def rela(samples, fixed=True):
    """ReLA ReferEvaluator.evaluate for one source; sample = (pred_mask, gt_mask, pred_nt, gt_nt)."""
    pr_thres = [.7, .8, .9]
    accum_I = accum_U = accum_IoU = 0
    pr_count = {t: 0 for t in pr_thres}
    total_count = not_empty_count = empty_count = 0
    nt = {"TP": 0, "TN": 0, "FP": 0, "FN": 0}
    for pred_mask, gt_mask, pred_nt, gt_nt in samples:
        I, U = computeIoU(pred_mask, gt_mask)
        if gt_nt:
            empty_count += 1
            if pred_nt:
                nt["TP"] += 1
                accum_IoU += 1
            else:
                nt["FN"] += 1
                accum_U += int(U)
        else:
            if pred_nt:
                nt["FP"] += 1
                I = 0
            else:
                nt["TN"] += 1
            this_iou = float(0) if U == 0 else float(I) / float(U)
            accum_IoU += this_iou
            accum_I += I
            accum_U += U
            not_empty_count += 1
            for t in pr_thres:
                if this_iou >= t:
                    pr_count[t] += 1
        total_count += 1
    res = {"gIoU": 100. * (accum_IoU / total_count), "cIoU": accum_I * 100. / accum_U}
    if empty_count > 0:
        if fixed:
            res["T_acc"] = nt["TN"] / (nt["TN"] + nt["FP"])
            res["N_acc"] = nt["TP"] / (nt["TP"] + nt["FN"])
        else:
            res["T_acc"] = nt["TP"] / (nt["TP"] + nt["FP"] + 1)
            res["N_acc"] = nt["TP"] / (nt["TP"] + nt["FN"] + 1)
    else:
        res["T_acc"] = res["N_acc"] = 0
    for t in pr_thres:
        res["Pr@{0:1.1f}".format(t)] = pr_count[t] * 100. / not_empty_count
    res["nt"] = nt
    return res


def main():
    rng = random.Random(99)
    # box pairs: overlapping, disjoint, nested, identical, touching, degenerate-width
    pairs = [([0, 0, 2, 2], [1, 1, 4, 4]), ([0, 0, 1, 1], [2, 2, 3, 3]), ([0, 0, 10, 10], [2, 2, 5, 5]),
             ([1, 2, 3, 4], [1, 2, 3, 4]), ([0, 0, 1, 1], [1, 0, 2, 1]), ([0, 0, 0, 5], [0, 0, 2, 5])]
    for _ in range(200):
        a = rand_box(rng)
        pairs.append((a, near(rng, a, rng.choice([1, 5, 20])) if rng.random() < 0.6 else rand_box(rng)))
    pairs = [(a, b) for a, b in pairs if b[2] >= b[0] and b[3] >= b[1]]
    A = np.array([p[0] for p in pairs], dtype=np.float64)
    B = np.array([p[1] for p in pairs], dtype=np.float64)
    ious = [float(box_iou(A[i:i + 1], B[i:i + 1])[0][0, 0]) for i in range(len(pairs))]
    gious = [float(generalized_box_iou(A[i:i + 1], B[i:i + 1])[0, 0]) for i in range(len(pairs))]
    box_rows = [{"a": a, "b": b, "iou": i, "giou": g} for (a, b), i, g in zip(pairs, ious, gious)]

    grec = [([], []), ([[0, 0, 10, 10]], []), ([], [[0, 0, 10, 10]]),
            ([[0, 0, 10, 10]], [[0, 0, 10, 10]]), ([[0, 0, 10, 10], [0, 0, 10, 10]], [[0, 0, 10, 10]]),
            ([[0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30]]),
            ([[20, 20, 30, 30], [0, 0, 10, 10]], [[0, 0, 10, 10], [20, 20, 30, 30]]),
            ([[0, 0, 10, 10]], [[5, 5, 15, 15]])]
    for _ in range(150):
        ng = rng.choice([0, 0, 1, 1, 1, 2, 3])
        gts = [rand_box(rng) for _ in range(ng)]
        preds = [near(rng, g, rng.choice([0.5, 3, 10])) for g in gts if rng.random() < 0.8]
        preds += [rand_box(rng) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        preds = [p for p in preds if p[2] >= p[0] and p[3] >= p[1]]
        rng.shuffle(preds)
        grec.append((preds, gts))
    grec_rows = [dict(pred=p, gt=g, **grec_sample(p, g)) for p, g in grec]
    with open(OUT_BOXES, "w") as f:
        json.dump({"pairs": box_rows, "grec": grec_rows, "grec_summary": grec_summarize(grec_rows)}, f, indent=0)

    # RES
    res_samples = []
    for _ in range(60):
        h, w = rng.randint(5, 40), rng.randint(5, 40)
        gt = rand_mask(rng, h, w, p_empty=0.05)
        pred = gt.copy() if rng.random() < 0.2 else rand_mask(rng, h, w)
        res_samples.append((pred, gt))
    lv = lavt(res_samples)
    res_rows = [{"pred": rle(p), "gt": rle(g), "iou": i} for (p, g), i in zip(res_samples, lv["per_iou"])]
    # GRES: lists of object masks per sample; an empty GT list is a no-target sample
    gres_samples, gres_rows = [], []
    for _ in range(80):
        h, w = rng.randint(5, 30), rng.randint(5, 30)
        gts = [rand_mask(rng, h, w, 0.0) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
        r = rng.random()
        if r < 0.25:
            preds = []
        elif r < 0.45 and gts:
            preds = [g.copy() for g in gts]
        else:
            preds = [rand_mask(rng, h, w, 0.0) for _ in range(rng.choice([1, 1, 2]))]
        gt_m = np.zeros((h, w), np.uint8)
        for g in gts:
            gt_m |= g
        pred_m = np.zeros((h, w), np.uint8)
        for p in preds:
            pred_m |= p
        gres_samples.append((pred_m, gt_m, len(preds) == 0, len(gts) == 0))
        gres_rows.append({"pred": [rle(p) for p in preds], "gt": [rle(g) for g in gts], "h": h, "w": w})
    out = {"res": res_rows, "lavt": {k: v for k, v in lv.items() if k != "per_iou"},
           "gres": gres_rows, "rela_fixed": rela(gres_samples, True), "rela_initial": rela(gres_samples, False)}
    with open(OUT_MASKS, "w") as f:
        json.dump(out, f, indent=0, default=int)
    print("boxes:", len(box_rows), "pairs,", len(grec_rows), "GREC samples", grec_summarize(grec_rows))
    print("RES:", out["lavt"])
    print("GRES fixed:", out["rela_fixed"])
    print("GRES initial:", out["rela_initial"])


if __name__ == "__main__":
    main()
