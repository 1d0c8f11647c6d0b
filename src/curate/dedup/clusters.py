"""What every near-duplicate stage shares: connected components over candidate
pairs, one keeper per cluster by a documented rule, and the columns and rejects
that say who duplicates whom.

A dedup stage finds pairs of rows it considers duplicates (MinHash-LSH
candidates above a Jaccard threshold, embedding neighbours above a cosine
threshold), then calls `mark_clusters`, which

1. joins the pairs into clusters by connected components (`components`),
2. picks one keeper per cluster (`KeepRule`), deterministically, and
3. adds ``<prefix>_cluster`` (the keeper's ``id``; null for a row with no
   duplicate), ``<prefix>_dup_of`` (the keeper's ``id`` on rejected rows, null
   on keepers), ``<prefix>_cluster_size`` and ``<prefix>_answer_conflict``
   (rows of the cluster have different non-null gold answers after
   normalization), and rejects every non-keeper with reason ``duplicate`` and
   the keeper's ``id`` as detail, followed by how similar the row is to its
   keeper when the stage can say (``"<keeper id> (jaccard 0.87)"``, ``"(cosine
   0.93)"``; `keeper_of` reads the id back).

Cluster *membership* depends only on the pairs, never on the order rows arrive
in; with ``keep="first"`` the keeper is the earliest row, so it follows the
recipe's source order.

>>> import numpy as np
>>> components(5, np.array([0, 3]), np.array([1, 1])).tolist()
[0, 0, 2, 0, 4]
>>> keeper_of("t:0:ab12 (jaccard 0.87)"), keeper_of("t:0:ab12"), keeper_of("x (cosine -0.10)")
('t:0:ab12', 't:0:ab12', 'x')
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from curate.errors import ConfigError
from curate.stage import Filter, StageContext, TaskMap
from curate.verification import normalize_answer

KeepRule = Literal["first", "last", "longest_solution", "has_answer", "source_order"]
"""Which row of a duplicate cluster is kept; ties always go to the earliest row.

- ``first``: the earliest row (recipe source order, then file order);
- ``last``: the latest row;
- ``longest_solution``: the row with the longest reference solution;
- ``has_answer``: a row with a non-null gold answer, else the earliest;
- ``source_order``: the row whose ``source`` comes first in ``source_order``
  (sources not listed come after those listed).
"""


Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``similarity(rows, keepers)``: for two equal-length arrays of row positions, how similar
each pair of rows is (a float per pair: estimated Jaccard, cosine ...), for the reject detail."""


def detail_text(ids: Sequence[str], sims: np.ndarray | None, measure: str) -> list[str]:
    """The reject details ``"<id> (<measure> 0.87)"`` (just the ids without ``sims``).

    >>> detail_text(["a", "b"], np.array([0.871, 1.0]), "jaccard")
    ['a (jaccard 0.87)', 'b (jaccard 1.00)']
    """
    if sims is None:
        return list(ids)
    return [_detail(i, s, measure) for i, s in zip(ids, sims.tolist(), strict=True)]


def _detail(keeper: str, similarity: float, measure: str) -> str:
    return f"{keeper} ({measure} {similarity:.2f})"  # `keeper_of` reads the id back


_SIMILARITY = re.compile(r" \([a-z]+ -?[0-9]+\.[0-9]+\)$")


def keeper_of(detail: str) -> str:
    """The keeper's (or reference row's) ``id`` in a near-duplicate reject's ``detail``
    (the detail without its ``" (<measure> 0.87)"`` ending)."""
    return _SIMILARITY.sub("", detail)


EDGES_PER_TASK = 1 << 22
"""Edges per task when `components` contracts them on the run's engine."""


def components(
    n: int,
    left: np.ndarray[Any, Any],
    right: np.ndarray[Any, Any],
    *,
    map: TaskMap | None = None,
) -> np.ndarray:
    """Connected components of ``n`` nodes joined by the edges ``left[i] -- right[i]``.

    Returns, for every node, the smallest node index in its component (vectorized
    union-find: hook roots to the smaller root, then pointer-jump). With ``map``
    (`curate.stage.StageContext.map`) and more than `EDGES_PER_TASK` edges, tasks first
    contract their share of the edges to stars (each node joined to the smallest node of
    its component within that share: the same components, at most one edge per node per
    task, so a cluster with many pairs comes back as few edges), and the union-find runs
    over the stars, on the nodes they touch.

    >>> from curate.stage import run_here
    >>> components(6, np.array([4, 0, 2]), np.array([5, 1, 1]), map=run_here).tolist()
    [0, 0, 0, 3, 4, 4]
    """
    u = np.asarray(left, dtype=np.int64)
    v = np.asarray(right, dtype=np.int64)
    if n == 0 or u.size == 0:
        return np.arange(n, dtype=np.int64)
    if u.shape != v.shape or u.min() < 0 or v.min() < 0 or max(u.max(), v.max()) >= n:
        raise ValueError(f"edges must be pairs of node indices in [0, {n})")
    if map is not None and len(u) > EDGES_PER_TASK:
        edges = np.stack((u, v), axis=1)
        shares = [(lo, lo + EDGES_PER_TASK) for lo in range(0, len(u), EDGES_PER_TASK)]
        stars = map(_stars, shares, shared=edges)
        del edges
        u = np.concatenate([a for a, _ in stars])
        v = np.concatenate([b for _, b in stars])
    nodes, local = np.unique(np.concatenate((u, v)), return_inverse=True)
    roots = _union_find(len(nodes), local[: len(u)], local[len(u) :])
    out = np.arange(n, dtype=np.int64)
    out[nodes] = nodes[roots]
    return out


def _stars(edges: np.ndarray, share: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A task of `components`: its share of the edges as (node, smallest node of its
    component in the share) for every node that is not that smallest one."""
    mine = edges[share[0] : share[1]]
    nodes, local = np.unique(mine, return_inverse=True)
    local = local.reshape(-1, 2)
    roots = _union_find(len(nodes), local[:, 0], local[:, 1])
    moved = roots != np.arange(len(nodes))
    return nodes[moved], nodes[roots[moved]]


def _union_find(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each of ``n`` nodes' smallest connected node (``u``, ``v``: valid edges)."""
    parent = np.arange(n, dtype=np.int64)
    while True:
        pu, pv = parent[u], parent[v]
        unjoined = pu != pv
        if not unjoined.any():
            return parent
        lo = np.minimum(pu[unjoined], pv[unjoined])
        hi = np.maximum(pu[unjoined], pv[unjoined])
        np.minimum.at(parent, hi, lo)
        while True:  # pointer jumping until every node points at its root
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def _priority(frame: pl.DataFrame, keep: KeepRule, source_order: Sequence[str]) -> list[pl.Expr]:
    """Sort keys (ascending) under which the first row of a cluster is its keeper."""
    pos = pl.col("__pos")
    if keep == "first":
        return [pos]
    if keep == "last":
        return [-pos]
    if keep == "longest_solution":
        return [-pl.col("solution").str.len_chars().fill_null(-1), pos]
    if keep == "has_answer":
        return [pl.col("answer").is_null(), pos]
    if keep == "source_order":
        if not source_order:
            raise ConfigError("keep='source_order' needs source_order=('src1', 'src2', ...)")
        rank = {s: i for i, s in enumerate(source_order)}
        return [
            pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64),
            pos,
        ]
    raise ConfigError(
        f"keep={keep!r}: expected 'first', 'last', 'longest_solution', 'has_answer' "
        "or 'source_order'"
    )


def mark_clusters(
    stage: Filter,
    frame: pl.DataFrame,
    left: np.ndarray[Any, Any],
    right: np.ndarray[Any, Any],
    ctx: StageContext,
    *,
    prefix: str,
    keep: KeepRule = "first",
    source_order: Sequence[str] = (),
    similarity: Similarity | None = None,
    measure: str = "similarity",
) -> pl.LazyFrame:
    """Cluster ``frame``'s rows by the duplicate pairs (row positions), keep one per cluster.

    Adds the ``<prefix>_*`` columns described in the module docstring, rejects
    non-keepers with reason ``duplicate``, and records ``clusters``,
    ``duplicates`` and ``conflicting_clusters`` in ``ctx.stats``. With
    ``similarity`` (see `Similarity`), each reject's detail also says how similar
    the row is to its keeper, as ``"<keeper id> (<measure> 0.87)"`` (a row that
    joined the cluster through another row may be less similar to the keeper than
    the stage's threshold).
    """
    n = frame.height
    roots = components(n, left, right, map=ctx.map)
    # only the rows in a cluster of two or more are worked on; the others keep null columns
    inside = np.flatnonzero(np.bincount(roots, minlength=n)[roots] > 1)
    order = _priority(frame, keep, source_order)
    work = frame[inside].with_columns(
        pl.Series("__root", roots[inside], pl.Int64),
        pl.Series("__pos", inside, pl.Int64),
        pl.col("answer").cast(pl.String).alias("__answer"),
    )
    # Answers are normalized (Python, slow) only in clusters whose raw answers differ: where
    # they are all the same, so are their normal forms.
    differ = (pl.col("__answer").n_unique().over("__root") > 1) & pl.col("__answer").is_not_null()
    suspects = np.flatnonzero(work.select(differ).to_series().to_numpy())
    if len(suspects):
        raw = work["__answer"].gather(suspects).to_list()
        normal = {a: normalize_answer(a) for a in set(raw)}
        fixed = work["__answer"].scatter(suspects, pl.Series([normal[a] for a in raw]))
        work = work.with_columns(fixed.alias("__answer"))
    keeper = pl.col("id").sort_by(order).first().over("__root")
    work = work.select(
        "__pos",
        "__root",
        keeper.alias("cluster"),
        pl.len().over("__root").cast(pl.Int64).alias("size"),
        (pl.col("__answer").drop_nulls().n_unique().over("__root") > 1).alias("conflict"),
        (pl.col("id") != keeper).alias("dup"),
        pl.col("__pos").sort_by(order).first().over("__root").alias("keeper_pos"),
    )
    ctx.stats["clusters"] = work["__root"].n_unique()
    ctx.stats["duplicates"] = int(work["dup"].sum())
    ctx.stats["conflicting_clusters"] = work.filter("conflict")["__root"].n_unique()
    dups = work.filter("dup")
    detail = dups["cluster"]
    if similarity is not None:
        sims = similarity(dups["__pos"].to_numpy(), dups["keeper_pos"].to_numpy())
        text = detail_text(detail.to_list(), np.asarray(sims, dtype=np.float64), measure)
        detail = pl.Series(text, dtype=pl.String)

    def spread(name: str, values: pl.Series, rows: pl.Series, default: Any) -> pl.Series:
        full = pl.repeat(default, n, dtype=values.dtype, eager=True).alias(name)
        return full.scatter(rows.to_numpy(), values) if len(rows) else full

    pos = work["__pos"]
    marked = frame.with_columns(
        spread(f"{prefix}_cluster", work["cluster"], pos, None),
        spread(f"{prefix}_cluster_size", work["size"], pos, 1),
        spread(f"{prefix}_answer_conflict", work["conflict"], pos, False),
        spread(f"{prefix}_dup_of", dups["cluster"], dups["__pos"], None),
        spread("__detail", detail, dups["__pos"], None),
        spread("__dup", work["dup"], pos, False),
    )
    out = stage.mark(marked.lazy(), pl.col("__dup"), "duplicate", pl.col("__detail"))
    return out.drop("__detail", "__dup")


def mark_reference(
    stage: Filter,
    rows: pl.LazyFrame,
    matches: Sequence[str | None],
    *,
    prefix: str,
    sims: Sequence[float | None] | None = None,
    measure: str = "similarity",
) -> pl.LazyFrame:
    """Cross-dataset mode: reject rows that duplicate a row of a reference corpus.

    ``matches[i]`` is the reference ``id`` that row ``i`` duplicates, or None.
    Adds ``<prefix>_reference_match`` and rejects matched rows with reason
    ``duplicate_of_reference`` and the reference ``id`` as detail, followed by
    ``sims[i]`` when given (``"<id> (<measure> 0.91)"``, as `mark_clusters`; a reason
    already given by an earlier `Filter.mark` in the same stage is kept).
    """
    column = f"{prefix}_reference_match"
    rows = rows.with_columns(pl.Series(column, list(matches), pl.String))
    detail = pl.col(column)
    if sims is not None:
        text = [
            None if m is None or s is None else _detail(m, s, measure)
            for m, s in zip(matches, sims, strict=True)
        ]
        rows = rows.with_columns(pl.Series("__detail", text, pl.String))
        detail = pl.col("__detail")
    marked = stage.mark(rows, pl.col(column).is_not_null(), "duplicate_of_reference", detail)
    return marked.drop("__detail") if sims is not None else marked


Reference = str | tuple[str, ...] | None
"""A reference corpus for cross-dataset mode: a run directory, a Parquet file of
problems (with ``id`` and ``problem`` columns), or any file `curate.read` accepts;
or a tuple of them."""


def _reference_paths(reference: Reference) -> list[Path]:
    if reference is None:
        return []
    paths = [Path(reference)] if isinstance(reference, str) else [Path(r) for r in reference]
    for path in paths:
        if not path.exists():
            raise ConfigError(f"reference {str(path)!r} does not exist")
    return paths


def load_reference(reference: Reference) -> pl.DataFrame:
    """The ``id`` and ``problem`` of every row of a reference corpus (see `Reference`).

    A run directory gives its final ``problems`` table; a Parquet file with ``id``
    and ``problem`` columns is taken as it is; anything else goes through
    `curate.read`. Rows with a null problem are left out. Each file is read once
    per process while it is unchanged (a stage's fingerprint and its work both
    need the reference).
    """
    frames = []
    for path in _reference_paths(reference):
        is_run = path.is_dir() and (path / "manifest.json").exists()
        stat = (path / "manifest.json" if is_run else path).stat()
        frames.append(_load_one(str(path.resolve()), is_run, stat.st_mtime_ns, stat.st_size))
    if not frames:
        return pl.DataFrame(schema={"id": pl.String, "problem": pl.String})
    return pl.concat(frames).filter(pl.col("problem").is_not_null())


@functools.lru_cache(maxsize=8)
def _load_one(path_str: str, is_run: bool, mtime_ns: int, size: int) -> pl.DataFrame:
    """One reference's ``id`` and ``problem``; the stat values only key the cache."""
    from curate.io import read
    from curate.run import open_run

    path = Path(path_str)
    if is_run:
        frame = open_run(path).table("problems").select("id", "problem").collect()
    elif path.suffix == ".parquet" and {"id", "problem"} <= set(pl.read_parquet_schema(path)):
        frame = pl.read_parquet(path, columns=["id", "problem"])
    else:
        frame = read(path).frame().select("id", "problem")
    return frame.with_columns(pl.col("id", "problem").cast(pl.String))


def reference_digest(reference: Reference) -> str | None:
    """A digest of the reference corpus' contents, for a stage's fingerprint."""
    paths = _reference_paths(reference)
    if not paths:
        return None
    frame = load_reference(reference)
    h = hashlib.blake2b(digest_size=16)
    for row_id, problem in frame.iter_rows():
        h.update(f"{row_id}\0{problem}\0".encode())
    return h.hexdigest()
