"""The Perplexity filter on a real (tiny) causal LM: curate.toy's model, trained in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from _factories import problems_frame

import curate
from curate.errors import ConfigError
from curate.perplexity import PERPLEXITY, Perplexity
from curate.run import apply_stage
from curate.toy import toy_problems

GIBBERISH = "Purple elephants juggle quantum marmalade beneath Tuesday's xylophone?"


@pytest.fixture(scope="module")
def toy() -> Path:
    pytest.importorskip("transformers")
    from curate.toy import toy_model

    return toy_model(steps=100)  # the answer format is learnt; cached between sessions


def frame(rows: list[tuple[str, str | None]]) -> pl.DataFrame:
    out = problems_frame([(p, "1") for p, _ in rows])
    return out.with_columns(pl.Series("solution", [s for _, s in rows], pl.String))


def test_the_toy_tasks_text_is_kept_and_gibberish_rejected(toy: Path) -> None:
    tasks = [(r["problem"], r["solution"]) for r in toy_problems(4, seed=1)]
    rows = frame([*tasks, (GIBBERISH, None), ("x", None)])
    kept, rejects = apply_stage(Perplexity(toy, threads=1), rows)
    assert kept["problem"].to_list() == [p for p, _ in tasks] + ["x"]
    values = kept[PERPLEXITY].to_list()
    assert all(1 < v < 20 for v in values[:4]) and values[4] is None  # one token: not scored
    assert rejects["reason"].to_list() == ["high_perplexity"]
    assert rejects["detail"][0].startswith("perplexity ") and rejects["detail"][0].endswith(
        "> 20.0"
    )


def test_batching_and_padding_do_not_change_the_values(toy: Path) -> None:
    rows = [[r["problem"], r["solution"]] for r in toy_problems(5, seed=2)]
    rows.append([GIBBERISH, None])
    one = Perplexity(toy, batch_size=1, threads=1).perplexities(rows)  # type: ignore[arg-type]
    many = Perplexity(toy, batch_size=6, threads=1).perplexities(rows)  # type: ignore[arg-type]
    assert one == pytest.approx(many, rel=1e-4)
    alone = Perplexity(toy, text_columns=("problem",), threads=1).perplexities([[rows[0][0]]])
    assert alone[0] != pytest.approx(one[0])  # the solution counts when present


def test_options_fingerprint_and_missing_columns(toy: Path) -> None:
    stage = Perplexity(toy, gpus=0.5, max_perplexity=None, chat=True)
    assert stage.num_gpus == 0.5 and Perplexity(toy).num_gpus == 0.0
    assert Perplexity(toy).describe() == Perplexity(toy, batch_size=2, device="cpu").describe()
    assert Perplexity(toy).describe() != Perplexity(toy, max_tokens=64).describe()
    assert Perplexity(toy).describe()["weights"]
    rows = problems_frame([(GIBBERISH, "1")]).drop("solution")  # a table without solutions
    kept, rejects = apply_stage(stage, rows)  # max_perplexity=None: score only
    assert rejects.height == 0 and kept[PERPLEXITY][0] > 20
    for bad in ({"max_perplexity": 0}, {"batch_size": 0}, {"max_tokens": 1}, {"gpus": -1}):
        with pytest.raises(ConfigError):
            Perplexity(toy, **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no such folder"):
        Perplexity(toy / "nope")


def test_import_curate_does_not_import_torch() -> None:
    code = "import sys, curate, curate.perplexity; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_in_a_recipe(toy: Path, tmp_path: Path) -> None:
    path = tmp_path / "pool.jsonl"
    rows = [*toy_problems(3, seed=4), {"problem": GIBBERISH, "answer": "1"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = curate.read(path, source="toy")
    run = curate.Recipe("ppl", [source], [Perplexity(toy, threads=1)]).run(
        tmp_path / "run", progress=False
    )
    assert run.sql("SELECT count(*) FROM problems WHERE perplexity < 20").item() == 3
    assert run.sql("SELECT reason FROM rejects")["reason"].to_list() == ["high_perplexity"]
