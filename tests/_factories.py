"""Small builders shared by the tests (imported as a plain module)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from curate.schema import PROBLEM_DTYPES
from curate.text import text_hash


def problems_frame(rows: Sequence[tuple[str, str | None]], source: str = "t") -> pl.DataFrame:
    """A canonical problems table from (problem, answer) pairs."""
    records = []
    for i, (problem, answer) in enumerate(rows):
        h = text_hash(problem)
        records.append(
            {
                "id": f"{source}:{i}:{h[:8]}",
                "text_hash": h,
                "problem": problem,
                "answer": answer,
                "solution": None,
                "source": source,
                "subject": None,
                "level": None,
                "meta": "{}",
            }
        )
    return pl.DataFrame(records, schema=PROBLEM_DTYPES)
