"""The stage contract's second version on the local engine: batches, streaming merge,
resume inside a stage, declared columns, code in the fingerprint, failed-run status."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from _stages import CRASH_AT, CountWords, EvenDigits, VectorRank, WithState

import curate
from curate.arrays import Stacked
from curate.engines import execute as execute_mod
from curate.io import ParquetSink
from curate.run import apply_stage
from curate.stage import StageContext

ROWS = [
    {"problem": f"What is {i} + {i % 7}?", "answer": str(i + i % 7) if i % 5 else "Proof"}
    for i in range(40)
] + [{"problem": "What is 3 + 3?", "answer": "6"}] * 3


@pytest.fixture
def source(tmp_path: Path) -> curate.Source:
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return curate.read(path, source="pool")


def test_batched_stages_match_the_in_memory_result(
    source: curate.Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execute_mod, "MERGE_ROWS", 6)  # the merge streams in 6-row batches
    monkeypatch.setattr(ParquetSink, "ROW_GROUP", 5)  # ... and writes 5-row row groups
    stages = [curate.RequireGradable(), EvenDigits(), CountWords(), curate.ExactDedup()]
    run = curate.Recipe("r", [source], stages).run(tmp_path / "run", progress=False)
    frame = source.frame()
    for stage, entry in zip(stages, run.manifest["stages"][1:], strict=True):
        kept, rejects = apply_stage(stage, frame)
        on_disk = run.path / entry["dir"]
        assert pl.read_parquet(on_disk / "kept.parquet").equals(kept), entry["name"]
        assert pl.read_parquet(on_disk / "rejects.parquet").equals(rejects), entry["name"]
        assert pq.ParquetFile(on_disk / "kept.parquet").metadata.num_row_groups > 1
        frame = kept
    problems = run.table("problems").collect()
    assert "scratch" not in problems.columns and {"first", "words", "rank"} <= set(problems.columns)
    assert run.manifest["stages"][3]["stats"] == {"longest": 15}
    assert run.manifest["stages"][1]["stats"]["answer_kinds"] == {"not_an_answer": 8, "number": 35}
    assert run.manifest["stages"][2]["rejected"] == {"odd": 19}
    assert not list((run.path / "stages").glob(".parts-*"))


def test_array_columns_reach_the_global_step_from_disk(
    source: curate.Source, tmp_path: Path
) -> None:
    """`Stage.arrays`: kept out of the parts and the global step's table, given as one .npy
    file per batch (the array itself in memory), and the result is the same."""
    VectorRank.seen.clear()
    stage = VectorRank()
    run = curate.Recipe("r", [source], [stage]).run(tmp_path / "run", progress=False)
    on_disk = pl.read_parquet(run.path / run.manifest["stages"][1]["dir"] / "kept.parquet")
    kept, _ = apply_stage(stage, source.frame())
    assert on_disk.equals(kept) and "vec" not in kept.columns
    files, memory = VectorRank.seen
    assert isinstance(files, Stacked) and len(files.pieces) == 9  # 43 rows, 5 per batch
    assert all(str(p).endswith(".vec.npy") and not Path(p).exists() for p in files.pieces)
    assert isinstance(memory, Stacked) and memory.take().shape == (len(ROWS), 3)


def test_array_batches_of_different_widths_are_refused(tmp_path: Path) -> None:
    from curate.engines.batches import BatchPlan
    from curate.errors import RunError

    plan = BatchPlan(tmp_path / "in.parquet", ("id",), 4, 2, tmp_path / "parts")
    plan.parts.mkdir()
    for i, width in enumerate((3, 1)):
        pl.DataFrame({"id": ["a", "b"]}).write_parquet(plan.part(i))
        np.save(plan.array_file(i, "vec"), np.ones((2, width), np.float32))
    with pytest.raises(RunError, match=r"000001\.vec\.npy: rows of shape \(1,\)"):
        plan.array("vec")


def test_prepared_state_is_built_once_per_run(source: curate.Source, tmp_path: Path) -> None:
    log = tmp_path / "prepared.log"
    stage = WithState(log=str(log))
    run = curate.Recipe("r", [source], [stage]).run(tmp_path / "run", progress=False)
    assert len(log.read_text().splitlines()) == 1  # 8 batches, one state
    kept = pl.read_parquet(run.path / run.manifest["stages"][1]["dir"] / "kept.parquet")
    assert kept.equals(apply_stage(stage, source.frame())[0])


def test_an_interrupted_stage_resumes_from_its_finished_batches(
    source: curate.Source, tmp_path: Path
) -> None:
    log = tmp_path / "batches.log"
    stage = EvenDigits(log=str(log))
    full = curate.Recipe("r", [source], [stage]).run(tmp_path / "full", progress=False)
    assert len(log.read_text().split()) == 7  # 43 rows in batches of 7
    log.write_text("")
    out = tmp_path / "run"
    CRASH_AT.append(30)  # the batch of rows 28-34 is interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            curate.Recipe("r", [source], [stage]).run(out, progress=False)
    finally:
        CRASH_AT.clear()
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
    (parts,) = (out / "stages").glob(".parts-01-even_digits-*")
    assert sorted(p.name for p in parts.glob("0*.parquet")) == [
        f"{i:06d}.parquet" for i in range(4)
    ]
    assert len(log.read_text().split()) == 5  # batches 0-3 done, 4 interrupted
    log.write_text("")
    run = curate.Recipe("r", [source], [stage]).run(out, progress=False)
    assert len(log.read_text().split()) == 3  # batches 4-6 only
    assert run.manifest["status"] == "complete" and "error" not in run.manifest
    for name in ("kept.parquet", "rejects.parquet"):
        a = (run.path / run.manifest["stages"][1]["dir"] / name).read_bytes()
        b = (full.path / full.manifest["stages"][1]["dir"] / name).read_bytes()
        assert a == b
    assert not parts.exists()


def test_declared_columns_are_checked(source: curate.Source, tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class ReadsMissing(curate.Stage):
        def reads(self) -> tuple[str, ...]:
            return ("nope",)

        def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
            return batch

    @dataclass(frozen=True)
    class ForgetsColumn(curate.Stage):
        def adds(self) -> tuple[str, ...]:
            return ("score",)

        def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
            return batch.select("id")

    @dataclass(frozen=True)
    class DropsRows(curate.Stage):
        def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
            return batch.head(1)

    with pytest.raises(curate.ConfigError, match=r"reads columns \['nope'\]"):
        curate.Recipe("r", [source], [ReadsMissing()]).run(tmp_path / "a", progress=False)
    with pytest.raises(curate.RunError, match=r"declares that it adds \['score'\]"):
        curate.Recipe("r", [source], [ForgetsColumn()]).run(tmp_path / "b", progress=False)
    with pytest.raises(curate.RunError, match="returned 1 rows for the 43 rows 0-42"):
        curate.Recipe("r", [source], [DropsRows()]).run(tmp_path / "c", progress=False)
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["status"] == "failed"


STAGE_SOURCE = """
from dataclasses import dataclass
import polars as pl
from curate.stage import Filter

@dataclass(frozen=True)
class NoSeven(Filter):
    def reads(self):
        return ("problem",)

    def map_batch(self, batch, ctx):
        return self.mark(batch, pl.col("problem").str.contains("PATTERN"), "matched")
"""


def _load(path: Path, pattern: str, name: str) -> type:
    mtime = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(STAGE_SOURCE.replace("PATTERN", pattern))
    os.utime(path, (mtime + 2, mtime + 2))  # an edit seconds later (same size)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.NoSeven  # type: ignore[no-any-return]


def test_an_edited_custom_stage_runs_again(source: curate.Source, tmp_path: Path) -> None:
    """The code of a stage defined outside curate is in its fingerprint (issue: an edited
    regex was skipped as 'unchanged')."""
    path = tmp_path / "my_stages.py"
    first = _load(path, "1", "my_stages_v1")
    code = first().describe()["code"]
    run = curate.Recipe("r", [source], [first()]).run(tmp_path / "run", progress=False)
    assert run.stages[1].rejected == {"matched": 17}
    second = _load(path, "7", "my_stages_v1")  # same module and class name, new code
    assert second().describe()["code"] != code
    run = curate.Recipe("r", [source], [second()]).run(tmp_path / "run", progress=False)
    assert run.stages[1].rejected == {"matched": 4}
    assert "code" not in curate.ExactDedup().describe()  # curate's own: its version says


def _sampled(n: int) -> pl.DataFrame:
    """``n`` problems with four responses each from two models, scores varying."""
    rows = []
    for i in range(n):
        samples = [
            {
                "model": m,
                "sample": s,
                "score": float((i + s + k) % 3 == 0),
                "correct": (i + s + k) % 3 == 0,
                "verdict": "equivalent",
                "finish_reason": "stop" if (i + s) % 5 else "length",
                "n_tokens": 10 + s,
                "extracted_answer": str(s),
                "gen_key": "g",
            }
            for k, m in enumerate(("a", "b"))
            for s in range(4)
        ]
        rows.append(
            {"id": f"p{i:03d}", "problem": f"problem {i}", "answer": "1", "samples": samples}
        )
    return pl.DataFrame(rows)


def test_grading_and_selection_stages_match_in_memory_in_small_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grade, the DeepDistill selections and PassRateBand on batches of 7 rows (and the
    merge in 6-row batches) give what they give on the whole table at once."""
    from curate.engines import LocalEngine, execute_stage

    monkeypatch.setattr(execute_mod, "MERGE_ROWS", 6)
    frame = _sampled(40)
    stages = [
        curate.Grade(pass_at=(1, 2)),
        curate.PassRateBand(low=0.0, high=1.0, inclusive=True),
        curate.DeepDistillStageI(score_threshold=0.9, cv_threshold=0.0, easy_keep=0.5),
        curate.DeepDistillStageII(fraction=0.5),
    ]
    for i, stage in enumerate(stages):
        monkeypatch.setattr(type(stage), "batch_rows", 7)
        source = tmp_path / f"in-{i}.parquet"
        frame.write_parquet(source)
        ctx = StageContext(tmp_path, tmp_path / "cache", stage.name, seed=3)
        out = tmp_path / f"out-{i}"
        execute_stage(
            stage, source, out, parts=tmp_path / f"parts-{i}", ctx=ctx, engine=LocalEngine()
        )
        kept, rejects = apply_stage(
            stage, frame, StageContext(tmp_path, tmp_path, stage.name, seed=3)
        )
        assert pl.read_parquet(out / "kept.parquet").equals(kept), stage.name
        assert pl.read_parquet(out / "rejects.parquet").equals(rejects), stage.name
        frame = kept
    assert 0 < frame.height < 40 and frame["selected"].list.len().eq(1).all()
