r"""Answer extraction, normalization and equivalence: the one module that decides
whether an answer is right.

Three layers, cheapest first:

1. a fast path in this process: equal after normalization (``\dfrac`` vs
   ``\frac``, spacing, ``$``, ``\boxed{}``, digit groups), plain numbers
   compared exactly (with math-verify's 6-decimal rounding when a decimal is
   involved), and multiple-choice letters;
2. math-verify (LaTeX extraction only, never sympy's string evaluation) in a
   pool of worker processes, each check under a time limit that holds in
   threads, worker processes and async code alike: the worker arms its own
   timer, and the parent kills a worker that overruns the limit;
3. a verdict always comes back: ``timeout`` or ``error`` are verdicts, not
   exceptions.

Verdicts are math-verify's (0.9), called as
``verify(parse(f"${gold}$"), parse(f"${pred}$"))`` with LaTeX extraction,
except where it misreads a notation a careful grader reads without doubt;
there the fast path decides, on purpose:

- scientific notation: ``8.7 \times 10^{8}`` is 870000000 (math-verify
  multiplies the float 8.7, and the rounding error makes them differ), and
  ``4.4e7`` is 44000000 (math-verify reads 4.4 times Euler's e times 7);
- percent: ``X\%`` equals ``X`` and ``X/100`` (math-verify does so for
  ``9\%`` but not for ``1.1\%``);
- the degree sign: ``120°`` is ``120^\circ`` (math-verify cannot parse it);
- digit groups with a thin space: ``1\,000`` is 1000 (math-verify reads
  ``1 \cdot 000``); ``1{,}000``, ``1,000`` and ``1,\!000`` it reads as we do;
- a trailing period: ``5.`` is ``5``, the end of a sentence (math-verify
  finds no answer in ``$5.$``);
- the same text is the same answer, also where math-verify finds no answer
  in it or cannot compare it with itself (ODE solutions written with
  ``\begin{array}``), and so are two answers that differ only in spacing,
  ``\left``/``\right`` or ``\dfrac`` (math-verify's reading sometimes depends
  on a space: ``7 i`` is 7 times the imaginary unit, ``7i`` 7 times a
  variable ``i``);
- an answer that mixes words and formulas (``$x=2$ or $x=3$``) is read whole,
  its inner ``$`` dropped; given the dollars, math-verify reads one formula
  of it, sometimes only the last (``$\max$ at $x=2$, min at $x=4$`` would be
  ``x=4``).

Long answers that math-verify reads only in part (a multi-line display
whose last fragment parses) get its verdict on that part: check such gold
answers with `gradable` and expect little of them.

>>> verify(r"\frac{1}{2}", "0.5")
Verdict(equivalent=True, reason='numeric', detail='')
>>> verify("12", r"\boxed{13}").equivalent
False
>>> gradable(r"\text{(C)}").kind
'choice'
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from curate._progress import progress_bar

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"(?<!\\)[{}]")
_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*[:\s]*(.+?)(?:\.\s|\.?$|\n)", re.IGNORECASE
)


def _braced(text: str, start: int) -> str | None:
    """The contents of the brace group whose ``{`` is at ``start``; None if unbalanced."""
    end = _closing(text, start).get(start)
    return None if end is None else text[start + 1 : end]


def _closing(text: str, start: int = 0) -> dict[int, int]:
    """Position of the matching ``}`` of every balanced ``{`` at or after ``start``,
    found in one pass (a brace after a backslash is a literal brace)."""
    out: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE.finditer(text, start):
        if m.group() == "{":
            stack.append(m.start())
        elif stack:
            out[stack.pop()] = m.start()
    return out


def last_boxed(text: str) -> str | None:
    r"""Contents of the last ``\boxed{...}`` (or ``\fbox{...}``) in ``text``.

    >>> last_boxed(r"so $x = \boxed{\frac{1}{2}}$ and \boxed{3}")
    '3'
    >>> last_boxed("no box") is None
    True
    """
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    closing = _closing(text, matches[0].end() - 1)
    for m in reversed(matches):
        end = closing.get(m.end() - 1)
        if end is not None:
            return text[m.end() : end].strip()
    return None


def extract_answer(text: str | None) -> str | None:
    r"""The final answer stated in a solution or a model response, or None.

    Tried in order: the last ``\boxed{}``; GSM8K's ``#### 42``; "the answer is 42".

    >>> extract_answer(r"Thus the area is $\boxed{12\pi}$.")
    '12\\pi'
    >>> extract_answer("She has 3 + 4 = 7 apples.\n#### 7")
    '7'
    >>> extract_answer("Therefore, the final answer is 5.")
    '5'
    """
    if not text:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    m = _GSM8K.search(text)
    if m:
        return (
            m.group(1).replace(",", "")
            if re.fullmatch(r"-?[\d,]+(\.\d+)?", m.group(1))
            else m.group(1)
        )
    matches = list(_ANSWER_IS.finditer(text))
    if matches:
        return matches[-1].group(1).strip().strip("$").strip()
    return None


# ----------------------------------------------------------------- normalization

_UNWRAP = re.compile(r"^\\(?:boxed|fbox)\s*\{(.*)\}$", re.DOTALL)
_DELIMS = re.compile(r"^(?:\$+(.*?)\$+|\\\((.*)\\\)|\\\[(.*)\\\])$", re.DOTALL)
_VISUAL = re.compile(
    r"\\(?:left|right|displaystyle|textstyle|!|,|;|:|\s)(?![a-zA-Z])|\\(?:[,;:!]|quad|qquad)"
)
_FRAC = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\{\\circ\}|°")
# 12,345 / 12{,}345 / 12,\!345 / 12\,345: digit groups of a single number (but 0,125
# is a decimal comma to math-verify)
_GROUPED = re.compile(
    r"(\\\$\s*)?(-?[1-9]\d{0,2})((?:(?:,\\!\s*|,|\{,\}|\\,\s*)\d{3})+)(\.\d+)?", re.DOTALL
)
_SEPARATOR = re.compile(r",\\!\s*|,|\{,\}|\\,\s*")
# 12, 345: a list of two numbers that would read as one without its space
_SPACED_LIST = re.compile(r"(?<![\d.])\d{1,3}(?:\s*,\s*\d{3})+(?!\d)")
_COMMA = re.compile(r"\s*,\s*")
_SPACE_AFTER_COMMAND = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_SPACE_IN_WORDS = re.compile(r"(?<=\d)\s+(?=\d)|(?<=[A-Za-z])\s+(?=[A-Za-z])")
_WS = re.compile(r"\s+")


def _unwrap(answer: str) -> str:
    r"""Strip whitespace, a trailing period, ``$..$``/``\(..\)``/``\[..\]`` and a whole
    ``\boxed{..}``."""
    s = answer.strip().removesuffix(".").strip()
    for _ in range(3):  # nested wrappers: "$\boxed{..}$"
        before = s
        m = _DELIMS.match(s)
        if m:
            s = next(g for g in m.groups() if g is not None).strip()
        m = _UNWRAP.match(s)
        if m and _braced(s, s.index("{")) == m.group(1):
            s = m.group(1).strip()
        if s == before:
            break
    return s


_INNER_DOLLAR = re.compile(r"(?<!\\)\$")


def _math(answer: str) -> str:
    r"""The answer as one math-mode string, for math-verify (which wraps it in ``$..$``).

    An answer that mixes words and math (``$x=2$ or $x=3$``, ``$\max$ at $x=2$,
    min at $x=4$``) is read whole, its inner ``$`` dropped: math-verify, given
    the dollars, would read only the last formula (``x=4``).
    """
    return _INNER_DOLLAR.sub(" ", _unwrap(answer))


def _keep_list_spaces(m: re.Match[str]) -> str:
    return _COMMA.sub(",\x00", m.group()) if _WS.search(m.group()) else m.group()


def normalize_answer(answer: str) -> str:
    r"""Normalize an answer for comparison; only changes that never alter its value.

    Unwraps ``$..$`` and a whole ``\boxed{..}``, drops ``\left``/``\right``, LaTeX
    spacing and whitespace, maps ``\dfrac``/``\tfrac`` to ``\frac`` and ``°`` or
    ``^{\circ}`` to ``^\circ``, joins the digit groups of one number (``12,345``,
    ``12{,}345``, ``12,\!345``, ``12\,345``) and drops a trailing period.

    Whitespace that separates tokens is kept as one space: between digits
    (``2 3`` is not ``23``), between letters (``no solution``), after a command
    name before a letter (``\pi r`` is not ``\pir``), and in a list of numbers
    that would otherwise read as one number (``12, 345`` is two numbers,
    ``12,345`` is one).

    >>> normalize_answer(r"$\dfrac{1}{2}$.")
    '\\frac{1}{2}'
    >>> normalize_answer(r"\boxed{\left( 1, 2 \right)}")
    '(1,2)'
    >>> normalize_answer(r"\$32,\!348"), normalize_answer("12, 345")
    ('\\$32348', '12, 345')
    """
    s = _unwrap(answer)
    if m := _GROUPED.fullmatch(s):
        s = (m.group(1) or "").strip() + m.group(2) + _SEPARATOR.sub("", m.group(3))
        return s + (m.group(4) or "")
    s = _DEGREES.sub(r"^\\circ", _FRAC.sub(r"\\frac", s))
    s = _VISUAL.sub(" ", s)
    s = _SPACED_LIST.sub(_keep_list_spaces, s.replace("\x00", ""))
    s = _SPACE_AFTER_COMMAND.sub("\\1\x00", s)
    s = _SPACE_IN_WORDS.sub("\x00", s)
    s = _WS.sub("", s).replace("\x00", " ")
    return s[:-1] if s.endswith(".") and not s.endswith("\\.") else s


_INT = re.compile(r"-?\d+")
_DEC = re.compile(r"-?(?:\d+\.\d*|\.\d+)")
_FRACTION = re.compile(r"(-?)\\frac(?:\{(\d+)\}|(\d))(?:\{(\d+)\}|(\d))")
_SLASH = re.compile(r"(-?\d+)/(\d+)")
# 8.7\times10^{8}, 7\cdot10^{-3}, 10^{-3}, 4.4e7, 3.3E-10
_SCIENTIFIC = re.compile(
    r"(?:(-?(?:\d+\.?\d*|\.\d+))(?:\\times|\\cdot))?10\^(?:\{(-?\d{1,3})\}|(\d))"
    r"|(-?(?:\d+\.?\d*|\.\d+))[eE]([-+]?\d{1,3})"
)
_UNITLESS = re.compile(r"^\\\$|\^\\circ$")
_PERCENT = re.compile(r"\\?%$")
_CHOICE = re.compile(r"(?:\\text(?:bf)?\{|\\mathrm\{)?\(?([A-Ea-e])\)?\}?")


@dataclass(frozen=True, slots=True)
class _Number:
    """A plain number: its exact value, whether it was written with a decimal point
    (math-verify then compares to 6 decimals), and whether it had a ``%``."""

    value: Fraction
    decimal: bool
    percent: bool


def _number(s: str) -> _Number | None:
    r"""Plain integers, decimals, simple fractions and scientific notation, optionally
    with ``\$`` before, or ``^\circ`` or ``\%`` after (of a normalized answer)."""
    if len(s) > 40:
        return None
    s = _UNITLESS.sub("", s)
    percent = bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s)
    if _INT.fullmatch(s):
        return _Number(Fraction(int(s)), False, percent)
    if _DEC.fullmatch(s):
        return _Number(Fraction(s), True, percent)
    m = _FRACTION.fullmatch(s)
    if m:
        num, den = int(m.group(2) or m.group(3)), int(m.group(4) or m.group(5))
        if den:
            return _Number((-1 if m.group(1) else 1) * Fraction(num, den), False, percent)
        return None
    m = _SLASH.fullmatch(s)
    if m:
        den = int(m.group(2))
        return _Number(Fraction(int(m.group(1)), den), False, percent) if den else None
    m = _SCIENTIFIC.fullmatch(s)
    if m:
        mantissa = m.group(1) or m.group(4) or "1"
        exponent = int(m.group(2) or m.group(3) or m.group(5))
        value = Fraction(mantissa) * Fraction(10) ** exponent
        return _Number(value, "." in mantissa, percent)
    return None


def _choice(s: str) -> str | None:
    m = _CHOICE.fullmatch(s)
    return m.group(1).upper() if m else None


# --------------------------------------------------------------------- verdicts

Reason = Literal[
    "identical",
    "normalized",
    "numeric",
    "choice",
    "symbolic",
    "different",
    "unparseable",
    "too_long",
    "empty",
    "no_answer",
    "timeout",
    "error",
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a predicted answer matches the gold one, and how that was decided."""

    equivalent: bool
    reason: Reason
    detail: str = ""


DEFAULT_TIMEOUT = 5.0
MAX_ANSWER_CHARS = 2000  # longer answers are compared as strings only


def _numeric_verdict(g: _Number, p: _Number) -> Verdict | None:
    """Compare two plain numbers the way a careful grader (and math-verify) would."""
    candidates = [(g.value, p.value)]
    if g.percent != p.percent:  # 50\% is 50, and also 0.5
        candidates.append((g.value / 100, p.value) if g.percent else (g.value, p.value / 100))
    if any(a == b for a, b in candidates):
        return Verdict(True, "numeric")
    if not (g.decimal or p.decimal):
        return Verdict(False, "different")
    # math-verify rounds both to 6 decimals when a float is involved; decide
    # here only where that rounding cannot make them equal
    if all(abs(a - b) > Fraction(1, 10**5) and max(abs(a), abs(b)) < 10**9 for a, b in candidates):
        return Verdict(False, "different")
    return None


def _fast_verdict(gold: str, pred: str) -> Verdict | None:
    if not gold.strip() or not pred.strip():
        return Verdict(False, "empty", "gold" if not gold.strip() else "pred")
    if gold == pred:
        return Verdict(True, "identical")
    g, p = normalize_answer(gold), normalize_answer(pred)
    if g == p:
        return Verdict(True, "normalized")
    if len(gold) > MAX_ANSWER_CHARS or len(pred) > MAX_ANSWER_CHARS:
        return Verdict(False, "too_long", f"answers over {MAX_ANSWER_CHARS} characters")
    gn, pn = _number(g), _number(p)
    if gn is not None and pn is not None:
        return _numeric_verdict(gn, pn)
    gc, pc = _choice(g), _choice(p)
    if gc is not None and pc is not None:
        return Verdict(gc == pc, "choice" if gc == pc else "different")
    return None


def _from_worker(result: dict[str, Any]) -> Verdict:
    return Verdict(bool(result.get("ok")), result["status"], result.get("detail", ""))


def _pool(workers: int | None) -> Any:
    from curate._procpool import shared_pool

    return shared_pool("curate._verify_worker", workers)


def _prediction(pred: str) -> str:
    boxed = last_boxed(pred) if "\\boxed" in pred or "\\fbox" in pred else None
    return boxed if boxed is not None else pred


def verify_many(
    pairs: Iterable[tuple[str, str]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int | None = None,
    progress: bool = False,
) -> list[Verdict]:
    r"""Verdicts for many (gold, pred) pairs, in order; the symbolic checks run in parallel.

    Identical pairs are checked once. ``workers`` defaults to one per core.

    >>> [v.equivalent for v in verify_many([("2", "2.0"), ("x+1", "1+x"), ("3", "4")])]
    [True, True, False]
    """
    items = [(g, _prediction(p)) for g, p in pairs]
    verdicts: dict[tuple[str, str], Verdict] = {}
    slow: list[tuple[str, str]] = []
    for pair in dict.fromkeys(items):
        fast = _fast_verdict(*pair)
        if fast is None:
            slow.append(pair)
        else:
            verdicts[pair] = fast
    if slow:
        slow.sort(
            key=lambda pair: pair[0]
        )  # one gold's checks go to one worker: its parse is cached
        bar = progress_bar(len(slow), "verify", enabled=progress, unit="check", min_total=200)

        def done(i: int, result: dict[str, Any]) -> None:
            verdicts[slow[i]] = _from_worker(result)
            bar.update(1)

        tasks = [{"op": "verify", "gold": _math(g), "pred": _math(p)} for g, p in slow]
        with bar:
            _pool(workers).run(tasks, timeout, done, groups=[g for g, _ in slow])
    return [verdicts[pair] for pair in items]


def verify(gold: str, pred: str, *, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    r"""Is ``pred`` the same answer as ``gold``? Safe in threads and worker processes.

    ``pred`` may be an answer or a text with a ``\boxed{}`` answer in it.

    >>> verify(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}").reason
    'symbolic'
    """
    return verify_many([(gold, pred)], timeout=timeout)[0]


async def averify(gold: str, pred: str, *, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    """`verify` for async code: runs in a thread, never blocks the event loop."""
    return await asyncio.to_thread(verify, gold, pred, timeout=timeout)


def check_response(gold: str, response: str, *, timeout: float = DEFAULT_TIMEOUT) -> Verdict:
    r"""Extract the final answer of a model response, then `verify` it against ``gold``.

    >>> check_response("7", "3 + 4 = 7, so the answer is $\\boxed{7}$.").equivalent
    True
    >>> check_response("7", "I am not sure.").reason
    'no_answer'
    """
    answer = extract_answer(response)
    if answer is None:
        return Verdict(False, "no_answer")
    return verify(gold, answer, timeout=timeout)


# ------------------------------------------------------------------ gradability

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
_TEXT_WRAP = re.compile(r"^\\(?:text|textbf|textit|mathrm|mbox|mathbf)\{(.*)\}$")
_WORDS = re.compile(r"[A-Za-z]+(?:[ '\-][A-Za-z]+)*")


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
    bare = s
    while m := _TEXT_WRAP.match(bare):
        bare = m.group(1)
    if re.sub(r"[\s~]", "", bare.casefold()) in _NOT_ANSWERS:
        return Gradability(False, "not_an_answer", answer)
    if _number(s) is not None:
        return Gradability(True, "number")
    if _choice(s) is not None:
        return Gradability(True, "choice")
    plain = answer.strip().strip("$").strip()
    while m := _TEXT_WRAP.match(plain):
        plain = m.group(1).strip()
    if _WORDS.fullmatch(plain) and (bare != s or len(plain) >= 3):
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

        tasks = [{"op": "parse", "answer": _math(a)} for a in slow]
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
