"""The recipes of recipes/, end to end through ``curate run``, at their smallest toy scale
(``CURATE_TOY_SCALE=tiny``), and the recipe file's ``then(run, out)`` hook of ``curate run``.

The toy models come from the default cache (`curate.toy.toy_model`): trained once per
machine (about a minute), reused after.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
runner = CliRunner()


def _then_recipe(tmp_path: Path, then: str) -> Path:
    data = tmp_path / "p.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2"}\n')
    path = tmp_path / "recipe.py"
    path.write_text(
        "import curate\n"
        f"recipe = curate.Recipe('r', [curate.read({str(data)!r})], [curate.ExactDedup()])\n"
        f"{then}\n"
    )
    return path


def test_run_calls_then_after_the_recipe_unless_no_then(tmp_path: Path) -> None:
    recipe = _then_recipe(
        tmp_path,
        "def then(run, out):\n    (out / 'then.txt').write_text(f'{run.name} {run.complete}')\n",
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "-q", "--no-then"])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").exists() and not (out / "then.txt").exists()
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "then.txt").read_text() == "r True"


def test_run_refuses_a_then_that_is_not_a_function(tmp_path: Path) -> None:
    recipe = _then_recipe(tmp_path, "then = 3")
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    assert "then(run, out)" in result.output


def test_run_reports_a_curate_error_raised_by_then(tmp_path: Path) -> None:
    recipe = _then_recipe(
        tmp_path,
        "from curate.errors import ConfigError\n"
        "def then(run, out):\n"
        "    raise ConfigError('no model to train')\n",
    )
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2
    assert "error: no model to train" in result.output


def _scores(out: Path) -> dict:
    summary = json.loads((out / "then.json").read_text())
    for row in summary["scores"].values():
        for score in row.values():
            assert 0 <= score["pass@1"] <= 1 and score["ci95"] >= 0
    return summary


@pytest.mark.slow
def test_deepdistill_recipe_curates_trains_and_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    for name in ("CURATE_MODELS", "CURATE_STUDENT", "CURATE_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "dd"
    result = runner.invoke(app, ["run", str(RECIPES / "deepdistill.py"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = _scores(out)
    assert list(summary["scores"]) == ["before", "stage1", "stage2"]
    assert all(set(row) == {"heldout", "trained"} for row in summary["scores"].values())
    for stage in ("stage1", "stage2"):
        assert (out / "train" / stage / "model" / "config.json").exists()
        assert summary["steps"][stage] >= 1 and summary["rows"][stage] >= 1
    # Stage II anneals on a subset of Stage I's problems
    assert summary["rows"]["stage2"] <= summary["rows"]["stage1"]
    assert (out / "export" / "sft" / "export.json").exists()
    pool = {json.loads(line)["problem"] for line in (ROOT / "runs" / "toy_pool_40.jsonl").open()}
    held = [json.loads(line)["problem"] for line in (out / "heldout.jsonl").open()]
    assert held and not pool & set(held)
    assert "pass@1" in result.output and "stage2" in result.output


@pytest.mark.slow
def test_deepscaler_toy_recipe_runs_grpo_and_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    monkeypatch.setenv("CURATE_POOL", "toy")
    for name in ("CURATE_MODEL", "CURATE_MAX_STEPS"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "ds"
    result = runner.invoke(app, ["run", str(RECIPES / "deepscaler.py"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = _scores(out)
    assert list(summary["scores"]) == ["before", "after"]
    assert summary["steps"] == 4 and summary["model"] == "toy-weak"
    assert (out / "train" / "grpo" / "model" / "config.json").exists()
    assert (out / "export" / "verl" / "export.json").exists()


def test_deepscaler_without_a_model_says_how_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    monkeypatch.setenv("CURATE_POOL", "toy")
    monkeypatch.setenv("CURATE_MODEL", "")  # as for the demo pool, where it is unset
    out = tmp_path / "ds"
    result = runner.invoke(app, ["run", str(RECIPES / "deepscaler.py"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "CURATE_MODEL=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" in result.output
    assert not (out / "then.json").exists() and not (out / "train").exists()
    assert (out / "export" / "verl" / "export.json").exists()


def test_no_then_stops_a_training_recipe_after_curation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    monkeypatch.setenv("CURATE_POOL", "toy")
    monkeypatch.delenv("CURATE_MODEL", raising=False)  # the toy pool would train toy-weak
    out = tmp_path / "ds"
    args = ["run", str(RECIPES / "deepscaler.py"), "--out", str(out), "-q", "--no-then"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "then:" not in result.output
    assert not (out / "then.json").exists() and not (out / "train").exists()
    assert (out / "export" / "verl" / "export.json").exists()


@pytest.mark.slow
def test_less_toy_recipe_selects_trains_and_evaluates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    monkeypatch.setenv("CURATE_POOL", "toy")
    for name in ("CURATE_METHOD", "CURATE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "less"
    result = runner.invoke(app, ["run", str(RECIPES / "less.py"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = _scores(out)
    assert summary["method"] == "influence" and list(summary["scores"]) == ["before", "after"]
    assert summary["selected"] == 12 and summary["scored"] == 120  # 10% of 3 skills x 40
    assert (out / "train" / "sft" / "model" / "config.json").exists()


@pytest.mark.slow
def test_jiuzhang_toy_recipe_distils_boosts_synthesizes_and_cleans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl")
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    for name in ("CURATE_TEACHER", "CURATE_SYNTH_MODEL", "CURATE_TEXTS", "CURATE_POOL"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "jz"
    result = runner.invoke(app, ["run", str(RECIPES / "jiuzhang.py"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    made = summary["synthesis"]
    assert made["kd1"]["toy-teacher"]["calls"] == 80  # one call per sampled text
    assert sum(made["kd1"]["outputs"].values()) == 80 and made["kd1"]["outputs"]["ok"] < 80
    assert summary["boost"]["selected"] == 8 and summary["boost"]["texts_chosen"] >= 1
    assert made["kd2"]["texts"] == summary["boost"]["texts_chosen"]  # the teacher, again
    assert made["final"]["outputs"].get("ok", 0) > 0  # the boosted small model writes problems
    # the teacher's planted copies never reach the small model's training set
    removed = summary["removed"]["kd1"]
    assert removed.get("decontaminate:contamination", 0) >= 1
    assert summary["kept"]["synthetic"] >= 1 and summary["kept"]["pool"] >= 1
    for fmt in ("sft", "rl"):
        assert (out / "final" / "export" / fmt / "export.json").exists()

    import curate

    final = curate.Run(out / "final")
    texts = curate.read(RECIPES.parent / "data" / "demo" / "math_texts.jsonl", kind="documents")
    ids = set(texts.frame()["id"].str.replace("^math_texts:", "texts:").to_list())
    rows = final.sql(
        "SELECT json_extract_string(meta, '$.text_id') AS text_id, "
        "json_extract_string(meta, '$.model') AS model, "
        "json_extract_string(meta, '$.prompt_version') AS version "
        "FROM problems WHERE source = 'synthetic'"
    )
    assert set(rows["model"]) == {"synth2"} and rows["version"].str.starts_with("custom-").all()
    assert set(rows["text_id"]) <= ids  # every synthetic row traces to a text of the corpus


@pytest.mark.slow
def test_deepseekmath_recipe_mines_cleans_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("fasttext")
    monkeypatch.setenv("CURATE_TOY_SCALE", "tiny")
    for name in ("CURATE_POOL", "CURATE_SEEDS", "CURATE_PATHS", "CURATE_TOKENIZER"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "dsm"
    result = runner.invoke(app, ["run", str(RECIPES / "deepseekmath.py"), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output

    import curate

    run = curate.Run(out)
    stats = run.manifest["sources"][0]["stats"]
    first, second = stats["iterations"]
    assert first["added_seeds"] > 0 and second["seeds"] == first["seeds"] + first["added_seeds"]
    assert stats["collected"] == run.manifest["stages"][0]["rows_in"]
    kept = run.sql("SELECT url FROM documents")["url"]
    assert kept.str.contains("stackexchange.com|mathoverflow.net").mean() > 0.8
    assert (out / "mine" / "iter-2" / "domains.parquet").exists()
    export = json.loads((out / "export" / "pretrain" / "export.json").read_text())
    assert export["rows"] == kept.len() and export["tokens"] > export["rows"]
