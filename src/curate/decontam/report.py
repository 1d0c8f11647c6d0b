"""The decontamination report of a run: per benchmark, how many training rows hit it and
how many of its items were hit. `Decontaminate` writes the numbers to the manifest
(stage ``stats["decontam"]``); ``curate decontam-report RUN_DIR`` prints them.

>>> import curate, json, tempfile, pathlib
>>> from curate.decontam import Decontaminate
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> copied = "Cities A and B are 45 miles apart. Alicia lives in A and Beth lives in B. " \\
...     "Alicia bikes towards B at 18 miles per hour. Leaving at the same time, Beth " \\
...     "bikes toward A at 12 miles per hour. How many miles from City A will they be?"
>>> rows = [{"problem": copied, "answer": "27"}, {"problem": "What is 2+2?", "answer": "4"}]
>>> _ = (d / "p.jsonl").write_text("\\n".join(json.dumps(r) for r in rows))
>>> recipe = curate.Recipe("r", [curate.read(d / "p.jsonl")], [Decontaminate("amc23")])
>>> decontam_report(recipe.run(d / "run")).select("benchmark", "items_hit", "rows_hit").row(0)
('amc23', 1, 1)
>>> print(format_report(d / "run"))  # doctest: +NORMALIZE_WHITESPACE
decontaminate: 1 of 2 rows hit a benchmark (rejected); index of 1,796 n-grams
  benchmark      items hit   rows hit  rules
  amc23               1/40          1  ngram=1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import RunError
from curate.run import Run

_SCHEMA = {
    "stage": pl.String,
    "benchmark": pl.String,
    "version": pl.String,
    "items": pl.Int64,
    "items_hit": pl.Int64,
    "rows_hit": pl.Int64,
    "rows": pl.Int64,
    "rules": pl.String,
}


def _stages(run: Run) -> list[dict[str, Any]]:
    return [s for s in run.manifest.get("stages", []) if "decontam" in (s.get("stats") or {})]


def decontam_report(run: str | Path | Run) -> pl.DataFrame:
    """One row per (decontamination stage, benchmark): the benchmark's version and item
    count, its items hit, the training rows that hit it, and those rows by rule."""
    run = run if isinstance(run, Run) else Run(run)
    records = []
    for stage in _stages(run):
        stats = stage["stats"]["decontam"]
        for name, b in stats["benchmarks"].items():
            rules = ", ".join(f"{k}={v}" for k, v in sorted(b["rows_by_rule"].items()))
            records.append(
                {
                    "stage": stage["name"],
                    "benchmark": name,
                    "version": b["version"],
                    "items": b["items"],
                    "items_hit": b["items_hit"],
                    "rows_hit": b["rows_hit"],
                    "rows": stats["rows"],
                    "rules": rules,
                }
            )
    return pl.DataFrame(records, schema=_SCHEMA)


def format_report(run: str | Path | Run) -> str:
    """The report as text, one block per decontamination stage (for the command line)."""
    run = run if isinstance(run, Run) else Run(run)
    stages = _stages(run)
    if not stages:
        raise RunError(
            f"{run.path} has no finished Decontaminate stage; add curate.Decontaminate() "
            "to the recipe and run it"
        )
    table = decontam_report(run)
    out = []
    for stage in stages:
        stats = stage["stats"]["decontam"]
        action = "rejected" if stats["mode"] == "drop" else "annotated"
        out.append(
            f"{stage['name']}: {stats['rows_flagged']:,} of {stats['rows']:,} rows hit a "
            f"benchmark ({action}); index of {stats['index_keys']:,} n-grams"
        )
        rows = table.filter(pl.col("stage") == stage["name"]).sort(
            ["rows_hit", "benchmark"], descending=[True, False]
        )
        width = max([len("benchmark"), *(len(b) for b in rows["benchmark"])])
        out.append(f"  {'benchmark':<{width}}  {'items hit':>13}  {'rows hit':>9}  rules")
        for r in rows.iter_rows(named=True):
            hit = f"{r['items_hit']:,}/{r['items']:,}"
            out.append(f"  {r['benchmark']:<{width}}  {hit:>13}  {r['rows_hit']:>9,}  {r['rules']}")
    return "\n".join(out)
