"""Stages the engine tests share (defined outside curate, as a user's would be: their code
is in their fingerprint, and the Ray engine ships it to its workers by value)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl

import curate
from curate.arrays import stacked
from curate.stage import Filter, StageContext

CRASH_AT: list[int] = []  # row numbers whose batch raises KeyboardInterrupt (not config)


@dataclass(frozen=True)
class EvenDigits(Filter):
    """Per-row: rejects problems whose first number is odd; adds ``first``. Batches of 7
    rows; every batch it runs is logged to ``log`` (to count the work done)."""

    log: str = ""
    batch_rows: ClassVar[int] = 7

    def reads(self) -> tuple[str, ...]:
        return ("problem",)

    def adds(self) -> tuple[str, ...]:
        return ("first",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        if self.log:
            with open(self.log, "a") as f:
                f.write(batch["id"][0] + "\n")
        if any(batch["id"].str.starts_with(f"pool:{n}:").any() for n in CRASH_AT):
            raise KeyboardInterrupt
        first = pl.col("problem").str.extract(r"(\d+)").cast(pl.Int64)
        framed = batch.lazy().with_columns(first.alias("first"))
        return self.mark(framed, pl.col("first") % 2 == 1, "odd", pl.col("first"))


@dataclass(frozen=True)
class CountWords(curate.Stage):
    """Per-row words, then a global rank of them (a two-step scorer)."""

    batch_rows: ClassVar[int] = 5

    def reads(self) -> tuple[str, ...]:
        return ("problem",)

    def adds(self) -> tuple[str, ...]:
        return ("words", "rank")

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        return batch.with_columns(
            pl.col("problem").str.split(" ").list.len().alias("words"),
            pl.col("problem").str.len_chars().alias("scratch"),  # an intermediate, not kept
        )

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        assert set(table.columns) == {"id", "problem", "words", "scratch"}
        ctx.stats["longest"] = int(table["scratch"].max())  # type: ignore[arg-type]
        return table.with_columns(pl.col("scratch").rank("ordinal").alias("rank"))


@dataclass(frozen=True)
class VectorRank(curate.Stage):
    """A per-row vector kept on disk for the global step (`curate.Stage.arrays`), read there
    memory-mapped and in tasks: each row ranked by its vector's sum."""

    batch_rows: ClassVar[int] = 5
    seen: ClassVar[list[object]] = []  # what the global step got as ctx.arrays["vec"]

    def reads(self) -> tuple[str, ...]:
        return ("problem",)

    def adds(self) -> tuple[str, ...]:
        return ("vec_rank",)

    def arrays(self) -> tuple[str, ...]:
        return ("vec", "codes")

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        chars = batch["problem"].str.len_chars().cast(pl.UInt32).to_numpy()
        vec = np.stack([chars, chars % 7, np.full_like(chars, 3)], axis=1)
        codes = batch["problem"].str.len_bytes().cast(pl.Int64).to_numpy() * 10
        return batch.select("id").with_columns(pl.Series("vec", vec), pl.Series("codes", codes))

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        assert set(table.columns) == {"id", "problem"}, table.columns
        type(self).seen.append(ctx.arrays["vec"])
        vec, codes = ctx.array("vec"), ctx.array("codes")
        assert vec.shape == (table.height, 3) and codes.shape == (table.height,)
        sums = ctx.map(
            _vector_sums,
            [(0, table.height // 2), (table.height // 2, table.height)],
            shared=ctx.arrays["vec"],
        )
        total = np.concatenate(sums) + codes
        return table.select("id").with_columns(pl.Series("vec_rank", total).rank("ordinal"))


def _vector_sums(vec: object, bounds: tuple[int, int]) -> np.ndarray:
    rows = stacked(vec).take(np.arange(bounds[0], bounds[1]))
    return np.asarray(rows, np.int64).sum(axis=1)


@dataclass(frozen=True)
class WithState(curate.Stage):
    """Built once per run (`curate.Stage.prepare`, logged to ``log``), used by every batch:
    adds ``looked_up``, the state's table value at each problem's length."""

    log: str = ""
    batch_rows: ClassVar[int] = 6

    def reads(self) -> tuple[str, ...]:
        return ("problem",)

    def adds(self) -> tuple[str, ...]:
        return ("looked_up",)

    def prepare(self, ctx: StageContext) -> dict[str, object]:
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return {"table": np.arange(1000, dtype=np.int64) * 3}

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        assert ctx.state is not None, "map_batch ran without the prepared state"
        table = ctx.state["table"]
        lengths = batch["problem"].str.len_chars().to_numpy()
        return batch.select("id").with_columns(pl.Series("looked_up", table[lengths]))


@dataclass(frozen=True)
class DiesOnce(curate.Stage):
    """Kills its own worker process (``os._exit``) the first time it sees row ``row``: a
    worker lost in the middle of a stage. ``marker`` records that it died."""

    marker: str
    row: int = 10
    batch_rows: ClassVar[int] = 4

    def reads(self) -> tuple[str, ...]:
        return ("problem",)

    def adds(self) -> tuple[str, ...]:
        return ("chars",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        marker = Path(self.marker)
        if batch["id"].str.starts_with(f"pool:{self.row}:").any() and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return batch.select("id", pl.col("problem").str.len_chars().alias("chars"))


@dataclass(frozen=True)
class DiesOnceOnAnActor(DiesOnce):
    """`DiesOnce` on a Ray actor (a stage that keeps state between batches)."""

    keeps_state: ClassVar[bool] = True
