"""Recipes and runs: layout, manifest, resume, re-run on change, determinism, atomicity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest
from typer.testing import CliRunner

import curate
from curate.cli import app
from curate.stage import Stage, StageContext

MATH = [
    {"problem": "What is $1+1$?", "solution": r"It is $\boxed{2}$.", "level": "Level 1"},
    {"problem": "Compute $3 \\cdot 4$.", "solution": r"$\boxed{12}$"},
    {"problem": "Prove that there are infinitely many primes.", "solution": "Proof. ..."},
    {"problem": "what is 1 + 1 ?", "solution": r"$\boxed{2}$"},
]
GSM8K = [
    {"question": "Tom has 3 apples and buys 4 more. How many?", "answer": "3+4=7\n#### 7"},
    {"question": "What is $1+1$?", "answer": "#### 2"},
    {"question": "", "answer": "#### 5"},
]


cli = CliRunner()


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pool(tmp_path: Path) -> list[curate.Source]:
    return [
        curate.read(write_jsonl(tmp_path / "math.jsonl", MATH), source="math"),
        curate.read(
            write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K),
            source="gsm8k",
            problem="question",
            solution="answer",
        ),
    ]


def recipe(pool: list[curate.Source], *stages: Stage) -> curate.Recipe:
    return curate.Recipe(
        "test", sources=pool, stages=list(stages) or [curate.RequireGradable(), curate.ExactDedup()]
    )


def test_run_writes_tables_manifest_and_rejects(pool: list[curate.Source], tmp_path: Path) -> None:
    run = recipe(pool).run(tmp_path / "run", progress=False)
    assert run.complete
    problems = run.table("problems").collect()
    assert problems["problem"].to_list() == [
        "What is $1+1$?",
        "Compute $3 \\cdot 4$.",
        "Tom has 3 apples and buys 4 more. How many?",
    ]
    rejects = run.table("rejects").collect()
    assert sorted(zip(rejects["stage"], rejects["reason"], strict=True)) == [
        ("exact_dedup", "duplicate"),
        ("exact_dedup", "duplicate"),
        ("ingest", "empty_problem"),
        ("require_gradable", "missing_answer"),
    ]
    # nothing lost: every input row is kept or rejected, exactly once
    assert problems.height + rejects.height == len(MATH) + len(GSM8K)
    assert set(problems["id"]).isdisjoint(set(rejects["id"]))
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["ingest", "require_gradable", "exact_dedup"]
    dedup = manifest["stages"][2]
    assert dedup["rows_in"] == 5 and dedup["kept"] == 3 and dedup["rejected"] == {"duplicate": 2}
    assert dedup["stats"] == {"duplicate_groups": 1, "conflicting_groups": 0}
    assert manifest["curate_version"] == curate.__version__
    assert {s["name"]: s["rows"] for s in manifest["sources"]} == {"math": 4, "gsm8k": 3}
    assert all(len(s["fingerprint"]) == 32 and s["seconds"] >= 0 for s in manifest["stages"])
    assert run.summary()["kept"].to_list() == [6, 5, 3]


def test_rerun_skips_unchanged_stages_and_reruns_changed(
    pool: list[curate.Source], tmp_path: Path
) -> None:
    calls: list[str] = []

    @dataclass(frozen=True)
    class Counted(Stage):
        label: str = "a"
        version: ClassVar[str] = "1"

        def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame:
            calls.append(self.label)
            return rows.with_columns(pl.lit(self.label).alias("label"))

    out = tmp_path / "run"
    recipe(pool, Counted("a"), curate.ExactDedup()).run(out, progress=False)
    first = json.loads((out / "manifest.json").read_text())
    recipe(pool, Counted("a"), curate.ExactDedup()).run(out, progress=False)
    assert calls == ["a"]
    assert json.loads((out / "manifest.json").read_text())["stages"] == first["stages"]
    # a config change re-runs that stage and every stage after it, not the ones before
    run = recipe(pool, Counted("b"), curate.ExactDedup()).run(out, progress=False)
    assert calls == ["a", "b"]
    second = run.manifest["stages"]
    assert second[0] == first["stages"][0]
    assert second[1]["fingerprint"] != first["stages"][1]["fingerprint"]
    assert second[2]["fingerprint"] != first["stages"][2]["fingerprint"]
    assert run.table("problems").collect()["label"].unique().to_list() == ["b"]
    # stale stage directories are removed
    assert len(list((out / "stages").iterdir())) == 3
    # force re-runs everything
    recipe(pool, Counted("b"), curate.ExactDedup()).run(out, progress=False, force=True)
    assert calls == ["a", "b", "b"]


def test_source_change_reruns_ingest(pool: list[curate.Source], tmp_path: Path) -> None:
    out = tmp_path / "run"
    recipe(pool).run(out, progress=False)
    write_jsonl(tmp_path / "math.jsonl", [*MATH, {"problem": "New?", "solution": r"\boxed{1}"}])
    run = recipe(pool).run(out, progress=False)
    assert run.manifest["stages"][0]["rows_in"] == len(MATH) + len(GSM8K) + 1


def test_same_inputs_give_byte_identical_parquet(pool: list[curate.Source], tmp_path: Path) -> None:
    a = recipe(pool).run(tmp_path / "a", progress=False)
    b = recipe(pool).run(tmp_path / "b", progress=False, force=True)
    files_a = sorted(p.relative_to(a.path) for p in a.path.rglob("*.parquet"))
    files_b = sorted(p.relative_to(b.path) for p in b.path.rglob("*.parquet"))
    assert files_a == files_b and len(files_a) == 6
    for rel in files_a:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes(), rel


def test_interrupted_stage_is_not_presented_as_finished(
    pool: list[curate.Source], tmp_path: Path
) -> None:
    @dataclass(frozen=True)
    class Crash(Stage):
        crash: bool = True

        def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame:
            if self.crash:
                raise KeyboardInterrupt
            return rows

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        recipe(pool, curate.ExactDedup(), Crash()).run(out, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["error"] == "KeyboardInterrupt: "
    assert [s["name"] for s in manifest["stages"]] == ["ingest", "exact_dedup"]
    assert not any(p.name.startswith("02-") for p in (out / "stages").iterdir())
    with pytest.raises(curate.RunError, match="not complete"):
        curate.open_run(out).table("problems")
    expected = "the run is interrupted (KeyboardInterrupt: ); its tables stop at stage "
    expected += "'exact_dedup', not at the recipe's last stage 'crash'"
    assert curate.open_run(out).notice() == f"{out}: {expected}"
    with pytest.warns(curate.RunWarning, match="its tables stop at stage 'exact_dedup'"):
        curate.open_run(out).sql("SELECT count(*) FROM problems")
    info = cli.invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and expected in info.output, info.output
    answer = cli.invoke(app, ["sql", str(out), "SELECT count(*) AS n FROM problems"])
    assert answer.exit_code == 0 and f"warning: {out}: {expected}" in answer.stderr
    # resume: finished stages are reused, the interrupted one runs
    run = recipe(pool, curate.ExactDedup(), Crash(crash=False)).run(out, progress=False)
    assert run.complete and run.manifest["stages"][1] == manifest["stages"][1]
    assert run.notice() is None and "error" not in run.manifest


def test_bad_input_fails_clearly_and_writes_no_stage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "ok", "answer": "1"}\n{"problem": "broken"\n')
    with pytest.raises(curate.InputError, match=r"bad\.jsonl.*line 2"):
        curate.Recipe("r", [curate.read(bad)]).run(tmp_path / "run", progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "line 2" in manifest["error"]
    assert manifest["stages"] == [] and not list((tmp_path / "run" / "stages").glob("*"))


def test_recipe_checks(pool: list[curate.Source], tmp_path: Path) -> None:
    with pytest.raises(curate.ConfigError, match="unique"):
        curate.Recipe("r", [pool[0], pool[0]]).run(tmp_path / "x", progress=False)
    with pytest.raises(curate.ConfigError, match="no sources"):
        curate.Recipe("r", []).run(tmp_path / "x", progress=False)
    with pytest.raises(curate.ConfigError, match="not a curate stage"):
        curate.Recipe("r", pool, [lambda df: df]).run(tmp_path / "x", progress=False)  # type: ignore[list-item]
    names = curate.Recipe("r", pool, [curate.SQLFilter("true"), curate.SQLFilter("1=1")])
    assert names.stage_names() == ["ingest", "sql_filter", "sql_filter_2"]


def test_open_run_errors(tmp_path: Path) -> None:
    with pytest.raises(curate.RunError, match="not a curate run"):
        curate.open_run(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(curate.RunError, match="not valid JSON"):
        curate.open_run(tmp_path)


def test_concurrent_run_is_refused(pool: list[curate.Source], tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(curate.RunError, match="another run"):
            recipe(pool).run(out, progress=False)
