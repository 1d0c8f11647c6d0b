"""Problem synthesis from texts: prompts, the output parser, and `curate.Synthesize` in a run
with a scripted teacher (`curate.toy_teacher`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import curate
from curate.errors import ConfigError
from curate.generate import Completion, Request, Sampling
from curate.synth import Prompts, Synthesize, kd_pairs, parse
from curate.synth.parse import REASONS
from curate.toy_teacher import ToyTeacher, _math500

TEXTS = Path(__file__).parents[1] / "data" / "demo" / "math_texts.jsonl"


def texts(**kw: Any) -> curate.Source:
    return curate.read(TEXTS, kind="documents", **kw)


# -- the parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "finish", "status"),
    [
        ("New problem: Find $x$ if $x+1=3$.\nSolution: $x=\\boxed{2}$.", "stop", "ok"),
        ("## New Problem\nFind x.\n\n## Solution\nSo \\boxed{2}.", "stop", "ok"),
        ("**Problem:** Find x.\n**Solution:** So \\boxed{2}.", "stop", "ok"),
        ("Find $x$. Solution: inline, \\boxed{1}", "stop", "ok"),
        ("", "error", "generation_error"),
        ("   \n", "stop", "empty"),
        ("New problem: Find x.\nSolution: we start", "length", "truncated"),
        ("I'm sorry, but I can't help with that.", "stop", "refusal"),
        ("As an AI language model, I cannot write problems.", "stop", "refusal"),
        ("新问题：三加四等于多少？\n解答：答案是 \\boxed{7}。", "stop", "wrong_language"),
        ("New problem: Find x.", "stop", "no_solution"),
        ("New problem: Find x.\nSolution:   ", "stop", "no_solution"),
        ("Solutions of x^2=1?\nno label here", "stop", "no_solution"),
        ("New problem:\nSolution: so \\boxed{2}", "stop", "no_problem"),
        ("New problem: Find x.\nSolution: it is two.", "stop", "no_answer"),
        ("New problem: Find x.\nSolution: it is \\boxed{ }.", "stop", "no_answer"),
    ],
)
def test_parse_reads_or_says_why_not(text: str, finish: str, status: str) -> None:
    got = parse(text, finish)
    assert got.status == status
    assert (got.detail is None) == (status == "ok")
    if status == "ok":
        assert got.problem.startswith("Find") and got.answer in ("1", "2")
    assert status == "ok" or status in REASONS


def test_parse_keeps_whole_problem_and_last_box() -> None:
    got = parse(
        "Problems of age: Ann is 3.\nHow old next year?\nSolution: \\boxed{3}, so \\boxed{4}"
    )
    assert got.problem == "Problems of age: Ann is 3.\nHow old next year?"
    assert got.answer == "4"
    assert parse("设 x 为实数。\nSolution: \\boxed{1}", language="any").status == "ok"


# -- prompts ------------------------------------------------------------------------------


def test_prompts_draw_a_stage_per_text_and_version_their_wording() -> None:
    p = Prompts()
    draws = [p.stage_for(f"t{i}", seed=0) for i in range(200)]
    assert draws == [p.stage_for(f"t{i}", seed=0) for i in range(200)]
    assert set(draws) == set(p.stages)  # every stage is drawn
    assert draws != [p.stage_for(f"t{i}", seed=1) for i in range(200)]
    assert p.version == "jz-1"
    short = Prompts(template="For {audience}: {text}\nNew problem:", max_chars=5)
    assert short.version.startswith("custom-") and short.version != Prompts(max_chars=5).version
    assert short.build("abcdefgh", "aime").endswith("abcde\nNew problem:")
    with pytest.raises(ConfigError, match=r"no \{text\}"):
        Prompts(template="{audience}")
    with pytest.raises(ConfigError, match="stages"):
        Prompts(stages={})


# -- Synthesize in a run ------------------------------------------------------------------


def _rejects(run: curate.Run) -> dict[str, int]:
    rows = run.sql("SELECT reason, count(*) FROM rejects WHERE stage = 'ingest' GROUP BY 1")
    return dict(rows.rows())


def test_every_output_is_a_kept_problem_or_a_counted_reject(tmp_path: Path) -> None:
    syn = Synthesize(texts(), ToyTeacher(), n=2, sample=60, prices={"toy-teacher": (2.0, 8.0)})
    run = curate.Recipe("jz", [syn]).run(tmp_path / "run")
    info = run.manifest["sources"][0]
    stats = info["stats"]
    assert info["rows"] == 120 and stats["texts"] == 60
    teacher = stats["toy-teacher"]
    assert teacher["calls"] == 60 and teacher["generated"] == 120 and teacher["cached"] == 0
    assert teacher["completion_tokens"] > 0 and teacher["estimated_cost_usd"] > 0
    outputs = stats["outputs"]
    rejects = _rejects(run)
    assert {k: v for k, v in outputs.items() if k != "ok"} == rejects
    assert outputs["ok"] == run.sql("SELECT count(*) FROM problems").rows()[0][0]
    assert sum(outputs.values()) == 120
    assert {"refusal", "empty", "truncated", "wrong_language", "no_answer"} <= set(rejects)
    # a rejected output is kept whole, with its reason's detail
    text, detail = run.sql(
        "SELECT json_extract_string(meta, '$.output'), detail FROM rejects WHERE reason='refusal'"
    ).rows()[0]
    assert text.startswith("I'm sorry") and "sorry" in detail


def test_every_row_traces_to_its_text_and_model_with_sql(tmp_path: Path) -> None:
    run = curate.Recipe("jz", [Synthesize(texts(), ToyTeacher(), sample=20)]).run(tmp_path / "r")
    docs = curate.read(TEXTS, kind="documents").frame()
    rows = run.sql(
        """SELECT id, json_extract_string(meta, '$.text_id') AS text_id,
                  json_extract_string(meta, '$.model') AS model,
                  json_extract_string(meta, '$.prompt_version') AS version,
                  json_extract_string(meta, '$.url') AS url,
                  json_extract_string(meta, '$.education_stage') AS level, problem
           FROM problems"""
    )
    assert rows.height > 10
    assert set(rows["model"]) == {"toy-teacher"} and set(rows["version"]) == {"jz-1"}
    joined = rows.join(docs.select(pl.col("id").alias("text_id"), "url", "text"), on="text_id")
    assert joined.height == rows.height  # every row's text is in the corpus
    assert (joined["url"] == joined["url_right"]).all()
    assert set(rows["level"]) <= set(Prompts().stages)
    # the problem was written from its own text (the toy teacher uses the text's numbers)
    assert rows["id"].str.starts_with("synthetic:math_texts:").all()


class Flaky:
    """A ToyTeacher that stops (raises) after ``calls`` engine calls, and counts samples."""

    def __init__(self, calls: int | None = None, fail_every: int = 0) -> None:
        self.inner = ToyTeacher()
        self.calls_left = calls
        self.fail_every = fail_every
        self.samples = 0

    model = "toy-teacher"

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        if self.calls_left is not None:
            if self.calls_left == 0:
                raise RuntimeError("the server went away")
            self.calls_left -= 1
        self.samples += sum(r.n for r in requests)
        out = self.inner.generate(requests, sampling)
        if self.fail_every:
            out = [
                [Completion.failed("rate limited")] if i % self.fail_every == 0 else c
                for i, c in enumerate(out)
            ]
        return out


def test_a_crash_resumes_without_generating_what_finished(tmp_path: Path) -> None:
    def recipe(gen: Any) -> curate.Recipe:
        return curate.Recipe("jz", [Synthesize(texts(), gen, n=2, sample=50, chunk=10)])

    with pytest.raises(RuntimeError, match="went away"):
        recipe(Flaky(calls=3)).run(tmp_path / "run")
    again = Flaky()
    run = recipe(again).run(tmp_path / "run")
    assert again.samples == 100 - 60  # three chunks of 10 texts x 2 samples were kept
    stats = run.manifest["sources"][0]["stats"]["toy-teacher"]
    assert stats["cached"] == 60 and stats["generated"] == 40
    fresh = curate.Recipe("jz", [Synthesize(texts(), ToyTeacher(), n=2, sample=50)]).run(
        tmp_path / "fresh"
    )
    same = "SELECT id, problem, answer FROM problems ORDER BY id"
    assert run.sql(same).rows() == fresh.sql(same).rows()  # resuming changed nothing


def test_failed_generations_are_rejects_and_are_tried_again(tmp_path: Path) -> None:
    def recipe(gen: Any) -> curate.Recipe:
        return curate.Recipe("jz", [Synthesize(texts(), gen, sample=30)])

    run = recipe(Flaky(fail_every=3)).run(tmp_path / "run")
    assert _rejects(run)["generation_error"] == 10
    detail = run.sql("SELECT detail FROM rejects WHERE reason='generation_error'").rows()[0][0]
    assert detail == "rate limited"
    again = Flaky()
    run = recipe(again).run(tmp_path / "run", force=True)
    assert again.samples == 10 and "generation_error" not in _rejects(run)


def test_planted_duplicates_and_benchmark_copies_are_cleaned(tmp_path: Path) -> None:
    teacher = ToyTeacher(benchmark=0.15, repeat=0.2)
    stages = [curate.RequireGradable(), curate.ExactDedup(), curate.MinHashDedup(),
              curate.Decontaminate(benchmarks=["math500"])]  # fmt: skip
    run = curate.Recipe("jz", [Synthesize(texts(), teacher, sample=120)], stages).run(tmp_path)
    made = pl.read_parquet(next((tmp_path / "stages").glob("00-ingest-*")) / "kept.parquet")
    bench = {p for p, _ in _math500()}
    planted = made.filter(pl.col("problem").is_in(list(bench)))
    assert planted.height >= 8
    kept = run.sql("SELECT problem, text_hash FROM problems")
    assert not kept["problem"].is_in(list(bench)).any()  # every copy is caught
    assert kept["text_hash"].n_unique() == kept.height  # no duplicate is left
    removed = dict(run.sql("SELECT reason, count(*) FROM rejects GROUP BY 1").rows())
    assert removed["duplicate"] >= made.height - made["text_hash"].n_unique() - planted.height
    assert removed["contamination"] >= 1


def test_kd_pairs_give_the_prompt_and_the_output_it_should_teach(tmp_path: Path) -> None:
    run = curate.Recipe("jz", [Synthesize(texts(), ToyTeacher(), sample=20)]).run(tmp_path)
    pairs = kd_pairs(run)
    kept = run.sql("SELECT id, problem, answer FROM problems ORDER BY id")
    assert sorted(pairs["id"]) == kept["id"].to_list()
    first = pairs.row(0, named=True)
    assert "## Math content" in first["prompt"] and first["prompt"].endswith("## New problem\n")
    back = parse(first["completion"])
    assert back.status == "ok"
    assert back.problem == kept.filter(pl.col("id") == first["id"])["problem"][0]


def test_bad_configurations_are_refused(tmp_path: Path) -> None:
    problems = curate.read(TEXTS, problem="text")
    with pytest.raises(ConfigError, match="documents source"):
        Synthesize(problems, ToyTeacher())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no generator is labelled"):
        Synthesize(texts(), ToyTeacher(), prices={"gpt-4": (1.0, 2.0)})
    with pytest.raises(ConfigError, match="not a Generator"):
        Synthesize(texts(), "gpt-4")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source name"):
        Synthesize(texts(), ToyTeacher(), name="a b")
    syn = Synthesize(texts(), ToyTeacher(), ids=("nope",))
    with pytest.raises(ConfigError, match="not non-empty texts"):
        curate.Recipe("jz", [syn]).run(tmp_path)


def test_ids_and_exclude_choose_the_texts(tmp_path: Path) -> None:
    docs = curate.read(TEXTS, kind="documents").frame()["id"].to_list()
    syn = Synthesize(texts(), ToyTeacher(), ids=tuple(docs[:10]), exclude=(docs[0],))
    assert syn.chosen(0)["id"].to_list() == docs[1:10]
    assert Synthesize(texts(), ToyTeacher(), sample=5).chosen(0).height == 5
    assert Synthesize(texts(), ToyTeacher(), sample=5).chosen(0)["id"].to_list() != (
        Synthesize(texts(), ToyTeacher(), sample=5).chosen(1)["id"].to_list()
    )
