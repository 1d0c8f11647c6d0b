"""The stage contract: what a step of a recipe is, in one short read.

A stage is a frozen dataclass. Its fields are its configuration (they go into the
stage's fingerprint, with its class's ``version`` and, for a class defined outside
curate, its source code: an edit re-runs the stage and every stage after it). It says
which columns it reads and which it adds, and does its work in one or both of:

``map_batch(batch, ctx) -> DataFrame``
    **Per-row work**, a pure function of a batch of rows (a Polars frame of the columns
    in ``reads()``, always with ``id``): it returns the same rows, in the same order,
    with the columns it adds. The executor runs it on batches of the input anywhere (a
    local loop, Ray workers) and keeps each finished batch, so a crash resumes from the
    batches not yet done. Normalising, checking gradability, MinHash signatures,
    embeddings and generation are per-row work.

``global_step(table, ctx) -> DataFrame``
    **Whole-table work** (clustering duplicates, aggregating pass rates, top-k
    selection) over every row's ``id``, the columns in ``global_reads()`` (default:
    ``reads()``) and what ``map_batch`` returned: compact columns (ids, hashes,
    signatures, scores), not texts. Same rows, same order, with the columns it adds.

A *scorer* only adds columns. A *filter* (subclass `Filter`) also fills the two
columns named by ``REASON`` and ``DETAIL``: null keeps the row, a reason string
rejects it (`Filter.mark`).

The runner, not the stage, reads the input (only the columns the stage reads, in
batches), splits kept from rejected rows and writes both, streaming; it takes the
canonical columns from the input, not from the stage, so a stage cannot lose a row or
change a field (it may fill one that is null, where it declares so in ``fills()``):
``kept ∪ rejected = input`` holds for every stage by construction (and is still checked).
Peak memory is the batch plus the compact columns, not the table.

A stage may instead override ``apply(rows, ctx)``: the whole table at once, every
column (the first version of this contract; it still runs, without those bounds).
On any stage, ``apply`` runs the stage on a frame in memory, both steps.

>>> import polars as pl
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class ShortProblems(Filter):
...     max_chars: int = 20
...     def reads(self):
...         return ("problem",)
...     def adds(self):
...         return ()
...     def map_batch(self, batch, ctx):
...         too_long = pl.col("problem").str.len_chars() > self.max_chars
...         return self.mark(batch, too_long, "too_long", pl.col("problem").str.len_chars())
>>> ShortProblems().name
'short_problems'
>>> rows = pl.DataFrame({"id": ["a", "b"], "problem": ["1+1?", "x" * 30]})
>>> out = ShortProblems().apply(rows.lazy(), StageContext.temporary("demo")).collect()
>>> out[REASON].to_list()
[None, 'too_long']
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import linecache
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from curate.errors import ConfigError, RunError
from curate.responses import ResponsesTable
from curate.schema import CANONICAL_COLUMNS

REASON = "_reject_reason"
DETAIL = "_reject_detail"


TaskMap = Callable[..., list[Any]]
"""``map(fn, items, shared=...)``: run ``fn(shared, item)`` for each item, results in order
(`StageContext.map`, or `run_here`)."""


def run_here(fn: Callable[[Any, Any], Any], items: Iterable[Any], shared: Any = None) -> list[Any]:
    """``[fn(shared, item) for item in items]``: tasks run one after another in this process
    (the default of a function that takes a `TaskMap`, and the local engine's way)."""
    return [fn(shared, item) for item in items]


class TaskRunner(Protocol):
    """Runs a global step's independent tasks (`StageContext.map`): an engine."""

    def map_tasks(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any
    ) -> list[Any]: ...


@dataclass
class StageContext:
    """What a stage may use while it runs.

    ``cache_dir`` outlives the stage (keyed caches such as embeddings live
    there); ``stats`` is written to the manifest with the stage's counts. What
    ``map_batch`` (which may run in another process) puts in ``stats`` is kept with
    its batch and summed over the batches (numbers added, dicts key by key) before
    ``global_step`` runs.

    A global step that splits its work into independent tasks (the partitions of a
    similarity search) runs them with `map`: on the engine the run uses (Ray tasks on
    ``engine="ray"``), one after another in this process otherwise.
    """

    run_dir: Path
    cache_dir: Path
    stage_name: str
    seed: int = 0
    workers: int | None = None
    progress: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    tasks: TaskRunner | None = None
    """Where `map` runs tasks (set by the runner for a global step; None: in this process)."""
    state: Any = None
    """What `Stage.prepare` built for this run of the stage (None if nothing)."""
    arrays: dict[str, Any] = field(default_factory=dict)
    """The global step's `Stage.arrays`: name -> a `curate.arrays.Stacked` (the rows of
    one ``.npy`` file per batch, from the runner; the array itself in `Stage.apply`)."""

    def array(self, name: str) -> Any:
        """The `Stage.arrays` column ``name``, every row, as one NumPy array in memory (a
        step that needs only some rows takes ``ctx.arrays[name].take(positions)``; a task
        of `map` gets ``ctx.arrays[name]``: plain data, it reads its rows where it runs)."""
        from curate.arrays import stacked

        return stacked(self.arrays[name]).take()

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], *, shared: Any = None
    ) -> list[Any]:
        """``[fn(shared, item) for item in items]``, the tasks run by the run's engine (in
        parallel on Ray, where ``shared`` goes once to the object store, not once per
        task). ``fn`` must be a module-level function and ``shared`` and the items plain
        data (arrays, tuples): they may travel to other processes or machines. Results come
        back in the order of ``items`` whatever the engine, so the step stays
        deterministic."""
        if self.tasks is None or len(items) < 2:
            return run_here(fn, items, shared)
        return self.tasks.map_tasks(fn, items, shared)

    @property
    def responses(self) -> ResponsesTable:
        """The run's responses table (generated responses; `curate.responses`)."""
        return ResponsesTable.of_run(self.run_dir)

    @classmethod
    def temporary(cls, stage_name: str) -> StageContext:
        """A context in a new temporary directory (to try a stage outside a run)."""
        tmp = Path(tempfile.mkdtemp(prefix="curate-stage-"))
        return cls(run_dir=tmp, cache_dir=tmp / "cache", stage_name=stage_name)


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage as the runner wrote it (see `curate.Run.stages`)."""

    name: str
    rows_in: int
    kept: int
    rejected: dict[str, int]
    seconds: float
    stats: dict[str, Any]


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.lower()


class Stage:
    """Base of every stage: a frozen dataclass with ``map_batch`` and/or ``global_step``
    (or, in the first version of the contract, ``apply``).

    ``version`` is part of the fingerprint: bump it when the stage's output changes for
    the same configuration (for stages defined outside curate, the source is too).
    ``batch_rows`` is how many rows ``map_batch`` gets at a time: the unit of memory, of
    parallel work and of resuming. ``keeps_state`` and ``num_gpus`` tell the Ray engine to
    run the batches on actors (with GPUs).
    """

    version: ClassVar[str] = "1"
    batch_rows: ClassVar[int] = 65_536
    keeps_state: ClassVar[bool] = False
    """True for a stage that loads something worth keeping between batches (a model, an
    index, a process pool): on Ray its batches run on a pool of long-lived actors."""
    num_gpus: ClassVar[float] = 0.0
    """GPUs each of its Ray actors asks for (a stage that generates or embeds on a GPU)."""

    @property
    def name(self) -> str:
        """Default name: the class name in snake_case (``ExactDedup`` -> ``exact_dedup``)."""
        return _snake(type(self).__name__)

    def reads(self) -> tuple[str, ...] | None:
        """The columns the stage reads (``id`` is always given); None: every column."""
        return None

    def adds(self) -> tuple[str, ...] | None:
        """The columns the stage adds (besides a filter's reason and detail); None: not
        declared, whatever it returns beyond the canonical columns."""
        return None

    def global_reads(self) -> tuple[str, ...] | None:
        """The input columns ``global_step`` reads besides ``id`` and what ``map_batch``
        returned (keep them compact: no full texts); None: the same as `reads`."""
        return None

    def fills(self) -> tuple[str, ...]:
        """Canonical columns the stage may fill where they are null (`curate.ExtractAnswer`
        fills a missing ``answer``): the runner takes the stage's value only there, so a
        value the input has is never changed."""
        return ()

    def added_by(self, output: pl.DataFrame) -> list[str]:
        """The columns of a step's ``output`` that count as added: every non-canonical
        one, and the canonical ones the stage `fills`."""
        fills = self.fills()
        return [c for c in output.columns if c not in CANONICAL_COLUMNS or c in fills]

    def prepare(self, ctx: StageContext) -> Any:
        """State that every batch needs and that is worth building once per run of the
        stage (a benchmark index): built here, in the runner's process, before the
        batches, and given to ``map_batch`` and ``global_step`` as ``ctx.state``. On Ray it
        goes to the object store once and every worker reads it from there (NumPy arrays
        without a copy), instead of each worker building its own. Plain data: it travels.
        Default: None."""
        return None

    def arrays(self) -> tuple[str, ...]:
        """Columns ``map_batch`` adds that ``global_step`` reads as NumPy arrays instead of
        table columns: fixed-width numbers (MinHash signatures, embeddings), large per row.
        The per-row step writes each batch's as a ``.npy`` file beside its part, and the
        global step gets ``ctx.arrays[name]``, a `curate.arrays.Stacked` of those files: it
        and its tasks read the rows they need where they run (plain reads), so the column's
        size does not count against the step's memory (`StageContext.array`: all of it)."""
        return ()

    def optional_reads(self) -> tuple[str, ...]:
        """Columns among those read that may be missing from the input (a documents table
        has no ``answer``): given when the input has them, and the stage copes without."""
        return ()

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame | pl.LazyFrame:
        """Per-row work on one batch: the same rows in order, with the added columns."""
        raise NotImplementedError(f"{type(self).__name__}.map_batch is not implemented")

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame | pl.LazyFrame:
        """Whole-table work over the read columns (and ``map_batch``'s): the same rows in
        order, with the added columns."""
        raise NotImplementedError(f"{type(self).__name__}.global_step is not implemented")

    @property
    def steps(self) -> tuple[bool, bool]:
        """Whether the class implements (``map_batch``, ``global_step``)."""
        cls = type(self)
        return cls.map_batch is not Stage.map_batch, cls.global_step is not Stage.global_step

    def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame | pl.DataFrame:
        """Run the stage on every row in memory: ``map_batch`` on the whole frame as one
        batch, then ``global_step``. The rows come back (lazily) with the added columns
        (`curate.apply_stage` also splits them into kept and rejected)."""
        mapped, step = self.steps
        if not (mapped or step):
            raise NotImplementedError(
                f"{type(self).__name__} implements none of map_batch, global_step, apply"
            )
        frame = rows.collect() if isinstance(rows, pl.LazyFrame) else rows
        table = frame.select(self.columns(frame.columns))
        if ctx.state is None:
            ctx = dataclasses.replace(ctx, state=self.prepare(ctx))
        added: list[str] = []  # what map_batch returned (new columns or replacements)
        if mapped:
            out = self.map_batch(table, ctx)
            out = out.collect() if isinstance(out, pl.LazyFrame) else out
            if self.arrays() and step:
                from curate.arrays import Stacked, column_rows

                where = f"stage {self.name}"
                arrays = {c: Stacked((column_rows(out, c, where),)) for c in self.arrays()}
                ctx = dataclasses.replace(ctx, arrays={**ctx.arrays, **arrays})
                out = out.drop(*arrays)
            added = self.added_by(out)
            table = merge_added(table, out, self)
        if step:
            base = frame.select(self.columns(frame.columns, step="global"))
            base = merge_added(base, table.select("id", *added), self)
            table = merge_added(base, self.global_step(base, ctx), self)
        return merge_added(frame, table, self, final=True).lazy()

    def columns(self, available: list[str], *, step: str = "map") -> list[str]:
        """The input columns a step reads (``"map"``: `reads`; ``"global"``: `global_reads`,
        else `reads`), ``id`` first, in the table's order."""
        wanted = self.reads()
        if step == "global" and self.global_reads() is not None:
            wanted = self.global_reads()
        if wanted is None:
            return list(available)
        optional = self.optional_reads()
        missing = [c for c in wanted if c not in available and c not in optional]
        if missing:
            raise ConfigError(
                f"stage {self.name} reads columns {missing}: no such column in its input, "
                f"which has {available}"
            )
        keep = set(wanted)
        return ["id", *(c for c in available if c in keep and c != "id")]

    def config(self) -> dict[str, Any]:
        """The configuration as JSON-able data (the dataclass fields)."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a (frozen) dataclass")
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return json.loads(json.dumps(values, default=_jsonable, sort_keys=True))

    def describe(self) -> dict[str, Any]:
        """What goes into the fingerprint and the manifest."""
        cls = type(self)
        out = {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "version": cls.version,
            "config": self.config(),
        }
        code = code_digest(cls)
        if code is not None:
            out["code"] = code
        return out


def code_digest(cls: type) -> str | None:
    """A hash of the source of ``cls`` and of its bases defined outside curate (None
    when all of them are curate's own: their ``version`` says when they change).

    Where the source cannot be read (a class typed into a bare interpreter), the
    compiled code of its methods is hashed instead.
    """
    parts = []
    for klass in cls.__mro__:
        module = klass.__module__ or ""
        if klass is object or module == "curate" or module.startswith("curate."):
            continue
        try:
            linecache.checkcache(inspect.getsourcefile(klass))  # the file as it is now
            parts.append(inspect.getsource(klass))
        except (OSError, TypeError):
            parts.append(_bytecode(klass))
    if not parts:
        return None
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=8).hexdigest()


def _bytecode(klass: type) -> str:
    def code_text(code: Any) -> str:
        consts = [code_text(c) if inspect.iscode(c) else repr(c) for c in code.co_consts]
        return f"{code.co_code.hex()}|{code.co_names}|{consts}"

    items = []
    for key, value in sorted(vars(klass).items()):
        func = getattr(value, "__func__", value)
        code = getattr(func, "__code__", None)
        items.append(f"{key}={code_text(code) if code is not None else repr(value)}")
    return "\n".join(items)


def merge_added(
    base: pl.DataFrame,
    output: pl.DataFrame | pl.LazyFrame,
    stage: Stage,
    *,
    final: bool = False,
    rows: str | None = None,
) -> pl.DataFrame:
    """``base`` with the columns ``output`` adds (replacing same-named ones), checked to be
    the same rows (``rows`` names them in the error: a batch's range; default "N in").
    The added columns are every non-canonical column of ``output``; with ``final`` (the
    stage's result onto its input rows) and `Stage.adds` declared, those columns (all of
    them: a missing one is an error) and a filter's reason and detail."""
    out = output.collect() if isinstance(output, pl.LazyFrame) else output
    if out.height != base.height or ("id" in out.columns and not out["id"].equals(base["id"])):
        raise RunError(
            f"stage {stage.name} returned {out.height} rows for {rows or f'{base.height} in'}, "
            "or changed their order: a stage must return every input row in order (filters "
            "mark rows with Filter.mark instead of dropping them)"
        )
    fills = stage.fills()
    added = stage.added_by(out)
    declared = stage.adds()
    if final and declared is not None:
        missing = [c for c in declared if c not in out.columns]
        if missing:
            raise RunError(
                f"stage {stage.name} declares that it adds {missing} but did not return them"
            )
        added = [c for c in added if c in declared or c in (REASON, DETAIL) or c in fills]
    return attach(base, out.select(added), fills)


def attach(base: pl.DataFrame, added: pl.DataFrame, fills: tuple[str, ...] = ()) -> pl.DataFrame:
    """``base`` (same rows) with the columns of ``added``: new ones after its own, same-named
    ones replaced, except the columns in ``fills`` (`Stage.fills`), which keep their place
    and take ``added``'s value only where ``base`` has none."""
    filled = [c for c in added.columns if c in fills and c in base.columns]
    if filled:
        base = base.with_columns(
            base[c].zip_with(base[c].is_not_null(), added[c].cast(base[c].dtype)) for c in filled
        )
        added = added.drop(filled)
    return base.drop([c for c in added.columns if c in base.columns]).hstack(added)


class Filter(Stage):
    """A stage that rejects rows; see `mark` for the usual way to say which and why."""

    @staticmethod
    def mark(
        rows: pl.LazyFrame | pl.DataFrame,
        condition: pl.Expr,
        reason: str | pl.Expr,
        detail: str | pl.Expr | None = None,
    ) -> pl.LazyFrame:
        """Reject the rows where ``condition`` is true, with ``reason`` and ``detail``.

        Rows already rejected by an earlier ``mark`` in the same stage keep their
        first reason.
        """
        lazy = rows.lazy()
        names = lazy.collect_schema().names()
        reason_e = pl.lit(reason) if isinstance(reason, str) else reason
        detail_e = pl.lit(detail) if isinstance(detail, str) or detail is None else detail
        new_reason: pl.Expr = pl.when(condition).then(reason_e.cast(pl.String))
        new_detail: pl.Expr = pl.when(condition).then(detail_e.cast(pl.String))
        if REASON in names:
            new_reason = pl.coalesce(pl.col(REASON), new_reason)
            new_detail = (
                pl.when(pl.col(REASON).is_not_null()).then(pl.col(DETAIL)).otherwise(new_detail)
            )
        return lazy.with_columns(new_reason.alias(REASON), new_detail.alias(DETAIL))


class GeneratedSource:
    """A source whose rows are made in the run, such as `curate.Synthesize` (new problems
    written by a model from texts): the runner reads it at ingest with the run's context
    (its caches, seed, progress), so what it generates is cached and resumed like a stage's
    work. ``batches`` yields frames of the canonical columns, and may fill the filter's
    ``REASON``/``DETAIL`` columns for rows it rejects (an output that cannot be used); the
    runner writes those to the rejects table. Stats it puts in ``ctx.stats`` go to the
    manifest's entry for the source.
    """

    name: str
    kind: str = "problems"
    format: str = "generated"
    license: str | None = None

    @property
    def path(self) -> str:
        """What the manifest shows as where the source comes from."""
        raise NotImplementedError

    @property
    def location(self) -> str:
        """The same as `path` (as `curate.Source.location`: a path, a glob or a URL)."""
        return self.path

    def fingerprint(self) -> str:
        """A digest of everything that decides the rows (inputs, models, settings)."""
        raise NotImplementedError

    def batches(self, ctx: StageContext) -> Iterator[pl.DataFrame]:
        """The rows, in batches."""
        raise NotImplementedError


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, pl.Expr):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"stage option of type {type(value).__name__} is not JSON-serializable")
