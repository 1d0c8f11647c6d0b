"""Similarity search by IVF partition: every pair of vectors above a cosine threshold,
as independent tasks that an engine may run anywhere (`curate.stage.StageContext.map`).

A coarse quantizer (k-means, ``nlist`` lists, seeded) assigns every vector to its nearest
list and gives each vector the ``nprobe`` lists nearest to it, as faiss' IVF index does.
The lists are cut into a fixed number of groups (by the vector count only, never by the
engine or the machine). One task per group holds an IVF index of only the vectors stored
in the group's lists, and searches it with every vector that probes one of them, scanning
only the lists that vector probes (faiss' ``range_search_preassigned``). Together the
tasks find exactly the pairs faiss' own IVF range search finds with the same lists and
``nprobe``, with the same number of comparisons (about ``nprobe / nlist`` of all pairs).

**Memory.** The vectors may stay on disk (`Vectors`: rows of a ``.npy`` file, read
with plain reads a chunk at a time). The quantizer is trained on the rows faiss
itself would train on (`training_rows`: every row up to ``train_per_list`` per list,
faiss' ``max_points_per_centroid``, else the seeded sample faiss draws), gathered from
the file; every row is then assigned to its lists a chunk at a time. The tasks get the
file, not the vectors: each reads its group's rows and its queries, a block at a time,
where it runs. What stays in memory besides the training rows is the lists each row
probes (``nprobe`` int32 per row).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> v = rng.normal(size=(2_000, 16)).astype(np.float32)
>>> v[1] = v[0] + 0.01
>>> v /= np.linalg.norm(v, axis=1, keepdims=True)
>>> left, right, sims = partitioned_pairs(v, 0.99, seed=0)
>>> (left.tolist(), right.tolist())
([0], [1])
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from curate import arrays
from curate.arrays import Stacked
from curate.errors import MissingExtraError
from curate.stage import TaskMap, run_here

GROUP_ROWS = 32_768
"""About how many stored vectors one task holds (more groups for more vectors)."""
MIN_GROUPS = 32
TRAIN_PER_LIST = 256
"""Training rows per list at most: faiss' own ``max_points_per_centroid`` (above it faiss
trains on a seeded sample; `training_rows` draws the same one)."""
_BLOCK = 4096  # queries per range search (and faiss' own block of a flat search)
_READ = 4 * _BLOCK  # rows read from disk at once (a multiple of _BLOCK: the same sums)
_EPS = 1e-6

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Vectors:
    """Float32 vectors: the rows ``select`` of ``source`` (all of them when None),
    numbered 0.. in that order. ``source`` holds arrays in memory or ``.npy`` paths
    (`curate.arrays.Stacked`); rows of a file are read `_READ` at a time with
    plain reads (`curate.arrays.take`: no memory map keeps pages resident). Plain data:
    a task reads the rows where it runs.

    >>> v = Vectors.of(np.arange(12, dtype=np.float32).reshape(6, 2))
    >>> len(v), v.take(np.array([5, 0])).tolist()
    (6, [[10.0, 11.0], [0.0, 1.0]])
    >>> len(Vectors(v.source, np.array([4, 1]))), Vectors(v.source, np.array([4, 1])).dim
    (2, 2)
    """

    source: Stacked
    select: np.ndarray | None = None

    @classmethod
    def of(cls, vectors: np.ndarray | Vectors) -> Vectors:
        """``vectors`` as `Vectors` (an array in memory: all its rows)."""
        return vectors if isinstance(vectors, Vectors) else cls(Stacked((vectors,)))

    def __len__(self) -> int:
        return len(self.source) if self.select is None else len(self.select)

    @functools.cached_property
    def dim(self) -> int:
        """The width of a vector."""
        first = self.source.pieces[0]
        return int((arrays.shape(first) if isinstance(first, str) else first.shape)[1])

    def take(self, positions: np.ndarray | None = None) -> np.ndarray:
        """The vectors at ``positions`` (all when None), contiguous float32, read `_READ`
        rows at a time."""
        if positions is None:
            positions = np.arange(len(self), dtype=np.int64)
        rows = positions if self.select is None else self.select[positions]
        out = np.empty((len(rows), self.dim), np.float32)
        for lo in range(0, len(rows), _READ):
            out[lo : lo + _READ] = self.source.take(rows[lo : lo + _READ])
        return out

    def chunks(self) -> Any:
        """``(start, vectors)`` for consecutive chunks of `_READ` rows."""
        for lo in range(0, len(self), _READ):
            yield lo, self.take(np.arange(lo, min(lo + _READ, len(self)), dtype=np.int64))


def faiss_module() -> Any:
    """faiss, imported on first use (extra ``embed``)."""
    try:
        return importlib.import_module("faiss")
    except ImportError:
        raise MissingExtraError("faiss-cpu", "embed") from None


def nlist_for(n: int) -> int:
    """The number of lists for ``n`` vectors: about 4 sqrt(n), at least 39 points each
    (faiss' own minimum for training)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def training_rows(n: int, nlist: int, seed: int, per_list: int = TRAIN_PER_LIST) -> np.ndarray:
    """The rows the quantizer trains on, in the order faiss takes them: all ``n`` up to
    ``per_list * nlist``, else the first ``per_list * nlist`` of faiss' seeded permutation
    (``rand_perm``, as its k-means subsamples), so training on these rows gives the
    centroids that training on all of them gives.

    >>> training_rows(10, 2, seed=0).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    >>> len(training_rows(10_000, 4, seed=0, per_list=39))
    156
    """
    if n <= per_list * nlist:
        return np.arange(n, dtype=np.int64)
    faiss = faiss_module()
    perm = np.empty(n, np.int32)
    faiss.rand_perm(faiss.swig_ptr(perm), n, seed)
    return perm[: per_list * nlist].astype(np.int64)


def partitioned_pairs(
    vectors: np.ndarray | Vectors,
    threshold: float,
    *,
    nprobe: int = 16,
    seed: int = 0,
    train_per_list: int = TRAIN_PER_LIST,
    map: TaskMap | None = None,
) -> Pairs:
    """Pairs ``i < j`` of L2-normalised ``vectors`` with cosine >= ``threshold``, searched
    by partition (module docstring). ``vectors`` may be `Vectors` on disk: only the
    training rows are held here at once. ``train_per_list`` is faiss'
    ``max_points_per_centroid``. ``map(fn, items, shared=...)`` runs the tasks (default:
    here, in order). Returns ``(left, right, similarity)`` sorted by ``(left, right)``."""
    faiss = faiss_module()
    vecs = Vectors.of(vectors)
    n = len(vecs)
    if n < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    dim = vecs.dim
    nlist = nlist_for(n)
    nprobe = min(nlist, nprobe)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = train_per_list
    train = vecs.take(training_rows(n, nlist, seed, train_per_list))
    ivf.train(train)
    del train
    centroids = ivf.quantizer.reconstruct_n(0, nlist)
    probes = np.empty((n, nprobe), np.int32)  # each row's lists, nearest first
    for lo, chunk in vecs.chunks():
        probes[lo : lo + len(chunk)] = ivf.quantizer.search(chunk, nprobe)[1]
    groups = min(nlist, max(MIN_GROUPS, -(-n // GROUP_ROWS)))
    group_of = (np.arange(nlist) * groups // nlist).astype(np.int32)  # consecutive lists
    stored = np.bincount(group_of[probes[:, 0]], minlength=groups)
    tasks = np.flatnonzero(stored).tolist()  # a group's own rows probe it: never no query
    shared = (vecs, centroids, probes, group_of, threshold)
    found = (map or run_here)(_search_group, tasks, shared=shared)
    if not found:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    q = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    s = np.concatenate([f[2] for f in found])
    lo, hi = np.minimum(q, b), np.maximum(q, b)
    distinct = lo != hi
    pair, first = np.unique(lo[distinct] * n + hi[distinct], return_index=True)
    return pair // n, pair % n, s[distinct][first]


def _search_group(
    shared: tuple[Vectors, np.ndarray, np.ndarray, np.ndarray, float], group: int
) -> Pairs:
    """One group: each query against the stored vectors of the lists it probes in the
    group, exactly as faiss' IVF scans them (global row numbers). The group's rows and
    its queries are read here, the queries a block at a time."""
    vecs, centroids, probes, group_of, threshold = shared
    probed_group = group_of[probes]
    base_rows = np.flatnonzero(probed_group[:, 0] == group)
    query_rows = np.flatnonzero((probed_group == group).any(axis=1))
    # each query scans only the lists it probes in this group (-1: skipped)
    mine = np.where(probed_group[query_rows] == group, probes[query_rows], -1)
    del probed_group
    faiss = faiss_module()
    nlist, dim = centroids.shape
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids))
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    base = vecs.take(base_rows)
    lists = np.ascontiguousarray(probes[base_rows, 0], dtype=np.int64)
    index.add_core(base.shape[0], faiss.swig_ptr(base), None, faiss.swig_ptr(lists))
    del base
    index.nprobe = mine.shape[1]
    qs, bs, ss = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    for start in range(0, query_rows.size, _BLOCK):
        block = vecs.take(query_rows[start : start + _BLOCK])
        keys = np.ascontiguousarray(mine[start : start + _BLOCK], dtype=np.int64)
        lims, s, b = index.range_search_preassigned(
            block, threshold - _EPS, keys, np.zeros(keys.shape, np.float32)
        )
        q = np.repeat(np.arange(block.shape[0]), np.diff(lims).astype(np.int64))
        keep = s >= threshold
        qs.append(query_rows[q[keep] + start])
        bs.append(base_rows[b[keep]])
        ss.append(s[keep].astype(np.float32))
    return np.concatenate(qs), np.concatenate(bs), np.concatenate(ss)
