r"""Throughput and agreement of `curate.verify` on MATH-500 answers.

Measures checks per second of ``verify_many`` for

  (a) gold vs gold (every MATH-500 answer against itself), and
  (b) gold vs perturbed: for each gold a few rewrites a model could produce:
      formatting only (``\dfrac``, spacing, ``\left( \right)``, ``$..$``,
      ``\boxed{}``), numeric changes (integer + 1, wrong sign, a fraction or the
      first number in an expression changed) and easy equivalent
      re-expressions (``0.5`` vs ``\frac12``, ``a/b`` vs ``\frac{a}{b}``),

then compares every verdict with math-verify called directly,

    math_verify.verify(parse(wrap(gold), [LatexExtractionConfig()]),
                       parse(wrap(pred), [LatexExtractionConfig()]))

with ``wrap(x) = f"${x}$"`` and math-verify's default time limits.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_verify.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_verify.py --data PATH/math.json --workers 2

Not a pytest file: it prints a report and exits 1 when a verdict disagrees with
math-verify (``--no-reference`` skips that comparison).
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

from curate.verify import _fast_verdict, _prediction, verify_many

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rllm" / "test" / "math.json"
)

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


def _wrap(answer: str) -> str:
    return f"${answer}$"


def _reference(pairs: Sequence[tuple[str, str]]) -> list[bool]:
    """math-verify called directly (in the main thread of a worker process, so its
    own SIGALRM time limits are on)."""
    logging.disable(logging.CRITICAL)
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    cache: dict[str, list[object]] = {}

    def parsed(s: str) -> list[object]:
        if s not in cache:
            cache[s] = parse(_wrap(s), config)
        return cache[s]

    return [bool(verify(parsed(g), parsed(p))) for g, p in pairs]


def reference_verdicts(pairs: list[tuple[str, str]], workers: int) -> list[bool]:
    by_gold = sorted(range(len(pairs)), key=lambda i: pairs[i][0])  # shares parses of a gold
    n = max(1, len(by_gold) // (workers * 8))
    chunks = [by_gold[i : i + n] for i in range(0, len(by_gold), n)]
    out: list[bool] = [False] * len(pairs)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        results = ex.map(_reference, [[pairs[i] for i in chunk] for chunk in chunks])
        for chunk, verdicts in zip(chunks, results, strict=True):
            for i, v in zip(chunk, verdicts, strict=True):
                out[i] = v
    return out


def is_fast(gold: str, pred: str) -> bool:
    """Decided in the calling process, without a worker."""
    return _fast_verdict(gold, _prediction(pred)) is not None


def timed(
    pairs: list[tuple[str, str]], workers: int, timeout: float
) -> tuple[float, list[str], list[bool]]:
    start = time.perf_counter()
    verdicts = verify_many(pairs, workers=workers, timeout=timeout)
    seconds = time.perf_counter() - start
    return seconds, [v.reason for v in verdicts], [v.equivalent for v in verdicts]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="MATH-500 JSON (list of {answer})"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--limit", type=int, default=None, help="use the first N golds only")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the math-verify comparison"
    )
    parser.add_argument("--show", type=int, default=20, help="disagreements to print")
    args = parser.parse_args()

    records = json.loads(args.data.read_text())
    golds = [str(r["answer"]) for r in records][: args.limit]
    perturbed = [(g, p, kind) for g in golds for kind, p in perturb(g)]
    pairs_a = [(g, g) for g in golds]
    pairs_b = [(g, p) for g, p, _ in perturbed]
    print(
        f"data: {args.data} ({len(golds)} golds); cores: {os.cpu_count()}; workers: {args.workers}"
    )
    print(f"(b) perturbations: {dict(Counter(k for _, _, k in perturbed))}")

    start = time.perf_counter()
    verify_many(
        [("x+1", "1+x")] * 1 + [(f"x+{i}", f"{i}+x") for i in range(2, 2 * args.workers + 2)],
        workers=args.workers,
        timeout=args.timeout,
    )
    print(f"pool start (cold, {args.workers} workers): {time.perf_counter() - start:.2f} s")

    secs_a, reasons_a, eq_a = timed(pairs_a, args.workers, args.timeout)
    secs_b, reasons_b, eq_b = timed(pairs_b, args.workers, args.timeout)
    for name, pairs, secs, reasons in (
        ("(a) gold vs gold", pairs_a, secs_a, reasons_a),
        ("(b) gold vs perturbed", pairs_b, secs_b, reasons_b),
    ):
        fast = sum(is_fast(g, p) for g, p in pairs)
        print(
            f"{name}: {len(pairs)} checks ({len(set(pairs))} distinct) in {secs:.3f} s = "
            f"{len(pairs) / secs:,.0f} checks/s; fast path {fast / len(pairs):.1%}; "
            f"reasons {dict(Counter(reasons).most_common())}"
        )
    # the slow pairs alone, on new golds for the workers' caches: rerun (b)'s slow pairs
    slow_b = list(dict.fromkeys((g, p) for g, p in pairs_b if not is_fast(g, p)))
    if slow_b:
        secs_slow, _, _ = timed(slow_b, args.workers, args.timeout)
        print(
            f"slow path alone (the {len(slow_b)} distinct pairs of (b) that need math-verify, "
            f"run again): {secs_slow:.3f} s = {len(slow_b) / secs_slow:,.0f} checks/s"
        )

    if args.no_reference:
        return 0
    start = time.perf_counter()
    all_pairs = pairs_a + pairs_b
    ref = reference_verdicts(all_pairs, args.workers)
    print(f"math-verify directly: {len(all_pairs)} checks in {time.perf_counter() - start:.1f} s")
    ours = eq_a + eq_b
    reasons = reasons_a + reasons_b
    bad = [i for i in range(len(all_pairs)) if ours[i] != ref[i]]
    print(
        f"agreement with math-verify: {len(all_pairs) - len(bad)}/{len(all_pairs)}; "
        f"disagreements: {len(bad)}"
    )
    for i in bad[: args.show]:
        g, p = all_pairs[i]
        print(f"  gold={g!r} pred={p!r} curate={ours[i]} ({reasons[i]}) math-verify={ref[i]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
