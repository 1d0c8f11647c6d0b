"""The stage contract: what a step of a recipe is, in one short read.

A stage is a frozen dataclass. Its fields are its configuration (they go
into the stage's fingerprint, so changing one re-runs the stage and every
stage after it), and one method does its work::

    def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame | pl.DataFrame

``apply`` gets every row that reached the stage and returns the same rows, in
the same order, with the columns it adds. A *scorer* only adds columns. A
*filter* (subclass `Filter`) also fills the two columns named by
``REASON`` and ``DETAIL``: null keeps the row, a reason string rejects it.

The runner, not the stage, splits kept from rejected rows and writes both,
and it takes the canonical columns from the input, not from the stage: a
stage cannot lose a row or change a field, so ``kept ∪ rejected = input``
holds for every stage by construction (and is still checked).

>>> import polars as pl
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class ShortProblems(Filter):
...     max_chars: int = 20
...     def apply(self, rows, ctx):
...         too_long = pl.col("problem").str.len_chars() > self.max_chars
...         return self.mark(rows, too_long, "too_long", pl.col("problem").str.len_chars())
>>> ShortProblems().name
'short_problems'
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

REASON = "_reject_reason"
DETAIL = "_reject_detail"


@dataclass
class StageContext:
    """What a stage may use while it runs.

    ``cache_dir`` outlives the stage (keyed caches such as embeddings live
    there); ``stats`` is written to the manifest with the stage's counts.
    """

    run_dir: Path
    cache_dir: Path
    stage_name: str
    seed: int = 0
    workers: int | None = None
    progress: bool = False
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage as the runner wrote it (see `curate.Run.stages`)."""

    name: str
    rows_in: int
    kept: int
    rejected: dict[str, int]
    seconds: float
    stats: dict[str, Any]


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.lower()


class Stage:
    """Base of every stage: a frozen dataclass with an ``apply`` method.

    ``version`` is part of the fingerprint: bump it when the stage's output
    changes for the same configuration.
    """

    version: ClassVar[str] = "1"

    @property
    def name(self) -> str:
        """Default name: the class name in snake_case (``ExactDedup`` -> ``exact_dedup``)."""
        return _snake(type(self).__name__)

    def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame | pl.DataFrame:
        raise NotImplementedError(f"{type(self).__name__}.apply is not implemented")

    def config(self) -> dict[str, Any]:
        """The configuration as JSON-able data (the dataclass fields)."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a (frozen) dataclass")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.loads(json.dumps(values, default=_jsonable, sort_keys=True))

    def describe(self) -> dict[str, Any]:
        """What goes into the fingerprint and the manifest."""
        cls = type(self)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "version": cls.version,
            "config": self.config(),
        }


class Filter(Stage):
    """A stage that rejects rows; see `mark` for the usual way to say which and why."""

    @staticmethod
    def mark(
        rows: pl.LazyFrame | pl.DataFrame,
        condition: pl.Expr,
        reason: str | pl.Expr,
        detail: str | pl.Expr | None = None,
    ) -> pl.LazyFrame:
        """Reject the rows where ``condition`` is true, with ``reason`` and ``detail``.

        Rows already rejected by an earlier ``mark`` in the same stage keep their
        first reason.
        """
        lazy = rows.lazy()
        names = lazy.collect_schema().names()
        reason_e = pl.lit(reason) if isinstance(reason, str) else reason
        detail_e = pl.lit(detail) if isinstance(detail, str) or detail is None else detail
        new_reason: pl.Expr = pl.when(condition).then(reason_e.cast(pl.String))
        new_detail: pl.Expr = pl.when(condition).then(detail_e.cast(pl.String))
        if REASON in names:
            new_reason = pl.coalesce(pl.col(REASON), new_reason)
            new_detail = (
                pl.when(pl.col(REASON).is_not_null()).then(pl.col(DETAIL)).otherwise(new_detail)
            )
        return lazy.with_columns(new_reason.alias(REASON), new_detail.alias(DETAIL))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, pl.Expr):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"stage option of type {type(value).__name__} is not JSON-serializable")
