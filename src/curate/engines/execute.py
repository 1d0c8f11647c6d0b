"""Run one stage from its input file to its kept and rejects files, streaming.

1. The per-row step (`Stage.map_batch`): the input's ``id`` and read columns in fixed
   batches, run by an engine, each batch's added columns kept as a part file.
2. The global step (`Stage.global_step`): the read columns of every row plus what the
   per-row step added, in memory (compact columns only).
3. The merge: the input read again in batches, every column, the added columns put
   beside each batch, rows split into kept and rejected and written by two sinks.

Memory is bounded by a batch and the compact columns. A stage that implements only
``apply`` (the first version of the contract) gets every column of every row at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow.parquet as pq

from curate.engines.batches import BatchPlan, add_stats
from curate.io import ParquetSink
from curate.stage import DETAIL, REASON, Stage, StageContext, TaskRunner, attach, merge_added

MERGE_ROWS = 65_536
"""Rows per batch of the merge (and per row group of the files it writes)."""


class Engine(TaskRunner, Protocol):
    """Runs the batches of a stage's per-row step (`curate.engines.LocalEngine`,
    `curate.engines.RayEngine`), and a global step's independent tasks (`map_tasks`, see
    `curate.stage.StageContext.map`)."""

    name: str

    def map_batches(
        self, stage: Stage, plan: BatchPlan, pending: list[int], ctx: StageContext
    ) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class StageOutput:
    """What `execute_stage` wrote: rows in, kept, and rejected rows by reason."""

    rows_in: int
    kept: int
    rejected: dict[str, int]


def execute_stage(
    stage: Stage,
    source: Path,
    target: Path,
    *,
    parts: Path,
    ctx: StageContext,
    engine: Engine,
) -> StageOutput:
    """Run ``stage`` over the Parquet file ``source`` into ``target/kept.parquet`` and
    ``target/rejects.parquet``; ``parts`` keeps the finished batches of the per-row step
    until the stage is done (a re-run after a crash resumes from them)."""
    added = _added(stage, source, parts=parts, ctx=ctx, engine=engine)
    return _write(source, target, added.drop("id"), ctx.stage_name, stage.fills())


def _added(
    stage: Stage, source: Path, *, parts: Path, ctx: StageContext, engine: Engine
) -> pl.DataFrame:
    """``id`` and the columns the stage adds, for every row (its intermediates, such as
    MinHash signatures, are freed when this returns, before the merge)."""
    meta = pq.ParquetFile(source).metadata
    rows_in, available = meta.num_rows, pq.read_schema(source).names
    mapped, step = stage.steps
    ids = pl.read_parquet(source, columns=["id"])
    if rows_in == 0 or not (mapped or step):
        frame = pl.read_parquet(source).lazy()
        return merge_added(ids, stage.apply(frame, ctx), stage, final=True)
    table: pl.DataFrame | None = None
    ctx = replace(ctx, state=stage.prepare(ctx))  # once, for every batch and the global step
    if mapped:
        columns = tuple(stage.columns(available))
        plan = BatchPlan(source, columns, rows_in, stage.batch_rows, parts)
        engine.map_batches(stage, plan, plan.prepare(), ctx)
        add_stats(ctx.stats, plan.stats())  # what the batches counted, summed
        arrays = stage.arrays() if step else ()
        if arrays:  # on disk: the global step reads the rows it needs
            ctx = replace(ctx, arrays={c: plan.array(c) for c in arrays})
        table = plan.added(without=arrays)
    if step:
        base = pl.read_parquet(source, columns=stage.columns(available, step="global"))
        if table is not None:
            base = merge_added(base, table, stage)
            del table
        table = merge_added(base, stage.global_step(base, replace(ctx, tasks=engine)), stage)
        del base
    assert table is not None
    return merge_added(ids, table, stage, final=True)


def _write(
    source: Path, target: Path, added: pl.DataFrame, name: str, fills: tuple[str, ...]
) -> StageOutput:
    def merged() -> Iterator[pl.DataFrame]:
        offset = 0
        for frame in _batches(source):
            part = added.slice(offset, frame.height)
            offset += frame.height
            yield attach(frame, part, fills)

    return write_split(merged(), target, name)


def write_split(frames: Iterable[pl.DataFrame], target: Path, name: str) -> StageOutput:
    """Split each frame (rows with the reason columns) into kept and rejected rows and
    stream them into ``target/kept.parquet`` and ``target/rejects.parquet``."""
    rejected: dict[str, int] = {}
    rows_in = 0
    with (
        ParquetSink(target / "kept.parquet") as kept_sink,
        ParquetSink(target / "rejects.parquet") as rejects_sink,
    ):
        for frame in frames:
            kept, rejects = split(frame, name)
            kept_sink.write(kept)
            rejects_sink.write(rejects)
            rows_in += frame.height
            for reason, n in rejects.group_by("reason").len().rows():
                rejected[reason] = rejected.get(reason, 0) + n
        kept_rows = kept_sink.rows
    return StageOutput(rows_in, kept_rows, dict(sorted(rejected.items())))


def _batches(source: Path) -> Iterator[pl.DataFrame]:
    file = pq.ParquetFile(source)
    if file.metadata.num_rows == 0:
        yield pl.read_parquet(source)
        return
    for batch in file.iter_batches(batch_size=MERGE_ROWS):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def split(frame: pl.DataFrame, stage: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows without a reject reason (minus the reason columns), and the rejected rows as
    the rejects table: ``id``, ``stage``, ``reason``, ``detail``, then the row."""
    if REASON not in frame.columns:
        frame = frame.with_columns(
            pl.lit(None, pl.String).alias(REASON), pl.lit(None, pl.String).alias(DETAIL)
        )
    rejected = pl.col(REASON).is_not_null()
    kept = frame.filter(~rejected).drop(REASON, DETAIL)
    row = [c for c in frame.columns if c not in (REASON, DETAIL, "id")]
    rejects = frame.filter(rejected).select(
        "id",
        pl.lit(stage).alias("stage"),
        pl.col(REASON).cast(pl.String).alias("reason"),
        pl.col(DETAIL).cast(pl.String).alias("detail"),
        *row,
    )
    return kept, rejects
