r"""DeepDistill's query filters: `QueryFilter` (rule-based checks of each query) and
`RepeatedNgrams` (n-grams repeated across the pool).

DeepDistill (the AM-DeepSeek-Distilled-40M paper) cleaned its queries before distilling:
it dropped queries with a high Unicode ratio, empty or incomplete queries, and queries
holding URLs or tables, and removed 20-token n-grams occurring more than 20 times. The
paper names these rules without defining them further; the definitions here are ours,
written down in each stage's docstring, with the paper's numbers as defaults where it gives
them (the 20-grams and their 20 occurrences) and a documented choice where it does not (the
Unicode ratio).

>>> import polars as pl
>>> from curate.stage import REASON, StageContext
>>> rows = pl.DataFrame({"id": ["a", "b", "c", "d"], "problem": [
...     "What is $1+1$?", "See https://example.com for the figure.", "   ",
...     "Compute $\\frac{1}{2"]})
>>> out = QueryFilter().apply(rows.lazy(), StageContext.temporary("q")).collect()
>>> out[REASON].to_list()
[None, 'url_in_query', 'empty_query', 'incomplete_query']
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import polars as pl

from curate.errors import ConfigError
from curate.hashing import MAX_GRAM, gram_hashes
from curate.stage import Filter, StageContext

UNICODE_RATIO = "unicode_ratio"
NGRAM_HASHES = "_ngram_hashes"
NGRAM_COUNT = "max_ngram_count"

# A URL: a scheme, or "www." and a domain. Bare domains ("example.com") are left alone: math
# text has "a.b" and "f.g" too often for them to be told apart without a list of domains.
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'{}]+|\bwww\.[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.I)
# A table: a markdown separator row (| --- | :---: |), a LaTeX tabular/table environment, or
# an HTML table. LaTeX ``array`` is left alone: it is how matrices and cases are written.
_MD_RULE = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$", re.M
)
_TABLES = (
    ("markdown", _MD_RULE),
    ("tabular", re.compile(r"\\begin\s*\{\s*(?:tabular[x*]?|table|longtable)\s*\}")),
    ("html", re.compile(r"<table\b", re.I)),
)
# Words a finished English sentence does not end on (articles, prepositions, conjunctions,
# auxiliaries): a query whose last word is one of them, with no closing punctuation, was cut.
_DANGLING = frozenset(
    (
        *("an", "the", "of", "to", "and", "or", "but", "if", "is", "are", "was", "were", "be"),
        *("been", "with", "by", "for", "from", "in", "into", "on", "onto", "at", "as", "than"),
        *("that", "which", "whose", "whom", "where", "when", "while", "because", "since"),
        *("such", "its", "their", "his", "her", "our", "your", "my", "this", "these", "those"),
        *("each", "every", "both", "either", "neither", "nor"),
    )
)  # not "a": it is as often a variable ("in terms of a")
_LAST_WORD = re.compile(r"([A-Za-z]+)\s*$")
_ELLIPSIS_AFTER_WORD = re.compile(r"[A-Za-z]\s*(?:\.{3,}|…)\s*$")
_SENTENCE = re.compile(r"(?<=[.?!])\s+|(?<=[。？！])|\n+")
_INSTRUCTION = re.compile(
    r"\\boxed|\b(?:final answer|your answer|step by step)\b|一步一步|最终答案", re.I
)
_MATH_IN_TAIL = re.compile(r"\\[A-Za-z]+|[\^_{}=]")
_DOLLAR = re.compile(r"(?<!\\)\$")
# what money looks like ("$5 more", "$2366, how", "$50?"); "$92, 94$" is math too, so a text
# with such a dollar and an odd count is given the benefit of the doubt
_CURRENCY = re.compile(r"(?<!\\)\$\d[\d,]*(?:\.\d+)?(?:\s+[A-Za-z]|[.,;:?!)](?:\s|$)|\s*$)")


_CJK = re.compile(
    "[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"
)


def unicode_ratio(text: str, *, cjk: bool = False) -> float:
    """The share of non-ASCII characters among the non-space characters of ``text`` (0 for a
    text with none); with ``cjk``, Chinese and Japanese characters and their punctuation count
    as ASCII does (a pool meant to hold Chinese problems).

    >>> unicode_ratio("x ≤ 2"), unicode_ratio("计算 1+1"), unicode_ratio("计算 1+1", cjk=True)
    (0.3333333333333333, 0.4, 0.0)
    """
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    odd = sum(not c.isascii() and not (cjk and _CJK.match(c)) for c in chars)
    return odd / len(chars)


def _unescaped(text: str, char: str) -> int:
    """How many times ``char`` occurs in ``text`` without a backslash before it."""
    return len(re.findall(rf"(?<!\\){re.escape(char)}", text))


def incomplete(text: str) -> str | None:
    r"""Why ``text`` looks cut short or broken, or None. Conservative on purpose: only signs a
    finished query does not show.

    - an unclosed formula: an odd number of unescaped ``$``, the last one followed by math
      (a command, ``^``, ``_``, braces or ``=``), in a text with no money in it (``$5 more``,
      ``$2,366,``, ``$50?``: then an odd count is likely a price), or more
      ``\(``/``\[`` than ``\)``/``\]``;
    - braces that do not balance (unescaped ``{`` and ``}``);
    - an ellipsis right after a word ("the number of ..."; "1, 2, 4, ..." is a sequence);
    - a last word that no sentence ends on ("the", "of", "and", ...) without punctuation, or
      a trailing comma or colon (the content it announces is missing).

    >>> incomplete("Let $x = \\frac{1}{2}$. Find $x^2$.") is None
    True
    >>> incomplete("It costs $5. How much do 3 cost?") is None
    True
    >>> incomplete("Find the value of")
    "ends mid-sentence: 'of'"
    >>> incomplete("Solve $x^2 + 2x")
    'unclosed $...$ formula'
    """
    body = text.strip()
    dollars = [m.start() for m in _DOLLAR.finditer(body)]
    odd = len(dollars) % 2 and not _CURRENCY.search(body)
    if odd and _MATH_IN_TAIL.search(body, dollars[-1] + 1):
        return "unclosed $...$ formula"
    for opening, closing in (("(", ")"), ("[", "]")):  # \( \[ (not \\[1ex], a line break)
        opened = len(re.findall(rf"(?<!\\)\\\{opening}", body))
        if opened > len(re.findall(rf"(?<!\\)\\\{closing}", body)):
            return f"unclosed \\{opening}...\\{closing} formula"
    opened, closed = _unescaped(body, "{"), _unescaped(body, "}")
    if opened != closed:
        return f"unbalanced braces: {opened} '{{' and {closed} '}}'"
    if _ELLIPSIS_AFTER_WORD.search(body):
        return "ends with an ellipsis"
    if body.endswith((",", ":")):
        return f"ends with {body[-1]!r}"
    m = _LAST_WORD.search(body)
    if m and m.group(1).lower() in _DANGLING:
        return f"ends mid-sentence: {m.group(1)!r}"
    return None


def find_url(text: str) -> str | None:
    """The first URL in ``text`` (a scheme, or ``www.``), or None.

    >>> find_url("Data at www.example.org/x."), find_url("Let a.b = 2.")
    ('www.example.org', None)
    """
    m = _URL.search(text)
    return m.group() if m else None


def find_table(text: str) -> str | None:
    r"""The kind of table in ``text`` (``markdown``, ``tabular``, ``html``), or None.

    >>> find_table("| x | y |\n|---|---|\n| 1 | 2 |"), find_table("$|x| + |y| = 1$")
    ('markdown', None)
    """
    for kind, pattern in _TABLES:
        if pattern.search(text):
            return kind
    return None


@dataclass(frozen=True)
class QueryFilter(Filter):
    r"""DeepDistill's rule-based query filters, one stage: each row's ``column`` (default
    ``problem``) is checked in this order, and the first failed check rejects it:

    - ``empty_query``: null, or no letter or digit at all;
    - ``high_unicode_ratio``: more than ``max_unicode_ratio`` of its non-space characters are
      not ASCII (detail: the ratio). DeepDistill gives no number; 0.3 is ours: a few math
      symbols (``≤``, ``π``, ``°``) stay far below it, garbled text and queries mostly in
      another script are above it (Chinese problems: 1600 of DAPO-17k's 17917 rows, its
      Chinese share). ``cjk=True`` counts Chinese and Japanese characters as ASCII, for a
      pool meant to hold them; ``max_unicode_ratio=None`` turns the check off;
    - ``incomplete_query``: cut short or broken (see `incomplete`; detail: the sign);
    - ``url_in_query``: a URL (detail: the URL);
    - ``table_in_query``: a markdown, LaTeX ``tabular`` or HTML table (detail: the kind).

    Each check can be turned off (``empty=False``, ``incomplete=False``, ``urls=False``,
    ``tables=False``). Every row gets ``unicode_ratio``, so the threshold can be changed
    later in SQL without recomputing.

    >>> QueryFilter(max_unicode_ratio=1.5)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: QueryFilter(max_unicode_ratio=1.5): expected None or 0 <= ratio < 1
    """

    version: ClassVar[str] = "1"

    column: str = "problem"
    empty: bool = True
    max_unicode_ratio: float | None = 0.3
    cjk: bool = False
    incomplete: bool = True
    urls: bool = True
    tables: bool = True

    def __post_init__(self) -> None:
        ratio = self.max_unicode_ratio
        if ratio is not None and not 0 <= ratio < 1:
            raise ConfigError(
                f"QueryFilter(max_unicode_ratio={ratio}): expected None or 0 <= ratio < 1"
            )

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def adds(self) -> tuple[str, ...]:
        return (UNICODE_RATIO,)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        texts = batch[self.column].cast(pl.String).to_list()
        ratios: list[float | None] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        for text in texts:
            ratio = None if text is None else unicode_ratio(text, cjk=self.cjk)
            reason, detail = self._check(text, ratio)
            ratios.append(ratio)
            reasons.append(reason)
            details.append(detail)
        marked = batch.lazy().with_columns(
            pl.Series(UNICODE_RATIO, ratios, pl.Float64),
            pl.Series("__reason", reasons, pl.String),
            pl.Series("__detail", details, pl.String),
        )
        return self.mark(
            marked, pl.col("__reason").is_not_null(), pl.col("__reason"), pl.col("__detail")
        ).drop("__reason", "__detail")

    def _check(self, text: str | None, ratio: float | None) -> tuple[str | None, str | None]:
        if text is None or not any(c.isalnum() for c in text):
            return ("empty_query", "null" if text is None else repr(text[:40]))
        limit = self.max_unicode_ratio
        if limit is not None and ratio is not None and ratio > limit:
            return "high_unicode_ratio", f"{ratio:.3f} of the characters are not ASCII > {limit}"
        if self.incomplete and (why := incomplete(text)):
            return "incomplete_query", why
        if self.urls and (url := find_url(text)):
            return "url_in_query", url[:200]
        if self.tables and (kind := find_table(text)):
            return "table_in_query", kind
        return None, None


def without_instructions(text: str) -> str:
    r"""``text`` without its answer-format instructions: sentences that mention ``\boxed``,
    "final answer", "your answer" or "step by step" and hold no digit.

    >>> without_instructions("What is 2+3? Let's think step by step. Put it in \\boxed{}.")
    'What is 2+3?'
    """
    kept = [
        s
        for s in _SENTENCE.split(text)
        if not (_INSTRUCTION.search(s) and not any(c.isdigit() for c in s))
    ]
    return " ".join(kept)


def _token_hashes(tokens: list[str]) -> dict[str, int]:
    """A stable 64-bit hash per distinct token (BLAKE2b: the same in every process, run and
    version of the libraries, so batches hashed apart agree)."""
    out = {}
    for tok in tokens:
        digest = hashlib.blake2b(tok.encode(), digest_size=8).digest()
        out[tok] = int.from_bytes(digest, "little")
    return out


def ngram_hashes(
    texts: list[str | None] | pl.Series, n: int, *, distinct: bool = True
) -> list[np.ndarray]:
    """Per text, the distinct hashes of its ``n``-token n-grams (none for a text shorter than
    ``n`` tokens; with ``distinct=False`` one per occurrence, repeats kept). Tokens are
    `curate.decontam.ngram.tokenize`'s (words, numbers, LaTeX
    command names and operators of the normalized text, so spacing and ``\\dfrac``/``\\frac``
    do not matter).

    >>> a, b, c = ngram_hashes(["a b c d", "x a b c d", "a b"], 3)
    >>> len(a), len(b), len(c), bool(np.isin(a, b).all())
    (2, 3, 0, True)
    """
    from curate.decontam.ngram import tokenize_many, valid_starts

    if not 1 <= n <= MAX_GRAM:
        raise ConfigError(f"n-gram size n={n}: expected 1 to {MAX_GRAM}")
    tokens = tokenize_many(texts)
    flat = tokens.flat
    table = _token_hashes(flat.unique().to_list())
    items = flat.replace_strict(table, return_dtype=pl.UInt64).to_numpy()
    starts = valid_starts(tokens.offsets, n)
    grams = gram_hashes(items, n, starts) if len(starts) else np.zeros(0, np.uint64)
    owner = np.searchsorted(tokens.offsets, starts, side="right") - 1
    bounds = np.searchsorted(owner, np.arange(len(tokens) + 1))
    parts = [grams[bounds[i] : bounds[i + 1]] for i in range(len(tokens))]
    return [np.unique(p) for p in parts] if distinct else parts


@dataclass(frozen=True)
class RepeatedNgrams(Filter):
    r"""Reject rows holding an ``n``-token n-gram (default 20) that occurs in more than
    ``max_count`` (default 20) distinct texts of the table: DeepDistill's removal of 20-grams
    occurring more than 20 times, which strips templates, boilerplate and spam repeated
    across a pool.

    Per-row work hashes each row's n-grams (`ngram_hashes` over ``text_columns`` joined,
    default the query); a global step counts them over the hashes only, never the texts.
    Counting is by distinct text: an n-gram is counted once per ``text_hash`` (the
    normalized problem), so exact copies of one problem count once and never reject each
    other (run near-duplicate removal first: 21 near-copies of a problem share their n-grams
    and would all go). With
    ``count="occurrences"`` every occurrence counts, also repeats inside one text.

    **Rows are rejected, not edited**: a stage never changes a canonical column (the runner
    keeps the input's ``problem``), and a query with a stretch cut out of its middle is not
    a well-posed problem anymore. So "removed" is read as removing the samples that hold
    such an n-gram, with reason ``repeated_ngram`` and the count as detail. Every row gets
    ``max_ngram_count`` (the count of its most repeated n-gram), for re-thresholding in SQL.

    Answer-format instructions (`without_instructions`: "Let's think step by step and output
    the final answer within \boxed{}.", "Express your answer as a common fraction.") are
    left out before hashing with ``skip_instructions`` (the default): a pool adds them to
    many problems on purpose, and they would otherwise reject every problem they follow (in
    DeepScaleR's own training set, 25 of 2000 problems). ``ignore`` names more phrases
    (literal text) to leave out, such as a pool's own prompt template in another language.

    >>> RepeatedNgrams().n, RepeatedNgrams().max_count
    (20, 20)
    """

    version: ClassVar[str] = "1"
    batch_rows: ClassVar[int] = 16_384

    n: int = 20
    max_count: int = 20
    text_columns: tuple[str, ...] = ("problem",)
    count: Literal["texts", "occurrences"] = "texts"
    skip_instructions: bool = True
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_columns", tuple(self.text_columns))
        object.__setattr__(self, "ignore", tuple(self.ignore))
        if not 1 <= self.n <= MAX_GRAM:
            raise ConfigError(f"RepeatedNgrams(n={self.n}): expected 1 to {MAX_GRAM}")
        if self.max_count < 1:
            raise ConfigError(f"RepeatedNgrams(max_count={self.max_count}): expected >= 1")
        if not self.text_columns:
            raise ConfigError("RepeatedNgrams(text_columns=()): expected one column or more")
        if self.count not in ("texts", "occurrences"):
            raise ConfigError(
                f"RepeatedNgrams(count={self.count!r}): expected 'texts' or 'occurrences'"
            )

    def reads(self) -> tuple[str, ...]:
        return self.text_columns

    def global_reads(self) -> tuple[str, ...]:
        return ("text_hash",) if self.count == "texts" else ()

    def optional_reads(self) -> tuple[str, ...]:
        return ("text_hash",)

    def adds(self) -> tuple[str, ...]:
        return (NGRAM_COUNT,)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        text = pl.concat_str(
            [pl.col(c).cast(pl.String) for c in self.text_columns],
            separator="\n",
            ignore_nulls=True,
        )
        texts = batch.select(text.alias("t"))["t"]
        for phrase in self.ignore:
            texts = texts.str.replace_all(phrase, " ", literal=True)
        if self.skip_instructions:
            texts = pl.Series(
                [None if t is None else without_instructions(t) for t in texts], dtype=pl.String
            )
        grams = ngram_hashes(texts, self.n, distinct=self.count == "texts")
        return batch.select(
            "id", pl.Series(NGRAM_HASHES, [g.tolist() for g in grams], pl.List(pl.UInt64))
        )

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        rows = table.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
            pl.col("text_hash")
            if "text_hash" in table.columns
            else pl.col("id").alias("text_hash"),
            NGRAM_HASHES,
        )
        grams = rows.explode(NGRAM_HASHES).drop_nulls(NGRAM_HASHES)
        counted = (
            grams if self.count == "occurrences" else grams.unique(["text_hash", NGRAM_HASHES])
        )
        counts = counted.group_by(NGRAM_HASHES).len("_count")
        per_row = (
            grams.join(counts, on=NGRAM_HASHES)
            .group_by("_row")
            .agg(pl.col("_count").max().alias(NGRAM_COUNT))
        )
        out = rows.select("_row").join(per_row, on="_row", how="left").sort("_row")
        out = out.with_columns(pl.col(NGRAM_COUNT).fill_null(0).cast(pl.Int64))
        repeated = counts.filter(pl.col("_count") > self.max_count).height
        ctx.stats.update(ngrams=counts.height, repeated_ngrams=repeated)
        unit = "texts" if self.count == "texts" else "times"
        detail = pl.format(
            "a {}-gram occurs in {} {} (> {})",
            pl.lit(self.n),
            pl.col(NGRAM_COUNT),
            pl.lit(unit),
            pl.lit(self.max_count),
        )
        framed = pl.DataFrame({"id": table["id"], NGRAM_COUNT: out[NGRAM_COUNT]}).lazy()
        return self.mark(framed, pl.col(NGRAM_COUNT) > self.max_count, "repeated_ngram", detail)
