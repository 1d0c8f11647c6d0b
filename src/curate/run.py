"""Recipes and runs: run stages in order into a run directory, resumably.

Layout of a run directory::

    RUN/manifest.json                      what ran: per-stage counts, seconds, fingerprints
    RUN/stages/00-ingest-<fp>/kept.parquet  the sources, read into the canonical schema
    RUN/stages/01-<stage>-<fp>/kept.parquet rows the stage kept (all columns so far)
    RUN/stages/01-<stage>-<fp>/rejects.parquet  rows it removed: id, stage, reason, detail, row
    RUN/cache/                             caches that outlive a stage (embeddings, ...)

A stage's fingerprint hashes its input's fingerprint, its class, version and
configuration, and the library version; the ingest fingerprint hashes every
source file's bytes and read options. Re-running a recipe skips every stage
whose fingerprint is in the manifest with its files present, and runs the
rest; a stage directory is written under a temporary name and renamed when
complete, and the manifest is replaced atomically after each stage, so an
interrupted run never presents partial output as a finished stage.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from curate._progress import progress_mode
from curate._version import __version__
from curate.engines import (
    Engine,
    EngineName,
    StageOutput,
    execute_stage,
    make_engine,
    split,
    write_split,
)
from curate.errors import ConfigError, RunError
from curate.io import Source, write_json
from curate.responses import ResponsesTable
from curate.stage import (
    DETAIL,
    REASON,
    GeneratedSource,
    Stage,
    StageContext,
    StageResult,
    merge_added,
)

if TYPE_CHECKING:
    import duckdb

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


class AfterRun(Protocol):
    """A step after a run's last stage, such as `curate.ExportOptions` (an export and its
    dataset card into ``RUN/export/<format>/``). The run does not know what it does: it
    calls ``after_run`` and records what it returns in the manifest's ``exports``."""

    def after_run(self, run: Run, out: Path, log: Callable[[str], None]) -> dict[str, Any]: ...


@dataclass
class Recipe:
    """A named, ordered list of stages over one or more sources, and what to export.

    ``exports``: `curate.export.ExportOptions` (``ExportOptions(format="verl")``), or any
    `AfterRun`: after the last stage, each is exported into ``RUN/export/<format>/`` with
    its dataset card (`curate.export.export_run`, `curate.export.card.write_card`).

    >>> import curate
    >>> recipe = curate.Recipe("demo", sources=[], stages=[curate.ExactDedup()])
    >>> recipe.stage_names()
    ['ingest', 'exact_dedup']
    """

    name: str
    sources: Sequence[Source | GeneratedSource]
    stages: Sequence[Stage] = field(default_factory=list)
    seed: int = 0
    exports: Sequence[AfterRun] = field(default_factory=list)

    def stage_names(self) -> list[str]:
        """Names of the stages as they appear in the run (made unique with _2, _3)."""
        names, seen = ["ingest"], {"ingest": 1}
        for stage in self.stages:
            base = stage.name
            seen[base] = seen.get(base, 0) + 1
            names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
        return names

    def _check(self) -> None:
        if not self.sources:
            raise ConfigError(
                f"recipe {self.name!r} has no sources; pass sources=[curate.read(...)]"
            )
        names = [s.name for s in self.sources]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ConfigError(
                f"recipe {self.name!r}: source names must be unique, {dups} appear more than "
                "once; pass source='...' to curate.read to name them"
            )
        kinds = {s.kind for s in self.sources}
        if len(kinds) > 1:
            raise ConfigError(
                f"recipe {self.name!r} mixes problems and documents sources; a run holds one "
                "table: run the documents through their own recipe (or curate.Synthesize)"
            )
        for stage in self.stages:
            if not isinstance(stage, Stage):
                raise ConfigError(
                    f"recipe {self.name!r}: {stage!r} is not a curate stage (a Stage subclass)"
                )

    def run(
        self,
        out: str | Path,
        *,
        workers: int | None = None,
        progress: bool | None = None,
        force: bool = False,
        engine: EngineName | Engine = "local",
        address: str | None = None,
    ) -> Run:
        """Run the recipe into directory ``out`` and return the `Run`.

        Finished stages whose fingerprint is unchanged are skipped (``force=True``
        re-runs everything); a stage interrupted part-way resumes from its finished
        batches. ``workers`` bounds the worker processes of per-row work (default: one
        per core).

        ``progress``: ``None`` (the default) reports on stderr unless the environment
        variable ``CURATE_PROGRESS`` is ``0``; ``True`` always; ``False`` never. A report is
        a line when each stage starts and ends (counts and seconds), and for long loops a
        tqdm bar on a terminal or in a notebook, else a line now and then (a log file gets
        whole lines, no carriage returns; see `curate._progress`).

        ``engine`` runs the stages' per-row batches: ``"local"`` (this process) or
        ``"ray"`` (a Ray cluster: the one ``ray.init`` connected to, the one at
        ``address``, or a local one started for the run); the output is the same.
        """
        self._check()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        show = progress_mode(progress) != "off"
        runner_engine = make_engine(engine, address=address)
        try:
            with _locked(out):
                _Runner(
                    self, out, workers=workers, progress=show, force=force, engine=runner_engine
                ).run()
        finally:
            if runner_engine is not engine:
                runner_engine.close()
        return Run(out)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    with open(out / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{out} is being written by another run; wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(
            f"{path} is not valid JSON ({e}); delete the run directory to start over"
        ) from None
    if not isinstance(manifest, dict):
        raise RunError(f"{path} is not a curate manifest (a JSON object)")
    return manifest


class _Runner:
    def __init__(
        self,
        recipe: Recipe,
        out: Path,
        *,
        workers: int | None,
        progress: bool,
        force: bool,
        engine: Engine,
    ) -> None:
        self.recipe, self.out, self.engine = recipe, out, engine
        self.workers, self.progress, self.force = workers, progress, force
        old = None if force else _read_manifest(out)
        self.previous: dict[str, dict[str, Any]] = {
            s["fingerprint"]: s for s in (old or {}).get("stages", [])
        }
        self.manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "recipe": recipe.name,
            "curate_version": __version__,
            "seed": recipe.seed,
            "status": "running",
            "plan": recipe.stage_names(),
            "kind": recipe.sources[0].kind if recipe.sources else "problems",
            "sources": [],
            "stages": [],
        }

    def log(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    def _step(self, index: int) -> str:
        """``[k/n]``: the step's place among all of the recipe's steps, ingest the first."""
        return f"[{index + 1}/{len(self.recipe.stage_names())}]"

    def run(self) -> None:
        """Run every stage; on an error or an interrupt the manifest says ``failed`` (with
        the error) or ``interrupted`` before the exception goes on."""
        try:
            self._run()
        except BaseException as e:
            interrupted = isinstance(e, (KeyboardInterrupt, SystemExit))
            self.manifest["status"] = "interrupted" if interrupted else "failed"
            self.manifest["error"] = f"{type(e).__name__}: {e}"[:2000]
            self.manifest["failed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            self._save()
            raise

    def _run(self) -> None:
        recipe = self.recipe
        names = recipe.stage_names()
        total = len(names)
        source_fps = [s.fingerprint() for s in recipe.sources]
        self.manifest["sources"] = [
            {
                "name": s.name,
                "path": s.location,
                "format": s.format,
                "license": s.license,
                "fingerprint": fp,
            }
            for s, fp in zip(recipe.sources, source_fps, strict=True)
        ]
        made = any(isinstance(s, GeneratedSource) for s in recipe.sources)
        seeded = [recipe.seed] if made else []  # what a generated source writes depends on it
        fingerprint = _digest("ingest", source_fps, __version__, *seeded)
        entry = self._reuse(fingerprint, 0, "ingest")
        if entry is None:
            entry = self._execute(0, "ingest", None, fingerprint, None, total)
        self.manifest["stages"].append(entry)
        self._save()
        for index, (stage, name) in enumerate(zip(recipe.stages, names[1:], strict=True), 1):
            parent = entry
            fingerprint = _digest(
                parent["fingerprint"], name, stage.describe(), recipe.seed, __version__
            )
            entry = self._reuse(fingerprint, index, name) or self._execute(
                index, name, stage, fingerprint, parent, total
            )
            self.manifest["stages"].append(entry)
            self._save()
        self.manifest["status"] = "complete"
        self._save()
        self._clean()
        if self.recipe.exports:
            self.manifest["exports"] = [
                o.after_run(Run(self.out), self.out, self.log) for o in self.recipe.exports
            ]
            self._save()

    def _reuse(self, fingerprint: str, index: int, name: str) -> dict[str, Any] | None:
        old = self.previous.get(fingerprint)
        if old is None or old["index"] != index or old["name"] != name:
            return None
        if not all(
            (self.out / old["dir"] / f).exists() for f in ("kept.parquet", "rejects.parquet")
        ):
            return None
        self.log(f"{self._step(index)} {name}: unchanged, skipped ({old['kept']:,} kept)")
        return old

    def _execute(
        self,
        index: int,
        name: str,
        stage: Stage | None,
        fingerprint: str,
        parent: dict[str, Any] | None,
        total: int,
    ) -> dict[str, Any]:
        self.log(f"{self._step(index)} {name} ...")
        started = time.perf_counter()
        ctx = StageContext(
            run_dir=self.out,
            cache_dir=self.out / "cache",
            stage_name=name,
            seed=self.recipe.seed,
            workers=self.workers,
            progress=self.progress,
        )
        rel = f"stages/{index:02d}-{name}-{fingerprint[:8]}"
        final = self.out / rel
        tmp = self.out / "stages" / f".{index:02d}-{name}.tmp-{os.getpid()}"
        parts = self.out / "stages" / f".parts-{index:02d}-{name}-{fingerprint[:8]}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            if stage is None:
                done = self._ingest(tmp, ctx)
            else:
                assert parent is not None
                source = self.out / parent["dir"] / "kept.parquet"
                done = execute_stage(stage, source, tmp, parts=parts, ctx=ctx, engine=self.engine)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # the finished batches (parts) stay
            raise
        rows_in, kept_rows, rejected = done.rows_in, done.kept, done.rejected
        if kept_rows + sum(rejected.values()) != rows_in:  # pragma: no cover - by construction
            raise RunError(
                f"stage {name}: {kept_rows} kept + {sum(rejected.values())} rejected != "
                f"{rows_in} rows in"
            )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        shutil.rmtree(parts, ignore_errors=True)
        seconds = round(time.perf_counter() - started, 3)
        entry = {
            "index": index,
            "name": name,
            **(stage.describe() if stage else {"class": "ingest", "version": "1", "config": {}}),
            "fingerprint": fingerprint,
            "input_fingerprint": parent["fingerprint"] if parent else None,
            "dir": rel,
            "rows_in": rows_in,
            "kept": kept_rows,
            "rejected": rejected,
            "seconds": seconds,
            "stats": ctx.stats,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        reasons = f" ({', '.join(f'{k}: {v:,}' for k, v in rejected.items())})" if rejected else ""
        self.log(
            f"{self._step(index)} {name}: {rows_in:,} in, {kept_rows:,} kept, "
            f"{sum(rejected.values()):,} rejected{reasons} in {seconds:.2f}s"
        )
        return entry

    def _ingest(self, target: Path, ctx: StageContext) -> StageOutput:
        """Read every source, batch by batch, into the ingest stage's kept and rejects
        files (streamed: memory holds one batch). A generated source reads with the run's
        context, under the source's name, and its stats go to its manifest entry."""

        def marked() -> Iterator[pl.DataFrame]:
            for source, info in zip(self.recipe.sources, self.manifest["sources"], strict=True):
                info["rows"] = 0
                if isinstance(source, GeneratedSource):
                    own = dataclasses.replace(ctx, stage_name=source.name, stats={})
                    frames = source.batches(own)
                else:
                    frames = source.batches()
                for frame in frames:
                    info["rows"] += frame.height
                    main = "text" if "problem" not in frame.columns else "problem"
                    empty = pl.col(main).str.strip_chars().fill_null("") == ""
                    reason: pl.Expr = pl.when(empty).then(pl.lit(f"empty_{main}"))
                    detail: pl.Expr = pl.when(empty).then(pl.lit(f"the {main} is empty"))
                    if REASON in frame.columns:  # the source's own reasons come first
                        reason, detail = pl.coalesce(REASON, reason), pl.coalesce(DETAIL, detail)
                    yield frame.with_columns(reason.alias(REASON), detail.alias(DETAIL))
                if isinstance(source, GeneratedSource) and own.stats:
                    info["stats"] = own.stats

        return write_split(marked(), target, ctx.stage_name)

    def _save(self) -> None:
        write_json(self.manifest, self.out / MANIFEST)

    def _clean(self) -> None:
        """Remove stage directories the manifest no longer lists."""
        keep = {s["dir"].split("/", 1)[1] for s in self.manifest["stages"]}
        stages_dir = self.out / "stages"
        for child in stages_dir.iterdir():
            if child.name not in keep:
                shutil.rmtree(child, ignore_errors=True)


def apply_stage(
    stage: Stage, rows: pl.DataFrame, ctx: StageContext | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Run one stage on a DataFrame in memory, as a run would: ``(kept, rejects)``.

    Handy to try a stage or a threshold without writing a run.

    >>> import polars as pl, curate
    >>> from curate.run import apply_stage
    >>> rows = pl.DataFrame({"id": ["a", "b"], "text_hash": ["h", "h"], "problem": ["1+1", "1+1"],
    ...                      "answer": ["2", "2"]})
    >>> kept, rejects = apply_stage(curate.ExactDedup(), rows)
    >>> kept["id"].to_list(), rejects.select("id", "reason", "detail").row(0)
    (['a'], ('b', 'duplicate', 'a'))
    """
    ctx = ctx or StageContext.temporary(stage.name)
    added = merge_added(rows.select("id"), stage.apply(rows.lazy(), ctx), stage, final=True)
    merged = merge_added(rows, added, stage)
    return split(merged, ctx.stage_name)


class Run:
    """A run directory: its manifest, its tables, and SQL over them.

    >>> import curate, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\\n' * 2)
    >>> run = curate.Recipe("r", [curate.read(d / "p.jsonl")], [curate.ExactDedup()]).run(d / "run")
    >>> run.sql("SELECT reason, count(*) AS n FROM rejects GROUP BY 1").rows()
    [('duplicate', 1)]
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = _read_manifest(self.path)
        if manifest is None and not self.path.exists():
            raise RunError(f"{self.path} does not exist: expected a run directory")
        if manifest is None:
            raise RunError(f"{self.path} is not a curate run: no {MANIFEST} in it")
        self.manifest: dict[str, Any] = manifest

    @property
    def name(self) -> str:
        return str(self.manifest["recipe"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("status") == "complete")

    def notice(self) -> str | None:
        """Why the tables of this run may not be what its recipe makes (None when the run
        is complete): the status, the error, and which stage ``problems`` is from."""
        if self.complete:
            return None
        m = self.manifest
        stages = [s["name"] for s in m["stages"]]
        plan = m.get("plan", [])
        status = m.get("status", "running")
        text = f"{self.path}: the run is {status}"
        if m.get("error"):
            text += f" ({m['error'].splitlines()[0][:200]})"
        if not stages:
            return text + "; no stage has finished"
        text += f"; its tables stop at stage {stages[-1]!r}"
        if plan and len(plan) > len(stages):
            text += f", not at the recipe's last stage {plan[-1]!r}"
        return text

    @property
    def stages(self) -> list[StageResult]:
        return [
            StageResult(
                s["name"], s["rows_in"], s["kept"], s["rejected"], s["seconds"], s.get("stats", {})
            )
            for s in self.manifest["stages"]
        ]

    def as_of(self, stage: str) -> Run:
        """The run as it stood after ``stage`` (read-only): its ``problems`` are that
        stage's kept rows, and what it exports is what an export right after it would have
        been (DeepDistill trains Stage I on the run as of its Stage I selection).

        >>> import curate, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "p.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\\n' * 2)
        >>> recipe = curate.Recipe("r", [curate.read(d / "p.jsonl")], [curate.ExactDedup()])
        >>> run = recipe.run(d / "r")
        >>> run.as_of("ingest").table("problems").collect().height
        2
        """
        names = [s["name"] for s in self.manifest["stages"]]
        if stage not in names:
            raise RunError(f"{self.path}: no stage {stage!r}; the run's stages: {names}")
        view = Run(self.path)
        view.manifest["stages"] = view.manifest["stages"][: names.index(stage) + 1]
        return view

    @property
    def kind(self) -> str:
        """``problems``, or ``documents`` for a run over texts (its table is also named
        ``documents``)."""
        return "documents" if self.manifest.get("kind") == "documents" else "problems"

    def tables(self) -> dict[str, list[Path]]:
        """Every table of the run and the Parquet files behind it."""
        stages = self.manifest["stages"]
        if not stages:
            raise RunError(f"{self.path}: the run has no finished stage yet")
        out: dict[str, list[Path]] = {
            "problems": [self.path / stages[-1]["dir"] / "kept.parquet"],
            "rejects": [self.path / s["dir"] / "rejects.parquet" for s in stages],
        }
        if self.kind == "documents":  # a run over texts: its rows are documents
            out["documents"] = out["problems"]
        for s in stages:
            out[s["name"]] = [self.path / s["dir"] / "kept.parquet"]
            out[f"{s['name']}_rejects"] = [self.path / s["dir"] / "rejects.parquet"]
        responses = ResponsesTable.of_run(self.path).parts()
        if responses:
            out["responses"] = responses
        return out

    def table(self, name: str = "problems") -> pl.LazyFrame:
        """A table as a Polars LazyFrame: ``problems`` (the final kept rows),
        ``rejects`` (every removed row, all stages), or a stage's name."""
        if name == "problems" and not self.complete:
            done = ", ".join(s["name"] for s in self.manifest["stages"]) or "none"
            raise RunError(
                f"{self.path}: the run is not complete (finished stages: {done}); run the "
                "recipe again to finish it, or read a finished stage's table by its name"
            )
        tables = self.tables()
        if name not in tables:
            raise RunError(f"{self.path} has no table {name!r}; it has {sorted(tables)}")
        frames = [pl.scan_parquet(p) for p in tables[name]]
        return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")

    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with a view for every table."""
        from curate.sql import connect

        return connect(self.tables())

    def sql(self, query: str) -> pl.DataFrame:
        """Run a DuckDB SQL query over the run's tables; returns a Polars DataFrame.

        On a run that did not complete the tables are those of its last finished stage,
        with a `RunWarning` that says so (`notice`)."""
        from curate.sql import query as run_query

        notice = self.notice()
        if notice is not None:
            warnings.warn(notice, RunWarning, stacklevel=2)

        return run_query(self.tables(), query)

    def summary(self) -> pl.DataFrame:
        """One row per stage: rows in, kept, rejected (and by reason), seconds."""
        return pl.DataFrame(
            [
                {
                    "stage": s.name,
                    "rows_in": s.rows_in,
                    "kept": s.kept,
                    "rejected": sum(s.rejected.values()),
                    "reasons": ", ".join(f"{k}={v}" for k, v in s.rejected.items()),
                    "seconds": s.seconds,
                }
                for s in self.stages
            ],
            schema={
                "stage": pl.String,
                "rows_in": pl.Int64,
                "kept": pl.Int64,
                "rejected": pl.Int64,
                "reasons": pl.String,
                "seconds": pl.Float64,
            },
        )

    def __repr__(self) -> str:
        stages = self.manifest["stages"]
        kept = stages[-1]["kept"] if stages else 0
        return (
            f"Run({str(self.path)!r}, recipe={self.name!r}, stages={len(stages)}, "
            f"problems={kept}, status={self.manifest.get('status')!r})"
        )


class RunWarning(UserWarning):
    """Tables read from a run that did not complete (failed, interrupted, running)."""


def open_run(path: str | Path) -> Run:
    """Open a run directory written by `Recipe.run` or ``curate run``."""
    return Run(path)
