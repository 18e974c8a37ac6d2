"""Reference-exact metrics on Python lists or Arrow arrays: the code of vista's SQL metric
functions (pycocoevalcap's BLEU, ROUGE-L and CIDEr-D, the official VQA accuracy, box IoU,
pycocotools' mask IoU, the gRefCOCO scores). Each docstring is the SQL function's own."""

from __future__ import annotations

from typing import Any

from ._call import call, documented

__all__ = [
    "bleu",
    "box_giou",
    "box_iou",
    "caption_scores",
    "cider_d",
    "ciou",
    "grec_match",
    "grec_score",
    "gres_score",
    "mask_iou",
    "miou",
    "ptb_tokenize",
    "res_score",
    "rouge_l",
    "vqa_accuracy",
]


@documented("cider_d")
def cider_d(preds: Any, refs: Any, ids: Any = None, *, tokenize: bool = True) -> dict[str, Any]:
    return _caption_metric("cider_d", preds, refs, ids, tokenize)


@documented("bleu")
def bleu(preds: Any, refs: Any, ids: Any = None, *, tokenize: bool = True) -> dict[str, Any]:
    return _caption_metric("bleu", preds, refs, ids, tokenize)


@documented("rouge_l")
def rouge_l(preds: Any, refs: Any, ids: Any = None, *, tokenize: bool = True) -> dict[str, Any]:
    return _caption_metric("rouge_l", preds, refs, ids, tokenize)


@documented("caption_scores")
def caption_scores(
    preds: Any, refs: Any, ids: Any = None, *, tokenize: bool = True
) -> dict[str, Any]:
    return _caption_metric("caption_scores", preds, refs, ids, tokenize)


@documented("ptb_tokenize")
def ptb_tokenize(texts: Any) -> Any:
    return call("ptb_tokenize", texts)


@documented("vqa_accuracy")
def vqa_accuracy(
    preds: Any, answers: Any, *, variant: str = "current", on_error: str = "fail"
) -> Any:
    return call("vqa_accuracy", preds, answers, variant=variant, on_error=on_error)


@documented("box_iou")
def box_iou(preds: Any, gts: Any, *, on_error: str = "fail") -> Any:
    return call("box_iou", preds, gts, on_error=on_error)


@documented("box_giou")
def box_giou(preds: Any, gts: Any, *, on_error: str = "fail") -> Any:
    return call("box_giou", preds, gts, on_error=on_error)


@documented("mask_iou")
def mask_iou(preds: Any, gts: Any, *, on_error: str = "fail") -> Any:
    return call("mask_iou", preds, gts, on_error=on_error)


@documented("miou")
def miou(pred_masks: Any, gt_masks: Any) -> Any:
    return call("miou", pred_masks, gt_masks)


@documented("ciou")
def ciou(pred_masks: Any, gt_masks: Any) -> Any:
    return call("ciou", pred_masks, gt_masks)


@documented("res_score")
def res_score(pred_masks: Any, gt_masks: Any) -> dict[str, Any]:
    return call("res_score", pred_masks, gt_masks)


@documented("grec_match")
def grec_match(
    pred_boxes: Any, gt_boxes: Any, *, iou_threshold: float = 0.5, on_error: str = "fail"
) -> Any:
    return call(
        "grec_match", pred_boxes, gt_boxes, iou_threshold=iou_threshold, on_error=on_error
    )


@documented("grec_score")
def grec_score(pred_boxes: Any, gt_boxes: Any, *, iou_threshold: float = 0.5) -> dict[str, Any]:
    return call("grec_score", pred_boxes, gt_boxes, iou_threshold=iou_threshold)


@documented("gres_score")
def gres_score(pred_masks: Any, gt_masks: Any, *, smoothed: bool = False) -> dict[str, Any]:
    return call("gres_score", pred_masks, gt_masks, smoothed=smoothed)


def _caption_metric(name: str, preds: Any, refs: Any, ids: Any, tokenize: bool) -> Any:
    """With ``ids``, per-item scores come back keyed by them. ``tokenize`` follows ``id`` in
    SQL, so ``tokenize=False`` without ids keys the per-item scores by row position."""
    if ids is None and tokenize:
        return call(name, preds, refs)
    if ids is None:
        ids = list(range(len(preds)))
    return call(name, preds, refs, ids, tokenize=tokenize)
