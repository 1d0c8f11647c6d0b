"""DeepSeekMath's decontamination of a mined corpus: remove the *segments* of a page that hold
benchmark text, not the whole page.

A page is cut into segments at line breaks (a web page's paragraphs). A segment goes when
it shares a 10-gram with a benchmark item, or holds a whole short item (3 to 9 tokens),
by the tokens and index of `curate.Decontaminate` (`curate.decontam.ngram`). The stage
never edits ``text``: it adds ``clean_text`` (the page without those segments),
``removed_spans`` (each removed segment's character ``start`` and ``end`` in ``text``,
with the benchmark, item and rule that matched) and ``removed_chars``; a page with nothing
left is a reject ``contaminated``. The export of pre-training shards writes ``clean_text``
when it is there.

>>> from curate.run import apply_stage
>>> gsm = "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning"
>>> rows = pl.DataFrame({"id": ["a"], "text": [f"A page.\\nQuiz: {gsm}.\\nThe end."]})
>>> kept, _ = apply_stage(SegmentDecontaminate(benchmarks=["gsm8k"]), rows)
>>> kept["clean_text"][0], kept["removed_spans"][0][0]["benchmark"]
('A page.\\nThe end.', 'gsm8k')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from curate.decontam import hits as H
from curate.decontam.ngram import NgramIndex, tokenize_many
from curate.decontam.registry import resolve
from curate.decontam.stage import BenchmarkFilter, _index
from curate.stage import StageContext

_SEGMENT = re.compile(r"[^\n]+")
_SPAN = pl.Struct(
    {"start": pl.Int64, "end": pl.Int64, "benchmark": pl.String, "item_id": pl.String,
     "rule": pl.String}
)  # fmt: skip


@dataclass(frozen=True)
class SegmentDecontaminate(BenchmarkFilter):
    """Remove the segments of each page that hold benchmark text (see the module docstring).
    ``benchmarks``: names as for `curate.Decontaminate` (DeepSeekMath used GSM8K, MATH,
    CMATH and AGIEval; default every bundled benchmark)."""

    keeps_state: ClassVar[bool] = True  # the benchmark index, between batches
    version: ClassVar[str] = "2"  # 2: an [asy] block is one token (curate.decontam.ngram)

    benchmarks: str | Sequence[str] = "all"
    ngram: int = 10
    min_tokens: int = 3
    max_df: int = 5
    column: str = "text"

    def __post_init__(self) -> None:
        self._check_benchmarks()

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def adds(self) -> tuple[str, ...]:
        return ("clean_text", "removed_spans", "removed_chars")

    def prepare(self, ctx: StageContext) -> tuple[NgramIndex, pl.DataFrame, float]:
        """The benchmarks' n-gram index, once per run of the stage (on Ray: shared by
        every worker through the object store)."""
        return _index(resolve(self._spec()), self.ngram, self.min_tokens, self.max_df)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        index, items, _ = ctx.state or self.prepare(ctx)
        texts = [t or "" for t in batch[self.column].to_list()]
        segments = [
            (row, m.start(), m.end()) for row, t in enumerate(texts) for m in _SEGMENT.finditer(t)
        ]
        tokens = tokenize_many([texts[r][s:e] for r, s, e in segments])
        hits = H.ngram_hits(index, tokens).unique("row", keep="first", maintain_order=True)
        spans: list[list[dict[str, Any]]] = [[] for _ in texts]
        for seg, item, rule in zip(hits["row"], hits["item"], hits["rule"], strict=True):
            row, start, end = segments[seg]
            spans[row].append(
                {"start": start, "end": end, "benchmark": items["benchmark"][item],
                 "item_id": items["item_id"][item], "rule": rule}
            )  # fmt: skip
        clean = [_cut(t, s) for t, s in zip(texts, spans, strict=True)]
        out = batch.select("id").with_columns(
            pl.Series("clean_text", clean, pl.String),
            pl.Series("removed_spans", [sorted(s, key=lambda x: x["start"]) for s in spans],
                      pl.List(_SPAN)),
            pl.Series("removed_chars", [sum(x["end"] - x["start"] for x in s) for s in spans],
                      pl.Int64),
        )  # fmt: skip
        nothing_left = pl.col("clean_text").str.strip_chars() == ""
        first = pl.col("removed_spans").list.first()
        detail = pl.format(
            "{} segments hold {} item {}",
            pl.col("removed_spans").list.len(),
            first.struct.field("benchmark"),
            first.struct.field("item_id"),
        )
        return self.mark(out, nothing_left & (pl.col("removed_chars") > 0), "contaminated", detail)

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """The manifest's counts: pages touched, segments and characters removed, per
        benchmark."""
        spans = (
            table.select("removed_spans")
            .explode("removed_spans")
            .drop_nulls()
            .unnest("removed_spans")
        )
        ctx.stats.update(
            pages_touched=int((table["removed_chars"] > 0).sum()),
            segments_removed=spans.height,
            chars_removed=int(table["removed_chars"].sum()),
            by_benchmark=dict(spans.group_by("benchmark").len().sort("benchmark").rows()),
        )
        return table.select("id")

    def global_reads(self) -> tuple[str, ...]:
        return ()


def _cut(text: str, spans: list[dict[str, Any]]) -> str:
    """``text`` without the spans' segments (and the line break after each)."""
    if not spans:
        return text
    out, at = [], 0
    for s in sorted(spans, key=lambda x: x["start"]):
        out.append(text[at : s["start"]])
        at = s["end"] + 1 if text[s["end"] : s["end"] + 1] == "\n" else s["end"]
    out.append(text[at:])
    return "".join(out)
