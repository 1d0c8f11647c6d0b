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

Each task holds an index of its group's vectors only, and the result does not depend on
which engine ran the tasks or in which order.

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

import importlib
import math
from typing import Any

import numpy as np

from curate.errors import MissingExtraError
from curate.stage import TaskMap, run_here

GROUP_ROWS = 32_768
"""About how many stored vectors one task holds (more groups for more vectors)."""
MIN_GROUPS = 32
_BLOCK = 4096
_EPS = 1e-6

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]


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


def partitioned_pairs(
    vectors: np.ndarray,
    threshold: float,
    *,
    nprobe: int = 16,
    seed: int = 0,
    map: TaskMap | None = None,
) -> Pairs:
    """Pairs ``i < j`` of L2-normalised ``vectors`` with cosine >= ``threshold``, searched
    by partition (module docstring). ``map(fn, items)`` runs the tasks (default: here, in
    order). Returns ``(left, right, similarity)`` sorted by ``(left, right)``."""
    faiss = faiss_module()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    nlist = nlist_for(n)
    nprobe = min(nlist, nprobe)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    ivf.train(vectors)
    centroids = ivf.quantizer.reconstruct_n(0, nlist)
    _, probes = ivf.quantizer.search(vectors, nprobe)
    stored = probes[:, 0]  # the nearest list: where the vector is stored
    groups = min(nlist, max(MIN_GROUPS, -(-n // GROUP_ROWS)))
    group_of = np.arange(nlist) * groups // nlist  # lists cut into consecutive groups
    stored_group, probed_group = group_of[stored], group_of[probes]
    tasks = []  # row numbers and list numbers only: the vectors are shared by every task
    for g in range(groups):
        base = np.flatnonzero(stored_group == g)
        queries = np.flatnonzero((probed_group == g).any(axis=1))
        if base.size and queries.size:
            # each query scans only the lists it probes in this group (-1: skipped)
            mine = np.where(probed_group[queries] == g, probes[queries], -1)
            tasks.append((queries, mine, base, stored[base], threshold))
    found = (map or run_here)(_search_group, tasks, shared=(vectors, centroids))
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
    shared: tuple[np.ndarray, np.ndarray],
    task: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float],
) -> Pairs:
    """One group: each query against the stored vectors of the lists it probes in the
    group, exactly as faiss' IVF scans them (global row numbers)."""
    vectors, centroids = shared
    query_rows, probes, base_rows, base_lists, threshold = task
    faiss = faiss_module()
    nlist, dim = centroids.shape
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids))
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    base = np.ascontiguousarray(vectors[base_rows])
    lists = np.ascontiguousarray(base_lists, dtype=np.int64)
    index.add_core(base.shape[0], faiss.swig_ptr(base), None, faiss.swig_ptr(lists))
    index.nprobe = probes.shape[1]
    qs, bs, ss = [], [], []
    for start in range(0, query_rows.size, _BLOCK):
        block = np.ascontiguousarray(vectors[query_rows[start : start + _BLOCK]])
        keys = np.ascontiguousarray(probes[start : start + _BLOCK], dtype=np.int64)
        lims, s, b = index.range_search_preassigned(
            block, threshold - _EPS, keys, np.zeros(keys.shape, np.float32)
        )
        q = np.repeat(np.arange(block.shape[0]), np.diff(lims).astype(np.int64))
        keep = s >= threshold
        qs.append(query_rows[q[keep] + start])
        bs.append(base_rows[b[keep]])
        ss.append(s[keep].astype(np.float32))
    return np.concatenate(qs), np.concatenate(bs), np.concatenate(ss)
