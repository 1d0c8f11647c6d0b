"""General filters: `RequireGradable` (the gold answer can be checked) and
`SQLFilter` (keep rows matching a DuckDB SQL condition)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import duckdb
import polars as pl

from curate.errors import ConfigError
from curate.stage import Filter, StageContext
from curate.verification import DEFAULT_TIMEOUT, gradable_many

# Gradability kind -> reject reason
_REASONS = {
    "empty": "missing_answer",
    "not_an_answer": "not_an_answer",
    "too_long": "answer_too_long",
    "unparseable": "unparseable_answer",
    "text": "text_answer",
    "timeout": "answer_parse_timeout",
    "error": "answer_parse_error",
}


@dataclass(frozen=True)
class RequireGradable(Filter):
    r"""Keep problems whose gold answer a checker can compare against.

    Rejected, with the reason: ``missing_answer``, ``not_an_answer`` ("Proof",
    "See solution"), ``answer_too_long`` (over ``max_length`` characters after
    normalization), ``unparseable_answer`` (math-verify finds no expression in
    it), ``text_answer`` (only with ``allow_text=False``), and
    ``answer_parse_timeout``/``answer_parse_error``. Every row gets an
    ``answer_kind`` column: number, choice, text, expression, or why not.
    This is how DeepScaleR dropped problems it could not grade.

    >>> RequireGradable(max_length=100).name
    'require_gradable'
    """

    keeps_state: ClassVar[bool] = True  # its answer-checker processes, between batches

    allow_text: bool = True
    max_length: int = 200
    timeout: float = DEFAULT_TIMEOUT

    def reads(self) -> tuple[str, ...]:
        return ("answer",)

    def adds(self) -> tuple[str, ...]:
        return ("answer_kind",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        answers = batch["answer"].to_list()
        grades = gradable_many(
            answers,
            allow_text=self.allow_text,
            max_length=self.max_length,
            timeout=self.timeout,
            workers=ctx.workers,
            progress=ctx.progress,
        )
        reasons = [None if g.gradable else _REASONS[g.kind] for g in grades]
        marked = batch.lazy().with_columns(
            pl.Series("answer_kind", [g.kind for g in grades], pl.String),
            pl.Series("__reason", reasons, pl.String),
            pl.Series("__detail", [g.detail or None for g in grades], pl.String),
        )
        return self.mark(
            marked, pl.col("__reason").is_not_null(), pl.col("__reason"), pl.col("__detail")
        ).drop("__reason", "__detail")

    def global_reads(self) -> tuple[str, ...]:
        return ()  # only the kinds map_batch found

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        kinds = table["answer_kind"].value_counts().rows()
        ctx.stats["answer_kinds"] = dict(sorted(kinds))
        return table.select("id")


@dataclass(frozen=True)
class SQLFilter(Filter):
    """Keep the rows for which a DuckDB SQL condition is true; reject the rest.

    ``where`` is any boolean SQL expression over the columns; rows where it is
    false or null are rejected with ``reason`` and the condition as detail.

    >>> SQLFilter("length(problem) < 2000", reason="too_long").where
    'length(problem) < 2000'
    """

    where: str
    reason: str = "sql_filter"

    def adds(self) -> tuple[str, ...]:
        return ()

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        frame = batch
        con = duckdb.connect(":memory:")
        try:
            con.register("rows", frame.with_row_index("__row").to_arrow())
            keep = con.sql(
                f"SELECT coalesce(({self.where}), false) AS keep FROM rows ORDER BY __row"
            ).pl()["keep"]
        except duckdb.Error as e:
            raise ConfigError(
                f"SQLFilter where={self.where!r} is not a valid condition over columns "
                f"{frame.columns}: {e}"
            ) from None
        finally:
            con.close()
        if keep.dtype != pl.Boolean:
            raise ConfigError(f"SQLFilter where={self.where!r} gives {keep.dtype}, not a boolean")
        return self.mark(
            frame.lazy().with_columns(keep.alias("__keep")),
            ~pl.col("__keep"),
            self.reason,
            f"not ({self.where})",
        ).drop("__keep")
