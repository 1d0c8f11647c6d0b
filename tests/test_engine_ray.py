"""The Ray engine on a real local Ray cluster (one per test session: this file only):
every stage and recipe gives the same bytes as the local engine, a worker killed in the
middle of a stage loses and duplicates nothing, and errors come back as curate's."""

from __future__ import annotations

import json
import os
import runpy
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _stages import CountWords, DiesOnce, DiesOnceOnAnActor, EvenDigits, VectorRank, WithState

import curate
from curate.engines import RayEngine

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def source(tmp_path: Path) -> curate.Source:
    rows = [
        {"problem": f"What is {i} + {i % 7}?", "answer": str(i + i % 7) if i % 5 else "Proof"}
        for i in range(40)
    ] + [{"problem": "What is 3 + 3?", "answer": "6"}] * 3
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return curate.read(path, source="pool")


def _same_stages(a: curate.Run, b: curate.Run) -> None:
    """Byte-identical kept and rejects Parquet for every stage, and the same counts."""
    assert [s["dir"] for s in a.manifest["stages"]] == [s["dir"] for s in b.manifest["stages"]]
    for entry, other in zip(a.manifest["stages"], b.manifest["stages"], strict=True):
        for name in ("kept.parquet", "rejects.parquet"):
            assert (a.path / entry["dir"] / name).read_bytes() == (
                b.path / entry["dir"] / name
            ).read_bytes(), f"{entry['name']}/{name}"
        for key in ("rows_in", "kept", "rejected", "stats"):
            assert _untimed(entry[key]) == _untimed(other[key]), (entry["name"], key)


def _untimed(value: object) -> object:
    """``value`` without the timings in it (``*seconds``, ``*per_second`` keys)."""
    if isinstance(value, dict):
        timed = ("seconds", "per_second")
        return {k: _untimed(v) for k, v in value.items() if not str(k).endswith(timed)}
    return value


def test_stages_give_the_same_bytes_on_ray(source: curate.Source, tmp_path: Path) -> None:
    stages = [
        curate.RequireGradable(),
        EvenDigits(),
        CountWords(),
        curate.SQLFilter("length(problem) < 15", reason="long"),
        curate.ExactDedup(),
        curate.MinHashDedup(),  # bands and verification: Ray tasks reading the .npy arrays
        VectorRank(),  # Stage.arrays read in a Ray task
        WithState(log=str(tmp_path / "prepared.log")),  # state through the object store
        curate.Mix(total=20, stratify="level"),
    ]
    recipe = curate.Recipe("r", [source], stages)
    local = recipe.run(tmp_path / "local", progress=False)
    on_ray = recipe.run(tmp_path / "ray", progress=False, engine="ray")
    _same_stages(local, on_ray)
    assert on_ray.manifest["status"] == "complete"
    driver = str(os.getpid())
    assert (tmp_path / "prepared.log").read_text().split() == [driver, driver]  # once per run


@pytest.mark.parametrize("kind", [DiesOnce, DiesOnceOnAnActor])
def test_a_worker_killed_mid_stage_loses_and_duplicates_nothing(
    kind: type[DiesOnce], source: curate.Source, tmp_path: Path
) -> None:
    """A task's worker (``DiesOnce``) or an actor (``DiesOnceOnAnActor``) dies mid-stage."""
    marker = tmp_path / "died"
    stage = kind(marker=str(marker))
    on_ray = curate.Recipe("r", [source], [stage]).run(
        tmp_path / "ray", progress=False, engine="ray"
    )
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died
    local = curate.Recipe("r", [source], [stage]).run(tmp_path / "local", progress=False)
    _same_stages(local, on_ray)
    kept = on_ray.table("problems").collect()
    assert kept.height == 43 and kept["id"].n_unique() == 43


def test_a_stage_error_on_a_worker_is_raised_as_it_was(
    source: curate.Source, tmp_path: Path
) -> None:
    @__import__("dataclasses").dataclass(frozen=True)
    class DropsRows(curate.Stage):
        def map_batch(self, batch, ctx):  # type: ignore[no-untyped-def]
            return batch.head(1)

    with pytest.raises(curate.RunError, match="returned 1 rows for the 43 rows 0-42"):
        curate.Recipe("r", [source], [DropsRows()]).run(
            tmp_path / "run", progress=False, engine=RayEngine()
        )
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed"


@pytest.mark.slow
def test_the_deepscaler_recipe_gives_the_same_bytes_on_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recipes/deepscaler.py on its bundled demo pool (every stage runs on a CPU)."""
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("CURATE_POOL", "demo")
    recipe = runpy.run_path(str(ROOT / "recipes" / "deepscaler.py"))["recipe"]
    local = recipe.run(tmp_path / "local", progress=False)
    on_ray = recipe.run(tmp_path / "ray", progress=False, engine="ray")
    _same_stages(local, on_ray)


def test_curate_run_engine_ray(source: curate.Source, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "import curate\n"
        f"recipe = curate.Recipe('r', [curate.read({str(source.path)!r}, source='pool')], "
        "[curate.RequireGradable(), curate.ExactDedup()])\n"
    )
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        result = CliRunner().invoke(
            app, ["run", str(recipe), "--out", str(out), "-q", "--engine", engine]
        )
        assert result.exit_code == 0, result.output
        runs[engine] = curate.open_run(out)
    _same_stages(runs["local"], runs["ray"])
    bad = CliRunner().invoke(
        app, ["run", str(recipe), "--out", str(tmp_path / "x"), "--engine", "spark"]
    )
    assert bad.exit_code == 2 and "--engine 'spark': expected local or ray" in bad.output


@pytest.mark.slow
def test_the_deepdistill_recipe_gives_the_same_bytes_on_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recipes/deepdistill.py at its tiny toy scale (toy models distilled on the CPU), up
    to its selections (its ``then``, the training, is not part of the run)."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    for name in ("CURATE_MODELS", "CURATE_STUDENT", "CURATE_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    recipe = runpy.run_path(str(ROOT / "recipes" / "deepdistill.py"))["recipe"]
    local = recipe.run(tmp_path / "local", progress=False)
    on_ray = recipe.run(tmp_path / "ray", progress=False, engine="ray")
    _same_stages(local, on_ray)
    assert "grade" in [s["name"] for s in on_ray.manifest["stages"]]


def test_a_global_step_partitioned_search_gives_the_same_pairs_on_ray() -> None:
    """SemanticDedup's IVF search runs its partitions as Ray tasks (`StageContext.map`)."""
    pytest.importorskip("faiss")
    from test_semantic_dedup import clustered_vectors

    from curate.dedup.semantic import neighbour_pairs

    v = clustered_vectors(3_000, seed=1)
    here = neighbour_pairs(v, 0.95, index="ivf")
    there = neighbour_pairs(v, 0.95, index="ivf", map=RayEngine().map_tasks)
    assert here[3] == there[3] == "ivf" and here[0].size
    assert all(np.array_equal(a, b) for a, b in zip(here[:3], there[:3], strict=True))
