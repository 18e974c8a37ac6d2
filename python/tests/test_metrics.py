"""vista.metrics and vista.masks against the reference fixtures that pycocoevalcap, the VQA
evaluation script and pycocotools computed (scripts/make_metric_fixtures_*.py)."""

import ast

import pyarrow as pa
import pytest

import vista
from conftest import load

TOL = 1e-9


@pytest.mark.parametrize("tokenize", [True, False])
def test_caption_metrics_equal_pycocoevalcap(tokenize):
    for s in load("metrics/captions.json"):
        images = s["images"]
        key_h, key_r = ("hyp", "refs") if tokenize else ("hyp_tok", "refs_tok")
        preds = [im[key_h] for im in images]
        refs = [im[key_r] for im in images]
        ids = [im["id"] for im in images]
        c = vista.metrics.cider_d(preds, refs, ids, tokenize=tokenize)
        b = vista.metrics.bleu(preds, refs, tokenize=tokenize)
        # Without ids: no per-item scores, unless tokenize=False (then keyed by position).
        if tokenize:
            assert "per_item" not in b or b["per_item"] is None
        else:
            assert [p["id"] for p in b["per_item"]] == list(range(len(images)))
        r = vista.metrics.rouge_l(preds, refs, tokenize=tokenize)
        assert c["score"] == pytest.approx(s["cider_d"], abs=TOL), s["name"]
        assert c["n"] == len(images)
        per_item = {p["id"]: p["score"] for p in c["per_item"]}
        for im in images:
            assert per_item[im["id"]] == pytest.approx(im["cider_d"], abs=TOL)
        for k in range(4):
            assert b[f"bleu_{k + 1}"] == pytest.approx(s["bleu"][k], abs=TOL), s["name"]
        assert r["score"] == pytest.approx(s["rouge_l"], abs=TOL), s["name"]


def test_vqa_accuracy_equals_the_official_script():
    rows = load("metrics/vqa.json")["rows"]
    preds = [r["pred"] for r in rows]
    answers = [r["answers"] for r in rows]
    for variant in ("current", "pre2021"):
        got = vista.metrics.vqa_accuracy(preds, answers, variant=variant)
        assert got == pytest.approx([r[variant] for r in rows], abs=TOL)


def test_box_iou_and_giou():
    pairs = load("metrics/boxes.json")["pairs"]
    a = [[float(v) for v in p["a"]] for p in pairs]
    b = [[float(v) for v in p["b"]] for p in pairs]
    assert vista.metrics.box_iou(a, b) == pytest.approx([p["iou"] for p in pairs], abs=TOL)
    assert vista.metrics.box_giou(a, b) == pytest.approx([p["giou"] for p in pairs], abs=TOL)


def test_mask_iou_miou_ciou_equal_pycocotools_and_lavt():
    m = load("metrics/masks.json")
    preds = [r["pred"] for r in m["res"]]
    gts = [r["gt"] for r in m["res"]]
    assert vista.masks.iou(preds, gts) == pytest.approx([r["iou"] for r in m["res"]], abs=TOL)
    assert vista.metrics.miou(preds, gts) == pytest.approx(m["lavt"]["miou"], abs=TOL)
    assert vista.metrics.ciou(preds, gts) == pytest.approx(m["lavt"]["ciou"], abs=TOL)


def test_arrow_in_gives_arrow_out():
    preds = pa.array(["yes", "no"])
    answers = pa.array([["yes"] * 10, ["yes"] * 10])
    got = vista.metrics.vqa_accuracy(preds, answers)
    assert isinstance(got, pa.Array)
    assert got.to_pylist() == [1.0, 0.0]


def test_masks_round_trip_through_sequences():
    # A filled 6x4 rectangle at (2, 3) in a 12x10 image, as a COCO polygon in pixels.
    rect = [2.0, 3.0, 8.0, 3.0, 8.0, 7.0, 2.0, 7.0]
    rle = vista.masks.to_mask([rect], 12, 10, space="pixel")
    assert vista.masks.area(rle) == [24]
    assert vista.masks.bbox(rle) == [[2.0, 3.0, 8.0, 7.0]]
    seq = vista.masks.to_sequence(rle, 8, space="pixel")
    assert seq == [[2.0, 3.0, 2.0, 7.0, 8.0, 7.0, 8.0, 3.0]]
    png = vista.masks.rle_decode(rle)
    assert png[0][:8] == b"\x89PNG\r\n\x1a\n"
    assert vista.masks.iou(png, rle) == [1.0]
    assert vista.text.format_points([[0.1, 0.2, 0.5, 0.9]], style="decimal") == [
        "[0.100,0.200,0.500,0.900]"
    ]


def test_stubs_carry_the_sql_documentation():
    from vista import _stubs

    for module in _stubs.MODULES:
        path = _stubs.Path(_stubs.__file__).parent / (module.__name__.rsplit(".", 1)[1] + ".pyi")
        assert path.read_text() == _stubs.stub(module), f"run python -m vista._stubs ({path})"
        ast.parse(path.read_text(), str(path))
    doc = vista.metrics.cider_d.__doc__
    sql = next(f for f in vista.functions() if f["name"] == "cider_d")
    assert sql["description"] in doc and sql["syntax"] in doc
