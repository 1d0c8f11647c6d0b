"""Evidence that a row holds a benchmark item: one candidate *hit* per (row, item, rule).

`ngram_hits` turns the matches of an `NgramIndex` into hits with the longest shared run
of tokens (its text is what a person reads to check the hit) and the item's coverage;
`same_numbers` says whether a row has other numbers than the item (a sibling problem);
`embedding_hits` finds each row's most similar item; `candidates` adds benchmark names,
item ids and whether the gold answers agree; `hit_column` makes the ``contamination``
column. Which candidates count is `curate.decontam.Decontaminate.decide`'s business.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl

from curate.decontam.ngram import IDENTITY, NgramIndex, Tokens, union_length
from curate.decontam.registry import Benchmark
from curate.verification import GOLD_RULES, VerifyOptions, verify_many

#: One hit in the ``contamination`` column.
HIT = pl.Struct(
    {
        "benchmark": pl.String,  # benchmark name
        "item": pl.String,  # the benchmark item's id
        "rule": pl.String,  # ngram, whole_item or embedding
        "match": pl.String,  # longest shared run of tokens (normalized text)
        "tokens": pl.Int64,  # its length in tokens
        "ngrams": pl.Int64,  # shared n-grams (positions in the row)
        "coverage": pl.Float64,  # share of the item's tokens inside shared n-grams
        "similarity": pl.Float64,  # embedding cosine (embedding rule)
        "same_answer": pl.Boolean,  # gold answers agree; null: unknown or not compared
        "same_numbers": pl.Boolean,  # the item's numbers are all in the row; null: it has none
    }
)
RULES = ("ngram", "whole_item", "embedding")  # strongest first
_SCHEMA = {
    "row": pl.Int64,
    "item": pl.Int64,
    "rule": pl.String,
    "match": pl.String,
    "tokens": pl.Int64,
    "ngrams": pl.Int64,
    "coverage": pl.Float64,
    "similarity": pl.Float64,
}
_MATCH_CHARS = 300  # longest matched text kept in a hit


def items_table(benches: Sequence[Benchmark]) -> pl.DataFrame:
    """Every wording of every item: ``bench`` (position), ``benchmark``, ``item_id``,
    ``problem``, ``answer``, and ``group`` (one number per distinct item)."""
    schema = {"bench": pl.Int64, "benchmark": pl.String, "item_id": pl.String}
    frames = [
        b.items.select(
            pl.lit(i, pl.Int64).alias("bench"),
            pl.lit(b.name).alias("benchmark"),
            pl.col("id").alias("item_id"),
            "problem",
            "answer",
        )
        for i, b in enumerate(benches)
    ]
    empty = pl.DataFrame(schema={**schema, "problem": pl.String, "answer": pl.String})
    items = pl.concat(frames) if frames else empty
    items = items.filter(pl.col("problem").fill_null("").str.strip_chars() != "")
    group = pl.struct("bench", "item_id").rank("dense").cast(pl.Int64)
    return items.with_columns(group.alias("group"))


def empty_hits() -> pl.DataFrame:
    return pl.DataFrame(schema=_SCHEMA)


def ngram_hits(index: NgramIndex, tokens: Tokens) -> pl.DataFrame:
    """One hit per (row, item) that share an n-gram or hold a whole short item."""
    m = index.lookup(tokens)
    if not len(m.row):
        return empty_hits()
    frame = pl.DataFrame(
        {"row": m.row, "item": m.item, "pos": m.pos, "ipos": m.item_pos, "len": m.length}
    )
    same = (pl.col("row") == pl.col("row").shift()) & (pl.col("item") == pl.col("item").shift())
    step = (pl.col("pos").diff() == 1) & (pl.col("ipos").diff() == 1)
    runs = (
        frame.with_columns((~(same & step).fill_null(False)).cum_sum().alias("run"))
        .group_by("row", "item", "run", maintain_order=True)
        .agg(pl.col("pos").first(), (pl.len() + pl.col("len").first() - 1).alias("tokens"))
    )
    best = runs.sort("tokens", descending=True, maintain_order=True).unique(
        ["row", "item"], keep="first", maintain_order=True
    )
    counts = frame.group_by("row", "item", maintain_order=True).agg(
        pl.len().alias("ngrams"), pl.col("ipos"), pl.col("len").first()
    )
    out = best.join(counts, on=["row", "item"]).sort("row", "item")
    pair = np.repeat(np.arange(out.height), out["ipos"].list.len().to_numpy())
    covered = union_length(pair, out["ipos"].explode().to_numpy(), index.n, out.height)
    whole = (out["len"] < index.n).to_numpy()
    total = np.maximum(index.item_tokens[out["item"].to_numpy()], 1)
    coverage = np.where(whole, 1.0, np.minimum(covered / total, 1.0))
    match = [_clip(tokens.span(p, t)) for p, t in zip(out["pos"], out["tokens"], strict=True)]
    return pl.DataFrame(
        {
            "row": out["row"],
            "item": out["item"],
            "rule": np.where(whole, "whole_item", "ngram"),
            "match": match,
            "tokens": out["tokens"],
            "ngrams": out["ngrams"],
            "coverage": np.round(coverage, 4),
            "similarity": None,
        },
        schema=_SCHEMA,
    )


def token_numbers(tokens: Tokens, rows: np.ndarray) -> pl.DataFrame:
    """The distinct numbers (tokens of digits) and figures (`curate.decontam.ngram.FIGURE`)
    of some texts of ``tokens``: ``row``, ``num``.

    >>> from curate.decontam.ngram import tokenize_many
    >>> token_numbers(tokenize_many(["x 12 and 12, 3", "none", "7"]), np.array([0, 2])).rows()
    [(0, '12'), (0, '3'), (2, '7')]
    """
    rows = np.asarray(rows, np.int64)
    starts, lengths = tokens.offsets[rows], np.diff(tokens.offsets)[rows]
    first = np.cumsum(lengths) - lengths
    pos = np.arange(int(lengths.sum())) - np.repeat(first - starts, lengths)
    frame = pl.DataFrame({"row": np.repeat(rows, lengths), "num": tokens.flat.gather(pos)})
    return frame.filter(pl.col("num").str.contains(IDENTITY)).unique(maintain_order=True)


def same_numbers(hits: pl.DataFrame, tokens: Tokens, index: NgramIndex) -> pl.Series:
    """Per hit: false where the row has *other numbers* than the item, true where it does
    not, null where neither has a number. Other numbers (or figures, whose tokens count as
    numbers) means both: the item has a number the row lacks, and the row one the item
    lacks. That is a sibling problem (the same text with 3 boxes instead of 2, another
    figure); a row that only lacks some (a copy without its example or figure) or only
    adds some ("Problem 7.") is not one."""
    if not hits.height:
        return pl.Series("same_numbers", [], pl.Boolean)
    on = ["row", "item"]
    rows = token_numbers(tokens, np.unique(hits["row"].to_numpy()))
    pairs = hits.select(on).unique()
    item_nums = pairs.join(index.numbers(), on="item")
    row_nums = pairs.join(rows, on="row")
    lacks = item_nums.join(rows, on=["row", "num"], how="anti").select(on).unique()
    adds = row_nums.join(index.numbers(), on=["item", "num"], how="anti").select(on).unique()
    other = lacks.join(adds, on=on).with_columns(pl.lit(False).alias("same_numbers"))
    some = pl.concat([item_nums.select(on), row_nums.select(on)]).unique()
    verdict = some.join(other, on=on, how="left").with_columns(
        pl.col("same_numbers").fill_null(True)
    )
    return hits.select(on).join(verdict, on=on, how="left")["same_numbers"]


def embedding_hits(
    rows: np.ndarray, items: np.ndarray, threshold: float, chunk: int = 4096
) -> pl.DataFrame:
    """For each row vector, its most similar item vector if the cosine is at least
    ``threshold`` (vectors L2-normalised; exact search, ties to the first item)."""
    if not len(rows) or not len(items):
        return empty_hits()
    best = np.zeros(len(rows), np.int64)
    sim = np.zeros(len(rows), np.float32)
    for start in range(0, len(rows), chunk):
        sims = rows[start : start + chunk] @ items.T
        best[start : start + chunk] = sims.argmax(axis=1)
        sim[start : start + chunk] = sims.max(axis=1)
    found = np.flatnonzero(sim >= threshold - 1e-6)
    values = {"row": found, "item": best[found], "rule": "embedding"}
    values["similarity"] = np.round(sim[found].astype(np.float64), 4)
    return pl.DataFrame({c: values.get(c) for c in _SCHEMA}, schema=_SCHEMA)


def candidates(
    hits: pl.DataFrame,
    answers: pl.Series,
    items: pl.DataFrame,
    *,
    compare: Callable[[pl.DataFrame], pl.Series] | None = None,
    workers: int | None = None,
) -> pl.DataFrame:
    """Hits with benchmark name, item id, both gold answers, ``same_answer`` and
    ``choice_answer`` (they agree as a multiple-choice letter: little evidence), sorted
    strongest first within each row, one per (row, benchmark, item, rule).

    ``same_answer`` is null where either answer is missing, `curate.verify` cannot
    compare them, or ``compare`` (a boolean expression's values over the hits) is false:
    answers are only compared where they can change the decision.
    """
    info = items.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("item"),
        "bench",
        "benchmark",
        "item_id",
        "answer",
    )
    row_answers = pl.DataFrame(
        {"row": np.arange(len(answers), dtype=np.int64), "row_answer": answers.cast(pl.String)}
    )
    joined = hits.join(info, on="item", how="left").join(row_answers, on="row", how="left")
    wanted = joined["answer"].is_not_null() & joined["row_answer"].is_not_null()
    if compare is not None and joined.height:
        wanted &= compare(joined)
    both = joined.filter(wanted)
    pairs = sorted(set(zip(both["answer"].to_list(), both["row_answer"].to_list(), strict=True)))
    both_gold = VerifyOptions(rules=GOLD_RULES)  # two gold answers: each read as a gold one
    verdicts = verify_many(pairs, options=both_gold, workers=workers) if pairs else []
    known = {
        pair: True if v.equivalent else (False if v.status == "different" else None)
        for pair, v in zip(pairs, verdicts, strict=True)
    }
    choice = {
        pair
        for pair, v in zip(pairs, verdicts, strict=True)
        if v.equivalent and v.reason == "choice"
    }
    keys = list(zip(joined["answer"], joined["row_answer"], strict=True))
    same = [known.get(k) if w else None for k, w in zip(keys, wanted, strict=True)]
    joined = joined.with_columns(
        pl.Series("same_answer", same, pl.Boolean),
        pl.Series("choice_answer", [k in choice for k in keys], pl.Boolean),
    )
    rank = pl.col("rule").replace_strict({r: i for i, r in enumerate(RULES)}, return_dtype=pl.Int64)
    strength = pl.coalesce(pl.col("coverage"), pl.col("similarity"))
    ordered = joined.sort(
        [pl.col("row"), rank, strength, pl.col("tokens"), pl.col("bench"), pl.col("item_id")],
        descending=[False, False, True, True, False, False],
        nulls_last=True,
    )
    return ordered.unique(["row", "bench", "item_id", "rule"], keep="first", maintain_order=True)


def hit_column(hits: pl.DataFrame, height: int) -> pl.Series:
    """The ``contamination`` column: each row's hits in the given order (empty: clean)."""
    fields = [pl.col("item_id" if f.name == "item" else f.name).alias(f.name) for f in HIT.fields]
    structs = hits.select("row", pl.struct(fields).alias("hit"))
    per_row = structs.group_by("row", maintain_order=True).agg("hit")
    full = pl.DataFrame({"row": np.arange(height, dtype=np.int64)}).join(
        per_row, on="row", how="left"
    )
    column = full.sort("row")["hit"].alias("contamination")
    return column.fill_null(pl.lit([], pl.List(HIT))).cast(pl.List(HIT))


def detail(hit: dict[str, Any] | None) -> str | None:
    """A hit as the JSON ``detail`` of a reject (null fields left out)."""
    if hit is None:
        return None
    return json.dumps({k: v for k, v in hit.items() if v is not None}, ensure_ascii=False)


def _clip(text: str) -> str:
    return text if len(text) <= _MATCH_CHARS else text[: _MATCH_CHARS - 3] + "..."
