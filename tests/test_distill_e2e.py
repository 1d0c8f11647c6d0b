"""Distill → Grade → Stage I with real generation: a toy model trained during the test
session on an arithmetic task (`curate.toy`), run through transformers; and a distillation
killed with SIGKILL part-way, then resumed.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

import curate
from curate.responses import read_responses

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.toy import toy_model

    return toy_model(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.toy import toy_problems

    path = tmp_path_factory.mktemp("pool") / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in toy_problems(40, seed=3)))
    return path


def test_distill_grade_select_with_a_trained_toy_model(
    toy: Path, pool: Path, tmp_path: Path
) -> None:
    sampling = curate.Sampling(temperature=0.8, max_tokens=48)
    recipe = curate.Recipe(
        "toy",
        [curate.read(pool, source="toy")],
        [
            # the toy model was trained on bare problems: no instruction after them
            curate.Distill(
                curate.HFGenerator(str(toy), label="toy"),
                n=4,
                sampling=sampling,
                template="{problem}",
            ),
            curate.Grade(pass_at=(1, 4)),
            curate.DeepDistillStageI(easy_keep=1.0),
        ],
    )
    run = recipe.run(tmp_path / "run")
    graded = run.table("grade").collect()
    responses = read_responses(tmp_path / "run" / "responses")
    assert responses.height == 40 * 4
    assert set(responses["finish_reason"]) <= {"stop", "length"}
    rates = graded["pass_rate"]
    assert 0 < rates.mean() < 1, "pass rates must be neither all 0 nor all 1"  # type: ignore[operator]
    assert rates.n_unique() > 2
    # the table matches a recomputation from the stored responses
    for row in graded.iter_rows(named=True):
        mine = responses.filter(pl.col("problem_id") == row["id"])
        c = int(mine["correct"].sum())
        assert row["n_correct"] == c and row["pass_rate"] == pytest.approx(c / 4)
        if c:
            assert row["cv"] == pytest.approx(math.sqrt((1 - c / 4) / (c / 4)))
        else:
            assert row["cv"] is None
    final = run.table("problems").collect()
    dropped = run.table("rejects").collect()
    assert final.height + dropped.height == 40
    assert set(dropped["reason"]) <= {"no_passing_response"}
    assert dropped.height == (graded["n_correct"] == 0).sum()
    by_level = run.sql("SELECT level, avg(pass_rate) AS p FROM grade GROUP BY 1 ORDER BY 1")
    assert by_level.height >= 2


CHILD = """
import sys, curate
from curate.generate.hf import HFGenerator
pool, toy, out = sys.argv[1:4]
stage = curate.Distill(HFGenerator(toy, label="toy", batch_size=4), n=2, chunk=4,
                       template="{problem}",
                       sampling=curate.Sampling(temperature=0.8, max_tokens=32))
curate.Recipe("crash", [curate.read(pool, source="toy")], [stage]).run(out, progress=False)
"""


def test_a_killed_distillation_resumes_without_regenerating(
    toy: Path, pool: Path, tmp_path: Path
) -> None:
    out, script = tmp_path / "run", tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    parts = out / "responses"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    child = subprocess.Popen(
        [sys.executable, str(script), str(pool), str(toy), str(out)],
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(parts.glob("*.parquet"))) < 2:  # two parts written, more to come
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no response part appeared"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    before = {p.name: p.read_bytes() for p in parts.glob("*.parquet")}
    kept = read_responses(parts)
    assert 0 < kept.height < 40 * 2, "killed part-way"
    done = set(zip(kept["problem_id"], kept["sample"], strict=True))

    subprocess.run(
        [sys.executable, str(script), str(pool), str(toy), str(out)], env=env, check=True
    )

    after = {p.name: p.read_bytes() for p in parts.glob("*.parquet")}
    assert all(after[name] == data for name, data in before.items()), "a finished part changed"
    new = pl.concat([pl.read_parquet(parts / n) for n in after if n not in before])
    regenerated = done & set(zip(new["problem_id"], new["sample"], strict=True))
    assert not regenerated, f"{len(regenerated)} completed samples were generated again"
    final = read_responses(parts)
    assert final.height == 40 * 2 and final.select("problem_id", "sample").is_unique().all()
    assert not list(parts.glob(".*")), "a temporary file was left behind"
    run = curate.open_run(out)
    assert run.complete and run.stages[-1].stats["toy"]["cached"] == len(done)
