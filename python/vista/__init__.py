"""Vista from Python: VistaLLM as SQL.

Two ways in:

* ``vista.register(ctx)`` puts every vista scalar and aggregate function into a
  ``datafusion.SessionContext`` (DataFusion's own Python package), through datafusion-ffi.
* ``vista.Session()`` is vista's own session: every function, ``vista_generate`` with the model
  named by ``vista.model``, ``vista.*`` settings, vista's atomic ``COPY`` and the job runner.
  ``Session.sql`` returns a ``pyarrow.Table`` (``.to_pandas()``, ``polars.from_arrow``).

``vista.metrics``, ``vista.masks`` and ``vista.text`` call the same functions on Python lists
or Arrow arrays, without SQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from . import _vista
from ._vista import VistaError, __version__

__all__ = [
    "Session",
    "VistaError",
    "__version__",
    "call",
    "functions",
    "masks",
    "metrics",
    "register",
    "text",
]


def register(ctx: Any) -> None:
    """Registers every vista scalar and aggregate function on ``ctx``, a
    ``datafusion.SessionContext``, so that ``ctx.sql("SELECT cider_d(pred, refs) ...")`` works.

    ``vista_generate`` is not registered: it runs the model inside vista's own session
    (``vista.Session``)."""
    from datafusion import udaf, udf

    for f in _vista.scalar_functions():
        ctx.register_udf(udf(f))
    for f in _vista.aggregate_functions():
        ctx.register_udaf(udaf(f))


def functions() -> list[dict[str, Any]]:
    """The documentation of every vista function, as ``vista functions`` prints it: one dict
    per function with ``name``, ``kind``, ``section``, ``syntax``, ``description``,
    ``arguments`` and ``example``."""
    return _vista.documentation()


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _arrow_stream(data: Any) -> Any:
    """``data`` as an object exporting an Arrow stream (``__arrow_c_stream__``)."""
    if type(data).__module__.split(".")[0] == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    raise TypeError(
        f"cannot register a {type(data).__name__}: expected a path, a pyarrow, pandas or "
        "polars table, a dict of columns, a list of rows, or anything with __arrow_c_stream__"
    )


class Session:
    """Vista's own DataFusion session.

    ``settings`` are ``vista.*`` or ``datafusion.*`` settings (a key without a dot means
    ``vista.<key>``), e.g. ``{"model": "assets/demo-model", "max_new_tokens": 32}``.
    ``target_partitions`` is the number of partitions per scan (default: the number of cores);
    ``memory_limit`` the bytes operators may hold before they spill.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        target_partitions: int | None = None,
        memory_limit: int | None = None,
    ) -> None:
        pairs = [(str(k), _setting(v)) for k, v in (settings or {}).items()]
        self._inner = _vista.Session(pairs, target_partitions, memory_limit)

    def sql(self, query: str) -> pa.Table | None:
        """Runs every statement of ``query``; returns the last query's result as a
        ``pyarrow.Table``, or None when ``query`` holds no query (``SET``, ``CREATE``,
        ``COPY``). The GIL is released while the query runs; Ctrl-C cancels it."""
        result = self._inner.sql(query)
        return None if result is None else pa.table(result)

    def register(self, name: str, data: Any) -> None:
        """Registers ``data`` as table ``name``: a path or URL (Parquet, CSV, JSON, Arrow; a
        file or a directory), or an in-memory table (pyarrow, pandas, polars, a dict of
        columns, a list of row dicts). An in-memory table replaces one of the same name."""
        if isinstance(data, (str, os.PathLike)):
            self._inner.register_path(name, os.fspath(data))
        else:
            self._inner.register_arrow(name, _arrow_stream(data))

    def deregister(self, name: str) -> None:
        """Drops table ``name`` (nothing happens when there is none)."""
        self._inner.deregister(name)

    def tables(self) -> list[str]:
        """The names of the registered tables, sorted."""
        return self._inner.tables()

    def run(
        self,
        job_file: str | os.PathLike[str],
        samples: str | os.PathLike[str],
        out: str | os.PathLike[str],
        *,
        resume: bool = True,
        chunk_rows: int = 256,
        drop_unreadable: bool = False,
    ) -> dict[str, Any]:
        """Runs an eval job file (``queries/eval_*.sql``) over a samples table into ``out``
        (``predictions.parquet``, ``scores.parquet``), in committed chunks, as ``vista run``
        does. With ``resume`` (default) a job killed earlier continues where it stopped.
        Returns the summary: ``total``, ``computed``, ``resumed``, ``failed``, ``fingerprint``,
        ``predictions``, ``scores``."""
        return self._inner.run(
            os.fspath(job_file),
            os.fspath(samples),
            os.fspath(out),
            resume,
            chunk_rows,
            drop_unreadable,
        )


from ._call import call  # noqa: E402  (needs Session)
from . import masks, metrics, text  # noqa: E402
