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
from typing import Any

import polars as pl

from curate.arrays import Stacked, column_rows
from curate.errors import RunError
from curate.io import write_json, write_npy, write_parquet
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

    def stats_file(self, index: int) -> Path:
        return self.parts / f"{index:06d}.stats.json"

    def prepare(self) -> list[int]:
        """Create the parts folder (emptied if an earlier attempt cut the input another
        way) and return the batches still to do."""
        meta = {
            "source": str(self.source),
            "rows": self.rows,
            "batch_rows": self.batch_rows,
            "layout": 2,  # 2: Stage.arrays columns in .npy files beside the parts
        }
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

    def stats(self) -> dict[str, Any]:
        """What the batches counted in ``ctx.stats``, summed (`add_stats`) in batch order."""
        total: dict[str, Any] = {}
        for i in range(self.count):
            path = self.stats_file(i)
            if path.exists():
                add_stats(total, json.loads(path.read_text()))
        return total

    def added(self, *, without: tuple[str, ...] = ()) -> pl.DataFrame:
        """Every batch's added columns but ``without``, in row order (each batch must be
        done)."""
        self._check_done()
        if self.count == 0:
            return pl.DataFrame()
        names = [c for c in pl.read_parquet_schema(self.part(0)) if c not in without]
        frames = [pl.read_parquet(self.part(i), columns=names) for i in range(self.count)]
        return pl.concat(frames, how="vertical_relaxed", rechunk=True)  # contiguous: numpy views

    def array_file(self, index: int, column: str) -> Path:
        return self.parts / f"{index:06d}.{column}.npy"

    def array(self, column: str) -> Stacked:
        """The `curate.stage.Stage.arrays` column ``column`` of every batch, in row order:
        one ``.npy`` file per batch, read where the rows are needed. Every batch must give
        the same width (checked)."""
        self._check_done()
        files = [str(self.array_file(i, column)) for i in range(self.count)]
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            raise RunError(f"{missing[0]}: missing (the stage did not return {column}?)")
        try:
            return Stacked(tuple(files))
        except ValueError as e:
            raise RunError(f"column {column}: {e} (every batch must give the same width)") from None

    def _check_done(self) -> None:
        missing = [i for i in range(self.count) if not self.part(i).exists()]
        if missing:
            raise RunError(f"{self.parts}: batches {missing[:5]} are not done")


def run_batch(stage: Stage, plan: BatchPlan, index: int, ctx: StageContext) -> int:
    """Run ``stage.map_batch`` on batch ``index`` and write its ids and what it adds (with
    no global step after it, the declared columns: checked here, batch by batch); returns
    its rows."""
    batch = plan.read(index)
    start, stop = plan.bounds(index)
    own = replace(ctx, stats={})
    added = merge_added(
        batch.select("id"),
        stage.map_batch(batch, own),
        stage,
        final=not stage.steps[1],
        rows=f"the {batch.height} rows {start}-{stop - 1}",
    )
    for column in stage.arrays() if stage.steps[1] else ():  # before the part, as the stats
        write_npy(column_rows(added, column, f"{plan.part(index)}"), plan.array_file(index, column))
        added = added.drop(column)
    if own.stats:  # before the part: the part's presence says the batch is done
        write_json(own.stats, plan.stats_file(index))
    write_parquet(added, plan.part(index))  # ids: checked again at the merge
    return batch.height


def add_stats(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add one batch's stats to ``total``: numbers are summed, dicts added key by key, any
    other value (a name, a list) kept from the first batch that gave it.

    >>> add_stats({"texts": 2, "model": {"tokens": 5}}, {"texts": 3, "model": {"tokens": 1}})
    {'texts': 5, 'model': {'tokens': 6}}
    """
    for key, value in part.items():
        have = total.get(key)
        if isinstance(value, dict):
            total[key] = add_stats(have if isinstance(have, dict) else {}, value)
        elif _number(value) and (have is None or _number(have)):
            total[key] = (have or 0) + value
        elif key not in total:
            total[key] = value
    return total


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
