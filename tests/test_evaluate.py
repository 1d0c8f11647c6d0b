"""`curate.evaluate` and ``curate eval``: the numbers against hand-computed values, the
output folder and its cache (resume, settings that must not reuse samples), bad input,
and real generation with the toy model through transformers and the command line."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _engines import Scripted
from typer.testing import CliRunner

from curate.cli import app
from curate.errors import ConfigError, InputError
from curate.evaluation import evaluate, make_generator
from curate.generate import Completion, Request, Sampling
from curate.generate.base import has_chat_template
from curate.passk import majority_correct, pass_at_k, powers_of_two, scores

runner = CliRunner()


# -- the numbers ------------------------------------------------------------------------


def test_pass_at_k_by_hand() -> None:
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(16, 4, 4) == pytest.approx(1 - math.comb(12, 4) / math.comb(16, 4))
    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 3, 2) == 1.0 and pass_at_k(4, 1, 1) == 0.25
    assert powers_of_two(1) == [1] and powers_of_two(16) == [1, 2, 4, 8, 16]
    assert powers_of_two(12) == [1, 2, 4, 8]


def test_majority_vote_grouping_and_ties() -> None:
    # every correct sample votes for the gold, however written: 2 votes against "3"'s 2,
    # and the gold's first vote (sample 0) came first
    assert majority_correct(["1/2", "3", "0.5", "3"], [True, False, True, False])
    assert not majority_correct(["3", "1/2", "3", "0.5"], [False, True, False, True])
    # wrong answers are grouped after normalization: \dfrac{1}{3} and \frac{1}{3} are one
    assert not majority_correct(
        ["\\dfrac{1}{3}", "0.5", "\\frac{1}{3}", "0.5"], [False, True, False, False]
    )  # "1/3" 2 votes; the gold 1 (sample 3's "0.5" is judged wrong, so it is not the gold)
    # samples without an answer do not vote; no votes at all is wrong
    assert majority_correct([None, None, "2"], [False, False, True])
    assert not majority_correct([None, ""], [False, False])
    # the first k samples only
    answers, right = ["5", "7", "7", "7"], [True, False, False, False]
    assert majority_correct(answers, right, k=1) and majority_correct(answers, right, k=2)
    assert not majority_correct(answers, right, k=3)


def test_scores_by_hand() -> None:
    def p(correct: list[bool], answers: list[str | None], finish: list[str]) -> dict[str, Any]:
        verdicts = [
            "truncated" if f == "length" else "no_answer" if a is None else "x"
            for a, f in zip(answers, finish, strict=True)
        ]
        return {"correct": correct, "answers": answers, "finish": finish, "verdicts": verdicts}

    problems = [
        p([True, True, True, True], ["1"] * 4, ["stop"] * 4),
        p([True, False, False, True], ["2", "9", "9", "2"], ["stop"] * 4),
        p([False, False, False, False], ["5", None, "4", "4"], ["stop", "stop", "length", "stop"]),
    ]
    s = scores(problems, 4)
    assert s["problems"] == 3 and s["samples"] == 12
    assert s["pass@1"] == pytest.approx(0.5)
    se = math.sqrt(((1 - 0.5) ** 2 + 0 + 0.25) / 2 / 3)  # per-problem 1, .5, 0
    assert s["pass@1_se"] == pytest.approx(se)
    assert s["pass@1_ci95"] == pytest.approx(1.96 * se, rel=1e-3)
    assert s["pass@2"] == pytest.approx((1 + (1 - 1 / 6) + 0) / 3)
    assert s["pass@4"] == pytest.approx(2 / 3)
    # maj@1: first samples right, right, wrong; maj@2: tie 2-9 -> 2 (first) right;
    # maj@4: 2 votes each, the gold first -> right; the third problem never
    assert s["maj@1"] == s["maj@2"] == s["maj@4"] == pytest.approx(2 / 3)
    assert s["truncated"] == pytest.approx(1 / 12) and s["no_answer"] == pytest.approx(1 / 12)
    assert s["errors"] == 0


# -- end to end with a scripted engine --------------------------------------------------


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def adds(tmp_path: Path) -> Path:
    pairs = [(1, 2), (3, 4), (10, 5), (7, 7), (20, 22)]
    rows = [{"question": f"What is {a} + {b}?", "answer": str(a + b)} for a, b in pairs]
    return write_jsonl(tmp_path / "adds.jsonl", rows)


def test_end_to_end_files_table_and_resume(adds: Path, tmp_path: Path) -> None:
    gen, out = Scripted(skill=0.5), tmp_path / "eval"
    result = evaluate(gen, adds, out=out, n=4, columns={"problem": "question"})
    assert gen.calls == [20]  # type: ignore[attr-defined]
    s = result.scores["adds"]
    assert s["problems"] == 5 and s["samples"] == 20
    assert 0 < s["pass@1"] < 1 and s["pass@1"] <= s["pass@2"] <= s["pass@4"]
    assert set(s) >= {"maj@1", "maj@2", "maj@4", "truncated", "no_answer", "all_truncated"}
    table = result.table()
    assert table.splitlines()[0].split()[:3] == ["benchmark", "problems", "samples"]
    assert "adds" in table and f"{100 * s['pass@1']:.1f}" in table and "maj@4" in table
    samples = pl.read_parquet(out / "samples.parquet")
    assert samples.equals(result.samples) and samples.height == 20
    assert {"benchmark", "problem_id", "sample", "prompt", "text", "finish_reason", "n_tokens",
            "extracted_answer", "verdict", "correct", "gold"} <= set(samples.columns)  # fmt: skip
    assert samples["correct"].mean() == pytest.approx(s["pass@1"])
    prompt = json.loads(samples["prompt"][0])
    assert prompt[-1]["content"].startswith("What is 1 + 2? Let's think step by step")
    assert samples["seed"].n_unique() == 20  # one seed per sample
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary, default=str))
    assert summary["settings"]["n"] == 4 and summary["settings"]["temperature"] == 0.6
    assert summary["model"] == "scripted" and summary["model_describe"]["class"] == "Scripted"
    assert summary["grader_version"] and summary["benchmarks"]["adds"]["pass@1"] == s["pass@1"]
    assert not summary["all_truncated"] and summary["warnings"] == []

    # the same again: nothing generated, the same numbers
    again = evaluate(gen, adds, out=out, n=4, columns={"problem": "question"})
    assert gen.calls == [20] and again.scores == result.scores  # type: ignore[attr-defined]
    # more samples: only the new ones; the old ones are kept as they were
    more = evaluate(gen, adds, out=out, n=8, columns={"problem": "question"})
    assert gen.calls == [20, 20]  # type: ignore[attr-defined]
    old = more.samples.filter(pl.col("sample") < 4).drop("benchmark_version")
    assert old.equals(result.samples.drop("benchmark_version"))
    # another temperature, seed or template: other samples, nothing reused
    for options in ({"temperature": 1.0}, {"seed": 1}, {"template": "Q: {problem}"}):
        evaluate(gen, adds, out=out, n=4, columns={"problem": "question"}, **options)
    assert gen.calls == [20, 20, 20, 20, 20]  # type: ignore[attr-defined]
    # a limit takes the first problems, from the cache
    short = evaluate(gen, adds, out=out, n=4, limit=2, columns={"problem": "question"})
    assert short.scores["adds"]["problems"] == 2 and len(gen.calls) == 5  # type: ignore[attr-defined]


def test_repeatable_seeds(adds: Path, tmp_path: Path) -> None:
    a = evaluate(Scripted(), adds, out=tmp_path / "a", n=3, columns={"problem": "question"})
    b = evaluate(Scripted(), adds, out=tmp_path / "b", n=3, columns={"problem": "question"})
    assert a.samples.equals(b.samples)


class Flaky:
    """A scripted engine that dies after ``budget`` calls (a crash part-way)."""

    def __init__(self, budget: int) -> None:
        self.inner, self.budget = Scripted(), budget
        self.model = "scripted"

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        if self.budget == 0:
            raise RuntimeError("engine died")
        self.budget -= 1
        return self.inner.generate(requests, sampling)

    def close(self) -> None:
        pass


def test_a_crash_keeps_finished_parts(adds: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    with pytest.raises(RuntimeError, match="engine died"):
        evaluate(Flaky(2), adds, out=out, n=4, chunk=6, columns={"problem": "question"})
    assert len(list((out / "cache").glob("*.parquet"))) == 2 and not (out / "summary.json").exists()
    resumed = Flaky(10)
    result = evaluate(resumed, adds, out=out, n=4, chunk=6, columns={"problem": "question"})
    assert resumed.inner.calls == [6, 2]  # type: ignore[attr-defined]  # 20 - 12 done
    fresh = evaluate(Scripted(), adds, out=tmp_path / "fresh", n=4, columns={"problem": "question"})
    assert result.samples.equals(fresh.samples)  # the same samples, however the run went


def test_truncated_failed_and_unanswered_samples(tmp_path: Path) -> None:
    rows = [
        {"problem": "TRUNCATE What is 1 + 1?", "answer": "2"},
        {"problem": "FAIL 1 + 1", "answer": "2"},
        {"problem": "MUMBLE 2 + 2", "answer": "4"},
    ]
    path = write_jsonl(tmp_path / "odd.jsonl", rows)
    gen = Scripted()
    with pytest.warns(UserWarning, match="failed"):
        result = evaluate(gen, path, out=tmp_path / "e", n=2)
    s = result.scores["odd"]
    assert s["truncated"] == pytest.approx(1 / 3) and s["errors"] == pytest.approx(1 / 3)
    assert s["no_answer"] == pytest.approx(1 / 3) and s["pass@1"] == 0
    verdicts = dict(result.samples.select("problem_id", "verdict").unique().iter_rows())
    assert sorted(verdicts.values()) == ["generation_error", "no_answer", "truncated"]
    with pytest.warns(UserWarning):
        evaluate(gen, path, out=tmp_path / "e", n=2)
    assert gen.calls == [6, 2]  # type: ignore[attr-defined]  # failed ones are tried again

    every = write_jsonl(tmp_path / "long.jsonl", [rows[0]])
    with pytest.warns(UserWarning, match="every sample was cut at max_tokens=7"):
        result = evaluate(gen, every, out=tmp_path / "l", n=2, max_tokens=7)
    assert result.scores["long"]["all_truncated"] and result.summary["all_truncated"]
    assert "WARNING: long: every sample was cut" in result.table()


def test_bundled_benchmarks_by_name(tmp_path: Path) -> None:
    result = evaluate(Scripted(), ["aime24", "gsm8k"], out=tmp_path / "e", n=1, limit=3)
    assert list(result.scores) == ["aime24", "gsm8k"]
    assert result.scores["aime24"]["problems"] == 3  # one wording per item id
    assert result.samples["problem_id"].n_unique() == 6
    assert result.summary["benchmarks"]["gsm8k"]["version"]
    with pytest.warns(UserWarning, match="gaokao2023en: 2 item.s. without a gold answer"):
        result = evaluate(Scripted(), "gaokao2023en", out=tmp_path / "e", n=1, limit=1)
    assert "without a gold answer" in result.summary["warnings"][0]


def test_bad_input(adds: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown benchmark 'nope'.*math500"):
        evaluate(Scripted(), "nope", out=tmp_path / "e")
    bare = write_jsonl(tmp_path / "bare.jsonl", [{"problem": "What is 1 + 1?"}])
    with pytest.raises(InputError, match=r"bare.jsonl.*no gold answers.*answer"):
        evaluate(Scripted(), bare, out=tmp_path / "e")
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"problem": "What is 1 + 1?", "gold": None}])
    with pytest.raises(InputError, match=r"empty.jsonl.*'gold'.*--map answer=COLUMN"):
        evaluate(Scripted(), empty, out=tmp_path / "e", columns={"answer": "gold"})
    with pytest.raises(InputError, match=r"adds.jsonl.*'gold'.*available columns"):
        evaluate(Scripted(), adds, out=tmp_path / "e", columns={"answer": "gold"})
    with pytest.raises(ConfigError, match="no \\{problem\\}"):
        evaluate(Scripted(), adds, out=tmp_path / "e", template="Solve it.")
    with pytest.raises(ConfigError, match="n=0"):
        evaluate(Scripted(), adds, out=tmp_path / "e", n=0)
    base = tmp_path / "base-model"
    base.mkdir()
    (base / "config.json").write_text("{}")
    (base / "tokenizer_config.json").write_text('{"eos_token": "</s>"}')
    assert not has_chat_template(base)
    with pytest.raises(ConfigError, match=r"no chat template.*--no-chat"):
        evaluate(str(base), adds, out=tmp_path / "e")
    assert make_generator(str(base), chat=False).describe()["backend"] == "hf"
    with pytest.raises(ConfigError, match="engine='tgi'"):
        make_generator(str(base), engine="tgi")  # type: ignore[arg-type]
    openai = make_generator("served", engine="openai", base_url="http://h:1/v1", chat=False)
    assert openai.describe()["endpoint"] == "completions"


# -- real generation: the toy model -----------------------------------------------------


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate.toy import toy_problems

    path = tmp_path_factory.mktemp("toy") / "toy.jsonl"
    return write_jsonl(path, toy_problems(4, seed=5, levels=[1]))


def test_toy_model_through_transformers(toy_dir: Path, toy_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from curate.generate.hf import HFGenerator

    gen = HFGenerator(str(toy_dir), label="toy", threads=1, batch_size=8)
    out = tmp_path / "eval"
    # the toy model was trained on the bare question: no instruction after it
    settings: dict[str, Any] = {"n": 2, "max_tokens": 24, "template": "{problem}"}
    result = evaluate(gen, toy_file, out=out, **settings)
    samples = result.samples
    assert samples.height == 8 and set(samples["finish_reason"]) <= {"stop", "length"}
    assert samples["extracted_answer"].null_count() <= 2, samples["text"].to_list()
    assert result.summary["model_describe"]["weights"] is not None
    parts = sorted((out / "cache").glob("*.parquet"))
    again = evaluate(gen, toy_file, out=out, **settings)
    assert sorted((out / "cache").glob("*.parquet")) == parts and again.samples.equals(samples)
    with pytest.warns(UserWarning, match="every sample was cut"):
        cut = evaluate(gen, toy_file, out=out, n=1, max_tokens=2, limit=2)
    assert cut.summary["all_truncated"]
    gen.close()


def test_cli_eval_json(toy_dir: Path, toy_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["eval", str(toy_dir), "-b", str(toy_file), "--n", "2", "--max-tokens", "24"]
    args += ["--template", "{problem}"]
    result = runner.invoke(app, [*args, "--limit", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["benchmarks"]["toy"]["problems"] == 2 and summary["settings"]["n"] == 2
    assert (out / "samples.parquet").is_file()
    table = runner.invoke(app, [*args, "--limit", "2", "--out", str(out), "-q"])
    assert table.exit_code == 0 and table.stdout.splitlines()[0].startswith("benchmark")
    bad = runner.invoke(app, ["eval", str(toy_dir), "-b", "nope", "--out", str(out)])
    assert bad.exit_code == 2 and "unknown benchmark 'nope'" in bad.output
    bad = runner.invoke(app, [*args, "--map", "question=problem", "--out", str(out)])
    assert bad.exit_code == 2 and "--map" in bad.output
