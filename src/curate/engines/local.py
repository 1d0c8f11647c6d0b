"""The local engine: batches one after another in this process; the stage's own
per-row work uses ``ctx.workers`` processes within a batch (the checker pool, MinHash
signatures, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from curate._progress import progress_bar
from curate.engines.batches import BatchPlan, run_batch
from curate.stage import Stage, StageContext, run_here


class LocalEngine:
    """Run a stage's batches in this process (the default engine)."""

    name = "local"

    def map_batches(
        self, stage: Stage, plan: BatchPlan, pending: Sequence[int], ctx: StageContext
    ) -> None:
        bar = progress_bar(
            len(pending), ctx.stage_name, enabled=ctx.progress, unit="batch", min_total=2
        )
        with bar:
            for index in pending:
                run_batch(stage, plan, index, ctx)
                bar.update(1)

    def map_tasks(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any
    ) -> list[Any]:
        return run_here(fn, items, shared)

    def close(self) -> None:
        pass
