r"""The `Grade` stage: pass rates, pass@k, the coefficient of variation and a difficulty grade.

`Grade` reads the ``samples`` column that `curate.distill.Distill` leaves on each problem
and adds, as plain columns that ``curate sql`` can query:

- ``n_samples``, ``n_correct``, ``n_truncated``, ``n_failed``: responses counted, correct,
  cut at ``max_tokens`` (counted, never correct) and failed generations (left out: an
  engine error says nothing about the problem; so are responses whose score is null: to a
  problem without a gold answer, or that the grader could not check);
- ``pass_rate``: correct / counted, over every model; ``pass_at_<k>`` for each ``k`` in
  ``pass_at``: the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` of Chen et al. (2021),
  null when fewer than ``k`` responses were counted;
- ``pass_rates``: the per-model pass rates, in the order of the generators (DeepDistill's
  difficulty tuple, e.g. ``[0.25, 0.75, 1.0]`` for 1.5B, 7B and R1), and ``by_model``: per
  model ``n``, ``correct``, ``pass_rate`` and the pass@k values;
- ``cv``: the coefficient of variation of the verify scores over all counted responses,
  as DeepDistill defines it: population standard deviation over mean. For 0/1 scores that
  is ``sqrt((1 - p) / p)``: 0 when every response passes, growing as fewer do; null when
  none passes (the mean is 0 and the ratio undefined);
- ``difficulty``: a named bucket of ``pass_rate`` (configurable, see `Grade`);
- ``tokens_mean``, ``tokens_max``: generated tokens over the responses that came back.

>>> pass_at_k(4, 1, 1), round(pass_at_k(4, 2, 2), 4), pass_at_k(2, 0, 4)
(0.25, 0.8333, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from curate.errors import ConfigError
from curate.stage import Stage, StageContext

DEFAULT_BUCKETS: tuple[tuple[str, float], ...] = (
    ("unsolved", 0.0),
    ("hard", 0.25),
    ("medium", 0.75),
    ("easy", 0.99),
    ("solved", 1.0),
)
"""(name, highest pass rate) pairs, checked in order: the first whose bound is at least the
problem's pass rate names its bucket (``unsolved`` is exactly 0, ``solved`` exactly 1)."""


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k from ``n`` samples of which ``c`` are correct (None when ``n < k``)."""
    if n < k:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _pass_at_k_expr(n: pl.Expr, c: pl.Expr, k: int) -> pl.Expr:
    """`pass_at_k` over columns: ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``, as a sum of logs."""
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i); n is small (samples per problem)
    ratio = (
        pl.int_ranges(n - c + 1, n + 1)
        .list.eval((1.0 - k / pl.element().cast(pl.Float64)).log())
        .list.sum()
        .exp()
    )
    return pl.when(n < k).then(None).when(n - c < k).then(1.0).otherwise(1.0 - ratio)


_COLUMNS = (
    "n_samples", "n_correct", "n_truncated", "n_failed", "pass_rate", "cv", "difficulty",
    "pass_rates", "by_model", "tokens_mean", "tokens_max",
)  # fmt: skip


@dataclass(frozen=True)
class Grade(Stage):
    """Grade each distilled problem by how often the models solve it (see the module doc).

    ``pass_at``: the ``k`` values for ``pass_at_<k>`` columns. ``buckets``: (name, highest
    pass rate) pairs in increasing order, the last bound 1.0 (default `DEFAULT_BUCKETS`).
    """

    pass_at: tuple[int, ...] = (1, 4)
    buckets: tuple[tuple[str, float], ...] = DEFAULT_BUCKETS
    column: str = "samples"

    def __post_init__(self) -> None:
        bounds = [b for _, b in self.buckets]
        if not bounds or bounds != sorted(bounds) or bounds[-1] < 1.0 or bounds[0] < 0:
            raise ConfigError(
                f"Grade(buckets={self.buckets!r}): expected (name, bound) pairs with increasing "
                "bounds in [0, 1], the last one 1.0"
            )
        if any(k < 1 for k in self.pass_at):
            raise ConfigError(f"Grade(pass_at={self.pass_at!r}): expected integers >= 1")

    def reads(self) -> tuple[str, ...]:
        return (self.column,)  # a Distill stage before it leaves ``samples``

    def adds(self) -> tuple[str, ...]:
        return _COLUMNS + tuple(f"pass_at_{k}" for k in self.pass_at)

    def global_reads(self) -> tuple[str, ...]:
        return ()  # counts of the difficulty map_batch gave

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        counts = table["difficulty"].fill_null("ungraded").value_counts(sort=True)
        ctx.stats["difficulty"] = dict(counts.iter_rows())
        return table.select("id")

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Each problem's counts, pass rates, pass@k, CV and bucket from its samples."""
        frame = batch
        flat = (
            frame.select(pl.col(self.column).alias("_s"))
            .with_row_index("_row")
            .explode("_s")
            .filter(pl.col("_s").is_not_null())
            .unnest("_s")
        )
        produced = flat.filter(pl.col("finish_reason") != "error")
        counted = produced.filter(pl.col("score").is_not_null())  # no gold: nothing to count
        ks = self.pass_at
        per_model = (
            counted.group_by("_row", "model", maintain_order=True)
            .agg(pl.len().alias("n"), pl.col("correct").cast(pl.Int64).sum().alias("correct"))
            .with_columns(
                (pl.col("correct") / pl.col("n")).alias("pass_rate"),
                *[
                    _pass_at_k_expr(pl.col("n"), pl.col("correct"), k).alias(f"pass_at_{k}")
                    for k in ks
                ],
            )
            .group_by("_row", maintain_order=True)
            .agg(
                pl.struct(pl.exclude("_row")).alias("by_model"),
                pl.col("pass_rate").alias("pass_rates"),
            )
        )
        overall = counted.group_by("_row").agg(
            pl.len().cast(pl.Int32).alias("n_samples"),
            pl.col("correct").cast(pl.Int32).sum().alias("n_correct"),
            (pl.col("score").std(ddof=0) / pl.col("score").mean()).alias("cv"),
        )
        tokens = produced.group_by("_row").agg(
            pl.col("n_tokens").mean().alias("tokens_mean"),
            pl.col("n_tokens").max().cast(pl.Int64).alias("tokens_max"),
        )
        ends = flat.group_by("_row").agg(
            (pl.col("finish_reason") == "length").sum().cast(pl.Int32).alias("n_truncated"),
            (pl.col("finish_reason") == "error").sum().cast(pl.Int32).alias("n_failed"),
        )
        n, c = pl.col("n_samples"), pl.col("n_correct")
        graded = (
            pl.DataFrame({"_row": pl.int_range(frame.height, eager=True).cast(pl.UInt32)})
            .join(overall, on="_row", how="left")
            .join(ends, on="_row", how="left")
            .join(tokens, on="_row", how="left")
            .join(per_model, on="_row", how="left")
            .sort("_row")
            .with_columns(
                pl.col("n_samples", "n_correct", "n_truncated", "n_failed").fill_null(0),
                pl.when(n > 0).then(c / n).alias("pass_rate"),
                *[_pass_at_k_expr(n, c, k).alias(f"pass_at_{k}") for k in ks],
                # mean 0 (nothing passed) or NaN: the ratio is undefined
                pl.when(pl.col("cv").is_finite()).then(pl.col("cv")).alias("cv"),
            )
        )
        bucket: pl.Expr = pl.lit(None, pl.String)
        for name, bound in reversed(self.buckets):
            bucket = pl.when(pl.col("pass_rate") <= bound).then(pl.lit(name)).otherwise(bucket)
        graded = graded.with_columns(bucket.alias("difficulty"))
        columns = [
            "n_samples", "n_correct", "n_truncated", "n_failed", "pass_rate",
            *[f"pass_at_{k}" for k in ks], "cv", "difficulty", "pass_rates", "by_model",
            "tokens_mean", "tokens_max",
        ]  # fmt: skip
        return frame.select("id").with_columns(graded.select(columns))
