# The native module of the `vista` package (python/src/*.rs).
from typing import Any

import pyarrow as pa

__version__: str

class VistaError(Exception):
    """A vista error: the same one-line message the `vista` command prints."""

class ScalarFunction:
    """One vista scalar function, ready for `datafusion.udf(f)`."""

    @property
    def name(self) -> str: ...
    def __datafusion_scalar_udf__(self, session: Any = None) -> object: ...

class AggregateFunction:
    """One vista aggregate function, ready for `datafusion.udaf(f)`."""

    @property
    def name(self) -> str: ...
    def __datafusion_aggregate_udf__(self, session: Any = None) -> object: ...

class Session:
    def __init__(
        self,
        settings: list[tuple[str, str]] = ...,
        target_partitions: int | None = None,
        memory_limit: int | None = None,
    ) -> None: ...
    def sql(self, query: str) -> pa.Table | None: ...
    def register_path(self, name: str, path: str) -> None: ...
    def register_arrow(self, name: str, data: Any) -> None: ...
    def deregister(self, name: str) -> None: ...
    def tables(self) -> list[str]: ...
    def run(
        self,
        job_file: str,
        samples: str,
        out: str,
        resume: bool = True,
        chunk_rows: int = 256,
        drop_unreadable: bool = False,
    ) -> dict[str, Any]: ...

def scalar_functions() -> list[ScalarFunction]: ...
def aggregate_functions() -> list[AggregateFunction]: ...
def documentation() -> list[dict[str, Any]]: ...
