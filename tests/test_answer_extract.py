"""ExtractAnswer (DeepScaleR's LLM answer extraction) with a scripted stand-in teacher, and
once with a real tiny model through HFGenerator."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from _factories import problems_frame

import curate
from curate.answer_extract import ANSWER, ANSWERS, CACHE, ExtractAnswer, reply_answer
from curate.errors import ConfigError
from curate.generate import Completion, Request, Sampling
from curate.generate.base import as_messages
from curate.responses import ResponsesTable
from curate.run import apply_stage
from curate.stage import StageContext

GENERATED: list[str] = []  # one entry per sample the scripted teacher writes


@dataclass(frozen=True)
class Extractor:
    """A scripted teacher: answers with the last number of the solution, except where the
    solution says otherwise: ``SPLIT`` (each sample another answer), ``ODD`` (the third
    sample another), ``SPELL`` (0.5, \\frac{1}{2}, 1/2), ``NOTHING`` (NONE), ``BROKEN``
    (the backend fails)."""

    label: str = "extractor"

    @property
    def model(self) -> str:
        return self.label

    def describe(self) -> dict[str, Any]:
        return {"backend": "scripted-extractor", "version": 1}

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        out = []
        for r in requests:
            text = as_messages(r.prompt)[-1]["content"]
            solution = text.split("## Solution\n", 1)[1]
            out.append([self._one(solution, j) for j in range(r.n)])
        return out

    def _one(self, solution: str, j: int) -> Completion:
        GENERATED.append(solution)
        numbers = re.findall(r"-?\d+", solution)
        answer = numbers[-1] if numbers else "NONE"
        if "BROKEN" in solution:
            return Completion.failed("server said no")
        if "SPLIT" in solution:
            answer = str(10 + j)
        elif "ODD" in solution and j == 2:
            answer = "99"
        elif "SPELL" in solution:
            answer = ("0.5", "\\frac{1}{2}", "1/2")[j % 3]
        elif "NOTHING" in solution:
            answer = "NONE"
        return Completion(f"The solution concludes \\boxed{{{answer}}}.", "stop", 8)


ROWS = [  # (problem, answer, solution)
    ("p1", None, "Adding gives 12, so we get 42"),
    ("p2", "7", "So it is 7"),  # has an answer: not asked with rows="missing"
    ("p3", None, "SPLIT the cases"),
    ("p4", None, "ODD one: 5"),
    ("p5", None, "SPELL it out"),
    ("p6", None, "NOTHING to conclude"),
    ("p7", None, "BROKEN reply"),
    ("p8", None, None),  # no solution: nothing to read
]


def frame(rows: list[tuple[str, str | None, str | None]] = ROWS) -> pl.DataFrame:
    out = problems_frame([(p, a) for p, a, _ in rows])
    return out.with_columns(pl.Series("solution", [s for _, _, s in rows], pl.String))


def test_answers_are_kept_when_the_samples_agree() -> None:
    GENERATED.clear()
    rows = frame()
    kept, rejects = apply_stage(ExtractAnswer(Extractor()), rows)
    assert kept["problem"].to_list() == ["p1", "p2", "p5", "p8"]
    assert kept[ANSWER].to_list() == ["42", None, "0.5", None]
    assert kept[ANSWERS].to_list()[2] == ["0.5", "\\frac{1}{2}", "1/2"]
    # the agreed answer fills a missing answer; an answer the row has is never changed
    assert kept["answer"].to_list() == ["42", "7", "0.5", None]
    assert dict(zip(rejects["problem"], rejects["reason"], strict=True)) == {
        "p3": "answer_disagreement",
        "p4": "answer_disagreement",
        "p6": "no_extracted_answer",
        "p7": "answer_generation_failed",
    }
    detail = rejects.filter(pl.col("problem") == "p3")["detail"][0]
    assert detail == "1 of 3 agree (need 3): 10 | 11 | 12"
    assert len(GENERATED) == 6 * 3  # rows with a solution and no answer, three samples each


def test_majority_rule_and_all_rows() -> None:
    stage = ExtractAnswer(Extractor(), agreement="majority", rows="all")
    kept, rejects = apply_stage(stage, frame())
    assert dict(zip(kept["problem"], kept[ANSWER], strict=True)) == {
        "p1": "42", "p2": "7", "p4": "5", "p5": "0.5", "p8": None,
    }  # fmt: skip
    mismatch = frame([("q", "8", "It is 9")])  # rows="all": the gold answer is checked
    _, rejects = apply_stage(stage, mismatch)
    assert rejects["reason"].to_list() == ["answer_mismatch"]
    assert rejects["detail"][0] == "answer '8', extracted '9'"
    assert ExtractAnswer(Extractor(), samples=5, agreement="majority").needed == 3


def test_generations_are_cached_and_reused(tmp_path: Path) -> None:
    GENERATED.clear()
    ctx = StageContext(run_dir=tmp_path, cache_dir=tmp_path / "cache", stage_name="x")
    first, _ = apply_stage(ExtractAnswer(Extractor()), frame(), ctx)
    assert len(GENERATED) == 18
    again, _ = apply_stage(ExtractAnswer(Extractor()), frame(), ctx)
    assert len(GENERATED) == 18 + 3  # only the failed samples are asked again
    assert again.equals(first)
    apply_stage(ExtractAnswer(Extractor(), samples=4), frame(), ctx)
    assert len(GENERATED) == 21 + 6 + 3  # one more sample per row, and the failed ones
    stored = ResponsesTable(tmp_path / "cache" / CACHE).read()
    assert stored.filter(pl.col("finish_reason") == "stop").height == 5 * 4
    assert set(stored["extracted_answer"].drop_nulls()) >= {"42", "10", "0.5"}


def test_a_recipe_run_and_its_stats(tmp_path: Path) -> None:
    path = tmp_path / "aops.jsonl"
    rows = [{"problem": p, "answer": a, "solution": s} for p, a, s in ROWS[:4]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = curate.read(path, source="aops")
    run = curate.Recipe("x", [source], [ExtractAnswer(Extractor())]).run(
        tmp_path / "run", progress=False
    )
    assert run.sql("SELECT problem, llm_answer, answer FROM problems ORDER BY problem").rows() == [
        ("p1", "42", "42"), ("p2", None, "7"),
    ]  # fmt: skip
    # the rejects keep the row as it came in: no answer
    assert run.sql("SELECT count(*) FROM rejects WHERE answer IS NOT NULL").item() == 0
    stats = run.manifest["stages"][1]["stats"]
    assert stats["asked"] == 3 and stats["agreed"] == 1
    assert (run.path / "cache" / CACHE).is_dir()


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="not a Generator"):
        ExtractAnswer("gpt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="samples"):
        ExtractAnswer(Extractor(), samples=0)
    with pytest.raises(ConfigError, match="solution"):
        ExtractAnswer(Extractor(), template="{problem} only")
    with pytest.raises(ConfigError, match="agreement"):
        ExtractAnswer(Extractor(), agreement="most")  # type: ignore[arg-type]
    assert reply_answer("\\boxed{None}") is None and reply_answer("") is None
    a, b = ExtractAnswer(Extractor()), ExtractAnswer(Extractor(), template="{problem}{solution}")
    assert a.describe()["gen_key"] != b.describe()["gen_key"]


def test_with_a_real_tiny_model(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from curate.generate.hf import HFGenerator
    from curate.toy import toy_model

    generator = HFGenerator(str(toy_model(steps=100)), label="toy", threads=1)
    stage = ExtractAnswer(generator, samples=2, sampling=Sampling(max_tokens=24))
    rows = frame([("What is 3 + 4?", None, "3 + 4 = 7"), ("What is 2 + 2?", None, "4")])
    ctx = StageContext(run_dir=tmp_path, cache_dir=tmp_path / "cache", stage_name="x")
    kept, rejects = apply_stage(stage, rows, ctx)
    assert kept.height + rejects.height == 2
    assert set(rejects["reason"]) <= {"answer_disagreement", "no_extracted_answer"}
    stored = ResponsesTable(tmp_path / "cache" / CACHE).read()
    assert stored.height == 4 and set(stored["model"]) == {"toy"}


class PlainTeacher:
    """A generator that is not a dataclass (any object with the protocol's methods)."""

    model = "plain"

    def describe(self) -> dict[str, Any]:
        return {"kind": "plain", "path": Path("/weights")}

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[list[Completion]]:
        return [[Completion("\\boxed{3}", "stop", 3)] * r.n for r in requests]

    def close(self) -> None:
        pass


def test_any_generator_fingerprints_by_its_description() -> None:
    config = ExtractAnswer(PlainTeacher()).config()
    assert config["generator"] == {"model": "plain", "kind": "plain", "path": "/weights"}
    kept, _ = apply_stage(ExtractAnswer(PlainTeacher()), frame([("p", None, "s")]))
    assert kept[ANSWER].to_list() == ["3"]
