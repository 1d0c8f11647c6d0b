"""MinHash sketches and LSH over shingles: the machinery behind `curate.dedup.minhash`.

`signatures` turns texts into MinHash signatures (``"oph"``: densified one-permutation
hashing, `oph`; ``"classic"``: ``num_perm`` hashes per shingle, `classic`), `optimal_bands`
picks LSH bands and rows as datasketch does, `candidate_pairs` finds the texts that share an
LSH bucket, and `find_duplicates` verifies the candidates. The module docstring of
`curate.dedup.minhash` says how each works and why.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, NamedTuple

import numpy as np
import polars as pl

from curate.arrays import Stacked
from curate.hashing import constants, fmix64
from curate.shingles import shingles, text_series
from curate.stage import TaskMap, run_here

Sketch = Literal["oph", "classic"]

_U64 = np.uint64
_LOW32 = _U64(0xFFFFFFFF)
_LEADERS = 8  # members of an LSH bucket every other member is compared with
BATCH = 8192  # texts per signature batch: its arrays stay small (a few MB), in cache
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
    numbers: np.ndarray  # uint64 per text: `curate.shingles.number_keys`
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


def oph(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """One-permutation hashing, densified; (texts, num_perm) uint32, from `shingles` hashes
    (text i's are ``hashes[offsets[i]:offsets[i + 1]]``).

    >>> sh = shingles(["a b c d e f", "a b c d e g"], 2)
    >>> values = oph(sh.hashes, sh.offsets, 64, seed=42)
    >>> values.shape, 0.3 < (values[0] == values[1]).mean() < 0.9  # Jaccard 4/6
    ((2, 64), np.True_)
    """
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
    out: np.ndarray = value.astype(np.uint32) ^ (source.astype(np.uint32) * np.uint32(0x9E3779B1))
    return out


def classic(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """Textbook MinHash, datasketch's ``affine32`` scheme; (texts, num_perm) uint32 (as `oph`).

    >>> sh = shingles(["a b c d e f", "a b c d e g"], 2)
    >>> values = classic(sh.hashes, sh.offsets, 64, seed=42)
    >>> values.shape, 0.3 < (values[0] == values[1]).mean() < 0.9
    ((2, 64), np.True_)
    """
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
    the result does not depend on how many; ``progress`` is called with the number of texts
    of each batch done.

    >>> s = signatures(["What is $1+1$?", "what is 1 + 1 ?", "What is 2+2?", ""])
    >>> (s.values[0] == s.values[1]).mean(), (s.values[0] == s.values[2]).mean() < 0.5
    (np.float64(1.0), np.True_)
    >>> s.empty.tolist()
    [False, False, False, True]
    """
    series = text_series(texts)
    make = oph if sketch == "oph" else classic

    # batches of at most BATCH texts, as many per thread (10K texts on 2 threads: 2 x 5,000,
    # not 8,192 + 1,808, which left one thread idle most of the time)
    threads = max(1, min(workers or os.cpu_count() or 1, -(-len(series) // BATCH)))
    count = -(-len(series) // (BATCH * threads)) * threads
    size = -(-len(series) // count) if count else BATCH

    def batch(lo: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sh = shingles(series.slice(lo, size), ngram, shingle)
        return make(sh.hashes, sh.offsets, num_perm, seed), sh.numbers, np.diff(sh.offsets) == 0

    starts = range(0, len(series), size)
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


def band_keys(values: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (text, band): the band's ``rows`` values hashed together.

    >>> v = np.array([[1, 2, 3, 4], [1, 2, 9, 9]], dtype=np.uint32)
    >>> k = band_keys(v, 2, 2)
    >>> bool(k[0, 0] == k[1, 0]), bool(k[0, 1] == k[1, 1])
    (True, False)
    """
    keys = np.empty((len(values), bands), np.uint64)
    for lo in range(0, len(values), BATCH):  # in chunks: the uint64 copy stays in cache
        chunk = np.asarray(values[lo : lo + BATCH]).astype(np.uint64)
        for band in range(bands):
            block = chunk[:, band * rows : (band + 1) * rows]
            keys[lo : lo + BATCH, band] = fmix64(block @ _MIX[:rows] + _U64(band))  # linear
    return keys


def content_keys(values: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """A hash of each text's whole signature and numbers: identical texts share it, and it
    orders the members of an LSH bucket."""
    out = np.empty(len(values), np.uint64)
    for lo in range(0, len(out), BATCH):
        chunk = np.asarray(values[lo : lo + BATCH]).astype(np.uint64)
        out[lo : lo + BATCH] = chunk @ _MIX[: chunk.shape[1]] ^ numbers[lo : lo + BATCH]
    return fmix64(out)


class Sketches(NamedTuple):
    """What LSH and verification need of many texts (`find_duplicates`): their signature
    rows and each band's keys (`Stacked`: in memory or on disk), and, in memory, the
    compact columns (a few bytes per text)."""

    values: Stacked  # uint32 signature rows
    bands: Sequence[Stacked]  # per band: `band_keys` of every text
    numbers: np.ndarray  # uint64 numbers key per text
    empty: np.ndarray  # bool per text: no shingle
    content: np.ndarray  # `content_keys` per text

    @classmethod
    def of(cls, sig: Signatures, bands: int, rows: int) -> Sketches:
        """The sketches of signatures in memory."""
        keys = band_keys(sig.values, bands, rows)
        return cls(
            Stacked((sig.values,)),
            [Stacked((np.ascontiguousarray(keys[:, b]),)) for b in range(bands)],
            sig.numbers,
            sig.empty,
            content_keys(sig.values, sig.numbers),
        )


def candidate_pairs(
    keys: np.ndarray,
    order: np.ndarray,
    side: np.ndarray,
    same: np.ndarray | None = None,
    *,
    map: TaskMap | None = None,
) -> np.ndarray:
    """Pairs of rows (int64, shape (pairs, 2), sorted) that share an LSH bucket.

    ``keys`` are `band_keys` (rows with no signature left out by the caller), ``order`` a
    content key per row, ``side`` 0 for reference rows and 1 for rows being deduplicated.
    Polars groups and sorts the (band, key, row) table; in each bucket with a side-1 row,
    every side-1 row is then paired with the first `_LEADERS` rows of each side (by
    ``order``) that come before it, so side-0 rows are never paired together. With
    ``same`` (a key per row, such as the numbers key), only pairs with equal keys are kept:
    dropped band by band, they never pile up (templated problems that differ only in their
    numbers share most buckets).

    Each band is a task (buckets never span bands) that ``map(fn, items, shared=...)``
    runs (`curate.stage.StageContext.map`: Ray tasks on ``engine="ray"``; default: one
    band after another here). The result does not depend on where or in which order.

    >>> keys = np.array([[1, 5], [1, 6], [2, 6], [3, 7]], dtype=np.uint64)
    >>> candidate_pairs(keys, np.arange(4, dtype=np.uint64), np.ones(4, bool)).tolist()
    [[0, 1], [1, 2]]
    """
    columns = [Stacked((np.ascontiguousarray(keys[:, b]),)) for b in range(keys.shape[1])]
    return _candidates(columns, None, order, side, same, map or run_here)


def _candidates(
    columns: Sequence[Stacked],
    select: np.ndarray | None,
    order: np.ndarray,
    side: np.ndarray,
    same: np.ndarray | None,
    map: TaskMap,
) -> np.ndarray:
    """`candidate_pairs` over band key columns read where the tasks run: rows ``select``
    of each (all when None), numbered 0.. in that order."""
    n = len(order)
    sort_key = (side.astype(np.uint64) << _U64(63)) | (order >> _U64(1))
    # One task per band and per share of its keys (a shuffle on band keys: a bucket is in
    # one band and one share), so a task's table is at most about `_SHARE_ROWS` rows.
    shares = -(-n // _SHARE_ROWS)
    shared = (tuple(columns), select, sort_key, same, shares)
    items = [(band, share) for band in range(len(columns)) for share in range(shares)]
    codes = [np.zeros(0, np.int64), *map(_band_pairs, items, shared=shared)]
    code = pl.Series(np.concatenate(codes)).unique().sort().to_numpy()  # once each
    return np.stack(np.divmod(code, n), axis=1)


_SHARE_ROWS = 1 << 20  # rows per LSH task (a band's keys are split by key beyond that)


def _band_pairs(
    shared: tuple[tuple[Stacked, ...], np.ndarray | None, np.ndarray, np.ndarray | None, int],
    item: tuple[int, int],
) -> np.ndarray:
    """One task of `candidate_pairs`: the bucket pairs of one band's keys whose hash falls
    in share ``item[1]``, as codes ``left * n + right``."""
    columns, select, sort_key, same, shares = shared
    band, share = item
    keys = columns[band].take(select)
    salt = (np.arange(band + 1, dtype=np.uint64) * _U64(0x9E3779B97F4A7C15))[band]
    keys = keys ^ salt  # a new array: the column may be the caller's
    if shares == 1:
        return _bucket_pairs(keys, sort_key, np.arange(len(keys)), len(keys), same)
    rows = np.flatnonzero(keys % _U64(shares) == _U64(share))  # keys are hashes: even shares
    return _bucket_pairs(keys[rows], sort_key[rows], rows, len(keys), same)


def _bucket_pairs(
    bucket: np.ndarray, sort_key: np.ndarray, rows: np.ndarray, n: int, same: np.ndarray | None
) -> np.ndarray:
    """`candidate_pairs` for the buckets of one band (of the rows ``rows``, of ``n`` in
    all): pair codes ``left * n + right``."""
    table = (
        pl.DataFrame(
            {
                "bucket": bucket,
                # reference rows first, then by content (ties: identical texts, any order)
                "order": sort_key,
                "row": rows.astype(np.int64, copy=False),
            }
        )
        .lazy()
        .filter((pl.len().over("bucket") > 1) & (pl.col("order").max().over("bucket") >= 1 << 63))
        .sort("bucket", "order", maintain_order=True)
        .collect()
    )
    if table.height == 0:
        return np.zeros(0, np.int64)
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
    if same is not None:
        pairs = pairs[same[pairs[:, 0]] == same[pairs[:, 1]]]
    codes: np.ndarray = pl.Series(pairs[:, 0] * n + pairs[:, 1]).unique().to_numpy()
    return codes


_VERIFY_TASK = 1 << 20  # candidate pairs per verification task
_GATHER = 16384  # pairs whose signature rows are read at once


def _estimated(values: Stacked, pairs: np.ndarray, threshold: float, map: TaskMap) -> np.ndarray:
    """Whether each pair's estimated Jaccard similarity is at least ``threshold``: tasks of
    `_VERIFY_TASK` pairs, each reading the rows it needs `_GATHER` pairs at a time."""
    starts = range(0, len(pairs), _VERIFY_TASK)
    done = map(_verify_task, starts, shared=(values, pairs, threshold))
    return np.concatenate([np.zeros(0, bool), *done])


def _verify_task(shared: tuple[Stacked, np.ndarray, float], start: int) -> np.ndarray:
    values, pairs, threshold = shared
    mine = pairs[start : start + _VERIFY_TASK]
    equal, width = _equal_values(values, mine[:, 0], mine[:, 1])
    return equal >= math.ceil(threshold * width - 1e-9)


def pair_similarity(values: Stacked, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The share of equal signature values of rows ``a[i]`` and ``b[i]``: their estimated
    Jaccard similarity.

    >>> v = Stacked((np.array([[1, 2, 3, 4], [1, 2, 3, 5], [9, 9, 9, 9]], np.uint32),))
    >>> pair_similarity(v, np.array([0, 0]), np.array([1, 2])).tolist()
    [0.75, 0.0]
    """
    equal, width = _equal_values(values, a, b)
    return equal / max(width, 1)


def _equal_values(values: Stacked, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Equal signature values of each pair, and the signature width; rows are read
    `_GATHER` pairs at a time."""
    out, width = np.zeros(len(a), np.int64), 0
    for lo in range(0, len(a), _GATHER):
        x, y = values.take(a[lo : lo + _GATHER]), values.take(b[lo : lo + _GATHER])
        out[lo : lo + _GATHER], width = (x == y).sum(axis=1), x.shape[1]
    return out, width


def _exact(
    texts: pl.Series, pairs: np.ndarray, threshold: float, ngram: int, kind: str
) -> np.ndarray:
    """Exact Jaccard of the shingle sets of each pair, >= threshold."""
    inter, union = exact_overlap(texts, pairs, ngram, kind)
    good: np.ndarray = inter >= threshold * np.maximum(union, 1) - 1e-9
    return good


def exact_overlap(
    texts: pl.Series, pairs: np.ndarray, ngram: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """The sizes of the intersection and of the union of the shingle sets of each pair of
    rows ``pairs[i]`` of ``texts`` (vectorized, 8,192 pairs at a time)."""
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
    inters, unions = np.zeros(len(pairs), np.int64), np.zeros(len(pairs), np.int64)
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
        inters[lo : lo + 8192], unions[lo : lo + 8192] = inter, size[a] + size[b] - inter
    return inters, unions


def find_duplicates(
    texts: pl.Series | None,
    sketches: Sketches,
    *,
    threshold: float,
    n_ref: int = 0,
    verify: Literal["estimate", "exact"] = "estimate",
    numbers: Literal["match", "ignore"] = "match",
    ngram: int = 3,
    shingle: Literal["word", "char"] = "word",
    map: TaskMap | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Verified duplicate pairs of positions in ``texts`` (shape (pairs, 2)), and counts.
    (``texts`` may be None unless ``verify="exact"``: the signatures are enough.)

    The first ``n_ref`` texts are a reference: they are never paired together. A
    candidate (sharing an LSH bucket of one of ``sketches.bands``) is a duplicate when its
    estimated (or, with ``verify="exact"``, exact) Jaccard similarity is at least
    ``threshold`` and, with ``numbers="match"``, both texts have the same
    `curate.shingles.numbers`. ``map`` runs the LSH bands and the verification as tasks
    (`curate.stage.StageContext.map`), each reading the band keys or signature rows it
    needs where it runs: here, only the compact columns (``numbers``, ``empty``,
    ``content``: 17 bytes per text) and the pairs are in memory.

    >>> texts = pl.Series(["What is $1+1$?", "what is 1 + 1 ?", "What is 1+2?"])
    >>> sketches = Sketches.of(signatures(texts), bands=16, rows=8)
    >>> pairs, counts = find_duplicates(texts, sketches, threshold=0.7)
    >>> pairs.tolist(), counts["verified_pairs"]
    ([[0, 1]], 1)
    """
    run = map or run_here
    live = np.flatnonzero(~sketches.empty)
    content = sketches.content[live]
    # Texts with the same signature (and numbers) are one text to LSH: only one of them,
    # the first, goes in the buckets, the others are paired with it directly. Formatting
    # variants of one problem usually have the same tokens, so this saves most of the work.
    _, first, group = np.unique(content, return_index=True, return_inverse=True)
    group = group.ravel()
    twins = np.flatnonzero(first[group] != np.arange(len(live)))
    side = np.zeros(len(first), bool)
    np.logical_or.at(side, group, live >= n_ref)  # a group with a row to dedup is one
    same = sketches.numbers[live[first]] if numbers == "match" else None
    lsh = _candidates(sketches.bands, live[first], content[first], side, same, run)
    pairs = np.concatenate(
        (live[first[lsh]], np.stack((live[first[group[twins]]], live[twins]), axis=1))
    )
    if n_ref:  # reference rows are never paired together
        pairs = pairs[(pairs >= n_ref).any(axis=1)]
    if numbers == "match":
        pairs = pairs[sketches.numbers[pairs[:, 0]] == sketches.numbers[pairs[:, 1]]]
    if verify == "exact":
        if texts is None:
            raise ValueError("verify='exact' needs the texts")
        good = _exact(texts, pairs, threshold, ngram, shingle)
    else:
        good = _estimated(sketches.values, pairs, threshold, run)
    counts = {
        "empty_texts": int(sketches.empty[n_ref:].sum()),
        "candidate_pairs": len(pairs),
        "verified_pairs": int(good.sum()),
    }
    out: np.ndarray = pairs[good]
    return out, counts
