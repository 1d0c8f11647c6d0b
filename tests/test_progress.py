"""Progress where people look for it: lines in a log (no carriage returns), bars on a
terminal or in a notebook, nothing when asked; through `Recipe.run` and the real CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from _stages import EvenDigits

import curate
from curate import _progress
from curate._progress import LineProgress, ProgressBar, progress_bar, progress_mode


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATE_PROGRESS", raising=False)


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    path = tmp_path / "pool.jsonl"
    rows = [{"problem": f"What is {n} + {n}?", "answer": str(2 * n)} for n in range(20)]
    rows.append(rows[0])  # one exact duplicate
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mode_follows_stderr_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress_mode(None, Terminal()) == "bars"
    assert progress_mode(True, io.StringIO()) == "lines"  # a log file: whole lines
    assert progress_mode(False, Terminal()) == "off"
    monkeypatch.setenv("CURATE_PROGRESS", "0")
    assert progress_mode(None, Terminal()) == "off"
    assert progress_mode(True, Terminal()) == "bars"  # asked for explicitly
    monkeypatch.setenv("CURATE_PROGRESS", "lines")
    assert progress_mode(None, Terminal()) == "lines"
    monkeypatch.setenv("CURATE_PROGRESS", "bars")
    assert progress_mode(None, io.StringIO()) == "bars"


def test_a_notebook_gets_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    shell = type("ZMQInteractiveShell", (), {})()
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert progress_mode(None, io.StringIO()) == "bars"  # a kernel's stderr is no terminal
    fake.get_ipython = lambda: None  # type: ignore[attr-defined]  # plain python, IPython loaded
    assert progress_mode(None, io.StringIO()) == "lines"


def test_a_long_loop_in_a_log_prints_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    with progress_bar(3, "embedding", unit="text") as bar:  # pytest's stderr: not a terminal
        assert isinstance(bar._bar, LineProgress)
        bar.update(2)
        bar.update(1)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line.split(" in ")[0] for line in err.splitlines()]
    assert lines == [
        "  embedding: 2/3 texts (67%)",
        "  embedding: 3/3 texts done",  # the end: one line, not a 100% line and a done line
    ]
    monkeypatch.setenv("CURATE_PROGRESS", "0")
    assert not progress_bar(3, "x").shown
    assert isinstance(progress_bar(3, "x", enabled=False), ProgressBar)


def test_recipe_run_reports_lines_when_stderr_is_a_file(
    pool: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = curate.Recipe("p", [curate.read(pool)], [EvenDigits(), curate.ExactDedup()])
    recipe.run(tmp_path / "run")  # progress=None, stderr captured: not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0] == "[1/3] ingest ..."  # was [0/0]-style: 0-based, over the stages only
    assert lines[1].startswith("[1/3] ingest: 21 in, 21 kept, 0 rejected in ")
    assert "[2/3] even_digits ..." in lines
    assert any(line.startswith("  even_digits: 3/3 batches done in ") for line in lines)
    assert any(
        line.startswith("[3/3] exact_dedup: 11 in, 10 kept, 1 rejected (duplicate: 1) in ")
        for line in lines
    ), lines
    recipe.run(tmp_path / "run")
    assert "[2/3] even_digits: unchanged, skipped (11 kept)" in capsys.readouterr().err
    recipe.run(tmp_path / "run", progress=False)
    monkeypatch.setenv("CURATE_PROGRESS", "0")
    recipe.run(tmp_path / "run", force=True)
    assert capsys.readouterr().err == ""


def test_cli_log_has_lines_and_curate_messages(pool: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.py"
    recipe.write_text(
        "import logging\n"
        "import curate\n"
        "import sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from _stages import EvenDigits\n"
        "logging.getLogger('curate.toy').info('training the toy model (100 steps)')\n"
        f"recipe = curate.Recipe('p', [curate.read({str(pool)!r})], [EvenDigits()])\n"
    )
    cmd = [sys.executable, "-m", "curate.cli", "run", str(recipe), "--out", str(tmp_path / "r")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CURATE_", "TQDM_"))}
    with open(tmp_path / "log", "w") as log:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    err = (tmp_path / "log").read_text()
    assert done.returncode == 0, err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0] == f"reading {recipe} (its sources and models are set up now) ..."
    assert "training the toy model (100 steps)" in lines  # curate's log messages are shown
    assert "[1/2] ingest ..." in lines and "[2/2] even_digits ..." in lines
    quiet = subprocess.run([*cmd, "-q"], capture_output=True, text=True, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    silent = subprocess.run(
        cmd, capture_output=True, text=True, env={**env, "CURATE_PROGRESS": "0"}
    )
    assert silent.returncode == 0 and silent.stderr == "", silent.stderr
