r"""Read a synthesis model's output into a new problem, its solution and its final answer,
or say why it cannot be used.

The expected form is ``New problem: ...`` then ``Solution: ...`` ending with ``\boxed{}``
(the heading of the problem may be left out, since the prompt ends with it; Markdown
headings and bold markers around the labels are accepted). Every output gets a status:
``ok``, or the reason it is rejected, checked in this order:

- ``generation_error``: the backend returned no text (its reason is the detail);
- ``empty``: nothing but whitespace;
- ``truncated``: cut at ``max_tokens``;
- ``refusal``: it opens by declining ("I'm sorry", "I cannot", "As an AI ...");
- ``wrong_language``: with ``language="en"``, fewer than `MIN_LATIN` of its letters are
  Latin (or Greek, for the math);
- ``no_solution``: no ``Solution:`` label, or nothing after it;
- ``no_problem``: nothing before the solution;
- ``no_answer``: the solution has no ``\boxed{}`` (or an empty one).

>>> p = parse("Tom has 3 apples and buys 4. How many?\nSolution: 3 + 4 = 7, so \\boxed{7}.")
>>> p.status, p.problem, p.answer
('ok', 'Tom has 3 apples and buys 4. How many?', '7')
>>> parse("I'm sorry, but I can't help with that.").status
'refusal'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from curate.verification.boxes import last_boxed

Status = Literal[
    "ok",
    "generation_error",
    "empty",
    "truncated",
    "refusal",
    "wrong_language",
    "no_solution",
    "no_problem",
    "no_answer",
]
REASONS: tuple[Status, ...] = (
    "generation_error", "empty", "truncated", "refusal", "wrong_language",
    "no_solution", "no_problem", "no_answer",
)  # fmt: skip
"""Every reject reason, in the order they are checked."""

MIN_LATIN = 0.8
"""The least share of Latin (or Greek) letters an English output has."""

# A label: optional Markdown heading or bold, the word, then a colon or the end of its line.
_LABEL = (
    r"(?:#{1,6}[ \t]*)?(?:\*\*|__)?[ \t]*WORD[ \t]*(?:\*\*|__)?[ \t]*"
    r"(?::[ \t]*(?:\*\*|__)?|(?=\n)|\Z)"
)
_PROBLEM = re.compile(r"\A\s*" + _LABEL.replace("WORD", r"(?:new[ \t]+)?problem"), re.I)
_SOLUTION = re.compile(r"^[ \t]*" + _LABEL.replace("WORD", "solution"), re.I | re.M)
_INLINE_SOLUTION = re.compile(r"(?<=[.?!$)])[ \t]+(?:\*\*)?Solution(?:\*\*)?:(?:\*\*)?")
_REFUSAL = re.compile(
    r"\A\W*(?:i'?m sorry|i am sorry|sorry,|i (?:cannot|can'?t|am unable|'m unable|won'?t)"
    r"|as an ai\b|i apologi[sz]e)",
    re.I,
)


@dataclass(frozen=True)
class Parsed:
    """One output, read: ``status`` ``ok`` with the problem, solution and answer, or the
    reason it is rejected and a short ``detail``."""

    status: Status
    problem: str = ""
    solution: str | None = None
    answer: str | None = None
    detail: str | None = None


def parse(
    text: str,
    finish_reason: str = "stop",
    *,
    error: str | None = None,
    language: Literal["en", "any"] = "en",
) -> Parsed:
    """Read one output (see the module docstring for the statuses)."""
    text = text.replace("\r\n", "\n")
    if finish_reason == "error":
        return Parsed("generation_error", detail=error or "the backend returned no text")
    if not text.strip():
        return Parsed("empty", detail="the output is empty")
    if finish_reason == "length":
        return Parsed("truncated", detail=f"cut at max_tokens after {len(text)} characters")
    if _REFUSAL.match(text):
        return Parsed("refusal", detail=_excerpt(text))
    if language == "en":
        share = latin_share(text)
        if share < MIN_LATIN:
            return Parsed(
                "wrong_language", detail=f"{share:.0%} of its letters are Latin: {_excerpt(text)}"
            )
    heading = _SOLUTION.search(text) or _INLINE_SOLUTION.search(text)
    if heading is None or not text[heading.end() :].strip():
        what = "no 'Solution:' label" if heading is None else "nothing after 'Solution:'"
        return Parsed("no_solution", detail=f"{what}: {_excerpt(text)}")
    head = text[: heading.start()]
    label = _PROBLEM.match(head)
    problem = (head[label.end() :] if label else head).strip()
    solution = text[heading.end() :].strip()
    if not problem:
        return Parsed("no_problem", solution=solution, detail="nothing before 'Solution:'")
    answer = last_boxed(solution)
    answer = answer.strip() if answer else None
    if not answer:
        return Parsed(
            "no_answer", problem, solution, detail=f"no \\boxed{{}} in: {_excerpt(solution, 80)}"
        )
    return Parsed("ok", problem, solution, answer)


def latin_share(text: str) -> float:
    """The share of the letters of ``text`` that are Latin or Greek (1.0 with no letters).

    >>> latin_share("x + y = 2"), round(latin_share("设 x 为实数"), 2)
    (1.0, 0.2)
    """
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    latin = sum(
        c < "\u0250" or "\u0370" <= c <= "\u03ff" or "\u1e00" <= c <= "\u1eff" for c in letters
    )
    return latin / len(letters)


def _excerpt(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
