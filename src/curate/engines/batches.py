"""A stage's per-row step cut into batches: the plan, one batch's work, and its result.

Batches are fixed row ranges of the stage's input (`Stage.batch_rows` rows each), so
every engine cuts the input the same way. A finished batch is one Parquet file in the
plan's parts folder, written atomically: its presence is the completion marker (as in
DataTrove), so a crashed or interrupted stage redoes only the batches that have no
file, and a batch retried after a worker died overwrites its file with the same rows.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from curate.errors import RunError
from curate.io import write_json, write_parquet
from curate.stage import Stage, StageContext, merge_added

PLAN = "plan.json"


@dataclass(frozen=True)
class BatchPlan:
    """The batches of one stage's per-row step over ``source`` (a Parquet file)."""

    source: Path
    columns: tuple[str, ...]
    rows: int
    batch_rows: int
    parts: Path

    @property
    def count(self) -> int:
        return -(-self.rows // self.batch_rows)

    def bounds(self, index: int) -> tuple[int, int]:
        start = index * self.batch_rows
        return start, min(start + self.batch_rows, self.rows)

    def part(self, index: int) -> Path:
        return self.parts / f"{index:06d}.parquet"

    def prepare(self) -> list[int]:
        """Create the parts folder (emptied if an earlier attempt cut the input another
        way) and return the batches still to do."""
        meta = {"source": str(self.source), "rows": self.rows, "batch_rows": self.batch_rows}
        path = self.parts / PLAN
        if path.exists() and json.loads(path.read_text()) != meta:
            shutil.rmtree(self.parts)
        if not path.exists():
            self.parts.mkdir(parents=True, exist_ok=True)
            write_json(meta, path)
        return [i for i in range(self.count) if not self.part(i).exists()]

    def read(self, index: int) -> pl.DataFrame:
        start, stop = self.bounds(index)
        return (
            pl.scan_parquet(self.source).select(self.columns).slice(start, stop - start).collect()
        )

    def added(self) -> pl.DataFrame:
        """Every batch's added columns, in row order (each batch must be done)."""
        missing = [i for i in range(self.count) if not self.part(i).exists()]
        if missing:
            raise RunError(f"{self.parts}: batches {missing[:5]} are not done")
        if self.count == 0:
            return pl.DataFrame()
        frames = [pl.read_parquet(self.part(i)) for i in range(self.count)]
        return pl.concat(frames, how="vertical_relaxed", rechunk=True)  # contiguous: numpy views


def run_batch(stage: Stage, plan: BatchPlan, index: int, ctx: StageContext) -> int:
    """Run ``stage.map_batch`` on batch ``index`` and write its ids and what it adds (with
    no global step after it, the declared columns: checked here, batch by batch); returns
    its rows."""
    batch = plan.read(index)
    start, stop = plan.bounds(index)
    added = merge_added(
        batch.select("id"),
        stage.map_batch(batch, replace(ctx, stats={})),
        stage,
        final=not stage.steps[1],
        rows=f"the {batch.height} rows {start}-{stop - 1}",
    )
    write_parquet(added, plan.part(index))  # ids: checked again at the merge
    return batch.height
