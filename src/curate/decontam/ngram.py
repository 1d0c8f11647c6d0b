r"""Tokens of math-normalized text, their n-gram hashes, and an index of benchmark n-grams.

`tokenize` is the definition of a text's tokens: `curate.text.normalize_text` (the
normalizer exact dedup uses), then words (runs of letters, runs of digits: ``15a`` and
``15 a`` are the same; each CJK character alone), LaTeX command names without the
backslash, and the operators ``+ - = < > * / ^ |``. Braces, other punctuation, ``$``
and spacing are not tokens, so ``x^{2}`` and ``x^2``, ``\dfrac12`` and ``\frac12``,
``1{,}000`` and ``1,000`` give the same tokens. An Asymptote block (``[asy]...[/asy]``)
is one token, ``asy`` and 16 letters: a digest of the numbers in its code (`_figure`), so
drawing code is matched only as a whole figure and counts as one token, not hundreds.

>>> t = tokenize("Find $x$. [asy] draw((0,0)--(3, 4)); [/asy]")
>>> t[:2], t[2] == tokenize("[asy]draw((0,0) -- (3,4), red);[/asy]")[0], len(t)
(['find', 'x'], True, 3)

>>> tokenize(r"Find $\dfrac{1}{2} + x^{2}$,  if $x \geq 3$.")
['find', 'frac', '1', '2', '+', 'x', '^', '2', 'if', 'x', 'ge', '3']

`tokenize_many` gives exactly the same tokens for a whole column, many times faster:
texts go through Polars' (Rust) regex engine, with each distinct LaTeX command and
non-ASCII character mapped by asking `normalize_text` what it makes of it; the few
texts this cannot do exactly (letters outside ASCII and CJK, ``2\left3``) go through
`tokenize`. Every call checks a sample of texts against `tokenize` and falls back to it
if they ever disagree (say, after a change to the normalizer).

These tokens differ from `curate.shingles.math_tokens` (near-duplicate detection) on
purpose: decontamination follows DeepSeekMath's n-gram rule over words, CJK characters and
operators, and keeps every sentence of a benchmark item, while dedup drops punctuation and
answer-format instructions that only reword a problem.

`NgramIndex` holds the hashed n-grams of benchmark items: ``n``-token n-grams of long
items, and whole short items (``min_tokens`` to ``n - 1`` tokens) matched as a whole.
N-grams shared by more than ``max_df`` items, or inside an ``ignore`` phrase, are
boilerplate and never match, and so do n-grams found in at least ``reference_df``
distinct texts of a ``reference`` corpus (`common_grams`; `curate.decontam.common`).
`NgramIndex.lookup` finds every (row, item) match of a `Tokens` table with vectorized
hashing (`curate.hashing.gram_hashes`, the n-gram hash of MinHash shingles too) and a
binary search. The index lives in memory only, built from the benchmark texts in each
process, so the hash function can change freely: every match is
checked token by token, and a different hash only collides differently.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from curate.hashing import gram_hashes
from curate.text import normalize_text

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_OPS = r"+\-=<>*/^|"
_TOKEN = re.compile(rf"\\[a-z]+|[{_CJK}]|[^\W\d_{_CJK}]+|\d+|[{_OPS}]")
_FAST = rf"\\[a-z]+|[{_CJK}]|[a-z]+|[0-9]+|[{_OPS}]"  # the same, on lower-cased text
_CJK_CHAR = re.compile(f"[{_CJK}]")
_SEED = 0x5EED
_CHECK_ROWS = 16  # rows per call compared with `tokenize`
FIGURE = r"^asy[a-p]{16}$"  # the token of an Asymptote block (`_figure`)
IDENTITY = r"^(?:[0-9]+|asy[a-p]{16})$"  # numbers and figures: what siblings differ in
_ASY = re.compile(r"\[asy\](.*?)\[/asy\]", re.DOTALL | re.IGNORECASE)


def tokenize(text: str) -> list[str]:
    """The tokens of ``text`` (the reference definition; see the module docstring)."""
    return _plain(_ASY.sub(_figure, text) if "[asy]" in text.lower() else text)


def _plain(text: str) -> list[str]:
    return [t[1:] if t[0] == "\\" else t for t in _TOKEN.findall(normalize_text(text))]


def _figure(block: re.Match[str]) -> str:
    """An Asymptote block as one token: ``asy`` and 16 letters, a digest of the numbers in
    its code, in order (of all its tokens if it has none). A figure is its coordinates:
    spacing, comments, pens and label spelling do not change it; other points do."""
    return _figure_token(_plain(block.group(1)))


def _figure_token(tokens: list[str]) -> str:
    numbers = [t for t in tokens if t.isdigit()] or tokens
    digest = hashlib.blake2b(" ".join(numbers).encode(), digest_size=8).digest()
    return " asy" + "".join(chr(97 + (b >> 4)) + chr(97 + (b & 15)) for b in digest) + " "


def _figures(s: pl.Series) -> pl.Series:
    """`_figure` on every Asymptote block of a column, the blocks tokenized in one go."""
    at = np.flatnonzero(s.str.contains(r"(?i)\[asy\]").to_numpy())
    if not len(at):
        return s
    texts = s.gather(at).to_list()
    found = [list(_ASY.finditer(t)) for t in texts]
    blocks = tokenize_many([m.group(1) for ms in found for m in ms])
    flat, ends = blocks.flat.to_list(), blocks.offsets.tolist()
    names = iter(_figure_token(flat[a:b]) for a, b in itertools.pairwise(ends))
    out = []
    for text, ms in zip(texts, found, strict=True):
        parts, last = [], 0
        for m in ms:
            parts += [text[last : m.start()], next(names)]
            last = m.end()
        out.append("".join(parts) + text[last:])
    return s.scatter(at, out)


@functools.cache
def _command(cmd: str) -> tuple[tuple[str, ...], bool]:
    """What the normalizer makes of a LaTeX command: its tokens, and whether it vanishes
    without a trace (then ``2\\left3`` reads ``23``, which the fast path cannot see)."""
    return tuple(tokenize(f" {cmd} ")), tokenize(f"1{cmd}1") == ["11"]


@dataclass(frozen=True)
class Tokens:
    """The tokens of many texts: one flat column and where each text's tokens start.

    >>> t = tokenize_many(["What is $1+1$?", None, "x"])
    >>> t.row(0), t.row(1), t.offsets.tolist()
    (['what', 'is', '1', '+', '1'], [], [0, 5, 5, 6])
    """

    flat: pl.Series
    offsets: np.ndarray  # int64, one more than the number of texts

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> list[str]:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return list(self.flat.slice(start, end - start).to_list())

    def span(self, start: int, length: int) -> str:
        """Tokens ``start`` .. ``start + length`` of the flat column, joined by spaces."""
        return " ".join(self.flat.slice(start, length).to_list())

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def hashes(self) -> np.ndarray:
        """One 64-bit hash per token (Polars' seeded string hash: stable for a version)."""
        return self.flat.hash(_SEED).to_numpy()


def tokenize_many(texts: Sequence[str | None] | pl.Series) -> Tokens:
    """`tokenize` of every text (null is empty), as one `Tokens` table."""
    s = pl.Series("text", texts, dtype=pl.String).fill_null("")
    s = _figures(s)  # each Asymptote block becomes one token
    non_ascii = np.flatnonzero((s.str.len_bytes() != s.str.len_chars()).to_numpy())
    if len(non_ascii):  # NFKC composes across characters: whole texts, in C
        nfkc = [unicodedata.normalize("NFKC", t) for t in s.gather(non_ascii).to_list()]
        s = s.scatter(non_ascii, nfkc)
    fast, slow = _fast(s, non_ascii)
    parts = [fast]
    if len(slow):
        toks = [tokenize(t) for t in s.gather(slow).to_list()]
        rows = np.repeat(slow, [len(t) for t in toks])
        flat = [tok for t in toks for tok in t]
        parts.append(pl.DataFrame({"row": rows, "tok": flat}, schema=fast.schema))
    table = pl.concat(parts).sort("row", maintain_order=True) if len(parts) > 1 else fast
    counts = np.bincount(table["row"].to_numpy(), minlength=len(s))
    offsets = np.zeros(len(s) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Tokens(table["tok"], offsets)


@functools.cache
def _char(c: str) -> str | None:
    """How a non-ASCII character (NFKC already applied) can go through the fast path: as
    itself (a CJK token, or a separator), as the ASCII character the normalizer makes of
    it, or not at all (None: texts that hold it take the slow path)."""
    probe = f"a{c}b"
    norm = normalize_text(probe)
    if unicodedata.normalize("NFKC", c) != c:
        return None
    if norm == probe:
        cjk = _CJK_CHAR.fullmatch(c) is not None
        return c if tokenize(probe) == (["a", c, "b"] if cjk else ["a", "b"]) else None
    if len(norm) == 3 and norm[0] + norm[2] == "ab" and norm[1].isascii():
        return norm[1]
    return None


def _fast(s: pl.Series, non_ascii: np.ndarray) -> tuple[pl.DataFrame, np.ndarray]:
    """Tokens of the texts the vectorized way, and the rows it cannot do."""
    schema = {"row": pl.Int64, "tok": pl.String}
    unsafe = np.zeros(len(s), bool)
    if len(non_ascii):
        sub = s.gather(non_ascii)
        chars = pl.DataFrame({"row": non_ascii, "ch": sub.str.extract_all(r"[^\x00-\x7f]")})
        chars = chars.explode("ch", empty_as_null=False, keep_nulls=False)
        kinds = {c: _char(c) for c in chars["ch"].unique().to_list()}
        bad = [c for c, k in kinds.items() if k is None]
        if bad:
            unsafe[chars.filter(pl.col("ch").is_in(bad))["row"].to_numpy()] = True
        swap = {c: k for c, k in kinds.items() if k is not None and k != c}
        if swap:
            s = s.scatter(non_ascii, sub.str.replace_many(swap))
    lower = s.str.to_lowercase()  # casefold, for these texts
    raw = pl.DataFrame({"row": np.arange(len(s)), "tok": lower.str.extract_all(_FAST)})
    raw = raw.explode("tok", empty_as_null=False, keep_nulls=False)
    at = raw["tok"].str.starts_with("\\").arg_true()
    cmd_tokens = raw["tok"].gather(at)
    info = {c: _command(c) for c in cmd_tokens.unique().sort().to_list()}
    # a command with capitals may mean something else than its lower case (\Left, \LEQ)
    capital = s.str.contains(r"\\[a-zA-Z]*[A-Z]")
    if capital.any():
        found = s.filter(capital).str.extract_all(r"\\[a-zA-Z]*[A-Z][a-zA-Z]*").explode()
        odd = [
            c for c in found.drop_nulls().unique().to_list() if _command(c) != _command(c.lower())
        ]
        if odd:
            names = "|".join(c[1:] for c in odd)
            unsafe |= s.str.contains(rf"\\(?:{names})(?:[^a-zA-Z]|$)").to_numpy()
    glue = [c[1:] for c, (_, g) in info.items() if g]
    if glue:
        unsafe |= s.str.contains(r"\\(?:" + "|".join(glue) + r")[0-9]").to_numpy()
    multi = [c for c, (t, _) in info.items() if len(t) > 1]
    if multi:
        unsafe[raw.filter(pl.col("tok").is_in(multi))["row"].to_numpy()] = True
    mapping = {c: t[0] if len(t) == 1 else None for c, (t, _) in info.items()}
    mapped = cmd_tokens.replace_strict(mapping, default=None, return_dtype=pl.String)
    out = raw.with_columns(raw["tok"].scatter(at, mapped)).drop_nulls("tok")
    slow = np.flatnonzero(unsafe)
    if len(slow):
        out = out.filter(~pl.col("row").is_in(slow))
    good = np.flatnonzero(~unsafe)
    sample = np.union1d(_spread(good, _CHECK_ROWS), _spread(np.setdiff1d(non_ascii, slow), 8))
    got = out.filter(pl.col("row").is_in(sample)).group_by("row", maintain_order=True).agg("tok")
    seen = dict(zip(got["row"].to_list(), got["tok"].to_list(), strict=True))
    texts = s.gather(sample).to_list()
    if any(seen.get(int(r), []) != tokenize(t) for r, t in zip(sample, texts, strict=True)):
        warnings.warn(
            "curate.decontam: the fast tokenizer disagrees with normalize_text; using the "
            "slow path for every text (please report this)",
            RuntimeWarning,
            stacklevel=3,
        )
        return pl.DataFrame(schema=schema), np.arange(len(s))
    return out, slow


def _spread(rows: np.ndarray, k: int) -> np.ndarray:
    return rows[:: max(1, len(rows) // k)][:k]


def valid_starts(offsets: np.ndarray, n: int) -> np.ndarray:
    """Flat positions where an ``n``-gram starts and ends inside one text."""
    lengths = np.diff(offsets)
    ends = np.repeat(offsets[1:], lengths)
    pos = np.arange(int(offsets[-1]))
    return pos[pos + n <= ends]


@dataclass(frozen=True)
class Match:
    """Every occurrence of an indexed n-gram (or whole short item) in a `Tokens` table."""

    row: np.ndarray  # the text
    item: np.ndarray  # index of the item in the index's item list
    pos: np.ndarray  # flat token position in the table where the match starts
    item_pos: np.ndarray  # token position inside the item
    length: np.ndarray  # tokens matched (n, or the short item's length)


class NgramIndex:
    """Hashed n-grams of a list of item texts, for `lookup` in many other texts.

    ``groups`` says which items are the same item (several wordings of one problem);
    document frequency counts groups. ``ignore`` phrases are boilerplate.

    >>> idx = NgramIndex(["one two three four five six", "red blue"], n=4, min_tokens=2)
    >>> m = idx.lookup(tokenize_many(["x one two three four y", "red  blue!", "blue red"]))
    >>> m.row.tolist(), m.item.tolist(), m.length.tolist()
    ([0, 1], [0, 1], [4, 2])
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        n: int,
        min_tokens: int = 3,
        max_df: int | None = None,
        groups: Sequence[int] | None = None,
        ignore: Sequence[str] = (),
        reference: Sequence[str] = (),
        reference_df: int = 5,
    ) -> None:
        if n < 1 or min_tokens < 1:
            raise ValueError(f"n={n} and min_tokens={min_tokens} must be at least 1")
        self.n, self.min_tokens, self.max_df = n, min_tokens, max_df
        self.tokens = tokenize_many(texts)
        self._numbers: pl.DataFrame | None = None
        groups_a = np.asarray(groups if groups is not None else range(len(texts)), np.int64)
        h = self._hashes = self.tokens.hashes()
        offsets, lengths = self.tokens.offsets, self.tokens.lengths()
        item_of = np.repeat(np.arange(len(texts)), lengths)
        # long items: every n-gram
        starts = valid_starts(offsets, n)
        grams = gram_hashes(h, n, starts)
        boiler = np.union1d(self._ignored(ignore), common_grams(reference, n, reference_df))
        keep = ~np.isin(grams, boiler)
        if max_df is not None and len(grams):
            keep &= _df(grams, groups_a[item_of[starts]]) <= max_df
        self.boilerplate = len(np.unique(grams[~keep]))
        #: per item, the tokens inside n-grams that can match: the denominator of coverage
        local = starts[keep] - offsets[item_of[starts][keep]]
        self.item_tokens = union_length(item_of[starts][keep], local, n, len(texts))
        self._long = _Postings(
            grams[keep], item_of[starts][keep], starts[keep] - offsets[item_of[starts][keep]]
        )
        # short items, matched whole; boilerplate if contained in more than max_df groups
        short = np.flatnonzero((lengths >= min_tokens) & (lengths < n))
        self.short_lengths = sorted({int(x) for x in lengths[short]})
        self.item_tokens[short] = lengths[short]
        self._first = np.unique(h[offsets[short]]) if len(short) else np.zeros(0, np.uint64)
        self._first_bloom = np.zeros(1 << 16, bool)
        self._first_bloom[self._first >> np.uint64(48)] = True
        whole = gram_hashes(h, n, offsets[short], lengths[short])
        self._short = _Postings(whole, short, np.zeros(len(short), np.int64))
        if max_df is not None and len(short):
            inside, where, _ = self._scan(h, offsets, self._short, None)
            pairs = np.unique(np.stack([inside, groups_a[item_of[where]]]), axis=1)
            df = np.bincount(pairs[0], minlength=len(texts))
            ok = df[short] <= max_df
            self.boilerplate += int((~ok).sum())
            self._short = _Postings(whole[ok], short[ok], np.zeros(int(ok.sum()), np.int64))

    def numbers(self) -> pl.DataFrame:
        """The distinct numbers and figures of every item: ``item``, ``num``
        (`curate.decontam.hits.same_numbers`)."""
        if self._numbers is None:
            flat = self.tokens.flat
            item = np.repeat(np.arange(len(self.tokens)), self.tokens.lengths())
            frame = pl.DataFrame({"item": item, "num": flat})
            identity = pl.col("num").str.contains(IDENTITY)
            self._numbers = frame.filter(identity).unique(maintain_order=True)
        return self._numbers

    def _ignored(self, phrases: Sequence[str]) -> np.ndarray:
        if not phrases:
            return np.zeros(0, np.uint64)
        t = tokenize_many(list(phrases))
        return gram_hashes(t.hashes(), self.n, valid_starts(t.offsets, self.n))

    def __len__(self) -> int:
        return len(self._long.keys) + len(self._short.keys)

    def lookup(self, tokens: Tokens) -> Match:
        """Every match of an indexed n-gram or whole short item in ``tokens``."""
        h = tokens.hashes()
        item, pos, ipos = self._scan(h, tokens.offsets, self._short, self._long)
        length = np.minimum(self.tokens.lengths()[item], self.n)
        keep = self._verify(h, pos, item, ipos, length)
        pos, item, ipos, length = pos[keep], item[keep], ipos[keep], length[keep]
        order = np.lexsort((ipos, item, pos))
        row_of = np.repeat(np.arange(len(tokens)), tokens.lengths())
        return Match(row_of[pos][order], item[order], pos[order], ipos[order], length[order])

    def _scan(
        self, h: np.ndarray, offsets: np.ndarray, short: _Postings, long: _Postings | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item, flat start, start inside the item) of every match: ``n``-grams at every
        position, then whole short items, hashed only where their first token is."""
        rem = np.repeat(offsets[1:], np.diff(offsets)) - np.arange(len(h))  # tokens left
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if long is not None:
            where, item, ipos = long.find(gram_hashes(h, self.n), rem, self.n)
            found.append((item, where, ipos))
        if self.short_lengths:
            first = np.flatnonzero(self._first_bloom[h >> np.uint64(48)])
            at = np.minimum(np.searchsorted(self._first, h[first]), len(self._first) - 1)
            first = first[self._first[at] == h[first]]
            for length in self.short_lengths:
                starts = first[rem[first] >= length]  # the item fits in the rest of the text
                where, item, ipos = short.find(gram_hashes(h, length, starts), rem, length, starts)
                ok = self.tokens.lengths()[item] == length  # a hash of another length
                found.append((item[ok], where[ok], ipos[ok]))
        if not found:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        item, pos, ipos = (np.concatenate(x) for x in zip(*found, strict=True))
        return item, pos, ipos

    def _verify(
        self, h: np.ndarray, pos: np.ndarray, item: np.ndarray, ipos: np.ndarray, length: np.ndarray
    ) -> np.ndarray:
        """Drop n-gram hash collisions: compare the matched tokens' own hashes."""
        ok = np.ones(len(pos), bool)
        start = self.tokens.offsets[item] + ipos
        for k in range(int(length.max(initial=0))):
            live = np.flatnonzero(k < length)
            ok[live] &= h[pos[live] + k] == self._hashes[start[live] + k]
        return ok


@dataclass(frozen=True)
class _Postings:
    """Sorted (hash, item, position) triples with binary-search lookup."""

    keys: np.ndarray
    items: np.ndarray
    positions: np.ndarray
    bits: int
    bloom: np.ndarray

    def __init__(self, keys: np.ndarray, items: np.ndarray, positions: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        object.__setattr__(self, "keys", keys[order])
        object.__setattr__(self, "items", np.asarray(items, np.int64)[order])
        object.__setattr__(self, "positions", np.asarray(positions, np.int64)[order])
        # a table of the keys' top bits: most n-grams of a text are ruled out by one lookup
        bits = int(np.clip(np.ceil(np.log2(max(len(keys), 1) * 32)), 10, 26))
        bloom = np.zeros(1 << bits, bool)
        bloom[self.keys >> np.uint64(64 - bits)] = True
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "bloom", bloom)

    def find(
        self, grams: np.ndarray, rem: np.ndarray, length: int, at: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``grams`` are the n-gram hashes at flat positions ``0, 1, ...`` (or at positions
        ``at``, if given). For each posting whose key is one of them, at a position ``i``
        where the text still has ``length`` tokens (``rem[i] >= length``):
        ``(i, item, position)``."""
        empty = np.zeros(0, np.int64)
        if not len(self.keys) or not len(grams):
            return empty, empty, empty
        hit = np.flatnonzero(self.bloom[grams >> np.uint64(64 - self.bits)])
        cand = hit if at is None else at[hit]
        inside = rem[cand] >= length
        cand, keys = cand[inside], grams[hit[inside]]
        lo = np.searchsorted(self.keys, keys, side="left")
        found = self.keys[np.minimum(lo, len(self.keys) - 1)] == keys
        cand, lo, keys = cand[found], lo[found], keys[found]
        hi = np.searchsorted(self.keys, keys, side="right")
        counts = hi - lo
        which = np.repeat(cand, counts)
        first = np.repeat(lo - np.cumsum(counts) + counts, counts)
        idx = first + np.arange(int(counts.sum()))
        return which, self.items[idx], self.positions[idx]


def union_length(group: np.ndarray, start: np.ndarray, n: int, size: int) -> np.ndarray:
    """Per group, the number of positions covered by windows ``[start, start + n)``.

    >>> union_length(np.array([0, 0, 0, 1]), np.array([0, 2, 10, 5]), 4, 3).tolist()
    [10, 4, 0]
    """
    if not len(group):
        return np.zeros(size, np.int64)
    pairs = np.unique(np.stack([group, start]), axis=1)
    g, s = pairs[0], pairs[1]
    gap = np.full(len(g), n, np.int64)
    same = g[1:] == g[:-1]
    gap[1:][same] = np.minimum(s[1:] - s[:-1], n)[same]
    return np.bincount(g, weights=gap, minlength=size).astype(np.int64)


def common_grams(texts: Sequence[str], n: int, min_df: int) -> np.ndarray:
    """Hashes of the ``n``-grams found in at least ``min_df`` distinct texts of ``texts``
    (texts with the same tokens count once).

    >>> t = ["a b c d e", "a b c d f", "x a b c d", "a  b c d e"]
    >>> len(common_grams(t, 4, 3)), len(common_grams(t, 4, 4)), len(common_grams(t, 5, 2))
    (1, 0, 0)
    """
    if not len(texts):
        return np.zeros(0, np.uint64)
    t = tokenize_many(texts)
    rows = np.repeat(np.arange(len(t)), t.lengths())
    joined = pl.DataFrame({"row": rows, "tok": t.flat}).group_by("row").agg(pl.col("tok"))
    first = joined.with_columns(pl.col("tok").list.join(" ")).unique("tok")["row"].to_numpy()
    keep = np.isin(rows, first)
    starts = valid_starts(t.offsets, n)
    starts = starts[keep[starts]]
    grams = gram_hashes(t.hashes(), n, starts)
    df = _df(grams, rows[starts])
    return np.unique(grams[df >= min_df])


def _df(grams: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each n-gram, the number of distinct groups it occurs in."""
    frame = pl.DataFrame({"g": grams, "grp": group})
    return frame.select(pl.col("grp").n_unique().over("g"))["grp"].to_numpy()
