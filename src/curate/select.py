r"""Selection by difficulty: DeepDistill's two stages and open-r1's pass-rate band.

These filters read what `curate.grade.Grade` wrote (``pass_rate``, ``cv``) and the
``samples`` of `curate.distill.Distill`. Besides keeping or rejecting problems, the
DeepDistill stages say which responses are worth training on: a ``selected`` column, a list
of ``{model, sample}`` keys into the responses table, which the SFT export follows.

Random choices (which easy problems to keep, which passing response to take) are drawn
from a hash of the recipe seed, the stage's ``seed`` and the problem id: the same run gives
the same selection, whatever the row order or the number of workers.

>>> uniform(0, "math:1:ab") == uniform(0, "math:1:ab"), 0 <= uniform(1, "x") < 1
(True, True)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from curate.errors import ConfigError
from curate.generate.base import derive_seed
from curate.stage import Filter, StageContext

_KEY = pl.Struct({"model": pl.String, "sample": pl.Int32})


def uniform(seed: int, key: str) -> float:
    """A number in [0, 1) from ``seed`` and ``key`` (BLAKE2b: the same on every machine)."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def _uniforms(ids: pl.Series, seed: int) -> pl.Series:
    return pl.Series([uniform(seed, i) for i in ids.to_list()], dtype=pl.Float64)


def _passing(column: str, threshold: float) -> pl.Expr:
    """The ``{model, sample}`` keys of the responses scoring at least ``threshold``."""
    good = (pl.element().struct.field("score") >= threshold) & (
        pl.element().struct.field("finish_reason") == "stop"
    )
    return (
        pl.col(column)
        .list.eval(pl.element().filter(good))
        .list.eval(
            pl.struct(
                pl.element().struct.field("model"),
                pl.element().struct.field("sample").cast(pl.Int32),
            )
        )
        .cast(pl.List(_KEY))
    )


_OK, _DRAW = "_stage_ii_ok", "_stage_ii_draw"  # Stage II's per-row columns for its ranking


@dataclass(frozen=True)
class DeepDistillStageI(Filter):
    """DeepDistill's first selection stage, per problem.

    1. No response reaches ``score_threshold``: rejected (``no_passing_response``).
    2. ``cv`` above ``cv_threshold`` (the models disagree: a problem worth learning):
       kept, with only its passing responses selected.
    3. Otherwise the problem is easy (every response, or nearly, passes): kept with
       probability ``easy_keep`` (its passing responses selected), else rejected
       (``easy_not_sampled``).

    ``score_threshold=0.9`` is the AM team's verification criterion (a response counts when
    its verify score is at least 0.9; with 0/1 scores: when it is correct). DeepDistill gives
    **no number** for its CV threshold nor for the easy-problem keep rate: ``cv_threshold=0``
    (any disagreement at all makes a problem not easy) and ``easy_keep=0.5`` are this
    library's choices, documented here so that a recipe states its own.

    >>> DeepDistillStageI().name
    'deep_distill_stage_i'
    """

    score_threshold: float = 0.9
    cv_threshold: float = 0.0
    easy_keep: float = 0.5
    seed: int = 0
    column: str = "samples"

    def __post_init__(self) -> None:
        if not 0 <= self.easy_keep <= 1 or self.cv_threshold < 0:
            raise ConfigError(
                f"DeepDistillStageI(easy_keep={self.easy_keep}, cv_threshold="
                f"{self.cv_threshold}): expected 0 <= easy_keep <= 1 and cv_threshold >= 0"
            )

    def _bounds(self) -> tuple[str, str]:
        return str(self.cv_threshold), str(self.easy_keep)

    def reads(self) -> tuple[str, ...]:
        return (self.column, "cv")  # Distill's samples, Grade's cv

    def adds(self) -> tuple[str, ...]:
        return ("selected",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        rows = batch.lazy()
        draw = _uniforms(batch["id"], derive_seed(ctx.seed, self.seed, "stage-i"))
        marked = rows.with_columns(
            _passing(self.column, self.score_threshold).alias("selected"),
            pl.lit(draw).alias("_draw"),
        )
        none = pl.col("selected").list.len() == 0
        easy = pl.col("cv").fill_null(0.0) <= self.cv_threshold
        dropped_easy = easy & (pl.col("_draw") >= self.easy_keep)
        out = self.mark(marked, none, "no_passing_response", "no response scored >= threshold")
        out = self.mark(
            out,
            dropped_easy,
            "easy_not_sampled",
            pl.format("cv {} <= {}, kept with p={}", "cv", *map(pl.lit, self._bounds())),
        )
        return out.drop("_draw")


@dataclass(frozen=True)
class DeepDistillStageII(Filter):
    """DeepDistill's second stage: the problems with the highest ``cv``, one response each.

    Keeps the ``top`` problems (or the ``fraction`` of them) with the highest coefficient of
    variation, ties broken by a seeded hash of the id, and selects one passing response of
    each at random (from ``selected`` when Stage I ran, else every passing response). The
    others are rejected (``below_top_cv``; ``no_passing_response`` when nothing passes).
    """

    top: int | None = None
    fraction: float | None = None
    score_threshold: float = 0.9
    seed: int = 0
    column: str = "samples"

    def __post_init__(self) -> None:
        if (self.top is None) == (self.fraction is None):
            raise ConfigError("DeepDistillStageII: give exactly one of top= or fraction=")
        if self.top is not None and self.top < 0:
            raise ConfigError(f"DeepDistillStageII(top={self.top}): expected >= 0")
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise ConfigError(f"DeepDistillStageII(fraction={self.fraction}): expected 0..1")

    def reads(self) -> tuple[str, ...]:
        return (self.column, "cv")

    def columns(self, available: list[str], *, step: str = "map") -> list[str]:
        """Also Stage I's ``selected`` when the input has it."""
        out = super().columns(available, step=step)
        return [*out, "selected"] if step == "map" and "selected" in available else out

    def global_reads(self) -> tuple[str, ...]:
        return ("cv",)

    def adds(self) -> tuple[str, ...]:
        return ("selected",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Per problem: its passing responses, one of them drawn, and the draw."""
        seed = derive_seed(ctx.seed, self.seed, "stage-ii")
        pool = (
            batch["selected"].cast(pl.List(_KEY))
            if "selected" in batch.columns
            else batch.select(_passing(self.column, self.score_threshold))[self.column]
        )
        draw = _uniforms(batch["id"], seed)
        index = (draw * pool.list.len().cast(pl.Float64)).floor().cast(pl.Int64)
        one = pl.DataFrame({"p": pool, "i": index}).select(
            pl.when(pl.col("p").list.len() > 0)
            .then(pl.concat_list(pl.col("p").list.get(pl.col("i"), null_on_oob=True)))
            .otherwise(pl.col("p"))
        )
        return batch.select("id").with_columns(
            one.to_series().cast(pl.List(_KEY)).alias("selected"),
            (pool.list.len() > 0).alias(_OK),
            draw.alias(_DRAW),
        )

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """The ``top`` (or ``fraction``) highest-cv problems, ties by the draw."""
        ok = table[_OK]
        count = table.height if self.top is None else self.top
        if self.fraction is not None:
            count = round(self.fraction * int(ok.sum()))
        ranked = table.select("cv", pl.col(_DRAW).alias("draw"), pl.col(_OK).alias("ok"))
        chosen = (
            ranked.with_row_index()
            .filter(pl.col("ok") & pl.col("cv").is_not_null())
            .sort(["cv", "draw"], descending=[True, False])
            .head(count)["index"]
        )
        picked = pl.Series([False] * table.height).scatter(chosen, True)
        marked = self.mark(table, ~pl.col(_OK), "no_passing_response", "nothing passed")
        rank = f"not among the {count} highest-cv problems"
        out = self.mark(marked, ~pl.lit(picked), "below_top_cv", rank)
        return out.drop(_OK, _DRAW).collect()


@dataclass(frozen=True)
class PassRateBand(Filter):
    """Keep problems whose ``pass_rate`` lies in a band: open-r1 keeps ``0.1 < p < 0.9``.

    Rejected: ``too_hard`` (at or below ``low``), ``too_easy`` (at or above ``high``),
    ``ungraded`` (no pass rate). ``inclusive=True`` keeps the bounds themselves.

    >>> PassRateBand(low=0.2, high=0.8).name
    'pass_rate_band'
    """

    low: float = 0.1
    high: float = 0.9
    inclusive: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 1:
            raise ConfigError(
                f"PassRateBand(low={self.low}, high={self.high}): need 0<=low<=high<=1"
            )

    def reads(self) -> tuple[str, ...]:
        return ("pass_rate",)  # Grade's

    def adds(self) -> tuple[str, ...]:
        return ()

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        rows = batch.lazy()
        p = pl.col("pass_rate")
        hard = p < self.low if self.inclusive else p <= self.low
        easy = p > self.high if self.inclusive else p >= self.high
        detail = pl.format("pass_rate {}", p.round(4))
        out = self.mark(rows, p.is_null(), "ungraded", "no pass rate: no counted response")
        out = self.mark(out, hard, "too_hard", detail)
        return self.mark(out, easy, "too_easy", detail)
