"""The command line, end to end through typer's runner and one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from curate.cli import app

runner = CliRunner()


@pytest.fixture
def gsm8k(tmp_path: Path) -> Path:
    path = tmp_path / "gsm8k.jsonl"
    rows = [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
        {"question": "Tom has 3 apples and buys 4.  How many?", "answer": "#### 7"},
        {"question": "What is 10*10?", "answer": "#### 100"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ingest_sql_info(gsm8k: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "ingest",
            str(gsm8k),
            "--out",
            str(out),
            "--map",
            "problem=question",
            "--map",
            "solution=answer",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["sql", str(out), "SELECT answer FROM problems ORDER BY id", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["answer", "7", "7", "100"]
    result = runner.invoke(
        app, ["sql", str(out), "SELECT count(*) AS n FROM problems", "--format", "json"]
    )
    assert json.loads(result.output) == {"n": 3}
    result = runner.invoke(app, ["info", str(out)])
    assert result.exit_code == 0 and "ingest" in result.output and "gsm8k" in result.output


def test_ingest_bad_map_and_bad_sql(gsm8k: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["ingest", str(gsm8k), "--out", str(tmp_path / "r"), "--map", "question"]
    )
    assert result.exit_code == 2 and "FIELD=COLUMN" in result.output
    result = runner.invoke(
        app, ["ingest", str(gsm8k), "--out", str(tmp_path / "r"), "--map", "problem=nope"]
    )
    assert result.exit_code == 2 and "nope" in result.output
    runner.invoke(
        app,
        ["ingest", str(gsm8k), "--out", str(tmp_path / "ok"), "-q", "--map", "problem=question"],
    )
    result = runner.invoke(app, ["sql", str(tmp_path / "ok"), "SELEC nonsense"])
    assert result.exit_code == 2 and "SQL error" in result.output
    result = runner.invoke(app, ["info", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_run_recipe_file(gsm8k: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "import curate\n"
        f"src = curate.read({str(gsm8k)!r}, problem='question', solution='answer')\n"
        "recipe = curate.Recipe('t', [src], [curate.RequireGradable(), curate.ExactDedup()])\n"
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "exact_dedup" in result.output and "curate sql" in result.output
    (tmp_path / "empty.py").write_text("x = 1\n")
    result = runner.invoke(app, ["run", str(tmp_path / "empty.py"), "--out", str(out)])
    assert result.exit_code == 2 and "must define a variable `recipe" in result.output


def test_verify_single(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", r"\frac{1}{2}", "0.5"])
    assert result.exit_code == 0 and result.stdout.strip() == "equivalent (numeric)"
    result = runner.invoke(app, ["verify", "3", "4"])
    assert result.exit_code == 1 and result.stdout.startswith("different")
    result = runner.invoke(app, ["verify", "3"])
    assert result.exit_code == 2
    # a whole response: the answers read are shown
    result = runner.invoke(app, ["verify", "7", "<think>hm</think> So the answer is $7$."])
    assert result.exit_code == 0 and "pred: 7" in result.output
    # could not decide: exit 2, and the status says why
    result = runner.invoke(app, ["verify", "7", "<think>3 + 4 = 7, so"])
    assert result.exit_code == 2 and result.stdout.startswith("no_answer")
    result = runner.invoke(app, ["verify", r"\frac{1}{", "0.5", "--json"])
    verdict = json.loads(result.stdout)
    assert result.exit_code == 2 and verdict["status"] == "gold_unparseable", verdict
    # options
    result = runner.invoke(app, ["verify", "3.14159", r"\pi"])
    assert result.exit_code == 1
    result = runner.invoke(app, ["verify", "3.14159", r"\pi", "--rel-tol", "1e-5"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", r"50\%", "50", "--percent", "value"])
    assert result.exit_code == 1
    result = runner.invoke(app, ["verify", "1", "1", "--percent", "nonsense"])
    assert result.exit_code == 2 and "percent" in result.output
    # a check past its time limit is not "different": exit 2, status timeout
    result = runner.invoke(app, ["verify", "1000000!", "1", "--timeout", "0.5"])
    assert result.exit_code == 2 and result.stdout.startswith("timeout"), result.output


def test_verify_pairs(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"gold": "\\\\frac{1}{2}", "pred": "0.5"}\n{"gold": 3, "pred": "4"}\n\n'
        '{"gold": "x+1", "pred": "1+x"}\n'
        '{"gold": "1"}\nnot json\n[1, 2]\n{"gold": "1", "pred": ["a"]}\n'
        '{"gold": "7", "pred": "The answer is 7.<|im_end|>"}\n'
    )
    result = runner.invoke(app, ["verify", "--pairs", str(pairs)])
    assert result.exit_code == 0, result.output
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    # one verdict per line, in order, the malformed ones included
    assert [v["line"] for v in verdicts] == list(range(1, 10))
    assert [v["status"] for v in verdicts] == [
        "equivalent",
        "different",
        "error",
        "equivalent",
        "error",
        "error",
        "error",
        "error",
        "equivalent",
    ]
    assert [v["reason"] for v in verdicts[:4]] == ["numeric", "numeric", "bad_input", "symbolic"]
    assert "line 5" in verdicts[4]["detail"] and "'pred': missing" in verdicts[4]["detail"]
    assert "not valid JSON" in verdicts[5]["detail"] and "line 6" in verdicts[5]["detail"]
    assert "expected a string or number, got list" in verdicts[7]["detail"]
    assert verdicts[8]["pred"] == "7"
    assert "equivalent: 3" in result.stderr and "error: 5" in result.stderr
    missing = runner.invoke(app, ["verify", "--pairs", str(tmp_path / "missing.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_console_script_exit_codes() -> None:
    exe = Path(sys.executable).with_name("curate")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "curate.cli"]
    done = subprocess.run([*cmd, "verify", "2", "2.0"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "equivalent (numeric)"
    done = subprocess.run([*cmd, "verify", "2", "3"], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout.strip() == "different (numeric)"
    done = subprocess.run([*cmd, "verify", "2", "I give up."], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout.startswith("no_answer")


def test_export_report_and_publish_dry_run(gsm8k: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["ingest", str(gsm8k), "--out", str(out), "--map", "problem=question"]
    )
    assert result.exit_code == 0, result.output
    shards = tmp_path / "export"
    result = runner.invoke(
        app, ["export", str(out), str(shards), "--format", "verl", "--shard-rows", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "train: 3 rows in 2 shard(s)" in result.output
    assert sorted(p.name for p in (shards / "data").iterdir()) == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    assert (shards / "README.md").read_text().startswith("---\n")
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0 and (out / "report" / "README.md").is_file()
    result = runner.invoke(app, ["publish", str(shards), "--repo", "me/math", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "data/train-00001-of-00002.parquet" in result.output and "me/math" in result.output
    bad = runner.invoke(app, ["export", str(out), str(tmp_path / "x"), "--format", "sft"])
    assert bad.exit_code == 2 and "error:" in bad.output  # no responses: sft is refused
    wrong = runner.invoke(app, ["export", str(out), str(tmp_path / "y"), "--format", "csv"])
    assert wrong.exit_code == 2 and "expected one of" in wrong.output


def test_export_sft_of_reference_solutions(tmp_path: Path) -> None:
    pool = tmp_path / "math.jsonl"
    rows = [
        {"problem": "What is 1 + 1?", "solution": "One and one: $\\boxed{2}$."},
        {"problem": "What is 1 + 1?", "solution": "One and one: $\\boxed{2}$."},
        {"problem": "What is 2 + 2?", "answer": "4"},
        {"problem": "What is 3 + 3?", "solution": "$\\boxed{6}$"},
    ]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    assert runner.invoke(app, ["ingest", str(pool), "--out", str(run), "-q"]).exit_code == 0
    out = tmp_path / "sft"
    result = runner.invoke(
        app, ["export", str(run), str(out), "--format", "sft", "--completions", "solutions"]
    )
    assert result.exit_code == 0, result.output
    assert "train: 2 rows in 1 shard(s)" in result.output
    assert (
        "completions: solutions; 1 problem(s) without a solution left out; "
        "1 duplicate (prompt, completion) pair(s) dropped"
    ) in result.output
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["completions"]["without_solution"] == 1
    assert "reference solutions" in (out / "README.md").read_text()
    bad = runner.invoke(app, ["export", str(run), str(tmp_path / "x"), "--completions", "gold"])
    assert bad.exit_code == 2 and "expected one of" in bad.output
    bad = runner.invoke(
        app, ["export", str(run), str(tmp_path / "x"), "--format", "sft", "--completions", "both"]
    )
    assert bad.exit_code == 2 and "--completions solutions" in bad.output


def test_version_and_plain_help() -> None:
    from curate import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"curate {__version__}\n"
    for command in (["run"], ["export"], ["train", "sft"], ["publish"]):
        text = runner.invoke(app, [*command, "--help"]).output
        assert "<bool>" not in text and "--help" in text, text
    text = runner.invoke(app, ["run", "--help"]).output
    assert "--force / --no-force" in text and "'curate[ray]'" in text


def test_missing_run_folder_is_named(tmp_path: Path) -> None:
    for command in (["sql", str(tmp_path / "nope"), "SELECT 1"], ["info", str(tmp_path / "nope")]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2 and f"{tmp_path / 'nope'} does not exist" in result.output


def test_ingest_format_and_export_prompts(tmp_path: Path) -> None:
    pool = tmp_path / "pool.txt"  # a suffix that says nothing: --format does
    pool.write_text('{"problem": "What is 1 + 1?", "answer": "2"}\n')
    run = tmp_path / "run"
    result = runner.invoke(app, ["ingest", str(pool), "--out", str(run), "-q"])
    assert result.exit_code == 2 and "format" in result.output
    result = runner.invoke(app, ["ingest", str(pool), "--out", str(run), "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    assert "[1/1] ingest: 1 in, 1 kept, 0 rejected in " in result.stderr  # was [0/0]
    out = tmp_path / "rl"
    args = ["--format", "rl", "--system-prompt", "Be brief.", "--template", "Solve: {problem}"]
    result = runner.invoke(app, ["export", str(run), str(out), *args])
    assert result.exit_code == 0, result.output
    import polars as pl

    prompt = pl.read_parquet(out / "data").row(0, named=True)["prompt"]
    assert prompt == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Solve: What is 1 + 1?"},
    ]
    bad = runner.invoke(app, ["export", str(run), str(tmp_path / "x"), "--template", "no slot"])
    assert bad.exit_code == 2 and "{problem}" in bad.output
