"""Semantic deduplication: embed each problem, join neighbours above a cosine threshold.

Texts are embedded with a sentence-transformers model (`curate.embed`, default
all-MiniLM-L6-v2, offline) and cached in the run directory, then faiss finds
every pair of texts whose cosine similarity is at least ``threshold``; pairs
become clusters through `curate.dedup.clusters.mark_clusters`. The search
helpers here (`neighbour_pairs`, `cross_pairs`) work on any normalised vectors.

>>> import numpy as np
>>> v = np.array([[1, 0], [0.99, 0.141], [0, 1]], dtype=np.float32)
>>> v /= np.linalg.norm(v, axis=1, keepdims=True)
>>> left, right, sims, kind = neighbour_pairs(v, 0.9)
>>> left.tolist(), right.tolist(), kind
([0], [1], 'flat')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from curate.arrays import Stacked, stacked
from curate.dedup.clusters import (
    KeepRule,
    Reference,
    load_reference,
    mark_clusters,
    mark_reference,
    reference_digest,
)
from curate.dedup.ivf import Vectors, faiss_module, nlist_for, partitioned_pairs
from curate.embed import (
    DEFAULT_MODEL,
    Backend,
    EmbeddingCache,
    backend_key,
    choose_backend,
    text_key,
)
from curate.errors import ConfigError
from curate.shingles import number_keys
from curate.stage import Filter, StageContext, TaskMap
from curate.text import normalize_text

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
FLAT_MAX = 50_000
"""``index="auto"`` searches exactly (flat) up to this many vectors, then uses IVF.

A flat (or HNSW) index holds every vector in memory (1.5 KB per MiniLM vector: 75 MB
here); IVF reads them from disk (`curate.dedup.ivf`).

Measured in benchmarks/bench_semantic.py on 2 shared cores: flat and IVF cost the
same at 10K vectors (~2 s); at 100K flat took ~220 s (it grows as n²) and IVF
(4 sqrt(n) lists, 16 probed, range search) 60-105 s with recall 1.0000 against
flat. Exact search is kept while it costs under a minute there (about 50K), which
is also ~1% of the time to encode that many texts."""
SMALL = 1_000
"""Below this many vectors an approximate index is pointless: flat is used."""
_BLOCK = 4096  # queries per range search: bounds the memory of one call
_GATHER = 16_384  # row pairs whose vectors are read at once (reject details)
_VEC, _KEY, _NUM = "_semantic_vector", "_semantic_key", "_semantic_numbers"
_EPS = 1e-6


def choose_index(n: int, index: IndexKind = "auto") -> str:
    """The index actually used for ``n`` vectors (see `FLAT_MAX` and `SMALL`).

    >>> choose_index(5_000), choose_index(10**6), choose_index(10, "hnsw")
    ('flat', 'ivf', 'flat')
    """
    if index not in ("auto", "flat", "ivf", "hnsw"):
        raise ConfigError(f"index={index!r}: expected 'auto', 'flat', 'ivf' or 'hnsw'")
    if index == "auto":
        return "flat" if n <= FLAT_MAX else "ivf"
    return "flat" if n < SMALL else index


def _build(base: np.ndarray, kind: str, k: int, seed: int) -> Any:
    faiss = faiss_module()
    n, dim = base.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "ivf":
        nlist = nlist_for(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(base)
        index.nprobe = min(nlist, 16)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = max(64, 2 * k)
    index.add(base)
    return index


def _search(
    index: Any, kind: str, queries: Vectors, threshold: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query row, base row, similarity) with similarity >= threshold that the index finds.

    flat and ivf use range search (every neighbour above the threshold; ivf only in
    the lists it probes); hnsw has no range search and returns the ``k`` nearest. The
    queries are read `_BLOCK` at a time.
    """
    qs, bs, ss = [], [], []
    for start in range(0, len(queries), _BLOCK):
        block = queries.take(np.arange(start, min(start + _BLOCK, len(queries))))
        if kind == "hnsw":
            sims, ids = index.search(block, min(k, index.ntotal))
            q = np.repeat(np.arange(block.shape[0]), ids.shape[1])
            b, s = ids.ravel(), sims.ravel()
        else:
            lims, s, b = index.range_search(block, threshold - _EPS)
            q = np.repeat(np.arange(block.shape[0]), np.diff(lims).astype(np.int64))
        keep = (b >= 0) & (s >= threshold)
        qs.append(q[keep] + start)
        bs.append(b[keep].astype(np.int64))
        ss.append(s[keep].astype(np.float32))
    if not qs:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    return np.concatenate(qs).astype(np.int64), np.concatenate(bs), np.concatenate(ss)


def neighbour_pairs(
    vectors: np.ndarray | Vectors,
    threshold: float,
    *,
    index: IndexKind = "auto",
    k: int = 10,
    seed: int = 0,
    map: TaskMap | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Pairs ``i < j`` of L2-normalised ``vectors`` with cosine >= ``threshold``.

    Returns ``(left, right, similarity, index_used)``, sorted by ``(left, right)``. IVF
    searches by partition (`curate.dedup.ivf`), as tasks that ``map`` runs (a run's
    engine: `curate.stage.StageContext.map`), reading `Vectors` on disk where they run.
    A flat or HNSW index loads every vector into memory: it is for small tables
    (``index="auto"`` picks flat up to `FLAT_MAX` vectors only).
    """
    vecs = Vectors.of(vectors)
    n = len(vecs)
    kind = choose_index(n, index)
    if n < 2:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), kind
    if kind == "ivf":
        return (*partitioned_pairs(vecs, threshold, seed=seed, map=map), kind)
    base = vecs.take()  # flat / hnsw: in memory
    q, b, s = _search(_build(base, kind, k + 1, seed), kind, Vectors.of(base), threshold, k + 1)
    lo, hi = np.minimum(q, b), np.maximum(q, b)
    pair = lo * n + hi
    pair, first = np.unique(pair[lo != hi], return_index=True)  # (i, j) and (j, i) are one
    sims = s[lo != hi][first]
    return pair // n, pair % n, sims, kind


def cross_pairs(
    queries: np.ndarray | Vectors,
    base: np.ndarray,
    threshold: float,
    *,
    index: IndexKind = "auto",
    k: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Pairs (query row, base row) with cosine >= ``threshold``, the index built over ``base``
    (in memory); the queries (`Vectors` may be on disk) are read a block at a time."""
    kind = choose_index(base.shape[0], index)
    queries = Vectors.of(queries)
    if len(queries) == 0 or base.shape[0] == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), kind
    base = np.ascontiguousarray(base, dtype=np.float32)
    built = _build(base, kind, k, seed)
    q, b, s = _search(built, kind, queries, threshold, k)
    return q, b, s, kind


@dataclass(frozen=True)
class SemanticDedup(Filter):
    """Drop rows whose problem means the same as another's: embedding cosine >= ``threshold``.

    Each row's ``column`` (made `curate.text.normalize_text` first when
    ``normalize``, so LaTeX spelling variants embed identically) is embedded by
    ``model`` (the bundled all-MiniLM-L6-v2, or a local sentence-transformers
    folder) and cached in ``RUN/cache/embeddings`` by model and ``text_hash``:
    re-running with another threshold encodes nothing. Pairs with cosine at least
    ``threshold`` (DeepScaleR used MiniLM at 0.9) are found by faiss: exactly
    (flat) up to `FLAT_MAX` unique texts with ``index="auto"``, by IVF beyond;
    ``"hnsw"`` keeps the ``k`` nearest of each text only.

    **Changed numbers.** MiniLM gives the same problem with one number changed a
    cosine above 0.9 most of the time (measured: ~9 in 10 pairs), but it is a
    different problem. With ``numbers_must_match`` (the default) a pair counts
    only if both texts have the same numbers (`curate.shingles.numbers`, the rule
    `curate.dedup.minhash.MinHashDedup` applies too); set it False to match on
    meaning alone. Measured at 0.9 on labelled real pairs
    (benchmarks/bench_semantic.py): precision 1.00 and recall 0.99 with the rule,
    precision 0.77 without. No rule catches this one: the same setup
    with another question ("radius" vs "center" of one circle) can score above
    0.9 too; 16 of 3,000 distinct MATH train problems were flagged, some of them
    true rewordings of one question, some not.

    **Clusters chain.** Clusters are connected components: if A~B and B~C, A, B
    and C are one cluster even when A and C are below the threshold. One row per
    cluster is kept by ``keep`` (`curate.dedup.clusters.KeepRule`); the others are
    rejected as ``duplicate`` with the keeper's id, and rows get the
    ``semantic_*`` columns of `curate.dedup.clusters.mark_clusters`. Rows with a
    null or blank ``column`` are never duplicates.

    **Cross-dataset mode.** With ``reference`` (a run directory, a Parquet file
    or a tuple of them) rows whose text matches a reference problem are rejected
    as ``duplicate_of_reference`` (``semantic_reference_match`` names it); the
    reference itself is not deduplicated. Rows are still deduplicated among
    themselves; a cluster whose keeper matched the reference keeps no row.

    **Backend.** ``backend="auto"`` runs the model with torch on a GPU, and on a CPU
    converted once to OpenVINO computing in bfloat16 (`curate.embed`): about 4x as fast
    on 2 cores with the same precision and recall on the labelled pairs (cosines within
    0.003; benchmarks/bench_embed_speed.py). ``"torch"`` is the float32 reference; the
    vectors of each backend are cached apart, and the backend is in the fingerprint.

    **Streaming.** Texts are embedded batch by batch (`batch_rows`; on Ray, on actors that
    load the model once); the global step sees only vectors, text keys and numbers keys,
    never the texts. The vectors (1.5 KB per row with MiniLM) are a `Stage.arrays` column:
    on disk, not in the step's table. IVF reads them there (training rows,
    then a chunk at a time; its partition tasks read their own rows where they run), the
    reference search and the reject details read the rows they need; a flat index (small
    tables: up to `FLAT_MAX` distinct texts with ``index="auto"``) loads them.

    Stats: ``texts`` (unique texts), ``encoded`` and ``cached`` (texts of the rows
    and of the reference), ``index``,
    ``pairs`` (similar unique-text pairs), ``refused_numbers``, the cluster counts,
    and in reference mode ``reference_rows`` and ``reference_matches``.

    >>> SemanticDedup(threshold=0.85).config()["threshold"]
    0.85
    """

    threshold: float = 0.9
    model: str = DEFAULT_MODEL
    column: str = "problem"
    numbers_must_match: bool = True
    normalize: bool = True
    k: int = 10
    index: IndexKind = "auto"
    batch_size: int = 64
    keep: KeepRule = "first"
    source_order: tuple[str, ...] = ()
    reference: Reference = None
    backend: Backend | Literal["auto"] = "auto"

    # 2: per-batch embeddings (v1: the whole table in memory)
    # 3: the numbers rule reads `curate.shingles.dedup_text`; details give the cosine
    version: ClassVar[str] = "3"
    batch_rows: ClassVar[int] = 8_192  # a few minutes of MiniLM on 2 CPU cores: the resume unit
    keeps_state: ClassVar[bool] = True  # the loaded model, between batches (Ray: actors)

    def __post_init__(self) -> None:
        # paths and lists are accepted, kept as str and tuples (JSON-able, hashable)
        reference: Any = self.reference
        if isinstance(reference, os.PathLike):
            object.__setattr__(self, "reference", os.fspath(reference))
        elif isinstance(reference, (list, tuple)):
            object.__setattr__(self, "reference", tuple(os.fspath(r) for r in reference))
        object.__setattr__(self, "source_order", tuple(self.source_order))

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["model_key"] = backend_key(self.model, choose_backend(self.backend))
        described["reference_digest"] = reference_digest(self.reference)
        return described

    def _check(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ConfigError(f"threshold={self.threshold}: a cosine must be in [-1, 1]")
        if self.k < 1 or self.batch_size < 1:
            raise ConfigError(f"k={self.k}, batch_size={self.batch_size}: both must be >= 1")
        choose_index(0, self.index)
        choose_backend(self.backend)  # a ConfigError for an unknown backend

    def _texts(self, values: list[str | None]) -> list[str | None]:
        out: list[str | None] = []
        for value in values:
            text = normalize_text(value) if self.normalize and value else value
            out.append(text if text and text.strip() else None)
        return out

    def _unique(self, texts: list[str | None]) -> tuple[list[str], np.ndarray]:
        """Distinct texts in first-seen order, and each row's index among them (-1: none)."""
        position: dict[str, int] = {}
        rows = np.array([-1 if t is None else position.setdefault(t, len(position)) for t in texts])
        return list(position), rows.astype(np.int64)

    def _embed(self, cache: EmbeddingCache, texts: list[str], ctx: StageContext) -> np.ndarray:
        if not texts:  # nothing to encode: do not even load the model
            return np.zeros((0, 1), dtype=np.float32)
        return cache.embed(texts, batch_size=self.batch_size, progress=ctx.progress)

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def arrays(self) -> tuple[str, ...]:
        """The vectors: on disk for the global step (`Stage.arrays`)."""
        return (_VEC,)

    def global_reads(self) -> tuple[str, ...]:
        """The answer (conflicts) and what ``keep`` ranks by: never the texts."""
        extra = {"longest_solution": ("solution",), "source_order": ("source",)}
        return ("answer", *extra.get(self.keep, ()))

    def optional_reads(self) -> tuple[str, ...]:
        return ("answer",)  # documents have none: no answer conflicts

    def adds(self) -> tuple[str, ...]:
        added = ("cluster", "dup_of", "cluster_size", "answer_conflict")
        ref = ("reference_match",) if self.reference is not None else ()
        return tuple(f"semantic_{c}" for c in (*added, *ref))

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Each row's vector (through the run's embedding cache), text key and numbers key.

        Only the texts of this batch that are not in the cache are encoded (a text met in
        an earlier batch is read back, not encoded again); how many were is counted in
        ``ctx.stats`` (summed over the batches for the global step's stats)."""
        self._check()
        if self.column not in batch.columns:
            raise ConfigError(f"column={self.column!r} is not a column; have {batch.columns}")
        texts = self._texts(batch[self.column].cast(pl.String).to_list())
        unique, row_text = self._unique(texts)
        cache = EmbeddingCache(ctx.cache_dir, self.model, backend=self.backend)
        vectors = self._embed(cache, unique, ctx)
        if not unique and len(texts):  # blank texts only: the model's width all the same,
            vectors = cache.embed([])  # as every batch's vectors go in one array
        dim = vectors.shape[1] if vectors.shape[0] or len(texts) else 1
        full = np.zeros((len(texts), dim), dtype=np.float32)
        has = row_text >= 0
        full[has] = vectors[row_text[has]]
        keys = [None if t is None else text_key(t) for t in texts]
        ctx.stats["encoded"] = cache.encoded  # summed over the batches
        numbers = number_keys(texts) if self.numbers_must_match else np.zeros(len(texts), np.uint64)
        return batch.select("id").with_columns(
            pl.Series(_VEC, full, pl.Array(pl.Float32, dim)),
            pl.Series(_KEY, keys, pl.String),
            pl.Series(_NUM, numbers),
        )

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        """Similar pairs among the distinct texts' vectors, then clusters over the rows."""
        self._check()
        if "answer" not in table.columns:
            table = table.with_columns(pl.lit(None, pl.String).alias("answer"))
        key = table[_KEY]
        first = (key.is_first_distinct() & key.is_not_null()).to_numpy()
        first_row = np.flatnonzero(first)  # each distinct text's first row, in row order
        vectors = Vectors(self._vectors(table, ctx), first_row)  # distinct texts
        numbers = table[_NUM].to_numpy()[first_row]
        position = pl.DataFrame({_KEY: key.gather(first_row), "__text": np.arange(first_row.size)})
        row_text = (
            table.select(_KEY)
            .join(position, on=_KEY, how="left", maintain_order="left")["__text"]
            .fill_null(-1)
            .to_numpy()
            .astype(np.int64)
        )
        left, right, _, kind = neighbour_pairs(
            vectors, self.threshold, index=self.index, k=self.k, seed=ctx.seed, map=ctx.map
        )
        agree = numbers[left] == numbers[right] if self.numbers_must_match else left == left
        encoded = int(ctx.stats.get("encoded", 0))
        ctx.stats.update(
            texts=int(first_row.size),
            index=kind,
            pairs=int(agree.sum()),
            refused_numbers=int((~agree).sum()),
        )
        left, right = left[agree], right[agree]
        # distinct-text pairs -> row pairs: every row joins its text's first row
        valid = np.flatnonzero(row_text >= 0)
        row_left = np.concatenate([first_row[left], first_row[row_text[valid]]])
        row_right = np.concatenate([first_row[right], valid])
        frame = table.drop(_KEY, _NUM, *([_VEC] if _VEC in table.columns else []))
        encoded_ref = cached_ref = 0
        if self.reference is not None:
            cache = EmbeddingCache(ctx.cache_dir, self.model, backend=self.backend)
            matches, sims = self._reference_matches(vectors, numbers, row_text, cache, ctx)
            frame = mark_reference(
                self, frame.lazy(), matches, prefix="semantic", sims=sims, measure="cosine"
            ).collect()
            encoded_ref, cached_ref = cache.encoded, cache.cached
        ctx.stats.update(
            encoded=encoded + encoded_ref,
            cached=max(0, int(first_row.size) - encoded) + cached_ref,
        )

        def cosine(rows: np.ndarray, keepers: np.ndarray) -> np.ndarray:
            out = np.zeros(len(rows), np.float32)
            for lo in range(0, len(rows), _GATHER):  # only these rows, a chunk at a time
                a = vectors.take(row_text[rows[lo : lo + _GATHER]])
                b = vectors.take(row_text[keepers[lo : lo + _GATHER]])
                out[lo : lo + _GATHER] = np.einsum("ij,ij->i", a, b)
            return out

        return mark_clusters(
            self,
            frame,
            row_left,
            row_right,
            ctx,
            prefix="semantic",
            keep=self.keep,
            source_order=self.source_order,
            similarity=cosine,
            measure="cosine",
        )

    def _vectors(self, table: pl.DataFrame, ctx: StageContext) -> Stacked:
        """Every row's vector: the `arrays` column the step was given; a table that still
        has the column (a caller of ``global_step`` outside the runner) gives it."""
        if _VEC in ctx.arrays:
            return stacked(ctx.arrays[_VEC])
        if _VEC not in table.columns:
            raise ConfigError(f"stage {self.name}: no {_VEC} array (Stage.arrays) given")
        dim = table.schema[_VEC].shape[0] if table.height else 1  # type: ignore[attr-defined]
        return Stacked((table[_VEC].to_numpy().reshape(table.height, dim),))

    def _reference_matches(
        self,
        vectors: Vectors,
        numbers: np.ndarray,
        row_text: np.ndarray,
        cache: EmbeddingCache,
        ctx: StageContext,
    ) -> tuple[list[str | None], list[float | None]]:
        """For each row, the id of the most similar matching reference row (or None) and
        its cosine."""
        reference = load_reference(self.reference)
        ctx.stats["reference_rows"] = reference.height
        ref_texts = self._texts(reference["problem"].to_list())
        ref_unique, ref_row = self._unique(ref_texts)
        if not len(vectors) or not ref_unique:
            ctx.stats["reference_matches"] = 0
            return [None] * row_text.size, [None] * row_text.size
        first_id: dict[int, str] = {}
        for ref_id, r in zip(reference["id"].to_list(), ref_row.tolist(), strict=True):
            if r >= 0:
                first_id.setdefault(r, ref_id)
        ref_vectors = self._embed(cache, ref_unique, ctx)
        q, b, s, _ = cross_pairs(
            vectors, ref_vectors, self.threshold, index=self.index, k=self.k, seed=ctx.seed
        )
        if self.numbers_must_match and q.size:
            ok = numbers[q] == number_keys(ref_unique)[b]
            q, b, s = q[ok], b[ok], s[ok]
        best: dict[int, tuple[str, float]] = {}
        for i in np.lexsort((b, -s, q)):  # per query: highest similarity, then earliest reference
            best.setdefault(int(q[i]), (first_id[int(b[i])], float(s[i])))
        found = [None if t < 0 else best.get(int(t)) for t in row_text]
        ctx.stats["reference_matches"] = sum(m is not None for m in found)
        return [m and m[0] for m in found], [m and m[1] for m in found]
