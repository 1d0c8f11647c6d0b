r"""Mixing and sampling: `Mix` draws a sample of the rows, per source, by weight, to a size,
stratified by difficulty or pass rate.

The rows not drawn are rejected (``not_sampled``, with the source, the stratum and how many
of how many were drawn as detail), so they stay in the run's rejects table: nothing is lost,
and a bigger sample is a re-run away.

Which rows are drawn depends only on the recipe seed, the stage's ``seed`` and the row ids:
each row gets a key (BLAKE2b of the seeds and its id, `curate.select.uniform`) and every
cell (source, stratum) keeps the rows with the smallest keys. The same run draws the same
rows whatever the batch size, the number of workers or the engine, and asking for more rows
keeps every row drawn before (the samples are nested).

How many rows each cell gets is `allocate`: largest-remainder rounding of a total split by
weights, no cell above what it holds.

>>> import polars as pl
>>> from curate.run import apply_stage
>>> rows = pl.DataFrame({"id": [f"r{i}" for i in range(10)],
...                      "source": ["math"] * 8 + ["gsm8k"] * 2})
>>> kept, rejects = apply_stage(Mix(per_source=3), rows)
>>> kept.group_by("source").len().sort("source").rows()
[('gsm8k', 2), ('math', 3)]
>>> rejects["reason"].unique().to_list(), rejects["detail"][0]
(['not_sampled'], 'source math: 3 of 8 drawn')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

import polars as pl

from curate.errors import ConfigError
from curate.generate.base import derive_seed
from curate.select import uniform
from curate.stage import DETAIL, REASON, Filter, StageContext

_KEY, _STRATUM = "_mix_key", "_mix_stratum"
NULL_STRATUM = "(null)"
"""The stratum of rows whose stratify column is null (they are sampled like any stratum)."""


def allocate(
    total: int,
    weights: Mapping[str, float],
    capacity: Mapping[str, int],
    *,
    fill: bool = True,
) -> dict[str, int]:
    """Split ``total`` rows among groups in proportion to ``weights``, none above its
    ``capacity`` (the rows it holds).

    Weights need not sum to 1 (they are ratios); a group with no weight, a weight of 0 or
    no capacity gets 0. Counts are rounded by largest remainder (ties by name), so they sum
    to ``total`` when the capacities allow. A group whose share is more than it holds gives
    all it has; with ``fill`` (the default) what it lacks goes to the other groups in
    proportion to their weights (the total holds, the shares bend); without, every group
    shrinks by the same factor (the shares hold, the total shrinks).

    >>> allocate(10, {"a": 1, "b": 1}, {"a": 100, "b": 100})
    {'a': 5, 'b': 5}
    >>> allocate(10, {"a": 1, "b": 1}, {"a": 2, "b": 100})
    {'a': 2, 'b': 8}
    >>> allocate(10, {"a": 1, "b": 1}, {"a": 2, "b": 100}, fill=False)
    {'a': 2, 'b': 2}
    >>> allocate(4, {"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 9, "b": 9, "c": 9})
    {'a': 2, 'b': 1, 'c': 1}
    >>> allocate(5, {"a": 1}, {"a": 3, "b": 9})
    {'a': 3, 'b': 0}
    """
    if total < 0:
        raise ConfigError(f"allocate(total={total}): expected a count >= 0")
    out = dict.fromkeys(sorted(capacity), 0)
    active = {g for g in capacity if weights.get(g, 0) > 0 and capacity[g] > 0}
    if not active:
        return out
    if fill:
        remaining = min(total, sum(capacity[g] for g in active))
        while active:  # cap the groups whose share is more than they hold, share the rest
            wsum = sum(weights[g] for g in active)
            capped = {g for g in active if remaining * weights[g] / wsum >= capacity[g]}
            if not capped:
                break
            for g in capped:
                out[g] = capacity[g]
                remaining -= capacity[g]
            active -= capped
        out.update(_round(remaining, {g: weights[g] for g in active}))
        return out
    if total == 0:
        return out
    wsum = sum(weights[g] for g in active)
    factor = min([1.0, *(capacity[g] * wsum / (total * weights[g]) for g in active)])
    scaled = math.floor(total * factor + 1e-9)
    for g, n in _round(scaled, {g: weights[g] for g in active}).items():
        out[g] = min(n, capacity[g])
    return out


def _round(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """``total`` split by ``weights`` (all > 0), largest remainder, ties by name."""
    if not weights:
        return {}
    wsum = sum(weights.values())
    quota = {g: total * w / wsum for g, w in weights.items()}
    out = {g: math.floor(q + 1e-9) for g, q in quota.items()}
    left = total - sum(out.values())
    by_remainder = sorted(weights, key=lambda g: (-(quota[g] - out[g]), g))
    for g in by_remainder[: max(left, 0)]:
        out[g] += 1
    return out


@dataclass(frozen=True)
class Mix(Filter):
    r"""Draw a sample of the rows: N per source, or a total split by source weights,
    stratified by a column; reject the rest (``not_sampled``).

    Give one of:

    - ``per_source``: ``N`` rows from every source, or ``{"math": 5000, "gsm8k": 1000}``
      (a source not named gives none);
    - ``weights``: each source's share of the output, ``{"math": 0.7, "gsm8k": 0.3}``
      (ratios: ``{"math": 7, "gsm8k": 3}`` is the same; a source not named gives none),
      with ``total`` rows in all; without ``total``, the biggest sample the pool holds
      with exactly those shares;
    - ``total`` alone: that many rows, each source in proportion to its size.

    A source with fewer rows than asked gives all it has, and the stage's stats (in the
    run's manifest) say so. With ``weights``, ``short="fill"`` (the default) hands what it
    lacks to the other sources in proportion to their weights (the total holds, the shares
    bend); ``short="scale"`` shrinks every source alike (the shares hold, the total
    shrinks).

    ``stratify`` names a column (``level``, Grade's ``difficulty`` or ``pass_rate``): each
    source's rows are drawn per value of it; with ``bins`` (increasing edges, for a numeric
    column such as ``pass_rate``, or ``level`` on a fine scale such as AIME's) per interval
    ``< lo``, ``[lo, hi)`` ..., ``>= hi``. ``strata="proportional"`` (the
    default) keeps each stratum's share of the source; ``"equal"`` draws the same number
    from each (a stratum with too few rows gives all it has, the others make up for it).
    Rows with a null value are a stratum of their own, ``(null)``. ``seed`` (with the recipe
    seed) decides which rows are drawn.

    >>> Mix(weights={"math": 0.7, "gsm8k": 0.3}, total=1000, stratify="level").name
    'mix'
    """

    total: int | None = None
    weights: Mapping[str, float] | None = None
    per_source: int | Mapping[str, int] | None = None
    stratify: str | None = None
    bins: tuple[float, ...] | None = None
    strata: Literal["proportional", "equal"] = "proportional"
    short: Literal["fill", "scale"] = "fill"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_source is not None and (self.total is not None or self.weights is not None):
            raise ConfigError(
                "Mix: per_source= draws a fixed number per source; give it alone, or give "
                "weights= (shares) with total= instead"
            )
        if self.per_source is None and self.total is None and self.weights is None:
            raise ConfigError("Mix: give per_source=, weights= (with or without total=) or total=")
        if self.total is not None and not (isinstance(self.total, int) and self.total >= 0):
            raise ConfigError(f"Mix(total={self.total!r}): expected a count >= 0")
        counts = self.per_source
        if isinstance(counts, Mapping):
            bad = {k: v for k, v in counts.items() if not (isinstance(v, int) and v >= 0)}
            if bad:
                raise ConfigError(f"Mix(per_source=...): expected counts >= 0, got {bad}")
        elif counts is not None and not (isinstance(counts, int) and counts >= 0):
            raise ConfigError(f"Mix(per_source={counts!r}): expected a count >= 0 or a dict")
        if self.weights is not None:
            bad_w = {
                k: v
                for k, v in self.weights.items()
                if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)
            }
            if bad_w or not any(v > 0 for v in self.weights.values()):
                raise ConfigError(
                    f"Mix(weights={dict(self.weights)}): expected finite weights >= 0, at "
                    "least one above 0"
                )
        if self.bins is not None:
            if self.stratify is None:
                raise ConfigError("Mix(bins=...): bins cut the stratify= column; name it")
            edges = list(self.bins)
            if not edges or any(b <= a for a, b in pairwise(edges)):
                raise ConfigError(f"Mix(bins={self.bins}): expected increasing edges")
        if self.strata not in ("proportional", "equal"):
            raise ConfigError(f"Mix(strata={self.strata!r}): expected 'proportional' or 'equal'")
        if self.short not in ("fill", "scale"):
            raise ConfigError(f"Mix(short={self.short!r}): expected 'fill' or 'scale'")

    def reads(self) -> tuple[str, ...]:
        return ()  # the per-row step needs only the ids

    def global_reads(self) -> tuple[str, ...]:
        return ("source",) if self.stratify is None else ("source", self.stratify)

    def adds(self) -> tuple[str, ...]:
        return ()

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Each row's key: a number in [0, 1) from the seeds and its id."""
        seed = derive_seed(ctx.seed, self.seed, "mix")
        keys = [uniform(seed, i) for i in batch["id"].to_list()]
        return batch.select("id").with_columns(pl.Series(_KEY, keys, dtype=pl.Float64))

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Counts per source and stratum, then the rows with the smallest keys per cell."""
        frame = table.select(
            "id",
            pl.col("source").cast(pl.String).fill_null(NULL_STRATUM),
            _KEY,
            self._stratum(table).alias(_STRATUM),
        )
        sizes = frame.group_by("source", _STRATUM).len().sort("source", _STRATUM)
        cells: dict[str, dict[str, int]] = {}
        for source, stratum, n in sizes.rows():
            cells.setdefault(source, {})[stratum] = n
        available = {s: sum(c.values()) for s, c in cells.items()}
        targets, wanted = self._per_source(available)
        drawn: dict[tuple[str, str], int] = {}
        for source, strata in cells.items():
            weights = strata if self.strata == "proportional" else dict.fromkeys(strata, 1.0)
            for stratum, n in allocate(targets[source], weights, strata).items():
                drawn[(source, stratum)] = n
        quota = pl.DataFrame(
            {
                "source": [k[0] for k in drawn],
                _STRATUM: [k[1] for k in drawn],
                "_quota": list(drawn.values()),
                "_size": [cells[s][h] for s, h in drawn],
            },
            schema={
                "source": pl.String,
                _STRATUM: pl.String,
                "_quota": pl.Int64,
                "_size": pl.Int64,
            },
        )
        ranked = (
            frame.with_row_index("_row")
            .sort(_KEY, "id")
            .with_columns(pl.int_range(pl.len()).over("source", _STRATUM).alias("_rank"))
            .join(quota, on=["source", _STRATUM], how="left")
            .sort("_row")
        )
        self._report(ctx, cells, targets, wanted, drawn)
        where = pl.format("source {}", pl.col("source"))
        if self.stratify is not None:
            where = pl.format("{}, {} {}", where, pl.lit(self.stratify), pl.col(_STRATUM))
        detail = pl.format("{}: {} of {} drawn", where, pl.col("_quota"), pl.col("_size"))
        marked = self.mark(ranked, pl.col("_rank") >= pl.col("_quota"), "not_sampled", detail)
        return marked.select("id", REASON, DETAIL).collect()

    def _stratum(self, table: pl.DataFrame) -> pl.Expr:
        if self.stratify is None:
            return pl.lit("", dtype=pl.String)
        column = pl.col(self.stratify)
        if self.bins is not None:
            if not table.schema[self.stratify].is_numeric():
                raise ConfigError(
                    f"Mix(stratify={self.stratify!r}, bins=...): the column is "
                    f"{table.schema[self.stratify]}, bins need numbers"
                )
            labels = self.bin_labels()
            binned: pl.Expr = pl.when(column.is_not_null()).then(pl.lit(labels[-1]))
            for edge, label in reversed(list(zip(self.bins, labels, strict=False))):
                binned = pl.when(column < edge).then(pl.lit(label)).otherwise(binned)
            column = binned
        return column.cast(pl.String).fill_null(NULL_STRATUM)

    def bin_labels(self) -> list[str]:
        """The strata ``bins`` make, in order: ``< lo``, ``[lo, hi)`` ..., ``>= hi``.

        >>> Mix(total=1, stratify="pass_rate", bins=(0.25, 0.75)).bin_labels()
        ['< 0.25', '[0.25, 0.75)', '>= 0.75']
        """
        edges = list(self.bins or ())
        if not edges:
            return []
        middle = [f"[{a:g}, {b:g})" for a, b in pairwise(edges)]
        return [f"< {edges[0]:g}", *middle, f">= {edges[-1]:g}"]

    def _per_source(self, available: dict[str, int]) -> tuple[dict[str, int], dict[str, float]]:
        """Rows to draw from each source, and what was asked of it (before capping)."""
        if self.per_source is not None:
            if isinstance(self.per_source, Mapping):
                wanted = {s: float(self.per_source.get(s, 0)) for s in available}
            else:
                wanted = dict.fromkeys(available, float(self.per_source))
            return {s: min(int(wanted[s]), n) for s, n in available.items()}, wanted
        weights: Mapping[str, float] = self.weights or {s: float(n) for s, n in available.items()}
        shares = {s: weights.get(s, 0) / sum(weights.values()) for s in available}
        total = self.total
        if total is None:  # the biggest sample with exactly these shares
            total = min(
                (math.floor(available[s] / share + 1e-9) for s, share in shares.items() if share),
                default=0,
            )
        wanted = {s: total * share for s, share in shares.items()}
        return allocate(total, weights, available, fill=self.short == "fill"), wanted

    def _report(
        self,
        ctx: StageContext,
        cells: dict[str, dict[str, int]],
        targets: dict[str, int],
        wanted: dict[str, float],
        drawn: dict[tuple[str, str], int],
    ) -> None:
        sources: dict[str, Any] = {}
        for source, strata in cells.items():
            available = sum(strata.values())
            entry: dict[str, Any] = {
                "available": available,
                "asked": round(wanted[source], 2),
                "drawn": targets[source],
            }
            if wanted[source] > available:
                entry["short"] = round(wanted[source] - available, 2)
            if self.stratify is not None:
                entry["strata"] = {h: [drawn[(source, h)], n] for h, n in strata.items()}
            sources[source] = entry
        named = self.per_source if isinstance(self.per_source, Mapping) else self.weights
        stats: dict[str, Any] = {
            "asked": self.total,
            "drawn": sum(targets.values()),
            "sources": sources,
        }
        if self.weights is not None:
            wsum = sum(self.weights.values())
            if abs(wsum - 1) > 1e-9:
                stats["weights_normalized"] = {s: w / wsum for s, w in self.weights.items()}
        if named is not None:
            absent = sorted(set(named) - set(cells))
            if absent:
                stats["sources_not_in_input"] = absent
        if self.bins is not None:
            seen = {h for strata in cells.values() for h in strata}
            stats["empty_strata"] = [h for h in self.bin_labels() if h not in seen]
        short = sorted(s for s, e in sources.items() if "short" in e)
        if short:
            stats["short_sources"] = short
        ctx.stats["mix"] = stats
