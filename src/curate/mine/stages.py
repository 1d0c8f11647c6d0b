"""The stages of corpus mining: score each page with a classifier (per-row work, so it runs
on any engine), then keep the top pages (a global step over ids and scores).

>>> KeepTop(share=0.1).config()["share"]
0.1
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from curate.errors import ConfigError
from curate.stage import Filter, Stage, StageContext

SCORE = "math_score"
TOKENS = "tokens"


def file_digest(path: str | Path) -> str:
    """A digest of a file's bytes (a classifier's identity in a fingerprint)."""
    h = hashlib.blake2b(digest_size=12)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ClassifierScore(Stage):
    """Score every page with a fastText classifier (`curate.mine.train_classifier`): adds
    ``math_score`` (P(math), 0 for an empty page) and ``tokens`` (an estimate: characters
    / 4, what a token budget counts). The classifier file's digest is in the fingerprint,
    so a retrained classifier scores again."""

    keeps_state: ClassVar[bool] = True  # the loaded model, between batches
    batch_rows: ClassVar[int] = 16_384

    model: str
    column: str = "text"

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", str(self.model))
        if not Path(self.model).is_file():
            raise ConfigError(f"ClassifierScore(model={self.model!r}): no such classifier file")

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["model_digest"] = file_digest(self.model)
        return out

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def adds(self) -> tuple[str, ...]:
        return (SCORE, TOKENS)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        from curate.mine.classifier import load_classifier

        classifier = load_classifier(self.model, Path(self.model).stat().st_mtime)
        scores = classifier.scores(batch[self.column].to_list())
        return batch.select(
            "id",
            pl.Series(SCORE, scores, pl.Float64),
            (pl.col(self.column).str.len_chars().fill_null(0) // 4).cast(pl.Int64).alias(TOKENS),
        )


@dataclass(frozen=True)
class KeepTop(Filter):
    """Keep the pages with the highest ``by`` score: those at or above ``threshold``, the top
    ``share`` of pages, or the top pages up to ``tokens`` tokens (a pre-training budget, as
    DeepSeekMath kept its top 40B tokens); exactly one of the three. Ties are broken by id,
    so the cut is the same every run. Adds ``rank`` (1 = best); a page below the cut is a
    reject ``below_cutoff`` with its score and rank."""

    threshold: float | None = None
    share: float | None = None
    tokens: int | None = None
    by: str = SCORE

    def __post_init__(self) -> None:
        given = [k for k in ("threshold", "share", "tokens") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"KeepTop: give exactly one of threshold=, share=, tokens=; got {given or 'none'}"
            )
        if self.share is not None and not 0 < self.share <= 1:
            raise ConfigError(f"KeepTop(share={self.share}): expected 0 < share <= 1")
        if self.tokens is not None and self.tokens < 1:
            raise ConfigError(f"KeepTop(tokens={self.tokens}): expected >= 1")

    def reads(self) -> tuple[str, ...]:
        return (self.by, TOKENS) if self.tokens is not None else (self.by,)

    def adds(self) -> tuple[str, ...]:
        return ("rank",)

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        order = table.select("id", self.by, *([TOKENS] if self.tokens is not None else []))
        order = order.with_row_index("_at").sort(
            [self.by, "id"], descending=[True, False], nulls_last=True
        )
        order = order.with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
        if self.threshold is not None:
            keep = pl.col(self.by).fill_null(float("-inf")) >= self.threshold
        elif self.share is not None:
            keep = pl.col("rank") <= max(1, round(self.share * order.height))
        else:
            keep = pl.col(TOKENS).cum_sum() <= self.tokens
        order = order.with_columns(keep.alias("_keep")).sort("_at")
        kept = int(order["_keep"].sum())
        ctx.stats.update(kept=kept, scored=order.height)
        if kept:
            ctx.stats["cutoff_score"] = order.filter("_keep")[self.by].min()
        detail = pl.format(
            "{} {} (rank {} of {})",
            pl.lit(self.by),
            pl.col(self.by).round(4),
            pl.col("rank"),
            pl.lit(order.height),
        )
        return self.mark(
            order.lazy().select("id", self.by, "rank", "_keep"),
            ~pl.col("_keep"),
            "below_cutoff",
            detail,
        ).drop("_keep", self.by)
