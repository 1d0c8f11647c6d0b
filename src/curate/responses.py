"""The run's responses table: one owner for where it lives and how it is read and written.

Generated responses are a table of the run (``RUN/responses/*.parquet``, schema
`curate.schema.RESPONSE_FIELDS`), one row per key `RESPONSE_KEYS` = (``problem_id``,
``model``, ``sample``, ``gen_key``), where ``gen_key`` digests the settings that produced
the text (backend, sampling, template). It is written in parts, each atomically, and it is
the generation cache: a stage that generates asks it what is done. Stages reach it through
their context (``ctx.responses``); the run lists it among its tables, and the export reads
it; none of them builds its paths.

>>> import tempfile, pathlib
>>> table = ResponsesTable(pathlib.Path(tempfile.mkdtemp()) / "responses")
>>> table.read().height, table.parts()
(0, [])
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from curate.io import write_parquet
from curate.schema import RESPONSE_FIELDS

RESPONSES_DIR = "responses"
"""The folder of the responses table inside a run directory."""

RESPONSE_KEYS = ("problem_id", "model", "sample", "gen_key")
"""What names one stored response (the responses cache's key)."""

_POLARS_TYPES = {"string": pl.String, "int32": pl.Int32, "int64": pl.Int64}
_POLARS_TYPES |= {"double": pl.Float64, "bool": pl.Boolean}
RESPONSE_SCHEMA = {name: _POLARS_TYPES[str(t)] for name, t, _, _ in RESPONSE_FIELDS}
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


class ResponsesTable:
    """The responses table of the run directory whose folder is ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of_run(cls, run_dir: str | Path) -> ResponsesTable:
        return cls(Path(run_dir) / RESPONSES_DIR)

    def parts(self) -> list[Path]:
        """The finished part files, in name order (hidden temporary files are not parts)."""
        return sorted(self.path.glob("*.parquet")) if self.path.is_dir() else []

    def part(self, gen_key: str, digest: str) -> Path:
        """The file of a part of ``gen_key``'s responses named by ``digest`` (of its keys)."""
        return self.path / f"{gen_key}-{digest}.parquet"

    def part_of(self, gen_key: str, model: str, rows: list[dict[str, Any]]) -> Path:
        """The part file for ``model``'s response ``rows`` under ``gen_key``: named by a digest
        of their (problem_id, sample) keys, so the same chunk always lands in the same file."""
        keys = [model, [(r["problem_id"], r["sample"]) for r in rows]]
        digest = hashlib.blake2b(json.dumps(keys).encode(), digest_size=8).hexdigest()
        return self.part(gen_key, digest)

    @staticmethod
    def gen_key_of(part: Path) -> str:
        return part.name.split("-", 1)[0]

    def clean(self) -> None:
        """Remove the temporary files of parts being written when a run was killed."""
        for stale in self.path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)

    def write(self, rows: list[dict[str, Any]], path: Path) -> None:
        """Write response rows as one part, atomically (extra keys, such as the ``gold``
        a row carries while it is judged, are left out)."""
        table = pl.DataFrame(rows, schema={**RESPONSE_SCHEMA, "gold": pl.String})
        write_parquet(table.drop("gold"), path)

    def read(self) -> pl.DataFrame:
        """Every stored response, one row per key (see `one_per_key`)."""
        return read_responses(self.path)

    def scan(self, *where: pl.Expr) -> pl.LazyFrame:
        """The stored responses that match ``where`` (filters on their columns, applied
        first), lazily, one row per key (see `one_per_key`): select the columns you need
        (leave the texts out) before collecting, and memory holds only those. Columns a
        part written by an older curate lacks are null."""
        parts = self.parts()
        if not parts:
            return pl.LazyFrame(schema=RESPONSE_SCHEMA)
        lazy = pl.scan_parquet(
            parts, schema=RESPONSE_SCHEMA, missing_columns="insert", extra_columns="ignore"
        )
        return one_per_key(lazy.filter(*where) if where else lazy)


def read_responses(directory: str | Path) -> pl.DataFrame:
    """Every response stored under ``directory`` (the cache parts), one row per key.

    A key stored more than once (a failed generation tried again, or two runs that raced)
    keeps a row that did not fail if there is one, else the first; hidden temporary files
    of an interrupted write are ignored.
    """
    parts = ResponsesTable(directory).parts()
    if not parts:
        return pl.DataFrame(schema=RESPONSE_SCHEMA)
    table = pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")
    missing = [  # columns parts written by an older curate do not have (grader, ...)
        pl.lit(None, dtype).alias(name)
        for name, dtype in RESPONSE_SCHEMA.items()
        if name not in table.columns
    ]
    return one_per_key(table.with_columns(missing)).select(RESPONSE_SCHEMA.keys())


def one_per_key(responses: FrameT) -> FrameT:
    """The responses' rule for a key stored more than once (a failed generation tried again,
    or two runs that raced): the first row that did not fail if there is one, else the
    first; rows stay in their order. For `read_responses` and the export alike (which reads
    only the key columns, lazily).

    >>> rows = pl.DataFrame({"problem_id": ["a", "a"], "model": "m", "sample": 0,
    ...     "gen_key": "k", "finish_reason": ["error", "stop"]})
    >>> one_per_key(rows)["finish_reason"].to_list()
    ['stop']
    """
    failed = pl.col("finish_reason") == "error"
    return (
        responses.with_row_index("_at")
        .sort(failed, "_at")
        .unique(RESPONSE_KEYS, keep="first", maintain_order=True)
        .sort("_at")
        .drop("_at")
    )
