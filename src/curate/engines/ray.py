"""The Ray engine: a stage's per-row batches as Ray Data tasks on a Ray cluster.

Each batch is one row of a small dataset of batch numbers; ``map_batches`` runs
`curate.engines.batches.run_batch` on it in a worker, which reads the batch's rows from
the stage's input and writes its part file (both paths must be visible to every node:
one machine, or shared storage). Ray Data schedules the tasks, applies backpressure and
retries a task whose worker died on another worker; the part files make a retried or
resumed batch write the same rows once. Global steps and the merge run on the driver.

Ray is imported only here (extra ``curate[ray]``). Without ``address`` an existing
connection (``ray.init(...)`` done by the caller) is used, or a local cluster is
started; ``address="auto"`` joins the cluster of ``ray start`` on this machine,
``address="ray://host:10001"`` a remote one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from curate import errors
from curate._progress import progress_mode
from curate.engines.batches import BatchPlan, run_batch
from curate.errors import MissingExtraError
from curate.stage import Stage, StageContext


class RayEngine:
    """Run a stage's batches on Ray (``engine="ray"``)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus_per_batch: float = 1.0) -> None:
        self.address = address
        self.num_cpus_per_batch = num_cpus_per_batch
        self._started = False

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError:
            raise MissingExtraError("ray", "ray") from None
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            self._started = True
        return ray

    def map_batches(
        self, stage: Stage, plan: BatchPlan, pending: Sequence[int], ctx: StageContext
    ) -> None:
        if not pending:
            return
        ray = self._ray()
        _ship(type(stage))
        data = ray.data.DataContext.get_current()
        data.enable_progress_bars = ctx.progress and progress_mode() == "bars"
        data.print_on_execution_start = False
        worker_ctx = replace(ctx, workers=1, progress=False, stats={}, tasks=None, state=None)
        indices = ray.data.from_items(
            [{"index": i} for i in pending], override_num_blocks=len(pending)
        )
        # Stage.prepare's state: in the object store once, read there by every worker
        state = None if ctx.state is None else ray.put(ctx.state)
        args = {"stage": stage, "plan": plan, "ctx": worker_ctx, "state": state}
        if stage.keeps_state or stage.num_gpus:
            # a pool of actors: each loads the stage's model or index once for its batches
            resources = ray.cluster_resources()
            room = (
                resources.get("GPU", 0) / stage.num_gpus
                if stage.num_gpus
                else resources.get("CPU", 1) / self.num_cpus_per_batch
            )
            size = max(1, min(len(pending), int(room)))
            dataset = indices.map_batches(
                _Worker,
                batch_size=1,
                batch_format="numpy",
                fn_constructor_kwargs=args,
                compute=ray.data.ActorPoolStrategy(size=size),
                num_cpus=self.num_cpus_per_batch,
                num_gpus=stage.num_gpus or None,
            )
        else:
            dataset = indices.map_batches(
                _run,
                batch_size=1,
                batch_format="numpy",
                fn_kwargs=args,
                num_cpus=self.num_cpus_per_batch,
            )
        for row in dataset.iter_rows():
            if row["error"]:
                kind = getattr(errors, str(row["error_type"]), errors.RunError)
                raise kind(str(row["error"]))

    def map_tasks(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any
    ) -> list[Any]:
        """Each item a Ray task (one CPU each), ``shared`` put in the object store once (a
        task reads NumPy arrays from it without a copy); results in the order of
        ``items``."""
        ray = self._ray()
        _ship_function(fn)
        task = ray.remote(num_cpus=self.num_cpus_per_batch, max_retries=3)(_call)
        ref = ray.put(shared)
        return list(ray.get([task.remote(fn, ref, item) for item in items]))

    def close(self) -> None:
        """Shut down the local cluster this engine started (not one it joined)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _run(
    batch: dict[str, Any], stage: Stage, plan: BatchPlan, ctx: StageContext, state: Any = None
) -> dict[str, Any]:
    """Run the batches; a curate error (a stage refusing its input, a broken contract) comes
    back as data, to be raised on the driver as it was: Ray's wrappers drop its type. Any
    other failure is Ray's to report (a lost worker: Ray retries the task). ``state``: the
    object-store reference of `Stage.prepare`'s state."""
    import numpy as np

    if state is not None and ctx.state is None:
        import ray

        ctx = replace(ctx, state=ray.get(state))

    indices = [int(i) for i in batch["index"]]
    rows, error, kind = [], "", ""
    for i in indices:
        try:
            rows.append(run_batch(stage, plan, i, ctx))
        except errors.CurateError as e:
            error, kind = str(e), type(e).__name__
            break
    rows += [0] * (len(indices) - len(rows))
    n = len(indices)
    return {
        "index": np.array(indices),
        "rows": np.array(rows),
        "error": np.array([error] * n),
        "error_type": np.array([kind] * n),
    }


class _Worker:
    """A Ray actor running one stage's batches (`curate.stage.Stage.keeps_state`)."""

    def __init__(self, stage: Stage, plan: BatchPlan, ctx: StageContext, state: Any) -> None:
        if state is not None:  # read from the object store once per actor
            import ray

            ctx = replace(ctx, state=ray.get(state))
        self.stage, self.plan, self.ctx = stage, plan, ctx

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _run(batch, self.stage, self.plan, self.ctx)


def _call(fn: Callable[[Any, Any], Any], shared: Any, item: Any) -> Any:
    return fn(shared, item)


def _ship_function(fn: Callable[[Any, Any], Any]) -> None:
    """Send a task function's module by value when workers may not import it (`_ship`)."""
    _ship_module(getattr(fn, "__module__", None) or "")


def _ship(cls: type) -> None:
    """Send the code of a stage class defined outside installed packages (a recipe file,
    a test, a notebook) to the workers by value: they may not be able to import it."""
    for klass in cls.__mro__:
        _ship_module(klass.__module__ or "")


def _ship_module(name: str) -> None:
    from ray import cloudpickle

    module = sys.modules.get(name)
    if module is None or name in ("builtins", "__main__") or name.split(".")[0] == "curate":
        return
    path = getattr(module, "__file__", None) or ""
    if "site-packages" in path or "dist-packages" in path:
        return
    cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
