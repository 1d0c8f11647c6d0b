"""Near-duplicate detection with MinHash and LSH: the `MinHashDedup` stage.

How it works, all of it vectorized (numpy over batches of texts, Polars for the group-by):

1. **Shingles** (`curate.shingles.shingles`): word (or character) n-grams of the math-aware
   tokens of each text, hashed to uint64.
2. **Signatures**: ``num_perm`` values per text; two texts agree on each value with
   probability equal to their Jaccard similarity. The default sketch, ``"oph"``, is
   one-permutation hashing (Li, Owen and Zhang, NeurIPS 2012) with densification in the
   manner of Shrivastava (ICML 2017): each shingle is hashed once into one of ``num_perm``
   bins and keeps the minimum there; an empty bin ``j`` takes the value of bin
   ``(j + c_t) mod num_perm`` for the first ``t`` where that bin is filled, ``c_1, c_2, ...``
   a seeded random order of the shifts ``1 .. num_perm - 1`` shared by all bins (the value
   also names its source bin). Agreement stays exactly Jaccard (both texts probe the same
   bins in the same order, and the first bin filled in either decides), it costs one hash
   per shingle instead of ``num_perm``, and because every filled bin lends to one empty
   bin per round, borrowing is spread evenly: on short texts its estimates vary less than
   the per-bin random probe orders of optimal densification (measured: standard deviation
   0.04 against 0.05 at 15 shingles). ``"classic"`` is textbook MinHash, ``num_perm``
   hashes per shingle, in datasketch 2.0's ``affine32`` scheme (``a * h + b mod 2**32``).
3. **LSH banding**: ``bands`` x ``rows`` of each signature hashed into one key per band;
   texts sharing a (band, key) bucket are candidates. A bucket pairs each member with its
   first 8 members (ordered by content, so the result does not depend on row order), which
   is every pair in small buckets and keeps big ones linear.
4. **Verification**: a candidate pair is a duplicate when the fraction of equal signature
   values (or, with ``verify="exact"``, the Jaccard similarity of the shingle sets) is at
   least ``threshold``, and, with ``numbers="match"``, both texts have the same numbers in
   the same order: a problem with its numbers changed is another problem.
5. **Clusters**: connected components of the duplicate pairs, one keeper each
   (`curate.dedup.clusters.mark_clusters`).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import polars as pl

from curate.dedup.clusters import (
    KeepRule,
    Reference,
    components,
    load_reference,
    mark_clusters,
    mark_reference,
    reference_digest,
)
from curate.errors import ConfigError
from curate.shingles import constants, fmix64, shingles
from curate.stage import Filter, StageContext

Sketch = Literal["oph", "classic"]
_U64 = np.uint64
_LOW32 = _U64(0xFFFFFFFF)
_LEADERS = 8  # members of an LSH bucket every other member is compared with
_BATCH = 8192  # texts per signature batch: its arrays stay small (a few MB), in cache
_DENSE_ROUNDS = 16  # densification rounds on whole rows before the exact rest


@functools.lru_cache(maxsize=64)
def optimal_bands(
    threshold: float, num_perm: int, weights: tuple[float, float] = (0.5, 0.5)
) -> tuple[int, int]:
    """LSH (bands, rows) for a Jaccard ``threshold``, as datasketch's ``MinHashLSH`` picks them.

    The same rule as ``datasketch.lsh._optimal_param``: minimize the weighted sum of the
    false-positive probability (the area under the S-curve ``1 - (1 - s**r)**b`` below the
    threshold) and the false-negative probability (the area above it), over every
    ``b * r <= num_perm``. The integrals are polynomials, computed exactly by Gauss-Legendre
    quadrature instead of scipy's ``quad``.

    >>> optimal_bands(0.8, 128), optimal_bands(0.5, 256)
    ((9, 13), (42, 6))
    """
    pairs = [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)]
    b, r = (np.array(x, dtype=np.float64)[:, None] for x in zip(*pairs, strict=True))
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)  # exact for degree <= num_perm
    below = threshold * (x + 1) / 2
    above = threshold + (1 - threshold) * (x + 1) / 2
    fp = threshold / 2 * ((1 - (1 - below**r) ** b) @ w)
    fn = (1 - threshold) / 2 * (((1 - above**r) ** b) @ w)
    best = int(np.argmin(fp * weights[0] + fn * weights[1]))
    return pairs[best]


class Signatures(NamedTuple):
    """MinHash signatures of many texts (see `signatures`)."""

    values: np.ndarray  # uint32, (texts, num_perm)
    numbers: np.ndarray  # uint64 per text: its numbers, hashed in order
    empty: np.ndarray  # bool per text: no shingle at all (empty or null text)


@functools.lru_cache(maxsize=16)
def _params(seed: int, num_perm: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded constants: multipliers and increments of the hashes, and the densification shifts."""
    mul = constants(f"minhash.mul:{seed}", num_perm) | _U64(1)
    add = constants(f"minhash.add:{seed}", num_perm)
    order = np.argsort(constants(f"minhash.shift:{seed}", max(num_perm, 2) - 1), kind="stable")
    return mul, add, order.astype(np.int64) + 1


def _densify(filled: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """For every bin, the bin whose value it takes: itself when filled, else bin
    ``(j + shifts[t]) % P`` for the first ``t`` that lands on a filled bin.

    The first rounds roll every still-incomplete row by ``shifts[t]`` at once (contiguous
    numpy slices: no per-bin indexing), which settles all but a few bins of sparse rows;
    those then take the filled bin of their row with the smallest round, computed directly.
    """
    width = filled.shape[1]
    # step[cell] ends as 0 for a filled bin, else 1 + the round that gave it its source
    step = (~filled).view(np.uint8).astype(np.int16)
    rows = np.flatnonzero(filled.any(axis=1) & ~filled.all(axis=1))
    have, done = filled[rows], filled[rows]
    count = (~have).view(np.uint8)  # uint8 + bool-as-uint8: the cheapest add numpy has
    rolled, idle = np.empty_like(have), np.empty_like(have)
    for t, c in enumerate(shifts[:_DENSE_ROUNDS].tolist()):
        rolled[:, : width - c], rolled[:, width - c :] = have[:, c:], have[:, :c]
        np.bitwise_or(done, rolled, out=done)
        np.add(count, np.logical_not(done, out=idle).view(np.uint8), out=count)
        if t % 4 == 3 and len(rows):  # drop finished rows now and then: later rounds shrink
            left = ~done.all(axis=1)
            step[rows[~left]] = count[~left]
            rows, have, done, count = rows[left], have[left], done[left], count[left]
            rolled, idle = np.empty_like(have), np.empty_like(have)
    step[rows] = count
    if len(rows) and not done.all():  # the rest, exactly: min over the row's filled bins
        round_of = np.empty(width, np.int64)
        round_of[shifts] = np.arange(len(shifts))  # shift c is used in round round_of[c]
        row, slot = np.nonzero(~done)
        filled_row, filled_bin = np.nonzero(have)
        per_row = np.bincount(filled_row, minlength=len(rows))
        span = per_row[row]
        at = np.repeat(np.cumsum(per_row)[row] - span, span)
        at += np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)
        rounds = round_of[(filled_bin[at] - np.repeat(slot, span)) % width]
        step[rows[row], slot] = np.minimum.reduceat(rounds, np.cumsum(span) - span) + 1
    table = _source_table(shifts.astype(np.int64).tobytes(), width)
    source: np.ndarray = table[step.astype(np.int32) * width + np.arange(width, dtype=np.int32)]
    return source


@functools.lru_cache(maxsize=8)
def _source_table(shifts: bytes, width: int) -> np.ndarray:
    """``table[step * P + j]``: the bin that bin ``j`` takes its value from at that step."""
    step_shift = np.concatenate(([0], np.frombuffer(shifts, np.int64)))
    table: np.ndarray = ((step_shift[:, None] + np.arange(width)) % width).astype(np.int16)
    return table.ravel()


def _oph(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """One-permutation hashing, densified; (texts, num_perm) uint32."""
    mul, add, shifts = _params(seed, num_perm)
    n = len(offsets) - 1
    h = hashes * mul[0] + add[0]
    cells = np.repeat(np.arange(n, dtype=np.int64) * num_perm, np.diff(offsets))
    cells += (((h >> _U64(32)) * _U64(num_perm)) >> _U64(32)).astype(np.int64)
    low = np.full(n * num_perm, _U64(2**64 - 1))
    np.minimum.at(low, cells, h & _LOW32)
    source = _densify((low != _U64(2**64 - 1)).reshape(n, num_perm), shifts)
    # a bin's value names the bin it came from too, so a borrowed value never equals the
    # value a bin holds itself (the low 32 bits of a hash are uniform: xor keeps them so)
    value = low.reshape(n, num_perm).take(source + np.arange(n)[:, None] * num_perm)
    return value.astype(np.uint32) ^ (source.astype(np.uint32) * np.uint32(0x9E3779B1))


def _classic(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Textbook MinHash, datasketch's ``affine32`` scheme; (texts, num_perm) uint32."""
    mul, add, _ = _params(seed, num_perm)
    a, b = mul.astype(np.uint32)[:, None], add.astype(np.uint32)[:, None]
    n = len(offsets) - 1
    out = np.full((n, num_perm), np.uint32(2**32 - 1))
    owner = np.repeat(np.arange(n), np.diff(offsets))
    x = (hashes >> _U64(32)).astype(np.uint32)
    step = max(1, (1 << 21) // num_perm)  # about 8 MB of uint32 per chunk
    for lo in range(0, len(x), step):
        who = owner[lo : lo + step]
        cut = np.flatnonzero(np.diff(who, prepend=-1))
        block = x[lo : lo + step] * a + b
        mins = np.minimum.reduceat(block, cut, axis=1).T
        out[who[cut]] = np.minimum(out[who[cut]], mins)
    return out


def signatures(
    texts: Sequence[str | None] | pl.Series,
    *,
    num_perm: int = 128,
    ngram: int = 3,
    shingle: Literal["word", "char"] = "word",
    seed: int = 42,
    sketch: Sketch = "oph",
    workers: int | None = None,
    progress: Callable[[int], Any] | None = None,
) -> Signatures:
    """MinHash signatures of texts, in batches (memory stays bounded by the batches in flight).

    Batches run on ``workers`` threads (default: one per core; numpy releases the GIL), and
    the result does not depend on how many.

    >>> s = signatures(["What is $1+1$?", "what is 1 + 1 ?", "What is 2+2?", ""])
    >>> (s.values[0] == s.values[1]).mean(), (s.values[0] == s.values[2]).mean() < 0.5
    (np.float64(1.0), np.True_)
    >>> s.empty.tolist()
    [False, False, False, True]
    """
    series = texts if isinstance(texts, pl.Series) else pl.Series(texts, dtype=pl.String)
    make = _oph if sketch == "oph" else _classic

    def batch(lo: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sh = shingles(series.slice(lo, _BATCH), ngram, shingle)
        return make(sh.hashes, sh.offsets, num_perm, seed), sh.numbers, np.diff(sh.offsets) == 0

    starts = range(0, len(series), _BATCH)
    threads = max(1, min(workers or os.cpu_count() or 1, len(starts)))
    parts = []
    with ThreadPoolExecutor(threads) as pool:
        for part in pool.map(batch, starts) if threads > 1 else map(batch, starts):
            parts.append(part)
            if progress is not None:
                progress(len(part[0]))
    if not parts:
        return Signatures(
            np.zeros((0, num_perm), np.uint32), np.zeros(0, np.uint64), np.zeros(0, bool)
        )
    return Signatures(*(np.concatenate(p) for p in zip(*parts, strict=True)))


_MIX = constants("minhash.mix", 1024) | _U64(1)


def _band_keys(values: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (text, band): the band's ``rows`` values hashed together."""
    keys = np.empty((len(values), bands), np.uint64)
    for lo in range(0, len(values), _BATCH):  # in chunks: the uint64 copy stays in cache
        chunk = values[lo : lo + _BATCH].astype(np.uint64)
        for band in range(bands):
            block = chunk[:, band * rows : (band + 1) * rows]
            keys[lo : lo + _BATCH, band] = fmix64(block @ _MIX[:rows] + _U64(band))  # linear
    return keys


def _content_keys(sig: Signatures) -> np.ndarray:
    """A hash of each text's whole signature and numbers: identical texts share it, and it
    orders the members of an LSH bucket."""
    out = np.empty(len(sig.values), np.uint64)
    for lo in range(0, len(out), _BATCH):
        chunk = sig.values[lo : lo + _BATCH].astype(np.uint64)
        out[lo : lo + _BATCH] = chunk @ _MIX[: chunk.shape[1]] ^ sig.numbers[lo : lo + _BATCH]
    return fmix64(out)


def candidate_pairs(keys: np.ndarray, order: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Pairs of rows (int64, shape (pairs, 2), sorted) that share an LSH bucket.

    ``keys`` are `_band_keys` (rows with no signature left out by the caller), ``order`` a
    content key per row, ``side`` 0 for reference rows and 1 for rows being deduplicated.
    Polars groups and sorts the (band, key, row) table; in each bucket with a side-1 row,
    every side-1 row is then paired with the first `_LEADERS` rows of each side (by
    ``order``) that come before it, so side-0 rows are never paired together.

    >>> keys = np.array([[1, 5], [1, 6], [2, 6], [3, 7]], dtype=np.uint64)
    >>> candidate_pairs(keys, np.arange(4, dtype=np.uint64), np.ones(4, bool)).tolist()
    [[0, 1], [1, 2]]
    """
    n, bands = keys.shape
    bucket = keys ^ (np.arange(bands, dtype=np.uint64) * _U64(0x9E3779B97F4A7C15))
    table = (
        pl.DataFrame(
            {
                "bucket": bucket.ravel(),
                # reference rows first, then by content (ties: identical texts, any order)
                "order": np.repeat(
                    (side.astype(np.uint64) << _U64(63)) | (order >> _U64(1)), bands
                ),
                "row": np.repeat(np.arange(n, dtype=np.int64), bands),
            }
        )
        .lazy()
        .filter((pl.len().over("bucket") > 1) & (pl.col("order").max().over("bucket") >= 1 << 63))
        .sort("bucket", "order", maintain_order=True)
        .collect()
    )
    if table.height == 0:
        return np.zeros((0, 2), np.int64)
    b, r = table["bucket"].to_numpy(), table["row"].to_numpy()
    s = (table["order"].to_numpy() >> _U64(63)).astype(np.int8)
    at = np.arange(len(b))
    group = np.ones(len(b), bool)  # first row of a bucket ...
    group[1:] = b[1:] != b[:-1]
    bucket_start = np.maximum.accumulate(np.where(group, at, 0))
    group[1:] |= s[1:] != s[:-1]  # ... or of a side within it
    rank = at - np.maximum.accumulate(np.where(group, at, 0))
    mine, theirs = np.flatnonzero(s == 1), np.flatnonzero((s == 1) & (s[bucket_start] == 0))
    padded = np.concatenate((s, np.ones(_LEADERS, s.dtype)))
    out = []
    for k in range(_LEADERS):
        mine = mine[rank[mine] > k]  # the k-th row of its own side comes before it
        out.append(np.stack((r[mine - rank[mine] + k], r[mine]), axis=1))
        lead = bucket_start[theirs] + k  # the k-th reference row of the bucket
        theirs = theirs[padded[lead] == 0]
        out.append(np.stack((r[bucket_start[theirs] + k], r[theirs]), axis=1))
    pairs = np.concatenate(out)
    code = pl.Series(pairs[:, 0] * n + pairs[:, 1]).unique().sort().to_numpy()  # once each
    return np.stack(np.divmod(code, n), axis=1)


def _estimated(values: np.ndarray, pairs: np.ndarray, threshold: float) -> np.ndarray:
    need = math.ceil(threshold * values.shape[1] - 1e-9)
    out = np.zeros(len(pairs), bool)
    for lo in range(0, len(pairs), 16384):
        a, b = pairs[lo : lo + 16384].T
        out[lo : lo + 16384] = (values[a] == values[b]).sum(axis=1) >= need
    return out


def _exact(
    texts: pl.Series, pairs: np.ndarray, threshold: float, ngram: int, kind: str
) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each pair, >= threshold."""
    rows, inverse = np.unique(pairs, return_inverse=True)
    sh = shingles(texts.gather(rows), ngram, kind)  # type: ignore[arg-type]
    owner = np.repeat(np.arange(len(rows)), np.diff(sh.offsets))
    order = np.lexsort((sh.hashes, owner))
    h, owner = sh.hashes[order], owner[order]
    first = np.ones(len(h), bool)
    first[1:] = (h[1:] != h[:-1]) | (owner[1:] != owner[:-1])
    h, owner = h[first], owner[first]  # sets
    size = np.bincount(owner, minlength=len(rows))
    start = np.cumsum(size) - size
    local = inverse.reshape(-1, 2)
    out = np.zeros(len(pairs), bool)
    for lo in range(0, len(pairs), 8192):
        a, b = local[lo : lo + 8192].T
        k = np.arange(len(a))
        tag = np.concatenate((np.repeat(k, size[a]), np.repeat(k, size[b])))
        idx = np.concatenate(
            [
                np.repeat(start[x] - (np.cumsum(size[x]) - size[x]), size[x])
                + np.arange(size[x].sum())
                for x in (a, b)
            ]
        )
        both = np.lexsort((h[idx], tag))
        same = (h[idx][both][1:] == h[idx][both][:-1]) & (tag[both][1:] == tag[both][:-1])
        inter = np.bincount(tag[both][1:][same], minlength=len(a))
        union = size[a] + size[b] - inter
        out[lo : lo + 8192] = inter >= threshold * np.maximum(union, 1) - 1e-9
    return out


_CHOICES = {
    "shingle": ("word", "char"),
    "verify": ("estimate", "exact"),
    "numbers": ("match", "ignore"),
    "sketch": ("oph", "classic"),
    "keep": ("first", "last", "longest_solution", "has_answer", "source_order"),
}


@dataclass(frozen=True)
class MinHashDedup(Filter):
    """Reject near-duplicate problems: MinHash signatures, LSH buckets, verified pairs, clusters.

    Two texts are duplicates when the Jaccard similarity of their shingle sets (word
    ``ngram``-grams of `curate.shingles.math_tokens`, or character n-grams with
    ``shingle="char"``) is at least ``threshold`` (estimated from the signatures, or exact
    with ``verify="exact"``) and, with ``numbers="match"``, their numbers are the same in
    the same order. Duplicates form clusters (connected components); one row per cluster is
    kept by ``keep`` (see `curate.dedup.clusters.KeepRule`; ties go to the earliest row),
    the others are rejected with reason ``duplicate`` and the keeper's ``id``. Every row gets
    ``minhash_cluster`` (the keeper's id, null when the row has no duplicate),
    ``minhash_dup_of``, ``minhash_cluster_size`` and ``minhash_answer_conflict`` (the
    cluster's gold answers differ); the manifest counts candidate and verified pairs,
    clusters, duplicates and conflicting clusters. An empty or null text is never a duplicate.

    The parameters follow datasketch: ``num_perm`` signature values, ``threshold``, and LSH
    ``bands`` x ``rows`` chosen as datasketch's ``MinHashLSH(threshold, num_perm, weights)``
    would (`optimal_bands`) unless given. Every candidate is verified, so the default
    ``weights`` lean towards recall (false negatives weigh 0.7, false positives 0.3; datasketch
    weighs both 0.5): that costs only more candidate pairs. At threshold 0.7 this picks 16 x 8
    instead of datasketch's 14 x 9, which finds about 1% more of the true duplicates
    (``benchmarks/RESULTS.md``); ``weights=(0.5, 0.5)`` gives datasketch's choice.

    The defaults (word 3-grams, threshold 0.7) come from the labelled pairs of
    ``tests/test_minhash_dedup.py``: reformatted, reworded or instruction-suffixed copies of
    real problems are found, problems with their numbers changed are not.

    Cross-dataset mode: with ``reference`` (a run directory, a Parquet file of problems, or any
    file `curate.read` accepts; or a tuple of them), rows that fall in a cluster with a
    reference row are rejected with reason ``duplicate_of_reference`` and that row's ``id``
    (column ``minhash_reference_match``); the reference itself is neither deduplicated nor
    changed. The reference's contents are part of the stage's fingerprint.

    >>> MinHashDedup().lsh_params()
    (16, 8)
    >>> MinHashDedup(weights=(0.5, 0.5)).lsh_params()
    (14, 9)
    """

    threshold: float = 0.7
    num_perm: int = 128
    bands: int | None = None
    rows: int | None = None
    weights: tuple[float, float] = (0.3, 0.7)
    ngram: int = 3
    shingle: Literal["word", "char"] = "word"
    seed: int = 42
    verify: Literal["estimate", "exact"] = "estimate"
    numbers: Literal["match", "ignore"] = "match"
    keep: KeepRule = "first"
    source_order: tuple[str, ...] = ()
    reference: Reference = None
    column: str = "problem"
    sketch: Sketch = "oph"

    version: ClassVar[str] = "1"

    def __post_init__(self) -> None:
        if isinstance(self.source_order, str) or not isinstance(self.source_order, Sequence):
            raise ConfigError(f"source_order={self.source_order!r}: expected a tuple of names")
        object.__setattr__(self, "source_order", tuple(self.source_order))
        if self.reference is not None and not isinstance(self.reference, str):
            ref = self.reference
            refs = [ref] if not isinstance(ref, Sequence) else list(ref)
            object.__setattr__(self, "reference", tuple(str(r) for r in refs))
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold={self.threshold!r}: expected a number in (0, 1]")
        if not (isinstance(self.num_perm, int) and 1 <= self.num_perm <= 1024):
            raise ConfigError(f"num_perm={self.num_perm!r}: expected an integer from 1 to 1024")
        if not (isinstance(self.ngram, int) and 1 <= self.ngram <= 64):
            raise ConfigError(f"ngram={self.ngram!r}: expected an integer from 1 to 64")
        if (self.bands is None) != (self.rows is None):
            raise ConfigError(
                "give both bands and rows (or neither, to derive them from threshold)"
            )
        bands, rows = self.bands or 1, self.rows or 1
        if bands < 1 or rows < 1 or bands * rows > self.num_perm:
            raise ConfigError(
                f"bands={self.bands}, rows={self.rows}: expected positive integers with "
                f"bands * rows <= num_perm ({self.num_perm})"
            )
        if len(self.weights) != 2 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ConfigError(
                f"weights={self.weights!r}: expected (false_positive, false_negative) weights"
            )
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.keep == "source_order" and not self.source_order:
            raise ConfigError("keep='source_order' needs source_order=('src1', 'src2', ...)")

    def lsh_params(self) -> tuple[int, int]:
        """(bands, rows): as given, or datasketch's optimal choice for the threshold."""
        if self.bands is not None and self.rows is not None:
            return self.bands, self.rows
        fp, fn = self.weights
        return optimal_bands(self.threshold, self.num_perm, (float(fp), float(fn)))

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.reference is not None:  # a changed reference file re-runs the stage
            out["reference_digest"] = reference_digest(self.reference)
        return out

    def apply(self, rows: pl.LazyFrame, ctx: StageContext) -> pl.LazyFrame:
        frame = rows.collect()
        if self.column not in frame.columns:
            raise ConfigError(
                f"MinHashDedup(column={self.column!r}): no such column; columns are {frame.columns}"
            )
        texts = frame[self.column].cast(pl.String)
        ref = load_reference(self.reference) if self.reference is not None else None
        n_ref = 0 if ref is None else ref.height
        every = texts if ref is None else pl.concat([ref["problem"], texts])
        sig = self._signatures(every, ctx)
        edges = self._duplicate_pairs(every, sig, n_ref, ctx)
        roots = components(len(every), edges[:, 0], edges[:, 1])[n_ref:]
        if ref is not None:
            ref_ids = ref["id"].to_list()
            matches = [ref_ids[r] if r < n_ref else None for r in roots.tolist()]
            frame = mark_reference(self, frame.lazy(), matches, prefix="minhash").collect()
            ctx.stats["reference_rows"] = n_ref
            ctx.stats["reference_matches"] = int((roots < n_ref).sum())
            inside = (edges >= n_ref).all(axis=1)
            edges = edges[inside]
            edges = edges[roots[edges[:, 0] - n_ref] >= n_ref] - n_ref
        return mark_clusters(
            self,
            frame,
            edges[:, 0],
            edges[:, 1],
            ctx,
            prefix="minhash",
            keep=self.keep,
            source_order=self.source_order,
        )

    def _signatures(self, texts: pl.Series, ctx: StageContext) -> Signatures:
        bar = None
        if ctx.progress and len(texts) >= 20 * _BATCH:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc=ctx.stage_name, unit="texts", leave=False)
        try:
            return signatures(
                texts,
                num_perm=self.num_perm,
                ngram=self.ngram,
                shingle=self.shingle,
                seed=self.seed,
                sketch=self.sketch,
                workers=ctx.workers,
                progress=None if bar is None else bar.update,
            )
        finally:
            if bar is not None:
                bar.close()

    def _duplicate_pairs(
        self, texts: pl.Series, sig: Signatures, n_ref: int, ctx: StageContext
    ) -> np.ndarray:
        """Verified duplicate pairs of positions in ``texts`` (reference rows first)."""
        bands, rows = self.lsh_params()
        live = np.flatnonzero(~sig.empty)
        content = _content_keys(sig)[live]
        # Texts with the same signature (and numbers) are one text to LSH: only one of them,
        # the first, goes in the buckets, the others are paired with it directly. Formatting
        # variants of one problem usually have the same tokens, so this saves most of the work.
        _, first, group = np.unique(content, return_index=True, return_inverse=True)
        group = group.ravel()
        twins = np.flatnonzero(first[group] != np.arange(len(live)))
        side = np.zeros(len(first), bool)
        np.logical_or.at(side, group, live >= n_ref)  # a group with a row to dedup is one
        lsh = candidate_pairs(
            _band_keys(sig.values[live[first]], bands, rows), content[first], side
        )
        pairs = np.concatenate(
            (live[first[lsh]], np.stack((live[first[group[twins]]], live[twins]), axis=1))
        )
        if n_ref:  # reference rows are never paired together
            pairs = pairs[(pairs >= n_ref).any(axis=1)]
        if self.numbers == "match":
            pairs = pairs[sig.numbers[pairs[:, 0]] == sig.numbers[pairs[:, 1]]]
        if self.verify == "exact":
            good = _exact(texts, pairs, self.threshold, self.ngram, self.shingle)
        else:
            good = _estimated(sig.values, pairs, self.threshold)
        ctx.stats.update(
            bands=bands,
            rows=rows,
            empty_texts=int(sig.empty[n_ref:].sum()),
            candidate_pairs=len(pairs),
            verified_pairs=int(good.sum()),
        )
        out: np.ndarray = pairs[good]
        return out
