"""The toy arithmetic task and the tiny model trained on it."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from curate.errors import ConfigError
from curate.toy import toy_model, toy_problems, unseen_problems, wrong_answer
from curate.verification import verify


def test_problems_are_deterministic_and_right() -> None:
    rows = toy_problems(200, seed=4)
    assert rows == toy_problems(200, seed=4)
    assert rows != toy_problems(200, seed=5)
    assert toy_problems(50, seed=4) == rows[:50]
    assert len({r["id"] for r in rows}) == 200
    assert {r["level"] for r in rows} == {"1", "2", "3"}
    for r in rows:
        m = re.fullmatch(r"What is (\d+) ([+-]) (\d+)\?", r["problem"])
        assert m is not None
        a, op, b = int(m[1]), m[2], int(m[3])
        assert len(str(max(a, b))) == int(r["level"])
        assert int(r["answer"]) == (a + b if op == "+" else a - b) >= 0
        assert verify(r["answer"], r["solution"]).equivalent
        assert r["solution"].startswith("<think>")


def test_problem_options() -> None:
    rows = toy_problems(30, levels=[1], ops=["-"])
    assert {r["level"] for r in rows} == {"1"} and all(" - " in r["problem"] for r in rows)
    with pytest.raises(ConfigError, match="levels"):
        toy_problems(3, levels=[4])
    with pytest.raises(ConfigError, match="ops"):
        toy_problems(3, ops=["*"])
    assert all(" - " in r["problem"] for r in unseen_problems(rows, 5, ops=["-"]))


def test_wrong_answer_is_graded_wrong() -> None:
    rng = random.Random(1)
    for row in toy_problems(20, seed=2) + toy_problems(20, seed=2, task="columns"):
        bad = wrong_answer(row, rng)
        assert bad["answer"] == row["answer"] and bad["id"] == row["id"]
        assert not verify(row["answer"], bad["solution"]).equivalent


def test_column_task_writes_each_column_and_its_carry(tmp_path: Path) -> None:
    rows = toy_problems(200, seed=4, task="columns")
    assert rows == toy_problems(200, seed=4, task="columns")
    assert {r["level"] for r in rows} == {"1", "2", "3"}
    assert len({r["id"] for r in rows} | {r["id"] for r in toy_problems(200, seed=4)}) == 400
    for r in rows:
        m = re.fullmatch(r"What is (\d+) \+ (\d+)\?", r["problem"])
        assert m is not None and int(r["answer"]) == int(m[1]) + int(m[2])
        assert verify(r["answer"], r["solution"]).equivalent
        # one step per column, ones first; a carry into a column is written as "+1"
        steps = re.fullmatch(r"<think>(.*)</think>.*", r["solution"])[1].split(" ")  # type: ignore[index]
        assert len(steps) == int(r["level"])
        carry = 0
        for step, x, y in zip(steps, reversed(m[1]), reversed(m[2]), strict=True):
            total = int(x) + int(y) + carry
            assert step == f"{x}+{y}{'+1' if carry else ''}={total}"
            carry = total // 10
    assert toy_problems(1, seed=3, levels=[2], task="columns")[0]["solution"] == (
        "<think>3+8=11 9+6+1=16</think> The answer is \\boxed{161}."
    )
    with pytest.raises(ConfigError, match="addition only"):
        toy_problems(3, task="columns", ops=["+", "-"])
    with pytest.raises(ConfigError, match="task"):
        toy_problems(3, task="proofs")  # type: ignore[arg-type]
    # a toy model of the column task has a cache key of its own, and says which task it learnt
    path = toy_model(tmp_path / "m", steps=2, task="columns")
    assert json.loads((path / "curate-toy.json").read_text())["settings"]["task"] == "columns"


def test_import_is_light() -> None:
    code = "import sys, curate.toy; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_is_reused_not_retrained(tmp_path: Path) -> None:
    path = toy_model(tmp_path / "m", steps=2)
    weights = path / "model.safetensors"
    marker = json.loads((path / "curate-toy.json").read_text())
    assert marker["settings"]["steps"] == 2 and marker["train_seconds"] > 0
    stamp = weights.stat().st_mtime_ns
    assert toy_model(tmp_path / "m", steps=2) == path
    assert weights.stat().st_mtime_ns == stamp  # not retrained
    # other settings: the old toy model is replaced
    toy_model(tmp_path / "m", steps=3)
    assert json.loads((path / "curate-toy.json").read_text())["settings"]["steps"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary directories left
    # training is deterministic for a seed: the same weights, bit for bit
    again = toy_model(tmp_path / "again", steps=3)
    assert (again / "model.safetensors").read_bytes() == weights.read_bytes()
    for name in ("config.json", "generation_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (path / name).is_file()


def test_model_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="does not hold a toy model"):
        toy_model(tmp_path, steps=1)
    with pytest.raises(ConfigError, match="steps"):
        toy_model(tmp_path / "x", steps=0)


def test_default_path_is_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = toy_model(steps=1)
    assert path.parent == tmp_path / "curate" and path.name.startswith("toy-")
    assert toy_model(steps=1) == path
    assert toy_model(steps=1, seed=1) != path


def test_tokenizer_and_template(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    path = toy_model(tmp_path / "m", steps=1)
    tok = transformers.AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is 3 + 4?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nWhat is 3 + 4?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    anything = "Ünïcode ∑ 日本\t\\boxed{42}."
    assert tok.decode(tok(anything)["input_ids"]) == anything
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] == 64
    assert json.loads((path / "generation_config.json").read_text())["eos_token_id"] == (
        tok.eos_token_id
    )


def test_trained_model_solves_some_problems(toy_dir: Path) -> None:
    """Sampled at temperature 0.6, a toy model trained for 300 steps (20 s) is right on some
    problems and wrong on others, and on easy problems more often than on hard ones."""
    from curate.generate.base import Request, Sampling
    from curate.generate.hf import HFGenerator

    rows = toy_problems(90, seed=11)
    requests = [
        Request([{"role": "user", "content": r["problem"]}], seed=i) for i, r in enumerate(rows)
    ]
    g = HFGenerator(str(toy_dir), batch_size=32, threads=1)
    out = g.generate(requests, Sampling(temperature=0.6, max_tokens=40))
    by_level: dict[str, list[bool]] = defaultdict(list)
    for r, (c,) in zip(rows, out, strict=True):
        by_level[r["level"]].append(c.correctable and verify(r["answer"], c.text).equivalent)
    rate = {k: sum(v) / len(v) for k, v in by_level.items()}
    overall = sum(sum(v) for v in by_level.values()) / len(rows)
    assert 0 < overall < 1, rate
    assert rate["1"] > rate["3"], rate
