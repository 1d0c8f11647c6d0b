r"""Common n-grams: text that many problems share, which says nothing about which problem
a row holds.

A shared 10-gram is evidence of contamination only if it names a problem. Templates
("(A) Line (B) Circle (C) Parabola ... Enter the letter of the correct option"), answer
formats ("Enter your answer in the form $Ax + By + Cz + D = 0$, where ...") and stock
openings ("Determine the number of ways to arrange the letters of the word") occur in
hundreds of training problems and in a few benchmark items, and flag every row that uses
them. `curate.Decontaminate` leaves out of its index the n-grams that are common

- among the benchmark items (in more than ``max_df`` of them), and
- in a *reference corpus* of ordinary math problems (``reference``): by default the
  bundled list below, or the problems of a file of your own, where an n-gram counts as
  common when it is in at least ``reference_df`` distinct problems (default 5;
  DeepDistill removes 20-grams found more than 20 times in its pool of millions of
  queries; problem sets are smaller and 10-grams shorter, so fewer).

The bundled list (``data/common_ngrams.json``) holds the 10-grams found in at least 3
distinct problems of the MATH test split without MATH-500 (4,500 problems, MIT; they are
in no bundled benchmark), merged into phrases of tokens. It is built by
`common_phrases` (``python src/curate/decontam/common.py SHARED_DATA_DIR`` rebuilds it). A
phrase's n-grams are left out for any n up to its length; a longer ``ngram`` than 10
finds fewer of them common.

>>> template = "a line b circle c parabola d ellipse e hyperbola enter the letter of the"
>>> any(p.startswith(template) for p in bundled_phrases())
True
>>> common_phrases(["one two three four x", "y one two three four", "one two three four"], 3, 3)
['one two three four']
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate.decontam.ngram import tokenize_many, valid_starts
from curate.hashing import gram_hashes

BUNDLED = "bundled"
_FILE = "common_ngrams.json"
#: How the bundled list was built (its file records the same).
BUNDLED_N, BUNDLED_MIN_DF = 10, 3


@functools.cache
def _bundled() -> dict[str, Any]:
    path = Path(str(resources.files("curate.decontam") / "data" / _FILE))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def bundled_phrases() -> tuple[str, ...]:
    """The bundled common phrases (tokens joined by spaces)."""
    return tuple(_bundled()["phrases"])


def bundled_version() -> str:
    """A digest of the bundled list: part of the stage's fingerprint."""
    blob = json.dumps(_bundled()["phrases"]).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def reference_texts(path: str | Path) -> list[str]:
    """The problems of a reference corpus: any file `curate.read` accepts (its ``problem``
    column, found by name as for a training pool)."""
    from curate.io import read

    frame = read(Path(path), source="reference").frame()
    return [t for t in frame["problem"].to_list() if t]


def file_version(path: str | Path) -> str:
    """A digest of a reference file's bytes: a changed corpus changes the fingerprint."""
    digest = hashlib.blake2b(digest_size=16)
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def common_phrases(texts: Sequence[str], n: int, min_df: int) -> list[str]:
    """The ``n``-grams found in at least ``min_df`` distinct ``texts`` (same tokens count
    once), merged where they overlap inside a text into phrases, sorted."""
    t = tokenize_many(texts)
    rows = np.repeat(np.arange(len(t)), t.lengths())
    joined = pl.DataFrame({"row": rows, "tok": t.flat}).group_by("row").agg(pl.col("tok"))
    first = joined.with_columns(pl.col("tok").list.join(" ")).unique("tok")["row"].to_numpy()
    starts = valid_starts(t.offsets, n)
    starts = starts[np.isin(rows[starts], first)]
    grams = gram_hashes(t.hashes(), n, starts)
    frame = pl.DataFrame({"g": grams, "row": rows[starts]})
    df = frame.select(pl.col("row").n_unique().over("g"))["row"].to_numpy()
    common = starts[df >= min_df]
    if not len(common):
        return []
    # runs of consecutive common starts in one text make one phrase
    new_run = np.ones(len(common), bool)
    new_run[1:] = (np.diff(common) != 1) | (rows[common][1:] != rows[common][:-1])
    first_at = np.flatnonzero(new_run)
    last_at = np.append(first_at[1:], len(common)) - 1
    spans = {
        t.span(int(common[a]), int(common[b] - common[a]) + n)
        for a, b in zip(first_at, last_at, strict=True)
    }
    return sorted(spans)


def build(shared: Path) -> dict[str, Any]:
    """The bundled list from the shared data folder (MATH test without MATH-500)."""
    here = Path(__file__).resolve().parent / "data"
    math500 = {json.loads(line)["id"] for line in (here / "math500.jsonl").open()}
    test = [json.loads(line) for line in (shared / "hendrycks_math/test.jsonl").open()]
    texts = [r["problem"] for r in test if r["unique_id"] not in math500]
    return {
        "what": (
            f"{BUNDLED_N}-grams in at least {BUNDLED_MIN_DF} distinct problems of the "
            "reference corpus, merged into phrases (tokens of curate.decontam.ngram)"
        ),
        "reference": (
            f"MATH test split without MATH-500: {len(texts):,} problems "
            "(hendrycks_math/test.jsonl of the shared data; MATH is MIT)"
        ),
        "n": BUNDLED_N,
        "min_df": BUNDLED_MIN_DF,
        "phrases": common_phrases(texts, BUNDLED_N, BUNDLED_MIN_DF),
    }


if __name__ == "__main__":  # pragma: no cover - a maintainer tool
    out = Path(__file__).resolve().parent / "data" / _FILE
    data = build(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data"))
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{out}: {len(data['phrases'])} phrases")
