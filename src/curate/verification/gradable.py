r"""Can a checker compare answers against this gold answer? (`RequireGradable` asks.)

>>> gradable(r"\text{(C)}").kind
'choice'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from curate._progress import progress_bar
from curate.verification.check import DEFAULT_TIMEOUT, _pool
from curate.verification.normalize import (
    choice,
    math_text,
    normalize_answer,
    number,
    unwrap_text,
    words,
)

Kind = Literal[
    "number",
    "choice",
    "text",
    "expression",
    "empty",
    "not_an_answer",
    "too_long",
    "unparseable",
    "timeout",
    "error",
]
GRADABLE_KINDS = frozenset({"number", "choice", "text", "expression"})
_NOT_ANSWERS = frozenset({"proof", "seeproof", "seesolution", "n/a", "omitted", "?"})


@dataclass(frozen=True, slots=True)
class Gradability:
    """What kind of answer this is, and whether a checker can compare it."""

    gradable: bool
    kind: Kind
    detail: str = ""


def _fast_kind(answer: str | None, max_length: int) -> Gradability | None:
    if answer is None or not answer.strip():
        return Gradability(False, "empty")
    s = normalize_answer(answer)
    if len(s) > max_length:
        return Gradability(False, "too_long", f"{len(s)} characters > max_length={max_length}")
    if re.sub(r"[\s~]", "", unwrap_text(s).casefold()) in _NOT_ANSWERS:
        return Gradability(False, "not_an_answer", answer)
    if number(s) is not None:
        return Gradability(True, "number")
    if choice(s) is not None:
        return Gradability(True, "choice")
    if words(answer) is not None:
        return Gradability(True, "text")
    return None


def gradable_many(
    answers: Iterable[str | None],
    *,
    allow_text: bool = True,
    max_length: int = 200,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int | None = None,
    progress: bool = False,
) -> list[Gradability]:
    r"""`gradable` for many answers; parsing runs in parallel, each distinct answer once.

    >>> [g.kind for g in gradable_many(["42", r"x^2+1", "", r"\text{Monday}"])]
    ['number', 'expression', 'empty', 'text']
    """
    items = list(answers)
    kinds: dict[str | None, Gradability] = {}
    slow: list[str] = []
    for answer in dict.fromkeys(items):
        fast = _fast_kind(answer, max_length)
        if fast is None:
            assert answer is not None
            slow.append(answer)
        else:
            kinds[answer] = fast
    if slow:
        bar = progress_bar(
            len(slow), "parse answers", enabled=progress, unit="check", min_total=200
        )

        def done(i: int, result: dict[str, Any]) -> None:
            status = result["status"]
            kinds[slow[i]] = Gradability(status == "expression", status, result.get("detail", ""))
            bar.update(1)

        tasks = [{"op": "parse", "answer": math_text(a)} for a in slow]
        with bar:
            _pool(workers).run(tasks, timeout, done)
    out = [kinds[a] for a in items]
    if not allow_text:
        out = [Gradability(False, "text", g.detail) if g.kind == "text" else g for g in out]
    return out


def gradable(
    answer: str | None,
    *,
    allow_text: bool = True,
    max_length: int = 200,
    timeout: float = DEFAULT_TIMEOUT,
) -> Gradability:
    r"""Can a checker compare answers against this gold answer?

    Numbers, expressions, intervals, tuples, sets, matrices, equations and
    choice letters are gradable; so are short text answers ("Monday") unless
    ``allow_text=False``. Empty answers, "proof"-style non-answers, answers
    longer than ``max_length`` and answers that do not parse are not.

    >>> gradable(r"\left[ 2, 5 \right)").gradable
    True
    >>> gradable("Proof").kind
    'not_an_answer'
    """
    return gradable_many([answer], allow_text=allow_text, max_length=max_length, timeout=timeout)[0]
