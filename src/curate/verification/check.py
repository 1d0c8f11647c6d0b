r"""`verify`: is a prediction (a bare answer or a whole model response) the gold answer?

One path for every caller (`Distill`, rewards, ``curate verify``, decontamination):

1. **read** both sides (`curate.verification.extract`): the prediction by
   ``options.rules`` (a box, a final-answer sentence, a bare answer, the last math or
   number), the gold answer by ``options.gold_rules`` (a box, ``####``, else the whole
   text); when the prediction's reading is only the weak ``last`` one (or none) and
   ``rules`` include ``last``, a gold choice letter is looked for as the letter the
   response names and gold words as what its last sentence states;
2. **compare** cheaply in this process: equal after normalization (``\dfrac`` vs
   ``\frac``, spacing, ``$``, digit groups), plain numbers exactly (within the tolerances
   of the options, with math-verify's decimal rounding), choice letters (also "(D) 12"),
   answers in words;
3. otherwise **math-verify** (LaTeX extraction only, never sympy's string evaluation) in
   a pool of worker processes, each check under a time limit that holds in threads,
   worker processes and async code alike (the worker arms its own timer, and the parent
   kills a worker that overruns it);
4. a `Verdict` always comes back, with a `Status` that tells "different" from "could not
   check" (no answer, an unparseable side, a timeout, an error) and the answers it read.

Where math-verify misreads a notation a careful grader reads without doubt, the fast
path decides, on purpose:

- scientific notation: ``8.7 \times 10^{8}`` is 870000000 (math-verify multiplies the
  float 8.7, and the rounding error makes them differ), and ``4.4e7`` is 44000000
  (math-verify reads 4.4 times Euler's e times 7);
- percent: ``X\%`` equals ``X`` and ``X/100`` by default (math-verify does so for ``9\%``
  but not for ``1.1\%``); ``percent=`` chooses;
- the degree sign: ``120°`` is ``120^\circ`` (math-verify cannot parse it);
- digit groups with a thin space: ``1\,000`` is 1000 (math-verify reads ``1 \cdot 000``);
- a trailing period: ``5.`` is ``5``, the end of a sentence;
- the same text is the same answer, also where math-verify finds no answer in it or
  cannot compare it with itself, and so are two answers that differ only in spacing,
  ``\left``/``\right`` or ``\dfrac``;
- an answer that mixes words and formulas (``$x=2$ or $x=3$``) is read whole, its inner
  ``$`` dropped; math-verify, given the dollars, reads one formula of it.

>>> verify(r"\frac{1}{2}", "0.5")
Verdict(status='equivalent', reason='numeric', detail='', gold='\\frac{1}{2}', pred='0.5')
>>> verify("12", r"Adding them up, the total is $\boxed{13}$.").status
'different'
>>> verify("34", "The largest $n$ is 34.").equivalent
True
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import replace
from fractions import Fraction
from typing import Any

from curate._progress import progress_bar
from curate.verification.extract import (
    Extraction,
    answer_region,
    last_sentence,
    named_choice,
    read_answer,
)
from curate.verification.normalize import (
    WORDS,
    Number,
    choice,
    choice_prefix,
    math_text,
    normalize_answer,
    number,
    resolution,
    unwrap_text,
    words,
)
from curate.verification.verdict import DEFAULT_OPTIONS, Status, Verdict, VerifyOptions

DEFAULT_TIMEOUT = 5.0
MAX_ANSWER_CHARS = 2000  # longer answers are not parsed (compared as text only)
_LETTERS = re.compile(r"[A-Za-z]+")
_CLAUSES = re.compile(r"[,;:]|\b(?:so|hence|thus|therefore|which)\b")
_COPULA = r"(?:is|are|be|was|were|becomes|remains|has|have)"
_HEDGES = frozenset(
    ("not", "no", "never", "neither", "nor", "or", "isn", "aren", "wasn", "doesn", "don", "cannot")
)
_Key = tuple[str | None, str, str | None]
_APPROX = re.compile(r"\\approx(?![A-Za-z])|≈")
_UNIT_AFTER = re.compile(
    r"(?:\\[ ,;!]|\s)*\\(?:text|mathrm|mbox)\s*\{[^{}]*\}(?:\^\{?-?\d\}?)?.*$", re.DOTALL
)
_WEAK = ("last", "no_answer")  # readings a gold answer's kind may overrule
_NO_SOLUTION = frozenset(
    {"no solution", "no solutions", "no real solution", "no real solutions", "none"}
)
_EMPTY_SET = frozenset({"\\varnothing", "\\emptyset", "\\{\\}", "∅", "\\O"})


def _within(a: Fraction, b: Fraction, options: VerifyOptions) -> bool:
    if not (options.rel_tol or options.abs_tol):
        return False
    bound = max(Fraction(options.rel_tol) * max(abs(a), abs(b)), Fraction(options.abs_tol))
    return abs(a - b) <= bound


def _numeric(g: Number, p: Number, options: VerifyOptions) -> Verdict | None:
    """Compare two plain numbers the way a careful grader (and math-verify) would."""
    candidates = [(g.value, p.value)]
    if g.percent != p.percent:  # 50\% against 50 or 0.5
        scaled = (g.value / 100, p.value) if g.percent else (g.value, p.value / 100)
        candidates = {"either": [*candidates, scaled], "value": [scaled], "number": candidates}[
            options.percent
        ]
    if any(a == b or _within(a, b, options) for a, b in candidates):
        return Verdict("equivalent", "numeric")
    if not (g.decimal or p.decimal) or options.decimals is None:
        return Verdict("different", "numeric")
    # math-verify rounds both to ``decimals`` places when a decimal is involved; decide
    # here only where that rounding cannot make them equal
    bound = Fraction(1, 10 ** max(options.decimals - 1, 0))
    if all(abs(a - b) > bound and max(abs(a), abs(b)) < 10**9 for a, b in candidates):
        return Verdict("different", "numeric")
    return None


def _in_words(gold_words: str, sentence: str) -> bool:
    """Whether the last clause of a sentence states the gold words as its answer: the
    clause is the gold words, or ends with them right after "is", "are", "be", "has", ...
    ("so the graph is an ellipse", "the day will be Monday"); a clause that negates or
    offers another option ("is not odd", "neither even nor odd", "Monday or Tuesday") does
    not."""
    clause = _CLAUSES.split(sentence.casefold())[-1]
    said = " ".join(_LETTERS.findall(clause))
    if said == gold_words:
        return True
    stated = re.search(rf"\b{_COPULA}\s+(?:(?:a|an|the)\s+)?{re.escape(gold_words)}$", said)
    others = set(said.split()) - set(gold_words.split())
    return stated is not None and not others & _HEDGES


def _by_gold_kind(gold: str, region: str) -> Verdict | None:
    """A response the rules read weakly (the last number or math, or nothing), against a
    gold answer in words or a choice letter: read the way that kind of answer is stated."""
    letter = choice(normalize_answer(gold))
    if letter is not None:
        named = named_choice(region)
        if named is None:
            return None
        status: Status = "equivalent" if named == letter else "different"
        return Verdict(status, "choice", "the choice the response names", pred=named)
    gold_words = words(gold)
    sentence = last_sentence(region) if gold_words is not None else None
    if gold_words is None or sentence is None:
        return None
    if _in_words(gold_words, sentence):
        return Verdict(
            "equivalent", "text", "its last sentence states the gold words", pred=sentence
        )
    return None


def _approximation(pred: str) -> tuple[Fraction, Fraction] | None:
    """The value after the last top-level ``\\approx`` of an answer that ends in one
    ("\\frac{600}{7} \\approx 85.7"), and half the place of its last digit; None if none."""
    cuts = [
        m
        for m in _APPROX.finditer(pred)
        if pred.count("{", 0, m.start()) == pred.count("}", 0, m.start())
    ]
    if not cuts:
        return None
    value = normalize_answer(_UNIT_AFTER.sub("", pred[cuts[-1].end() :]))
    n, place = number(value), resolution(value)
    return None if n is None or place is None else (n.value, place / 2)


def _fast(gold: str, pred: str, options: VerifyOptions) -> Verdict | tuple[str, str]:
    """A verdict from the cheap comparisons, or the (gold, pred) math-verify must check."""
    if gold == pred:
        return Verdict("equivalent", "identical")
    g, p = normalize_answer(gold), normalize_answer(pred)
    if g == p:
        return Verdict("equivalent", "normalized")
    gn = number(g)
    # "L = 7 \cdot 10^{49} \cdot 10^{-12} \approx 7 \cdot 10^{36}": the value stated last
    # must be the gold rounded to its digits, whatever the exact side before it says
    if gn is not None and (approx := _approximation(pred)) is not None:
        value, half = approx
        if abs(gn.value - value) > half:
            return Verdict("different", "numeric", "the approximate value is not the gold's")
    for side, text in (("gold", gold), ("pred", pred)):
        if len(text) > MAX_ANSWER_CHARS:
            return Verdict(f"{side}_unparseable", "too_long", f"over {MAX_ANSWER_CHARS} chars")  # type: ignore[arg-type]
    gold_choice = choice(g)
    prefixed = choice_prefix(pred)
    if gold_choice is not None:
        pred_choice = choice(p) or (prefixed[0] if prefixed else None)
        if pred_choice is not None:
            return Verdict("equivalent" if gold_choice == pred_choice else "different", "choice")
        if len(p) == 1 and p.isalpha():  # "$b$", "$e$": a variable or a constant, not B or E
            return Verdict("different", "choice", "a letter that is not a choice")
    elif prefixed is not None and prefixed[1]:  # "(D) 12" against the value 12
        pred, p = prefixed[1], normalize_answer(prefixed[1])
        if g == p:
            return Verdict("equivalent", "normalized")
    pn = number(p)
    if gn is not None and pn is not None:
        verdict = _numeric(gn, pn, options)
        if verdict is not None:
            return verdict
    gw, pw = words(gold), words(pred)
    if gw is not None and pw is None and WORDS.fullmatch(bare := unwrap_text(pred).rstrip(".")):
        pw = bare.casefold()  # "On" against "No" is a word, not the product O*n
    if gw is not None and pw is not None:
        return Verdict("equivalent" if gw == pw else "different", "text")
    if (gw in _NO_SOLUTION and p in _EMPTY_SET) or (pw in _NO_SOLUTION and g in _EMPTY_SET):
        return Verdict("equivalent", "text", "no solution is the empty set")
    return math_text(gold), math_text(pred)


def _from_worker(result: dict[str, Any]) -> Verdict:
    status = result["status"]
    return Verdict(status, result.get("reason") or status, result.get("detail", ""))


def _pool(workers: int | None) -> Any:
    from curate._procpool import shared_pool

    return shared_pool("curate.verification.worker", workers)


def _without_answer(
    gold: Extraction, pred: Extraction, text: str | None, options: VerifyOptions
) -> Verdict | None:
    """The verdict when a side has no answer, or the prediction is read by the gold's kind."""
    if gold.answer is None:
        return Verdict("gold_unparseable", "empty", "no gold answer")
    weak = pred.rule in _WEAK and "last" in options.rules and text is not None
    region = answer_region(text, options.think) if weak and text is not None else None
    if region is not None and (verdict := _by_gold_kind(gold.answer, region)) is not None:
        return verdict
    if pred.answer is None:
        detail = {
            "empty": "empty prediction",
            "unfinished_think": "the response ends inside <think>: it has no final answer",
        }.get(pred.rule, "no final answer found in the prediction")
        return Verdict("no_answer", pred.rule, detail)
    return None


def verify_many(
    pairs: Iterable[tuple[str | None, str | None]],
    *,
    options: VerifyOptions | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    workers: int | None = None,
    progress: bool = False,
) -> list[Verdict]:
    r"""Verdicts for many (gold, prediction) pairs, in order; the symbolic checks run in
    parallel, each distinct pair of answers once. ``workers`` defaults to one per core.

    >>> [v.equivalent for v in verify_many([("2", "2.0"), ("x+1", "1+x"), ("3", "4")])]
    [True, True, False]
    """
    options = options or DEFAULT_OPTIONS
    items = list(pairs)
    golds = {
        g: read_answer(g, rules=options.gold_rules, think="ignore")
        for g in dict.fromkeys(g for g, _ in items)
    }
    preds = {
        p: read_answer(p, rules=options.rules, think=options.think)
        for p in dict.fromkeys(p for _, p in items)
    }
    decided: dict[_Key, Verdict] = {}
    slow: dict[tuple[str, str], list[_Key]] = {}
    for g, p in dict.fromkeys(items):
        ge, pe = golds[g], preds[p]
        key = _key(ge, pe, p)
        if key in decided:
            continue
        verdict = _without_answer(ge, pe, p, options)
        if verdict is None:
            assert ge.answer is not None and pe.answer is not None
            fast = _fast(ge.answer, pe.answer, options)
            if isinstance(fast, tuple):
                slow.setdefault(fast, []).append(key)
                continue
            verdict = fast
        decided[key] = verdict
    if slow:
        # one gold's checks go to one worker: its parse is cached there
        tasks = sorted(slow)
        bar = progress_bar(len(tasks), "verify", enabled=progress, unit="check", min_total=200)

        def done(i: int, result: dict[str, Any]) -> None:
            for key in slow[tasks[i]]:
                decided[key] = _from_worker(result)
            bar.update(1)

        opts = options.worker_options()
        with bar:
            _pool(workers).run(
                [{"op": "verify", "gold": g, "pred": p, "opts": opts} for g, p in tasks],
                timeout,
                done,
                groups=[g for g, _ in tasks],
            )
    out = []
    for g, p in items:
        ge, pe = golds[g], preds[p]
        verdict = decided[_key(ge, pe, p)]
        out.append(replace(verdict, gold=ge.answer, pred=verdict.pred or pe.answer))
    return out


def _key(gold: Extraction, pred: Extraction, text: str | None) -> _Key:
    """What a verdict depends on: the two answers, or, where the prediction's reading is
    weak or empty (and the verdict may read its text), the rule and the whole text."""
    if pred.rule in _WEAK or pred.answer is None:
        return gold.answer, pred.rule, text
    return gold.answer, "", pred.answer


def verify(
    gold: str | None,
    pred: str | None,
    *,
    options: VerifyOptions | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Verdict:
    r"""Is ``pred`` the same answer as ``gold``? Safe in threads and worker processes.

    ``pred`` is a bare answer or a whole model response (its ``<think>`` part, chat-template
    debris and trailing text are dealt with; see `curate.verification.extract` for the
    rules and their order); ``gold`` is a bare answer or a whole reference solution.
    ``options`` (`VerifyOptions`) sets the reading and comparison rules; ``timeout``
    bounds each symbolic check, in seconds.

    >>> verify(r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}").reason
    'symbolic'
    >>> verify("7", "<think>3+4=7</think>The answer is $7$.<|im_end|>").equivalent
    True
    >>> verify("7", "<think>3 + 4 = 7, so").status
    'no_answer'
    """
    return verify_many([(gold, pred)], options=options, timeout=timeout)[0]


async def averify(
    gold: str | None,
    pred: str | None,
    *,
    options: VerifyOptions | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Verdict:
    """`verify` for async code: runs in a thread, never blocks the event loop."""
    return await asyncio.to_thread(verify, gold, pred, options=options, timeout=timeout)
