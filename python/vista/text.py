"""VistaLLM's coordinate text on Python lists or Arrow arrays: boxes and polygons written as
model text and read back, with the code of vista's SQL text functions. Each docstring is the
SQL function's own."""

from __future__ import annotations

from typing import Any

from ._call import call, documented

__all__ = ["format_boxes", "format_points", "parse_boxes", "parse_polygons"]


@documented("format_boxes")
def format_boxes(
    boxes: Any,
    *,
    style: str = "bins",
    space: str = "square",
    width: Any = None,
    height: Any = None,
) -> Any:
    return call("format_boxes", boxes, style=style, space=space, width=width, height=height)


@documented("format_points")
def format_points(
    points: Any,
    *,
    style: str = "bins",
    space: str = "square",
    width: Any = None,
    height: Any = None,
    kind: str = "mask",
) -> Any:
    # `kind` comes after `width` and `height` in SQL: named only when it is not the default.
    more = {} if kind == "mask" else {"kind": kind}
    return call(
        "format_points", points, style=style, space=space, width=width, height=height, **more
    )


@documented("parse_boxes")
def parse_boxes(texts: Any, *, space: str = "square", width: Any = None, height: Any = None) -> Any:
    return call("parse_boxes", texts, space=space, width=width, height=height)


@documented("parse_polygons")
def parse_polygons(
    texts: Any, *, space: str = "square", width: Any = None, height: Any = None
) -> Any:
    return call("parse_polygons", texts, space=space, width=width, height=height)
