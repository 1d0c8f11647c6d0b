"""`Decontaminate`: find training rows that hold benchmark problems, and say why."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from curate.decontam import common as C
from curate.decontam import hits as H
from curate.decontam.ngram import NgramIndex, tokenize_many
from curate.decontam.registry import Benchmark, resolve
from curate.errors import ConfigError
from curate.io import INSTRUCTION_PREFIXES, INSTRUCTION_SUFFIXES
from curate.stage import Filter, StageContext

#: Phrases whose n-grams never count as overlap: answer-format instructions.
BOILERPLATE: tuple[str, ...] = (
    *INSTRUCTION_SUFFIXES,
    *INSTRUCTION_PREFIXES,
    "Let's think step by step.",
)
REASON = "contamination"


class BenchmarkFilter(Filter):
    """A filter that compares rows with benchmarks named by its ``benchmarks`` field (a name,
    ``"all"``, or several): their versions go into its fingerprint, so a changed benchmark
    runs it again."""

    benchmarks: str | Sequence[str]

    def _check_benchmarks(self) -> None:
        if not isinstance(self.benchmarks, str):
            object.__setattr__(self, "benchmarks", tuple(str(b) for b in self.benchmarks))

    def describe(self) -> dict[str, Any]:
        """The configuration plus each benchmark's version."""
        out = super().describe()
        out["benchmarks"] = {b.name: b.version for b in resolve(self._spec())}
        return out

    def _spec(self) -> str | list[str]:
        return self.benchmarks if isinstance(self.benchmarks, str) else list(self.benchmarks)


@dataclass(frozen=True)
class Decontaminate(BenchmarkFilter):
    r"""Flag, and by default drop, training rows that hold a benchmark problem.

    Texts are compared as tokens of math-normalized text (`curate.decontam.ngram`:
    the normalizer exact dedup uses, so LaTeX spacing, ``\dfrac``, ``$`` and the like
    do not matter). A row and a benchmark item are a *candidate* when

    - ``ngram``: they share an ``ngram``-token n-gram (DeepSeekMath: 10), or
    - ``whole_item``: the item is shorter than ``ngram`` tokens (at least
      ``min_tokens``) and appears whole in the row (DeepSeekMath's exact match), or
    - ``embedding`` (only with ``embedding_threshold``, as DeepDistill: 0.9): the
      cosine of their MiniLM embeddings reaches the threshold (re-worded copies).

    N-grams that carry no identity never match (`curate.decontam.common`): those inside
    an answer-format instruction, those in more than ``max_df`` benchmark items (5: a
    phrase five unrelated items share is a template), and those common in a *reference
    corpus* of ordinary problems: ``reference="bundled"`` (the default) uses a list
    shipped with curate (10-grams in at least 3 of the 4,500 MATH test problems outside
    MATH-500: "Enter the letter of the correct option", "in rectangular coordinates to
    polar coordinates", ...); the path of a file of problems uses yours (an n-gram in at
    least ``reference_df`` = 5 of its distinct problems is common; pass a pool of the
    same kind as the one checked, not the pool itself if it may hold many copies of one
    item); None uses none. Asymptote code (``[asy]...[/asy]``) is one token, a digest of
    the numbers in the block (`curate.decontam.ngram`): the same figure matches as a
    whole, and drawing code no longer makes up most of an item.

    One shared 10-gram is weak evidence in math ("Express your answer as a common
    fraction", templates with other numbers), so a candidate counts when its *coverage*
    (the share of the item's matchable tokens inside shared n-grams; 1 for a whole item)
    is at least ``min_coverage``. With ``number_aware`` a row with *other numbers* (it
    lacks a number or figure of the item and has one the item lacks: "5 balls in 3
    boxes" for "5 balls in 2 boxes") is a sibling problem and counts only if it holds
    the whole of a long item. With ``answer_aware`` the gold answers weigh in: answers
    that agree halve the coverage needed (not a mere multiple-choice letter: one in five
    agree by chance), and answers that differ (`curate.verify`) clear the row unless it
    holds the whole of a long item (a sibling problem with other numbers is not the
    benchmark problem). Pools that rewrite answers (DAPO's integer answers) want
    ``answer_aware=False``; ``number_aware`` needs no answers.

    Every row gets ``contamination``: its hits, strongest first (benchmark, item id,
    rule, the shared text, its length, coverage, similarity, same_answer,
    same_numbers); empty when clean. ``mode="drop"`` rejects flagged rows (reason
    ``contamination``, the strongest hit as JSON detail); ``mode="annotate"`` only adds
    the column. The manifest gets, per benchmark, rows hit and items hit
    (`curate.decontam.report`).

    >>> Decontaminate(benchmarks=["aime24", "math500"]).config()["ngram"]
    10
    """

    keeps_state: ClassVar[bool] = True  # its benchmark index, between batches
    #: 2: common n-grams of a reference corpus, Asymptote blocks as one token, the
    #: numbers rule and the ``same_numbers`` field of a hit.
    version: ClassVar[str] = "2"

    benchmarks: str | Sequence[str] = "all"
    ngram: int = 10
    min_tokens: int = 3
    max_df: int = 5
    reference: str | None = "bundled"
    reference_df: int = 5  # for a reference file; the bundled list used 3 of 4,500
    min_coverage: float = 0.5
    answer_aware: bool = True
    number_aware: bool = True
    embedding_threshold: float | None = None
    embedding_model: str = "all-MiniLM-L6-v2"
    mode: Literal["drop", "annotate"] = "drop"
    column: str = "problem"

    def __post_init__(self) -> None:
        self._check_benchmarks()
        if self.mode not in ("drop", "annotate"):
            raise ConfigError(f"mode={self.mode!r}; expected 'drop' or 'annotate'")
        if not 1 <= self.min_tokens <= self.ngram:
            raise ConfigError(
                f"min_tokens={self.min_tokens}, ngram={self.ngram}; expected "
                "1 <= min_tokens <= ngram"
            )
        if self.max_df < 1:
            raise ConfigError(f"max_df={self.max_df}; expected at least 1")
        if self.reference_df < 2:
            raise ConfigError(f"reference_df={self.reference_df}; expected at least 2")
        if self.reference not in (None, C.BUNDLED) and not Path(self.reference).is_file():
            raise ConfigError(
                f"reference={self.reference!r}: no such file; expected 'bundled', None or "
                "the path of a file of problems"
            )
        if not 0 <= self.min_coverage <= 1:
            raise ConfigError(f"min_coverage={self.min_coverage}; expected 0 .. 1")
        thr = self.embedding_threshold
        if thr is not None and not 0 < thr <= 1:
            raise ConfigError(f"embedding_threshold={thr}; expected a cosine in (0, 1]")

    def reads(self) -> tuple[str, ...]:
        return (self.column, "answer")

    def global_reads(self) -> tuple[str, ...]:
        return ()  # the stats come from the hits map_batch found

    def adds(self) -> tuple[str, ...]:
        return ("contamination",)

    def prepare(self, ctx: StageContext) -> tuple[NgramIndex, pl.DataFrame, float]:
        """The benchmarks' n-gram index, built once per run of the stage (on Ray: shared
        by every worker through the object store)."""
        return self._index(resolve(self._spec()))

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        """Each row's benchmark hits, against the index `prepare` built."""
        index, items, _ = ctx.state or self.prepare(ctx)
        texts = batch[self.column].cast(pl.String)
        tokens = tokenize_many(texts)
        found = [H.ngram_hits(index, tokens)]
        if self.embedding_threshold is not None:
            found.append(self._embedding_hits(texts, items, ctx))
        hits = pl.concat(found)
        hits = hits.with_columns(H.same_numbers(hits, tokens, index))
        cands = H.candidates(
            hits, batch["answer"], items, compare=self._compare, workers=ctx.workers
        )
        column = H.hit_column(self.decide(cands), batch.height)
        out = batch.select("id").with_columns(column)
        if self.mode == "annotate":
            return out.lazy()
        detail = column.list.first().map_elements(H.detail, return_dtype=pl.String)
        return self.mark(
            out.with_columns(detail.alias("__detail")),
            pl.col("contamination").list.len() > 0,
            REASON,
            pl.col("__detail"),
        ).drop("__detail")

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """The manifest's counts, per benchmark and rule, from every row's hits."""
        benches = resolve(self._spec())
        index, _, built = ctx.state or self.prepare(ctx)
        fired = (
            table.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), "contamination")
            .explode("contamination")
            .drop_nulls("contamination")
            .unnest("contamination")
            .rename({"item": "item_id"})
        )
        ctx.stats["decontam"] = _stats(fired, benches, table.height, self, len(index), built)
        return table.select("id")

    def describe(self) -> dict[str, Any]:
        """The configuration, each benchmark's version and the reference corpus's."""
        out = super().describe()
        if self.reference == C.BUNDLED:
            out["reference_version"] = C.bundled_version()
        elif self.reference is not None:
            out["reference_version"] = C.file_version(self.reference)
        return out

    def _index(self, benches: Sequence[Benchmark]) -> tuple[NgramIndex, pl.DataFrame, float]:
        return _index(
            benches,
            self.ngram,
            self.min_tokens,
            self.max_df,
            reference=self.reference,
            reference_df=self.reference_df,
        )

    def _compare(self, cands: pl.DataFrame) -> pl.Series:
        """Candidates whose answers can matter (the others are not compared: it is slow)."""
        cov = cands["coverage"]
        if not self.answer_aware:
            return pl.Series([False] * cands.height)
        return cov.is_null() | (cov >= self.min_coverage / 2)

    def decide(self, cands: pl.DataFrame) -> pl.DataFrame:
        """The candidates that count (see the class docstring), in the same order."""
        cov, same, rule = pl.col("coverage"), pl.col("same_answer"), pl.col("rule")
        need: pl.Expr = pl.lit(self.min_coverage)
        if self.answer_aware:
            differ = same.not_().fill_null(False)
            need = (
                pl.when(same.fill_null(False) & ~pl.col("choice_answer"))
                .then(need / 2)
                .when(differ & (rule == "ngram"))
                .then(pl.lit(1.0))
                .when(differ)
                .then(pl.lit(2.0))  # never: a short item or an embedding neighbour
                .otherwise(need)
            )
        if self.number_aware:
            other = pl.col("same_numbers").not_().fill_null(False)
            need = (
                pl.when(other & (rule == "ngram"))
                .then(pl.lit(1.0))
                .when(other)
                .then(pl.lit(2.0))  # never: an embedding neighbour with other numbers
                .otherwise(need)
            )
        return cands.filter(cov.fill_null(1.0) >= need - 1e-9)

    def _embedding_hits(
        self, texts: pl.Series, items: pl.DataFrame, ctx: StageContext
    ) -> pl.DataFrame:
        from curate.embed import embed_texts
        from curate.text import normalize_text

        def embed(values: Sequence[str | None]) -> np.ndarray:
            normalized = [normalize_text(v or "") for v in values]
            return embed_texts(
                normalized, self.embedding_model, cache_dir=ctx.cache_dir, progress=ctx.progress
            )

        if not items.height or not len(texts):
            return H.empty_hits()
        assert self.embedding_threshold is not None
        item_vectors = embed(items["problem"].to_list())
        return H.embedding_hits(embed(texts.to_list()), item_vectors, self.embedding_threshold)


_INDEXES: dict[tuple[Any, ...], tuple[NgramIndex, pl.DataFrame, float]] = {}


def _index(
    benches: Sequence[Benchmark],
    n: int,
    min_tokens: int,
    max_df: int,
    *,
    reference: str | None = None,
    reference_df: int = 5,
) -> tuple[NgramIndex, pl.DataFrame, float]:
    """The n-gram index of the benchmarks' items, the items, and the seconds it took to
    build: once per process (per worker, on Ray) for the same benchmarks and options.
    ``reference``: None, ``"bundled"`` or the path of a reference corpus
    (`curate.decontam.common`)."""
    ref_key = reference if reference in (None, C.BUNDLED) else C.file_version(str(reference))
    key = (
        tuple((b.name, b.version) for b in benches),
        n,
        min_tokens,
        max_df,
        ref_key,
        reference_df,
    )
    if key not in _INDEXES:
        while len(_INDEXES) >= 4:
            _INDEXES.pop(next(iter(_INDEXES)))
        started = time.perf_counter()
        items = H.items_table(benches)
        index = NgramIndex(
            items["problem"].to_list(),
            n=n,
            min_tokens=min_tokens,
            max_df=max_df,
            groups=items["group"].to_list(),
            ignore=BOILERPLATE + (C.bundled_phrases() if reference == C.BUNDLED else ()),
            reference=C.reference_texts(reference) if reference not in (None, C.BUNDLED) else (),
            reference_df=reference_df,
        )
        _INDEXES[key] = index, items, time.perf_counter() - started
    return _INDEXES[key]


def _stats(
    fired: pl.DataFrame,
    benches: Sequence[Benchmark],
    rows: int,
    stage: Decontaminate,
    index_keys: int,
    seconds: float,
) -> dict[str, Any]:
    """What goes to the manifest: per benchmark, rows hit and items hit, by rule."""
    per: dict[str, Any] = {}
    for b in benches:
        sub = fired.filter(pl.col("benchmark") == b.name)
        rules = sub.group_by("rule").agg(pl.col("row").n_unique()).sort("rule")
        per[b.name] = {
            "version": b.version,
            "items": b.n_items,
            "rows_hit": sub["row"].n_unique(),
            "items_hit": sub["item_id"].n_unique(),
            "rows_by_rule": dict(zip(rules["rule"], rules["row"], strict=True)),
        }
    return {
        "mode": stage.mode,
        "rows": rows,
        "rows_flagged": fired["row"].n_unique(),
        "index_keys": index_keys,
        "index_seconds": round(seconds, 3),
        "benchmarks": per,
    }
