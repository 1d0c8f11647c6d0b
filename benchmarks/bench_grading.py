r"""Accuracy of curate's grader against math-verify on real model-output forms.

The table is ``tests/data/grading_cases.jsonl``: gold answers from public benchmarks
(MATH-500, GSM8K, AIME, DAPO, Minerva, OlympiadBench, GaoKao, AQuA, ...) and predictions
written the way models write them (whole responses with ``<think>``, several boxes,
Minerva's "The final answer is ... I hope it is correct.", "Answer:" lines, ``####``,
chat-template debris, units, matrices and relations inside text, words, choice letters),
each with a verdict a person wrote by hand (not taken from either grader).

For every case it records:

- curate: ``curate.verify_many(pairs)`` with the default `curate.VerifyOptions`;
- math-verify: ``verify(parse(gold), parse(pred))`` with math-verify's own defaults
  (LaTeX and expression extraction, its time limits), in a child process's main thread;

and prints accuracy per category and overall for both, their agreement, and the cases
where either is wrong. ``--sweep`` also scores curate under other values of each
comparison option (one changed at a time), the measurement behind the defaults.
``--speed`` times whole-response grading (responses/s, with the checkers' caches cleared
and warm) on the table and on MATH-500 written as R1-style responses (``--data``).

Run::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_grading.py --sweep --speed

Exits 1 if curate is less accurate than math-verify overall or in any category.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from curate.verification import Verdict, VerifyOptions, verify_many

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "data" / "grading_cases.jsonl"

SWEEP: dict[str, list[Any]] = {
    "rel_tol": [0.0, 1e-9, 1e-6, 1e-4, 1e-2],
    "decimals": [6, 2, None],
    "percent": ["either", "value", "number"],
    "relations": ["as_sets", "as_written"],
    "symbols": ["strict", "lenient"],
    "think": ["after", "require", "ignore"],
}


def load(path: Path = TABLE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _math_verify(pairs: list[tuple[str, str]]) -> list[bool]:
    """math-verify with its defaults (runs in a child's main thread: its timers work)."""
    import logging

    from math_verify import parse, verify

    logging.disable(logging.CRITICAL)
    out = []
    for gold, pred in pairs:
        try:
            out.append(bool(verify(parse(gold), parse(pred))))
        except Exception:
            out.append(False)
    return out


def math_verify_verdicts(pairs: list[tuple[str, str]]) -> list[bool]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_math_verify, (pairs,))


def score(rows: list[dict[str, Any]], verdicts: list[bool]) -> dict[str, tuple[int, int]]:
    """(right, total) per category and overall ("all")."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, verdict in zip(rows, verdicts, strict=True):
        for key in (row["category"], "all"):
            out[key][0] += verdict == row["expected"]
            out[key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def pct(right: int, total: int) -> str:
    return f"{100 * right / total:.1f}%"


def report(rows: list[dict[str, Any]], ours: list[Verdict], theirs: list[bool]) -> bool:
    mine = [v.equivalent for v in ours]
    a, b = score(rows, mine), score(rows, theirs)
    cats = sorted(k for k in a if k != "all")
    print("| category | cases | curate | math-verify | agreement |")
    print("|---|---:|---:|---:|---:|")
    ok = True
    for k in [*cats, "all"]:
        right_a, n = a[k]
        right_b, _ = b[k]
        agreed = sum(
            x == y
            for r, x, y in zip(rows, mine, theirs, strict=True)
            if k in ("all", r["category"])
        )
        ok &= right_a >= right_b
        name = "**overall**" if k == "all" else k
        print(f"| {name} | {n} | {pct(right_a, n)} | {pct(right_b, n)} | {pct(agreed, n)} |")
    fp_ours = sum(x and not r["expected"] for r, x in zip(rows, mine, strict=True))
    fp_theirs = sum(y and not r["expected"] for r, y in zip(rows, theirs, strict=True))
    print(f"\nwrong answers called right: curate {fp_ours}, math-verify {fp_theirs}")
    statuses: dict[str, int] = defaultdict(int)
    for v in ours:
        statuses[v.status] += 1
    print("\ncurate's statuses:", dict(sorted(statuses.items())))
    print("\ncases curate gets wrong (expected, curate, math-verify):")
    for r, v, t in zip(rows, ours, theirs, strict=True):
        if v.equivalent != r["expected"]:
            print(
                f"  [{r['category']}] expected={r['expected']} curate={v.status}/{v.reason} "
                f"mv={t} gold={r['gold'][:50]!r} read={v.pred!r:.60} note={r['note'][:60]!r}"
            )
    return ok


def sweep(rows: list[dict[str, Any]], pairs: list[tuple[str, str]]) -> None:
    print("\n| option | value | overall | changed categories (vs default) |")
    print("|---|---|---:|---|")
    base = score(rows, [v.equivalent for v in verify_many(pairs, timeout=20.0)])
    for name, values in SWEEP.items():
        for value in values:
            opts = VerifyOptions(**{name: value})
            got = score(rows, [v.equivalent for v in verify_many(pairs, options=opts)])
            changed = ", ".join(
                f"{k} {got[k][0] - base[k][0]:+d}"
                for k in sorted(got)
                if k != "all" and got[k][0] != base[k][0]
            )
            print(f"| {name} | {value} | {pct(*got['all'])} | {changed or '-'} |")


def r1_responses(path: Path) -> list[tuple[str, str]]:
    """MATH-500 as R1-style responses: each reference solution as the thinking and again as
    the answer, its last box holding the gold answer (even rows) or the gold with its first
    digit changed (odd rows): real LaTeX density and lengths, a known share right."""
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        row = json.loads(line)
        gold, solution = row["answer"], row["solution"]
        bump = re.sub(r"\d", lambda m: str((int(m[0]) + 1) % 10), gold, count=1)
        given = gold if i % 2 == 0 else bump
        cut = solution.rfind("\\boxed{")
        body = solution if cut < 0 else solution[:cut]
        out.append((gold, f"<think>\n{body}\n</think>\n\n{body}\\boxed{{{given}}}.<|im_end|>"))
    return out


def speed(pairs: list[tuple[str, str]], repeat: int, data: Path) -> None:
    from curate.verification.check import _pool

    long = [(g, p) for g, p in pairs if len(p) > 200]
    print(f"\nwhole-response grading: {len(pairs)} cases ({len(long)} longer than 200 chars)")
    batches = [("all cases", pairs), ("long responses", long)]
    if data.exists():
        r1 = r1_responses(data)
        size = sum(len(p) for _, p in r1) / len(r1)
        right = [v.equivalent for v in verify_many(r1)]
        made = [i % 2 == 0 or not re.search(r"\d", g) for i, (g, _) in enumerate(r1)]
        agree = sum(a == b for a, b in zip(right, made, strict=True))
        print(f"  R1-style MATH-500: verdicts agree with how they were made on {agree}/{len(r1)}")
        batches.append((f"{len(r1)} MATH-500 R1-style responses (mean {size:,.0f} chars)", r1))
    for label, batch in batches:
        verify_many(batch[:2])  # start the checkers
        _pool(None).run([{"op": "forget"}] * 4, 5.0, lambda i, r: None)
        start = time.perf_counter()
        verify_many(batch)
        cold = time.perf_counter() - start
        warm = min(_timed(batch) for _ in range(repeat))
        print(
            f"  {label}: cold {len(batch) / cold:,.0f} responses/s, "
            f"warm {len(batch) / warm:,.0f} responses/s"
        )


def _timed(pairs: list[tuple[str, str]]) -> float:
    start = time.perf_counter()
    verify_many(pairs)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--sweep", action="store_true", help="score other option values")
    parser.add_argument("--speed", action="store_true", help="time whole-response grading")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "prm800k_math_splits" / "test.jsonl",
        help="MATH-500 (JSONL with answer and solution) for the R1-style speed run",
    )
    args = parser.parse_args()
    rows = load(args.table)
    pairs = [(r["gold"], r["pred"]) for r in rows]
    theirs = math_verify_verdicts(pairs)
    ours = verify_many(pairs, timeout=20.0)
    ok = report(rows, ours, theirs)
    if args.sweep:
        sweep(rows, pairs)
    if args.speed:
        speed(pairs, args.repeat, args.data)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
