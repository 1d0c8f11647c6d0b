"""64-bit hashing shared by near-duplicate detection and decontamination: seeded constants,
MurmurHash3's finalizer, and the one hash of n consecutive token hashes (an n-gram).

Everything is plain uint64 arithmetic (wrapping), so hashes are the same on every platform
and every run; numpy does the work over whole arrays at once. `gram_hashes` hashes the
n-grams of `curate.shingles` (MinHash shingles) and of `curate.decontam.ngram` (the benchmark
n-gram index) alike; `gram_hash` is its definition in plain Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_U64 = np.uint64
_M1, _M2 = _U64(0xFF51AFD7ED558CCD), _U64(0xC4CEB9FE1A85EC53)
MASK64 = (1 << 64) - 1
# n-gram windows are summed a block of positions at a time, in place with one scratch block:
# the block's arrays stay in the CPU cache, where each of the 2n passes costs a fraction of
# one over memory (measured on 1.8M items: 4 ms instead of 16 at n = 3, 15 instead of 40 at
# n = 10).
_BLOCK = 1 << 15


def constants(label: str, count: int) -> np.ndarray:
    """``count`` pseudo-random uint64 named by ``label``: BLAKE2b of the label and the index,
    so they never change with numpy's random generators (whose streams may).

    >>> constants("demo", 2).dtype, len(constants("demo", 3)), constants("demo", 1)[0] > 0
    (dtype('uint64'), 3, np.True_)
    """
    digest = (hashlib.blake2b(f"{label}:{i}".encode(), digest_size=8) for i in range(count))
    return np.array([int.from_bytes(d.digest(), "little") for d in digest], dtype=np.uint64)


def fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, in place on a uint64 array (a bijection that mixes
    every input bit into every output bit); returns ``x``.

    >>> int(fmix64(np.array([1], dtype=np.uint64))[0]) == mix64(1)
    True
    """
    x ^= x >> _U64(33)
    x *= _M1
    x ^= x >> _U64(33)
    x *= _M2
    x ^= x >> _U64(33)
    return x


def mix64(x: int) -> int:
    """`fmix64` of one Python integer (``0 <= x < 2**64``).

    >>> mix64(0), mix64(1) != mix64(2)
    (0, True)
    """
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & MASK64
    return x ^ (x >> 33)


GRAM_MUL = constants("curate.text.gram", 64) | _U64(1)
"""The weight of each position of an n-gram (odd: multiplying by one is a bijection)."""
MAX_GRAM = len(GRAM_MUL)


def gram_hash(items: Sequence[int]) -> int:
    """The hash of one run of item hashes (the definition `gram_hashes` computes in bulk):
    ``mix64(sum(items[k] * GRAM_MUL[k]))``, wrapping. Weighting by position makes the order
    count; a run of m items is the same whether it stands alone or ends a text.

    >>> gram_hash([1, 2]) != gram_hash([2, 1]), gram_hash([]) == 0
    (True, True)
    """
    total = sum(int(v) * int(GRAM_MUL[k]) for k, v in enumerate(items))
    return mix64(total & MASK64)


def gram_hashes(
    items: np.ndarray,
    n: int,
    starts: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> np.ndarray:
    """`gram_hash` of runs of a flat uint64 array: the ``n`` items from each of ``starts``
    (default: every position with ``n`` items left, ``len(items) - n + 1`` runs), or only
    ``lengths[i]`` of them where given (``1 <= lengths[i] <= n``; a run must not pass the end).

    Callers keep the runs that lie inside one text (by ``starts``, or by filtering after).

    >>> items = np.array([11, 12, 13, 14], dtype=np.uint64)
    >>> [int(h) == gram_hash([12, 13]) for h in gram_hashes(items, 2)]
    [False, True, False]
    >>> starts, lengths = np.array([0, 2]), np.array([3, 2])
    >>> [int(h) for h in gram_hashes(items, 3, starts, lengths)] == [
    ...     gram_hash([11, 12, 13]), gram_hash([13, 14])]
    True
    """
    if not 1 <= n <= MAX_GRAM:
        raise ValueError(f"n-gram size n={n}: expected 1 to {MAX_GRAM}")
    size = len(items)
    count = max(size - n + 1, 0)  # runs of n items that fit
    if starts is None:
        return _windows(items, n, count, mix=True)
    last = max(size - 1, 0)
    if 2 * len(starts) >= size:  # most positions: every window at once, then the ones asked
        window = _windows(items, n, count)
        # a start past the last whole window begins a shorter run (computed below)
        at = starts if lengths is None else np.minimum(starts, count - 1)
        acc = window[at] if count else np.zeros(len(starts), _U64)
    else:  # a few positions: gather them
        acc = items[starts] * GRAM_MUL[0] if size else np.zeros(len(starts), _U64)
        for k in range(1, n):
            acc += items[np.minimum(starts + k, last)] * GRAM_MUL[k]
    if lengths is not None and (short := np.flatnonzero(lengths < n)).size:
        # rare: runs shorter than n, summed over their own items only
        at, length = starts[short], lengths[short]
        sub = np.zeros(len(short), _U64)
        for k in range(int(length.max())):
            sub += np.where(k < length, items[np.minimum(at + k, last)], _U64(0)) * GRAM_MUL[k]
        acc[short] = sub
    return fmix64(acc)


def _windows(items: np.ndarray, n: int, count: int, *, mix: bool = False) -> np.ndarray:
    """``sum(items[i + k] * GRAM_MUL[k] for k < n)`` for ``i < count`` (contiguous slices, a
    block at a time), through `fmix64` too with ``mix`` (while the block is in the cache)."""
    out = np.empty(count, np.uint64)
    scratch = np.empty(min(count, _BLOCK), np.uint64)
    for lo in range(0, count, _BLOCK):
        hi = min(lo + _BLOCK, count)
        acc, tmp = out[lo:hi], scratch[: hi - lo]
        np.multiply(items[lo:hi], GRAM_MUL[0], out=acc)
        for k in range(1, n):
            np.multiply(items[lo + k : hi + k], GRAM_MUL[k], out=tmp)
            acc += tmp
        if mix:
            for mul in (_M1, _M2, None):  # fmix64 with the scratch block: no temporaries
                np.right_shift(acc, _U64(33), out=tmp)
                acc ^= tmp
                if mul is not None:
                    acc *= mul
    return out
