r"""Throughput and agreement of `curate.verify` on MATH-500 answers.

Measures checks per second of ``verify_many`` on ``--workers`` checker
processes for

  (a) gold vs gold (every MATH-500 answer against itself), and
  (b) gold vs perturbed: for each gold a few rewrites a model could produce:
      formatting only (``\dfrac``, spacing, ``\left( \right)``, ``$..$``,
      ``\boxed{}``), numeric changes (integer + 1, wrong sign, a fraction or the
      first number in an expression changed) and easy equivalent
      re-expressions (``0.5`` vs ``\frac12``, ``a/b`` vs ``\frac{a}{b}``),

and (b) split into the pairs decided in the calling process (fast path) and
those that need math-verify in a worker (slow path), each timed on its own.

Workers are first warmed up on other answers (MATH train), as they are in a
long run; before every timed pass their parse caches and sympy's cache are
cleared, so no pass gains from the one before. Each pass runs ``--repeats``
times; the report gives the best and the spread (other processes may share
the cores).

Then every verdict is compared with math-verify called directly,

    math_verify.verify(parse(wrap(gold), [LatexExtractionConfig()]),
                       parse(wrap(pred), [LatexExtractionConfig()]))

with ``wrap(x) = f"${x}$"`` and math-verify's default time limits (pairs that
disagree are asked again one at a time, so a busy machine's timeouts don't
count). Disagreements that `curate.verify` makes on purpose (see its module
docstring: the same text math-verify cannot read, answers mixing words and
formulas, scientific notation, ``%``, ``°``, thin-space digit groups, a
trailing period, spacing) are counted apart, with examples of each.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_verify.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_verify.py \
        --data ../shared/data/prm800k_math_splits/test.jsonl --workers 2

``--data`` reads a JSON list or JSON lines of records with an ``answer``
(or ``final_answer``/``gt``) field. Not a pytest file: it prints a report and
exits 1 when a verdict disagrees with math-verify other than on purpose
(``--no-reference`` skips that comparison).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

from curate._procpool import shared_pool
from curate.verification import GOLD_RULES, PRED_RULES, normalize_answer, read_answer, verify_many
from curate.verification.check import _fast
from curate.verification.verdict import DEFAULT_OPTIONS

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT_DATA = SHARED / "rllm" / "test" / "math.json"
DEFAULT_WARMUP = SHARED / "prm800k_math_splits" / "train_reconstructed.jsonl"

_FRAC = re.compile(r"\\frac\{(-?\d+)\}\{(\d+)\}")
_FIRST_INT = re.compile(r"\d+")


def _decimal(value: Fraction) -> str | None:
    """Exact decimal for a fraction whose denominator has only 2s and 5s."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return None
    scale = 0
    while (value * 10**scale).denominator != 1:
        scale += 1
    digits = str(abs(value.numerator) * 10**scale // value.denominator).rjust(scale + 1, "0")
    sign = "-" if value < 0 else ""
    return sign + (f"{digits[:-scale]}.{digits[-scale:]}" if scale else digits)


def perturb(gold: str) -> list[tuple[str, str]]:
    """(kind, pred) rewrites of one gold answer; kind is format, numeric or equivalent."""
    out: list[tuple[str, str]] = [("format", f"${gold}$"), ("format", rf"\boxed{{{gold}}}")]
    if r"\frac" in gold:
        out.append(("format", gold.replace(r"\frac", r"\dfrac")))
    spaced = re.sub(r"\s*([=+,]|-(?!\\infty))\s*", r" \1 ", gold).strip()
    out.append(("format", spaced if spaced != gold else gold.replace(" ", "")))
    if "(" in gold and r"\left" not in gold:
        out.append(("format", gold.replace("(", r"\left( ").replace(")", r" \right)")))
    elif r"\left" in gold:
        out.append(("format", gold.replace(r"\left", "").replace(r"\right", "")))

    stripped = gold.strip()
    if re.fullmatch(r"-?\d+", stripped):
        n = int(stripped)
        out += [("numeric", str(n + 1)), ("numeric", str(-n) if n else "1")]
        out.append(("equivalent", f"{n}.0"))
    elif m := re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", stripped):
        sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        out.append(("numeric", rf"{sign}\frac{{{a + 1}}}{{{b}}}"))
        out.append(("numeric", rf"{'' if sign else '-'}\frac{{{a}}}{{{b}}}"))
        out.append(("equivalent", f"{sign}{a}/{b}"))
        if b and (dec := _decimal(Fraction(a, b) * (-1 if sign else 1))) is not None:
            out.append(("equivalent", dec))
    elif re.fullmatch(r"-?\d*\.\d+", stripped):
        value = Fraction(stripped)
        out.append(("numeric", _decimal(value + 1) or stripped + "1"))
        out.append(("equivalent", rf"\frac{{{value.numerator}}}{{{value.denominator}}}"))
    elif m := _FIRST_INT.search(gold):
        n = int(m.group())
        out.append(("numeric", gold[: m.start()] + str(n + 1) + gold[m.end() :]))
    return [(kind, pred) for kind, pred in dict.fromkeys(out) if pred != gold]


def load_golds(path: Path) -> list[str]:
    """Gold answers of a JSON list or JSON lines file (lists of answers: the first)."""
    text = path.read_text()
    records = json.loads(text) if text.lstrip().startswith("[") else []
    if not records:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    golds = []
    for r in records:
        answer = next(
            (r[k] for k in ("answer", "final_answer", "gt") if r.get(k) is not None), None
        )
        if isinstance(answer, list):
            answer = answer[0] if answer else None
        if answer is not None and str(answer).strip():
            golds.append(str(answer).strip())
    return golds


def _wrap(answer: str) -> str:
    return f"${answer}$"


def _reference(pairs: Sequence[tuple[str, str]]) -> list[tuple[bool, bool]]:
    """math-verify called directly (in the main thread of a worker process, so its
    own SIGALRM time limits are on): (verdict, whether it found both answers)."""
    logging.disable(logging.CRITICAL)
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    cache: dict[str, list[object]] = {}

    def parsed(s: str) -> list[object]:
        if s not in cache:
            cache[s] = parse(_wrap(s), config)
        return cache[s]

    return [(bool(verify(parsed(g), parsed(p))), bool(parsed(g) and parsed(p))) for g, p in pairs]


def reference_verdicts(pairs: list[tuple[str, str]], workers: int) -> list[tuple[bool, bool]]:
    by_gold = sorted(range(len(pairs)), key=lambda i: pairs[i][0])  # shares parses of a gold
    n = max(1, len(by_gold) // (workers * 8))
    chunks = [by_gold[i : i + n] for i in range(0, len(by_gold), n)]
    out: list[tuple[bool, bool]] = [(False, False)] * len(pairs)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        results = ex.map(_reference, [[pairs[i] for i in chunk] for chunk in chunks])
        for chunk, verdicts in zip(chunks, results, strict=True):
            for i, v in zip(chunk, verdicts, strict=True):
                out[i] = v
    return out


# notations curate.verify reads differently from math-verify on purpose (its module
# docstring): scientific notation, percent, the degree sign, thin-space digit groups
_NOTATION = re.compile(r"\\times10\^|\\cdot10\^|^-?[\d.]+[eE][-+]?\d+$|%|°|\d\\,\d")
_INNER_DOLLAR = re.compile(r"(?<!\\)\$")


def deliberate(gold: str, pred: str, reason: str, found_both: bool) -> str | None:
    """Why curate.verify's verdict differs from math-verify's on purpose, or None."""
    if reason == "identical" or (reason == "normalized" and not found_both):
        return "same text (math-verify finds no answer in it, or cannot compare it)"
    if any(_INNER_DOLLAR.search(normalize_answer(s)) for s in (gold, pred)):
        return "words and formulas, read whole (math-verify: one formula of it)"
    if any(_NOTATION.search(normalize_answer(s)) or "°" in s for s in (gold, pred)):
        return "notation (scientific, %, °, thin-space digit groups)"
    if any(s.strip().endswith(".") for s in (gold, pred)):
        return "trailing period"
    if reason == "normalized":
        return "spacing, \\left/\\right only (math-verify reads some spaces)"
    return None


def is_fast(gold: str, pred: str) -> bool:
    """Decided in the calling process, without a worker."""
    g = read_answer(gold, rules=GOLD_RULES).answer
    p = read_answer(pred, rules=PRED_RULES).answer
    return g is None or p is None or not isinstance(_fast(g, p, DEFAULT_OPTIONS), tuple)


def forget(workers: int, timeout: float) -> None:
    """Clear the parse caches and sympy's cache of every (warm) worker."""
    pids: set[str] = set()
    shared_pool("curate.verification.worker", workers).run(
        [{"op": "forget"}] * workers, timeout, lambda i, r: pids.add(r.get("detail", ""))
    )
    assert len(pids) == workers, f"expected {workers} workers to forget, got {pids}"


def timed(
    pairs: list[tuple[str, str]], workers: int, timeout: float, repeats: int
) -> tuple[list[float], list[str], list[bool]]:
    """Seconds of each of ``repeats`` passes, each on cleared caches, and the verdicts."""
    times = []
    verdicts = []
    for _ in range(repeats):
        forget(workers, timeout)
        start = time.perf_counter()
        verdicts = verify_many(pairs, workers=workers, timeout=timeout)
        times.append(time.perf_counter() - start)
    return times, [v.reason for v in verdicts], [v.equivalent for v in verdicts]


def rate(n: int, times: list[float]) -> str:
    best, worst = min(times), max(times)
    if len(times) == 1:
        return f"{n / best:,.0f} checks/s ({best:.3f} s for {n})"
    return (
        f"{n / best:,.0f} checks/s best of {len(times)} "
        f"(spread {n / worst:,.0f}-{n / best:,.0f}; {best:.3f}-{worst:.3f} s for {n})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="gold answers")
    parser.add_argument(
        "--warmup", type=Path, default=DEFAULT_WARMUP, help="answers to warm workers on"
    )
    parser.add_argument("--warmup-golds", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N golds only")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the math-verify comparison"
    )
    parser.add_argument("--show", type=int, default=10, help="disagreements to print per kind")
    args = parser.parse_args()

    golds = load_golds(args.data)[: args.limit]
    perturbed = [(g, p, kind) for g in golds for kind, p in perturb(g)]
    pairs_a = [(g, g) for g in golds]
    pairs_b = [(g, p) for g, p, _ in perturbed]
    fast_b = [pair for pair in pairs_b if is_fast(*pair)]
    slow_b = list(dict.fromkeys(pair for pair in pairs_b if not is_fast(*pair)))
    print(
        f"data: {args.data} ({len(golds)} golds); cores: {os.cpu_count()}; "
        f"workers: {args.workers}; timeout: {args.timeout} s"
    )
    print(f"(b) perturbations: {dict(Counter(k for _, _, k in perturbed))}")

    start = time.perf_counter()
    verify_many([(f"x+{i}", f"{i}+x") for i in range(2 * args.workers)], workers=args.workers)
    print(f"pool start (cold, {args.workers} workers): {time.perf_counter() - start:.2f} s")
    if args.warmup.exists():
        warm = load_golds(args.warmup)[: args.warmup_golds]
        warm_pairs = [(g, p) for g in warm for _, p in perturb(g)]
        start = time.perf_counter()
        verify_many(warm_pairs, workers=args.workers, timeout=args.timeout)
        print(
            f"warm-up: {len(warm_pairs)} checks on {len(warm)} golds of {args.warmup.name} "
            f"in {time.perf_counter() - start:.2f} s (first pass, cold workers)"
        )

    # first contact: answers these workers have never parsed (the grammar is warm
    # only from the warm-up set); then repeated passes on cleared caches
    first_b, reasons_b, eq_b = timed(pairs_b, args.workers, args.timeout, 1)
    times_a, reasons_a, eq_a = timed(pairs_a, args.workers, args.timeout, args.repeats)
    times_b, _, _ = timed(pairs_b, args.workers, args.timeout, args.repeats)
    times_fast, reasons_fast, _ = timed(fast_b, args.workers, args.timeout, args.repeats)
    times_slow, _, _ = timed(slow_b, args.workers, args.timeout, args.repeats)
    assert "symbolic" not in reasons_fast and "unparseable" not in reasons_fast
    fast_a = sum(is_fast(g, p) for g, p in pairs_a)
    print(
        f"(a) gold vs gold: {len(pairs_a)} checks ({len(set(pairs_a))} distinct); "
        f"fast path {fast_a / len(pairs_a):.1%}; {rate(len(pairs_a), times_a)}"
    )
    print(f"    reasons {dict(Counter(reasons_a).most_common())}")
    print(
        f"(b) gold vs perturbed, mixed: {len(pairs_b)} checks ({len(set(pairs_b))} distinct); "
        f"fast path {len(fast_b) / len(pairs_b):.1%}"
    )
    print(f"    reasons {dict(Counter(reasons_b).most_common())}")
    print(f"    first contact: {rate(len(pairs_b), first_b)}")
    print(f"    repeated, caches cleared: {rate(len(pairs_b), times_b)}")
    print(f"(b) fast path only, in the calling process: {rate(len(fast_b), times_fast)}")
    print(
        f"(b) slow path only, distinct pairs for math-verify, caches cleared: "
        f"{rate(len(slow_b), times_slow)}"
    )

    if args.no_reference:
        return 0
    start = time.perf_counter()
    all_pairs = pairs_a + pairs_b
    ref = reference_verdicts(all_pairs, args.workers)
    print(f"math-verify directly: {len(all_pairs)} checks in {time.perf_counter() - start:.1f} s")
    ours = eq_a + eq_b
    reasons = reasons_a + reasons_b
    bad = [i for i in range(len(all_pairs)) if ours[i] != ref[i][0]]
    # a busy machine can make math-verify's own 5 s limits fire: ask again, one at a time
    for i, again in zip(bad, reference_verdicts([all_pairs[i] for i in bad], 1), strict=True):
        ref[i] = again
    bad = [i for i in bad if ours[i] != ref[i][0]]
    why = {i: deliberate(*all_pairs[i], reasons[i], ref[i][1]) for i in bad}
    meant = [i for i in bad if why[i]]
    print(
        f"agreement with math-verify: {len(all_pairs) - len(bad)}/{len(all_pairs)}; "
        f"disagreements: {len(bad)} ({len(meant)} on purpose, {len(bad) - len(meant)} not)"
    )
    for label, count in Counter(why[i] or "UNEXPECTED" for i in bad).most_common():
        print(f"  {count:5d} {label}")
    shown: Counter[str | None] = Counter()
    for i in sorted(bad, key=lambda i: why[i] is not None):
        shown[why[i]] += 1
        if shown[why[i]] > args.show:
            continue
        g, p = all_pairs[i]
        print(
            f"  [{why[i] or 'UNEXPECTED'}] gold={g!r} pred={p!r} "
            f"curate={ours[i]} ({reasons[i]}) math-verify={ref[i][0]}"
        )
    return 1 if len(bad) > len(meant) else 0


if __name__ == "__main__":
    sys.exit(main())
