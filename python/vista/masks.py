"""Masks and contours on Python lists or Arrow arrays: the code of vista's SQL mask
functions. A mask is PNG bytes, a COCO RLE dict ``{"size": [h, w], "counts": ...}`` or
``{"size": [h, w], "polygons": [...]}``. Each docstring is the SQL function's own."""

from __future__ import annotations

from typing import Any

from ._call import call, documented

__all__ = [
    "area",
    "bbox",
    "contour",
    "iou",
    "rle_decode",
    "rle_encode",
    "to_mask",
    "to_sequence",
]


@documented("mask_to_sequence")
def to_sequence(
    masks: Any,
    n: int = 32,
    *,
    method: str = "adaptive",
    space: str = "norm",
    contour: str = "boundary",
    on_error: str = "fail",
) -> Any:
    return call(
        "mask_to_sequence",
        masks,
        n=n,
        method=method,
        space=space,
        contour=contour,
        on_error=on_error,
    )


@documented("polygon_to_mask")
def to_mask(
    polygons: Any,
    width: Any,
    height: Any,
    *,
    space: str = "norm",
    format: str = "rle",
    on_error: str = "fail",
) -> Any:
    return call(
        "polygon_to_mask",
        polygons,
        _rows(width, polygons),
        _rows(height, polygons),
        space=space,
        format=format,
        on_error=on_error,
    )


@documented("mask_area")
def area(masks: Any, *, on_error: str = "fail") -> Any:
    return call("mask_area", masks, on_error=on_error)


@documented("mask_bbox")
def bbox(masks: Any, *, space: str = "pixel", on_error: str = "fail") -> Any:
    return call("mask_bbox", masks, space=space, on_error=on_error)


@documented("mask_contour")
def contour(
    masks: Any, *, components: str = "largest", holes: bool = False, on_error: str = "fail"
) -> Any:
    return call("mask_contour", masks, components=components, holes=holes, on_error=on_error)


@documented("mask_iou")
def iou(a: Any, b: Any, *, on_error: str = "fail") -> Any:
    return call("mask_iou", a, b, on_error=on_error)


@documented("rle_encode")
def rle_encode(masks: Any, *, on_error: str = "fail") -> Any:
    return call("rle_encode", masks, on_error=on_error)


@documented("rle_decode")
def rle_decode(rles: Any, *, format: str = "png", on_error: str = "fail") -> Any:
    return call("rle_decode", rles, format=format, on_error=on_error)


def _rows(value: Any, like: Any) -> Any:
    """One width or height for every row, or a value per row."""
    return [value] * len(like) if isinstance(value, int) else value
