"""Exact deduplication on normalized text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from curate.stage import Filter, StageContext
from curate.verification import normalize_answer


@dataclass(frozen=True)
class ExactDedup(Filter):
    """Drop rows whose ``on`` columns equal those of an earlier row.

    By default ``on="text_hash"``: the hash of the normalized problem text
    (`curate.text.normalize_text`), so the same problem from two sources or
    with different LaTeX spacing is one problem.

    The keeper of each group is decided by the order rows reach the stage,
    which is the recipe's source order then each file's row order:
    ``keep="first"`` keeps the earliest row, ``keep="last"`` the latest. Every
    row gets ``dup_count`` (the size of its group) and ``answer_conflict``
    (true when rows of its group have different non-null gold answers after
    normalization); rejected rows have reason ``duplicate`` and the keeper's
    ``id`` as detail. The manifest counts groups and conflicting groups.

    >>> ExactDedup(keep="last").config()
    {'keep': 'last', 'on': 'text_hash'}
    """

    on: str | tuple[str, ...] = "text_hash"
    keep: Literal["first", "last"] = "first"

    def keys(self) -> list[str]:
        return [self.on] if isinstance(self.on, str) else list(self.on)

    def reads(self) -> tuple[str, ...]:
        return (*self.keys(), "answer")

    def optional_reads(self) -> tuple[str, ...]:
        return ("answer",)  # documents have none: no answer conflicts

    def adds(self) -> tuple[str, ...]:
        return ("dup_count", "answer_conflict")

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        keys = self.keys()
        if "answer" not in table.columns:
            table = table.with_columns(pl.lit(None, pl.String).alias("answer"))
        pick = pl.col("id").first() if self.keep == "first" else pl.col("id").last()
        frame = table
        answers = [None if a is None else normalize_answer(a) for a in frame["answer"]]
        frame = (
            frame.with_columns(pl.Series("__answer", answers, pl.String))
            .with_columns(
                pick.over(keys).alias("__keeper"),
                pl.len().over(keys).cast(pl.Int64).alias("dup_count"),
                (pl.col("__answer").drop_nulls().n_unique().over(keys) > 1).alias(
                    "answer_conflict"
                ),
            )
            .drop("__answer")
        )
        groups = frame.filter(pl.col("dup_count") > 1)
        ctx.stats["duplicate_groups"] = groups.select(pl.col("__keeper").n_unique()).item()
        ctx.stats["conflicting_groups"] = (
            groups.filter("answer_conflict").select(pl.col("__keeper").n_unique()).item()
        )
        return self.mark(
            frame.lazy(), pl.col("id") != pl.col("__keeper"), "duplicate", pl.col("__keeper")
        ).drop("__keeper")
