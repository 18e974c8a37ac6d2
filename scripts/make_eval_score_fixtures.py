#!/usr/bin/env python3
"""Fixed model outputs for every eval job, and the scores the official evaluation code gives
them, for tests/eval.rs (run by hand; CI never runs Python).

The samples are the importer fixtures (tests/fixtures/eval/expected_*.json, nlvr.json and the
files of the newer benchmarks). For each task this script writes raw model texts per sample
(what a stub model returns in the test), turns them into predictions by the documented output
formats (parse_answer's rule; VistaLLM's bins and decimal coordinates in the square frame,
docs/eval.md), and scores the predictions with the reference code:

- caption: pycocoevalcap's PTBTokenizer (Java) + Cider() (CIDEr-D) + Bleu(4);
- vqa: the official VQA evaluation script (GT-Vision-Lab/VQA vqaEval.py @ a013f00), per-question
  accuracies, unrounded, averaged;
- rec: torchvision box_iou (float64, as make_metric_fixtures_masks.py reproduces it), IoU > 0.5;
- res: polygons rasterised with pycocotools (frPyObjects + merge), LAVT test.py's mIoU/cIoU/Pr@0.5;
- grec: gRefCOCO RefExpEvaluator.summarize; gres: ReLA ReferEvaluator.evaluate (fixed);
- nlvr: accuracy (NLVR2's official metric: exact match of the true/false label);
- pope: RUCAIBox/POPE evaluate.py @ 3df3ba1, run as it is (its two file names filled in);
- region_caption (refs_regions.json, make_import_fixtures.py): pycocoevalcap's PTBTokenizer +
  Cider() + Bleu(4) + Rouge();
- coseg (coseg/, make_import_fixtures.py): no canonical script exists (metrics.md §7), so the
  definition in numpy: per image Precision = share of pixels labelled correctly, Jaccard =
  |P and G| / |P or G| (1 when both are empty), averaged per group, then over groups; the
  predicted contours rasterised with pycocotools at each image's size.

- pointqa (PointQA Local, LookTwice-QA, Visual7W pointing): Shikra's PointQAComputeMetrics
  (the regex and calculate_metric of its point_qa.py, which VistaLLM evaluates with; not a
  package, so its two short functions are restated here) per task of the scores table.

It also writes the POPE importer fixture, pope_questions.json, and the PointQA ones,
pointqa_local.jsonl, pointqa_twice.jsonl, v7w_pointing.jsonl (the official JSON-lines layouts,
with malformed lines the importers must skip).

Neither evaluation script is pip-installable: pass the path of vqaEval.py from a clone of
GT-Vision-Lab/VQA at a013f00 (as make_metric_fixtures_vqa.py does) and of evaluate.py from a
clone of RUCAIBox/POPE at 3df3ba1.

    python3 scripts/make_eval_score_fixtures.py vqaEval_current.py pope_evaluate.py
    python3 scripts/make_eval_score_fixtures.py --only pointqa     # one task, the others kept
Writes tests/fixtures/eval/scored_predictions.json:
    {task: {"raw": {sample_id: text}, "scores": {metric: value}}}
A text starting with "CUT:" stands for an answer that reached max_new_tokens: the stub model
returns the rest and reports it truncated; the job gives it parse_status 'truncated' and counts
it in the `truncated` score.
"""
import contextlib
import io
import json
import os
import random
import sys

import numpy as np
from pycocotools import mask as mask_utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_metric_fixtures_masks import box_iou, grec_sample, grec_summarize, lavt, rela  # noqa: E402
from make_metric_fixtures_vqa import load_vqa_eval, score as vqa_score  # noqa: E402

FIX = os.path.join(HERE, "..", "tests", "fixtures", "eval")
OUT = os.path.join(FIX, "scored_predictions.json")


def load(name):
    with open(os.path.join(FIX, name)) as f:
        return json.load(f)


# --- output formats (docs/eval.md; udfs/src/text/prompt.rs, coords.rs, contour/space.rs) ------
def parse_answer(text):
    """parse_answer: after "The answer is" up to the end of its sentence, else the whole text;
    without the final period and quotes."""
    t = text.strip()
    pos = t.lower().find("the answer is")
    if pos >= 0:
        rest = t[pos + len("the answer is"):].lstrip(": ")
        end = rest.find(". ")
        body = rest[:end] if end >= 0 else rest
    else:
        body = t
    a = body.strip().rstrip(".").rstrip().strip('"').strip()
    return a, ("ok" if a else "empty")


def frame(w, h):
    side = max(w, h)
    return side, (side - w) // 2, (side - h) // 2


def to_bin(v):
    return round(min(max(v, 0.0), 1.0) * 1000.0)  # round half to even, as Rust's round_ties_even


def pixel_to_bins(xy, w, h):
    side, ox, oy = frame(w, h)
    return [to_bin((v + (ox if i % 2 == 0 else oy)) / side) for i, v in enumerate(xy)]


def bins_to_pixel(bins, w, h):
    side, ox, oy = frame(w, h)
    return [(k / 1000.0) * side - (ox if i % 2 == 0 else oy) for i, k in enumerate(bins)]


def bins_text(objs, tag):
    body = "<%s_sep>" % tag
    return "<%s_st>" % tag + body.join(" ".join("<bin_%d>" % k for k in o) for o in objs) + "<%s_ed>" % tag


def decimal_text(objs_square):
    return "[" + ";".join(",".join("%.3f" % v for v in o) for o in objs_square) + "]"


def decimal_to_pixel(vals, w, h):
    side, ox, oy = frame(w, h)
    return [float("%.3f" % v) * side - (ox if i % 2 == 0 else oy) for i, v in enumerate(vals)]


def rle_to_mask(m):
    return mask_utils.decode({"size": m["size"], "counts": m["counts"].encode("ascii")})


def poly_to_mask(poly, h, w):
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w)))


# --- tasks -----------------------------------------------------------------------------------
def caption(rng):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    samples = load("expected_captions.json")
    raw = {}
    for k, s in enumerate(samples):
        refs = s["answers"]
        if k == 0:
            raw[s["sample_id"]] = refs[2]  # a reference verbatim
        elif k == 1:
            raw[s["sample_id"]] = "A red square on the table."
        elif k == 2:
            raw[s["sample_id"]] = ""  # an empty caption scores 0 but stays in the corpus
        elif k == 3:
            raw[s["sample_id"]] = "Two blue shapes with a red box, on the table"
        else:
            words = refs[0].rstrip(".").split()
            rng.shuffle(words)
            raw[s["sample_id"]] = " ".join(words) + "."
    gts = {s["sample_id"]: [{"caption": c} for c in s["answers"]] for s in samples}
    res = {s["sample_id"]: [{"caption": parse_answer(raw[s["sample_id"]])[0]}] for s in samples}
    with contextlib.redirect_stdout(io.StringIO()):
        tok = PTBTokenizer()
        gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
        cider, _ = Cider().compute_score(gts_t, res_t)
        bleu, _ = Bleu(4).compute_score(gts_t, res_t)
    return raw, {"cider_d": cider, "bleu_1": bleu[0], "bleu_4": bleu[3], "failed": 0.0, "truncated": 0.0}


def vqa(rng, vqa_eval):
    samples = load("expected_vqa.json")
    raw, cases = {}, []
    forms = ["The answer is {}.", "{}", "The answer is: {}. It is clear.", "{}."]
    extra = ["Two", "2", "the red", "Yes!", "blue", "nothing"]
    for k, s in enumerate(samples):
        ans = s["target"] if k % 3 == 0 else (s["answers"][k % 10] if k % 3 == 1 else extra[k % len(extra)])
        text = forms[k % len(forms)].format(ans)
        raw[s["sample_id"]] = text
        cases.append((parse_answer(text)[0], s["answers"]))
    per, _ = vqa_score(vqa_eval, cases)
    return raw, {"vqa_accuracy": float(sum(per)) / len(per), "failed": 0.0, "truncated": 0.0}


def iou(a, b):
    return float(box_iou(np.array([a], dtype=np.float64), np.array([b], dtype=np.float64))[0][0, 0])


def rec(rng):
    samples = load("expected_refcoco_rec_val.json")
    raw, hits, ok = {}, 0, 0
    for k, s in enumerate(samples):
        w, h, gt = s["width"], s["height"], s["boxes"][0]
        jitter = [0.5, 2.0, 6.0][k % 3]
        box = [min(max(v + rng.uniform(-jitter, jitter), 0.0), (w if i % 2 == 0 else h) - 1.0)
               for i, v in enumerate(gt)]
        box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
        if k == 4:
            text = "I cannot find it."  # no box: status empty, a miss
            pred = None
        elif k == 7:
            side, ox, oy = frame(w, h)
            sq = [(v + (ox if i % 2 == 0 else oy)) / side for i, v in enumerate(box)]
            text = "The answer is " + decimal_text([sq]) + "."
            pred = decimal_to_pixel([float("%.3f" % v) for v in sq], w, h)
        elif k == 9:
            text = "<b_st><bin_12> <bin_30><b_ed>"  # two values: a parse error, a miss
            pred = None
        else:
            bins = pixel_to_bins(box, w, h)
            text = bins_text([bins], "b")
            pred = bins_to_pixel(bins, w, h)
        raw[s["sample_id"]] = text
        ok += 1 if pred is not None else 0
        hits += 1 if pred is not None and iou(pred, gt) > 0.5 else 0
    n = len(samples)
    return raw, {"acc@0.5": hits / n, "parsed": ok / n, "failed": 0.0, "truncated": 0.0}


def jitter_polygon(rng, box, w, h, n):
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    pts = []
    for t in np.linspace(0, 2 * np.pi, n, endpoint=False):
        f = rng.uniform(0.7, 1.15)
        pts += [min(max(cx + f * rx * np.cos(t), 0.0), w - 1.0), min(max(cy + f * ry * np.sin(t), 0.0), h - 1.0)]
    return [float(v) for v in pts]


def res(rng):
    samples = load("expected_refcoco_res_val.json")
    raw, pairs = {}, []
    for k, s in enumerate(samples):
        w, h = s["width"], s["height"]
        gt = rle_to_mask(s["masks"][0])
        if k == 5:
            raw[s["sample_id"]] = "There is nothing."  # no polygon: a NULL mask, a miss
            pairs.append((np.zeros_like(gt), gt))
            continue
        if k == 8:
            # cut by the length limit inside the contour: unparsable, a miss, counted truncated
            bins = pixel_to_bins(jitter_polygon(rng, s["boxes"][0], w, h, 32), w, h)
            raw[s["sample_id"]] = "CUT:" + bins_text([bins], "m")[:-len("<bin_0> <bin_0><m_ed>")]
            pairs.append((np.zeros_like(gt), gt))
            continue
        bins = pixel_to_bins(jitter_polygon(rng, s["boxes"][0], w, h, [8, 12, 16, 32][k % 4]), w, h)
        raw[s["sample_id"]] = bins_text([bins], "m")
        pairs.append((poly_to_mask(bins_to_pixel(bins, w, h), h, w), gt))
    lv = lavt(pairs)
    cut = sum(t.startswith("CUT:") for t in raw.values())
    return raw, {"miou": lv["miou"], "ciou": lv["ciou"], "pr_50": lv["pr"][0], "failed": 0.0,
                 "truncated": float(cut)}


def grec(rng):
    samples = load("expected_grefcoco_grec.json")
    raw, rows, no_target = {}, [], 0
    for k, s in enumerate(samples):
        w, h, gts = s["width"], s["height"], s["boxes"]
        if not gts:
            # no target: the first right (empty answer), the next wrong (a box)
            no_target += 1
            if no_target == 1:
                raw[s["sample_id"]] = ""
                rows.append(grec_sample([], []))
            else:
                bins = pixel_to_bins([1.0, 1.0, 9.0, 9.0], w, h)
                raw[s["sample_id"]] = bins_text([bins], "b")
                rows.append(grec_sample([bins_to_pixel(bins, w, h)], []))
            continue
        if k == 5:
            raw[s["sample_id"]] = ""  # says "no target" on a target sample
            rows.append(grec_sample([], gts))
            continue
        preds = []
        for i, g in enumerate(gts):
            if k == 0 and i == 1:
                continue  # one object missed
            j = 1.0 if k != 3 else 12.0
            b = [min(max(v + rng.uniform(-j, j), 0.0), (w if n % 2 == 0 else h) - 1.0) for n, v in enumerate(g)]
            preds.append([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
        bins = [pixel_to_bins(p, w, h) for p in preds]
        raw[s["sample_id"]] = bins_text(bins, "b")
        rows.append(grec_sample([bins_to_pixel(b, w, h) for b in bins], gts))
    sm = grec_summarize(rows)
    return raw, {"precision_f1_1": sm["F1_score"], "n_acc": sm["N_acc"], "t_acc": sm["T_acc"],
                 "failed": 0.0, "truncated": 0.0}


def gres(rng):
    samples = load("expected_grefcoco_gres.json")
    raw, rows, no_target = {}, [], 0
    for k, s in enumerate(samples):
        w, h = s["width"], s["height"]
        gt_m = np.zeros((h, w), np.uint8)
        for m in s["masks"]:
            gt_m |= rle_to_mask(m)
        if not s["masks"]:
            no_target += 1
            if no_target == 1:
                raw[s["sample_id"]] = ""
                rows.append((np.zeros((h, w), np.uint8), gt_m, True, True))
            else:
                bins = pixel_to_bins([2.0, 2.0, 12.0, 3.0, 9.0, 14.0], w, h)
                raw[s["sample_id"]] = bins_text([bins], "m")
                rows.append((poly_to_mask(bins_to_pixel(bins, w, h), h, w), gt_m, False, True))
            continue
        if k == 5:
            raw[s["sample_id"]] = ""  # says "no target" on a target sample
            rows.append((np.zeros((h, w), np.uint8), gt_m, True, False))
            continue
        polys = [pixel_to_bins(jitter_polygon(rng, b, w, h, 10 + 6 * i), w, h) for i, b in enumerate(s["boxes"])]
        raw[s["sample_id"]] = bins_text(polys, "m")
        pred_m = np.zeros((h, w), np.uint8)
        for p in polys:
            pred_m |= poly_to_mask(bins_to_pixel(p, w, h), h, w)
        rows.append((pred_m, gt_m, False, False))
    r = rela(rows, fixed=True)
    return raw, {"giou": r["gIoU"] / 100.0, "ciou": r["cIoU"] / 100.0, "n_acc": r["N_acc"],
                 "t_acc": r["T_acc"], "failed": 0.0, "truncated": 0.0}


def region_caption(rng):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    refs = sorted(load("refs_regions.json"), key=lambda r: r["ref_id"])
    preds = ["The answer is a red square on the left.", "the blue box", "A box near the table.",
             "", "a square with a blue border", "something else entirely"]
    raw, gts, res = {}, {}, {}
    for r, p in zip(refs, preds):
        sid = "refcocog-%d" % r["ref_id"]
        raw[sid] = p
        gts[sid] = [{"caption": s["sent"]} for s in r["sentences"]]
        res[sid] = [{"caption": parse_answer(p)[0]}]
    with contextlib.redirect_stdout(io.StringIO()):
        tok = PTBTokenizer()
        gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
        cider, _ = Cider().compute_score(gts_t, res_t)
        bleu, _ = Bleu(4).compute_score(gts_t, res_t)
        rouge, _ = Rouge().compute_score(gts_t, res_t)
    return raw, {"cider_d": cider, "bleu_1": bleu[0], "bleu_4": bleu[3], "rouge_l": rouge,
                 "failed": 0.0, "truncated": 0.0}


def coseg(rng):
    from PIL import Image
    root = os.path.join(FIX, "coseg")
    samples = {  # what `vista import coseg --group-size 2` makes of the fixture (see tests/eval.rs)
        "coseg-bear-1": ("bear", ["b1", "b2", "b3"]),
        "coseg-kite-1": ("kite", ["k1", "k2"]),
    }
    raw, per_group = {}, {}
    for sid, (group, names) in samples.items():
        polys, items = [], []
        for k, name in enumerate(names):
            gt = np.array(Image.open(os.path.join(root, "masks", group, name + ".png"))) > 0
            h, w = gt.shape
            ys, xs = np.nonzero(gt)
            box = [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]
            if sid == "coseg-kite-1" and k == 1:
                items.append((np.zeros_like(gt), gt))  # no contour for the second image
                continue
            bins = pixel_to_bins(jitter_polygon(rng, box, w, h, 12 + 4 * k), w, h)
            polys.append(bins)
            items.append((poly_to_mask(bins_to_pixel(bins, w, h), h, w) > 0, gt))
        raw[sid] = bins_text(polys, "m")
        for pred, gt in items:
            inter, union = np.sum(pred & gt), np.sum(pred | gt)
            p = float(np.sum(pred == gt)) / gt.size
            j = 1.0 if union == 0 else float(inter) / float(union)
            per_group.setdefault(group, []).append((p, j))
    ps = [np.mean([v[0] for v in vals]) for vals in per_group.values()]
    js = [np.mean([v[1] for v in vals]) for vals in per_group.values()]
    return raw, {"precision": float(np.mean(ps)), "jaccard": float(np.mean(js)), "failed": 0.0,
                 "truncated": 0.0}


def nlvr(rng):
    rows = load("nlvr.json")
    texts = ["False", "The answer is true.", "yes", "I am not sure."]
    raw, right = {}, 0
    for k, r in enumerate(rows):
        t = texts[k % len(texts)]
        raw[r["sample_id"]] = t
        a = parse_answer(t)[0].lower()
        a = "true" if a in ("true", "yes") else "false" if a in ("false", "no") else None
        right += a == r["label"]
    return raw, {"accuracy": right / len(rows), "failed": 0.0, "truncated": 0.0}


POPE_QUESTIONS = [
    (1, 1, "Is there a square in the image?", "yes", "Yes, there is a square in the image."),
    (2, 1, "Is there a dog in the image?", "no", "No, there is no dog."),
    (3, 2, "Is there a box in the image?", "yes", "The answer is no."),
    (4, 2, "Is there a cat in the image?", "no", "There is not a cat, but a box."),
    (5, 3, "Is there a table in the image?", "yes", "yes"),
    (6, 3, "Is there a car in the image?", "no", "Yes. No car though."),
    (7, 4, "Is there a shape in the image?", "yes", "NO"),
    (8, 4, "Is there a horse in the image?", "no", "no, it is a square"),
    (9, 5, "Is there a person in the image?", "no", ""),
    (10, 6, "Is there a red box in the image?", "yes", "I think so,no doubt"),
    (11, 6, "Is there a bird in the image?", "no", "Nope."),
]


def pope(rng, evaluate_py):
    """Writes pope_questions.json (with malformed lines) and scores the answers with POPE's
    evaluate.py, run unchanged but for its two file names."""
    import tempfile
    lines = []
    for qid, image_id, text, label, _ in POPE_QUESTIONS:
        lines.append(json.dumps({"question_id": qid, "image": "COCO_val2014_%012d.jpg" % image_id,
                                 "text": text, "label": label}))
    bad = ['{"question_id": 12, "image": "COCO_val2014_000000000001.jpg", "text": "Is there a cup?", "label": "maybe"}',
           '{"question_id": 13, "image": "COCO_val2014_000000000001.jpg", "label": "yes"}',
           '{"question_id": 14, "image": "COCO_val2014_0000',
           '{"question_id": 1, "image": "COCO_val2014_000000000002.jpg", "text": "Again?", "label": "no"}']
    with open(os.path.join(FIX, "pope_questions.json"), "w") as f:
        f.write("\n".join(lines[:4] + bad[:2] + lines[4:8] + ["", bad[2]] + lines[8:] + bad[3:]) + "\n")
    raw = {"pope-%d" % q[0]: q[4] for q in POPE_QUESTIONS}
    src = open(evaluate_py).read()
    with tempfile.TemporaryDirectory() as d:
        ans, lab = os.path.join(d, "answers.json"), os.path.join(d, "labels.json")
        with open(ans, "w") as f:
            f.write("\n".join(json.dumps({"question": q[2], "answer": q[4]}) for q in POPE_QUESTIONS) + "\n")
        with open(lab, "w") as f:
            f.write("\n".join(lines) + "\n")
        src = src.replace("ans_file = ''", "ans_file = %r" % ans).replace("label_file = ''", "label_file = %r" % lab)
        ns = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(src, evaluate_py, "exec"), ns)
    return raw, {"accuracy": ns["acc"], "precision": ns["precision"], "recall": ns["recall"],
                 "f1": ns["f1"], "yes_ratio": ns["yes_ratio"], "failed": 0.0, "truncated": 0.0}


# PointQA Local (point queries), LookTwice-QA (box queries) and Visual7W pointing, in Shikra's
# JSON-lines layout: (file, image number, question(s), answer, bbox, point, scripted output).
POINTQA_LOCAL = [
    (1, "What color is this object?", "red", [4, 5, 20, 18], [12, 11], "The answer is red ."),
    (1, "How many legs does it have?", "4", [20, 2, 38, 28], [30, 15], "The answer is four."),
    (2, "What is this made of?", "wood", [3, 10, 25, 40], [14, 25], "wood"),
    (3, "What shape is this?", "square", [10, 10, 40, 40], [25, 25], "The answer is  square. The answer is square."),
    (4, "What is the man holding?", "umbrella", [30, 6, 60, 44], [45, 25], "The answer is umbrella ."),
]
POINTQA_TWICE = [
    (3, ("What color is this box?", "What color is this container?", "What color is this object?"),
     "blue", [5, 5, 30, 30], [17, 17], "The answer is blue ."),
    (5, ("Is this cat sleeping?", "Is this animal sleeping?", "Is this object sleeping?"),
     "no", [2, 4, 20, 30], [11, 17], "The answer is yes ."),
    (6, ("What is the dog wearing?", "What is the animal wearing?", "What is this object wearing?"),
     "collar", [1, 1, 30, 31], [15, 16], "CUT:The answer is col"),
]
V7W = [  # (image, question, candidates (the answer first, as the files list it), chosen index)
    (1, "Which object is red?", [[4, 5, 20, 18], [20, 2, 38, 28], [0, 0, 10, 10], [25, 20, 39, 29]], 0),
    (4, "Which is the umbrella?", [[30, 6, 60, 44], [2, 2, 20, 20], [10, 30, 30, 47], [40, 1, 63, 10]], 2),
    (6, "Where is the collar?", [[10, 12, 20, 20], [1, 1, 30, 31], [0, 20, 12, 32], [20, 0, 32, 9]], 0),
]

SHIKRA_ANSWER = __import__("re").compile(r"(?:The answer is (.+?)\.)")


def shikra_extract(text):
    """PointQAComputeMetrics.extract_ans (Shikra's point_qa.py, as VistaLLM_Test @ b2f0131)."""
    found = SHIKRA_ANSWER.findall(text.strip())
    return found[0].strip() if len(found) == 1 else None


def shikra_accuracy(preds, targets):
    """BaseComputeMetrics.calculate_metric: correct / all targets (a target that cannot be
    read is skipped, still counted in the denominator)."""
    correct = 0
    for pred, target in zip(preds, targets):
        t = shikra_extract(target)
        if t is None:
            continue
        correct += shikra_extract(pred) == t
    return correct / len(targets)


def pointqa(rng):
    """Writes the three PointQA importer fixtures (with malformed lines) and scores the scripted
    outputs with Shikra's PointQA rule. Pointing outputs are box answers, judged as the job does
    (the chosen box equal to the right candidate's in the bins style)."""
    from PIL import Image
    img = lambda k: "COCO_val2014_%012d.jpg" % k  # noqa: E731
    size = lambda k: Image.open(os.path.join(FIX, "images", img(k))).size  # noqa: E731
    local = [json.dumps({"file_path": img(k), "question": q, "answer": a, "bbox": b, "point": p})
             for k, q, a, b, p, _ in POINTQA_LOCAL]
    local.insert(2, '{"file_path": "%s", "question": "What is it?", "answer": "x", "bbox": [1, 2, 3, 4], "point": [1]}' % img(1))
    local.insert(4, '{"file_path": "%s", "answer": "x", "point": [1, 2]}' % img(2))
    twice = [json.dumps({"file_path": img(k), "obj_question": q[0], "super_question": q[1],
                         "general_question": q[2], "answer": a, "bbox": b, "point": p})
             for k, q, a, b, p, _ in POINTQA_TWICE]
    twice.append('{"file_path": "%s", "obj_question": "Why?", "answer": "because", "bbox": [9, 9, 1, 1], "point": [1, 1]}' % img(3))
    v7w = [json.dumps({"file_path": img(k), "question": q, "candidates": c, "answer": c[0],
                       "point": [(c[0][0] + c[0][2]) / 2, (c[0][1] + c[0][3]) / 2]})
           for k, q, c, _ in V7W]
    v7w.append('{"file_path": "%s", "question": "Which?", "candidates": [[1, 1, 2, 2], [3, 3, 4, 4]], "answer": [5, 5, 6, 6]}' % img(1))
    for name, lines in [("pointqa_local.jsonl", local), ("pointqa_twice.jsonl", twice),
                        ("v7w_pointing.jsonl", v7w)]:
        with open(os.path.join(FIX, name), "w") as f:
            f.write("\n".join(lines) + "\n")
    raw, preds, targets = {}, [], []
    lines = [i + 1 for i, l in enumerate(local) if '"point": [1]}' not in l and '"question"' in l]
    for line, (k, _, a, _, _, out) in zip(lines, POINTQA_LOCAL):
        raw["pointqa-local-%d" % line] = out
        preds.append(out[4:] if out.startswith("CUT:") else out)
        targets.append("The answer is %s ." % a)
    for i, (k, _, a, _, _, out) in enumerate(POINTQA_TWICE):
        raw["looktwice-%d" % (i + 1)] = out
        preds.append(out[4:] if out.startswith("CUT:") else out)
        targets.append("The answer is %s ." % a)
    pointqa_acc = shikra_accuracy(preds, targets)
    hits = 0
    for i, (k, _, c, chosen) in enumerate(V7W):
        w, h = size(k)
        raw["v7w-%d" % (i + 1)] = "The answer is %s ." % bins_text([pixel_to_bins(c[chosen], w, h)], "b")
        hits += chosen == 0
    # The scores table has a row per task and metric: pointing's rows are keyed "pointing.x".
    return raw, {"accuracy": pointqa_acc, "failed": 0.0, "truncated": 1.0,
                 "pointing.accuracy": hits / len(V7W), "pointing.failed": 0.0,
                 "pointing.truncated": 0.0}


def main():
    only = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "--only" else None
    if only is None and len(sys.argv) != 3:
        sys.exit(__doc__)
    tasks = [("caption", caption), ("vqa", lambda r: vqa(r, load_vqa_eval(sys.argv[1]))),
             ("rec", rec), ("res", res), ("grec", grec), ("gres", gres), ("nlvr", nlvr),
             ("pope", lambda r: pope(r, sys.argv[2])), ("region_caption", region_caption),
             ("coseg", coseg), ("pointqa", pointqa)]
    out = {}
    if only is not None:
        out = load("scored_predictions.json")
        tasks = [t for t in tasks if t[0] in only]
    for name, fn in tasks:
        raw, scores = fn(random.Random(name))
        out[name] = {"raw": raw, "scores": scores}
        print(name, scores)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
