"""Decontamination against evaluation benchmarks.

- `registry`: the bundled benchmarks (AIME 2024/2025, AMC, MATH-500, GSM8K, Minerva,
  OlympiadBench, HMMT, and the rest of the small Qwen2.5-Math evaluation sets; origins and
  licenses in ``data/README.md``) and the user's own (`register_benchmark`).
- `ngram`: tokens of math-normalized text and a hashed n-gram index of benchmark items.
- `hits`: the evidence for one (row, item) pair; `stage`: the `Decontaminate` stage.
- `report`: per benchmark, rows hit and items hit, from a run's manifest.

>>> from curate.decontam import Decontaminate, benchmarks
>>> {"aime24", "amc23", "math500"} <= set(benchmarks())
True
>>> Decontaminate(benchmarks=["aime24", "amc23", "math500"]).name
'decontaminate'
"""

from curate.decontam.registry import (
    Benchmark,
    benchmarks,
    bundled,
    catalog,
    load_benchmark,
    register_benchmark,
    unregister_benchmark,
)
from curate.decontam.report import decontam_report, format_report
from curate.decontam.stage import Decontaminate

__all__ = [
    "Benchmark",
    "Decontaminate",
    "benchmarks",
    "bundled",
    "catalog",
    "decontam_report",
    "format_report",
    "load_benchmark",
    "register_benchmark",
    "unregister_benchmark",
]
