"""Calling one vista function on Python lists or Arrow arrays, through SQL on a private
session: the wrappers in ``vista.metrics``, ``vista.masks`` and ``vista.text`` run exactly
the code the SQL functions run."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa

_F = TypeVar("_F", bound=Callable[..., Any])

_lock = threading.Lock()
_session: Any = None
_names = itertools.count()
_docs: dict[str, dict[str, Any]] | None = None


def _shared_session() -> Any:
    global _session
    with _lock:
        if _session is None:
            from . import Session

            # One partition: scalar results come back in input order.
            _session = Session(target_partitions=1)
        return _session


def _literal(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"{what}: expected a str, int, float or bool, got {type(value).__name__}")


def _column(values: Any, what: str) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, (str, bytes, Mapping)) or not (
        isinstance(values, Sequence) or hasattr(values, "__array__")
    ):
        raise TypeError(f"{what}: expected a list or an Arrow array, one element per row")
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise TypeError(f"{what}: cannot make an Arrow array of it: {e}") from None


def call(function: str, *columns: Any, **options: Any) -> Any:
    """Calls vista function ``function`` with one row per element of ``columns`` (lists or
    Arrow arrays of equal length) and ``options`` (named SQL arguments: a Python value is a
    literal, a list or Arrow array a column; None leaves the option out).

    A scalar function gives one value per row: a list, or a ``pyarrow.Array`` when any input
    is one. An aggregate gives its one value (a struct as a dict)."""
    kind = _documentation().get(function, {}).get("kind")
    if kind not in ("scalar", "aggregate"):
        raise ValueError(f"'{function}' is not a vista scalar or aggregate function")
    arrow_in = any(isinstance(c, (pa.Array, pa.ChunkedArray)) for c in columns)
    data: dict[str, pa.Array] = {}
    args = []
    for i, c in enumerate(columns):
        data[f"c{i}"] = _column(c, f"{function} argument {i + 1}")
        args.append(f"c{i}")
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, pa.Array, pa.ChunkedArray)):
            data[key] = _column(value, f"{function} {key}")
            args.append(f"{key} => {key}")
        else:
            args.append(f"{key} => {_literal(value, f'{function} {key}')}")
    lengths = {name: len(a) for name, a in data.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{function}: the columns have different lengths {lengths}")
    session = _shared_session()
    table = f"__vista_call_{next(_names)}"
    session.register(table, pa.table(data) if data else pa.table({"_": [None]}))
    try:
        result = session.sql(f"SELECT {function}({', '.join(args)}) AS v FROM {table}")
    finally:
        session.deregister(table)
    assert result is not None
    values = result.column("v")
    if kind == "aggregate":
        return values[0].as_py()
    values = values.combine_chunks()
    return values if arrow_in else values.to_pylist()


def _documentation() -> dict[str, dict[str, Any]]:
    global _docs
    if _docs is None:
        from . import _vista

        _docs = {f["name"]: f for f in _vista.documentation()}
    return _docs


def docstring(function: str) -> str:
    """The SQL function's documentation as a docstring: syntax, description, arguments."""
    f = _documentation()[function]
    lines = [f"Calls SQL ``{f['syntax']}`` ({f['kind']}).", "", f["description"]]
    if f["arguments"]:
        lines += ["", "SQL arguments:"]
        lines += [f"    {name}: {text}" for name, text in f["arguments"]]
    return "\n".join(lines)


def documented(function: str) -> Callable[[_F], _F]:
    """Gives the wrapper the SQL function's documentation."""

    def wrap(f: _F) -> _F:
        f.__doc__ = docstring(function)
        f.__vista_function__ = function  # type: ignore[attr-defined]
        return f

    return wrap
