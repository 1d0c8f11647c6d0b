r"""The grader against math-verify on 536 hand-labelled model outputs.

``tests/data/grading_cases.jsonl`` (see its README) holds gold answers from public
benchmarks and predictions in the forms models write them, each with a verdict a person
wrote. curate must be at least as accurate as math-verify (``verify(parse(gold),
parse(pred))``, its defaults) in every category and overall, and it must never call a
wrong answer right on this table. ``benchmarks/bench_grading.py`` prints the same
comparison as a report.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from curate.verification import Verdict, verify_many

TABLE = Path(__file__).parent / "data" / "grading_cases.jsonl"
CATEGORIES = {
    "boxed", "several_boxes", "minerva", "answer_is", "gsm8k", "dapo", "think", "debris",
    "plain_text", "units_currency", "matrices_in_text", "intervals_relations_in_text",
    "text_answers", "multiple_choice", "percent",
}  # fmt: skip


def _math_verify(pairs: list[tuple[str, str]]) -> list[bool]:
    """math-verify with its default extraction (in this main thread: its timers work)."""
    from math_verify import parse, verify

    logging.disable(logging.CRITICAL)
    try:
        return [bool(verify(parse(g), parse(p))) for g, p in pairs]
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture(scope="module")
def graded() -> list[tuple[dict[str, Any], Verdict, bool]]:
    rows = [json.loads(line) for line in TABLE.read_text().splitlines() if line.strip()]
    pairs = [(r["gold"], r["pred"]) for r in rows]
    with ThreadPoolExecutor(1) as ex:
        ours = ex.submit(verify_many, pairs, timeout=20.0)
        theirs = _math_verify(pairs)
        return list(zip(rows, ours.result(), theirs, strict=True))


def test_the_table() -> None:
    rows = [json.loads(line) for line in TABLE.read_text().splitlines()]
    assert len(rows) >= 300 and {r["category"] for r in rows} == CATEGORIES
    assert all(set(r) == {"category", "gold", "pred", "expected", "note"} for r in rows)
    assert len({(r["gold"], r["pred"]) for r in rows}) == len(rows)
    for category in CATEGORIES:
        expected = [r["expected"] for r in rows if r["category"] == category]
        assert len(expected) >= 25 and 0 < sum(expected) < len(expected), category


def test_at_least_as_accurate_as_math_verify(
    graded: list[tuple[dict[str, Any], Verdict, bool]],
) -> None:
    right: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row, ours, theirs in graded:
        for key in (row["category"], "all"):
            right[key][0] += ours.equivalent == row["expected"]
            right[key][1] += theirs == row["expected"]
            right[key][2] += 1
    worse = {k: v for k, v in right.items() if v[0] < v[1]}
    assert not worse, f"categories where math-verify is more accurate: {worse}"
    ours_all, theirs_all, n = right["all"]
    assert ours_all / n >= 0.95 and ours_all - theirs_all >= 0.2 * n, right["all"]


def test_no_wrong_answer_is_called_right(
    graded: list[tuple[dict[str, Any], Verdict, bool]],
) -> None:
    false_positives = [
        (row["category"], row["note"], ours.pred)
        for row, ours, _ in graded
        if ours.equivalent and not row["expected"]
    ]
    assert false_positives == []


def test_every_verdict_is_decided_or_says_why(
    graded: list[tuple[dict[str, Any], Verdict, bool]],
) -> None:
    statuses = {ours.status for _, ours, _ in graded}
    assert statuses <= {
        "equivalent",
        "different",
        "no_answer",
        "gold_unparseable",
        "pred_unparseable",
    }
    for row, ours, _ in graded:
        if ours.status == "no_answer":
            assert ours.pred is None and ours.reason in ("no_answer", "unfinished_think"), row
        if ours.decided:
            assert ours.gold is not None and ours.pred is not None, row
