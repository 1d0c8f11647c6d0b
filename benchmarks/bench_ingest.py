"""Ingest speed: time ``curate.read(...).frame()`` on real math datasets.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bench_ingest.py [--data ../shared/data] [--repeats 3]

Prints a markdown table: file, rows, best of N seconds, rows/s, and the seconds that
``curate.text.text_hash`` alone takes over the same problems (the reader calls it once
per row, so it bounds how fast ingest can be).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

from curate.io import read
from curate.text import text_hash

ROOT = Path(__file__).resolve().parents[1]

# (relative path, options for read)
CASES: list[tuple[str, dict[str, Any]]] = [
    ("hendrycks_math/train.jsonl", {"source": "math"}),
    (
        "grade_school_math/train.jsonl",
        {"source": "gsm8k", "problem": "question", "solution": "answer"},
    ),
    ("svs_dapo/dapo_math_17k.parquet", {"source": "dapo"}),
    ("svs_dapo/dapo_math_17k.jsonl", {"source": "dapo_jsonl"}),
]


def best_of(repeats: int, fn: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="folder holding the datasets (default: ../shared/data)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per file; best is kept")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, one process\n")
    print("| file | rows | best s | rows/s | text_hash alone s |")
    print("|---|---:|---:|---:|---:|")
    for rel, options in CASES:
        path = args.data / rel
        if not path.exists():
            print(f"| {rel} | missing | | | |")
            continue
        src = read(path, **options)
        seconds, df = best_of(args.repeats, src.frame)
        problems = df["problem"].to_list()
        hash_s, _ = best_of(args.repeats, lambda p=problems: [text_hash(x) for x in p])
        print(
            f"| {rel} | {df.height:,} | {seconds:.3f} | {df.height / seconds:,.0f} | {hash_s:.3f} |"
        )


if __name__ == "__main__":
    main()
