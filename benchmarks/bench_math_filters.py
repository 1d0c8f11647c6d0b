"""How many rows each math filter (`curate.math_filters`) flags on real pools, and samples of
them to check the precision by eye.

Pools (read with `curate.read`, as a recipe would): MATH train (7,500), the 2,000-row
DeepScaleR sample and DAPO-Math-17k (17,917). Each filter runs on the whole of each pool on
its own (not after the others). Then the language rule on labelled sets: Chinese problems
(CMATH, Chinese middle school) should all be flagged, English ones (GSM8K test,
OlympiadBench) none.

Writes ``OUT/flagged.jsonl`` (``--samples`` seeded random flagged rows per rule, to read)
and prints a Markdown table. Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_math_filters.py --out /tmp/bench-filters
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

import curate
from curate.math_filters import (
    FigureFilter,
    LanguageFilter,
    LengthFilter,
    MultipleChoiceFilter,
    ProofFilter,
)
from curate.run import apply_stage
from curate.stage import Filter, StageContext

ROOT = Path(__file__).resolve().parents[1]
POOLS = {
    "MATH": ("hendrycks_math/train.jsonl", {}),
    "DeepScaleR": (
        "deepscaler_partial/deepscaler_train.parquet",
        {"problem": "prompt.0.content", "answer": "reward_model.ground_truth"},
    ),
    "DAPO": ("svs_dapo/dapo_math_17k.jsonl", {}),
}
LABELLED = {  # file, problem column, expected: flagged by the language rule?
    "CMATH (zh)": ("qwen25_math_eval/cmath/test.jsonl", "question", True),
    "CN middle school (zh)": ("qwen25_math_eval/cn_middle_school/test.jsonl", "question", True),
    "GSM8K test (en)": ("grade_school_math/test.jsonl", "question", False),
    "OlympiadBench (en)": ("qwen25_math_eval/olympiadbench/test.jsonl", "question", False),
}
RULES: dict[str, Filter] = {
    "language": LanguageFilter(),
    "figures": FigureFilter(),
    "figures, drawings kept": FigureFilter(drawings=False),
    "multiple choice": MultipleChoiceFilter(),
    "proof": ProofFilter(),
    "length (10-8000 chars)": LengthFilter(),
    "length (< 8 tokens)": LengthFilter(min_length=8, max_length=None, unit="tokens"),
}


def _data_dir(given: str | None) -> Path:
    for d in (given, ROOT.parent / "shared" / "data", "/work/shared/data"):
        if d is not None and Path(d).is_dir():
            return Path(d)
    raise SystemExit("no data folder: pass --data ../shared/data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--out", default="/tmp/bench-math-filters")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data, out = _data_dir(args.data), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = [curate.read(data / f, source=name, **cols) for name, (f, cols) in POOLS.items()]
    run = curate.Recipe("pools", sources).run(out / "run", progress=False)
    table = run.table("problems").collect()
    sizes = dict(table.group_by("source").len().rows())
    header = "| rule | " + " | ".join(f"{p} ({sizes[p]:,})" for p in POOLS) + " | rows/s |"
    lines = [header, "|---|" + "---:|" * (len(POOLS) + 1)]
    samples = []
    for rule, stage in RULES.items():
        start = time.perf_counter()
        _, rejects = apply_stage(stage, table, StageContext.temporary(stage.name))
        rate = table.height / (time.perf_counter() - start)
        counts = dict(rejects.group_by("source").len().rows())
        cells = [f"{counts.get(p, 0):,} ({100 * counts.get(p, 0) / sizes[p]:.1f}%)" for p in POOLS]
        lines.append(f"| {rule} | " + " | ".join(cells) + f" | {rate:,.0f} |")
        picked = rejects.sample(min(args.samples, rejects.height), seed=args.seed, shuffle=True)
        flagged = picked.join(table.select("id", "problem", "answer"), on="id", how="left")
        for row in flagged.select("id", "source", "reason", "detail", "problem", "answer").rows(
            named=True
        ):
            samples.append({"rule": rule, **row, "problem": row["problem"][:400]})
    with (out / "flagged.jsonl").open("w") as f:
        for sample in samples:
            f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    print("\n".join(lines))
    print("\n| labelled set (language rule) | rows | flagged | expected |\n|---|---:|---:|---|")
    for name, (file, column, expected) in LABELLED.items():
        texts = [json.loads(line)[column] for line in (data / file).open()]
        frame = pl.DataFrame({"id": [str(i) for i in range(len(texts))], "problem": texts})
        _, rejects = apply_stage(LanguageFilter(), frame)
        share = rejects.height / frame.height
        print(
            f"| {name} | {frame.height:,} | {rejects.height:,} ({100 * share:.1f}%) | "
            f"{'all' if expected else 'none'} |"
        )
    print(f"\nsamples of flagged rows: {out / 'flagged.jsonl'}")


if __name__ == "__main__":
    main()
