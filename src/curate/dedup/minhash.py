"""Near-duplicate detection with MinHash and LSH: the `MinHashDedup` stage.

How it works, all of it vectorized (numpy over batches of texts, Polars for the group-by);
steps 2 to 4 are in `curate.dedup.sketch`:

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
   least ``threshold``, and, with ``numbers="match"``, both texts have the same numbers
   (`curate.shingles.numbers`, the rule `curate.dedup.semantic.SemanticDedup` applies too):
   a problem with its numbers changed is another problem.
5. **Clusters**: connected components of the duplicate pairs, one keeper each
   (`curate.dedup.clusters.mark_clusters`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from curate._progress import progress_bar
from curate.arrays import Stacked, stacked
from curate.dedup.clusters import (
    KeepRule,
    Reference,
    Similarity,
    components,
    load_reference,
    mark_clusters,
    mark_reference,
    reference_digest,
)
from curate.dedup.sketch import (
    BATCH,
    Signatures,
    Sketch,
    Sketches,
    band_keys,
    content_keys,
    exact_overlap,
    find_duplicates,
    optimal_bands,
    pair_similarity,
    signatures,
)
from curate.errors import ConfigError
from curate.stage import Filter, StageContext

# the per-row step's columns for the global step (not kept): signatures and band keys
# stay on disk (`Stage.arrays`), the rest is in memory (17 bytes per row)
_SIG, _NUM, _EMPTY = "_minhash_signature", "_minhash_numbers", "_minhash_empty"
_CONTENT, _BAND = "_minhash_content", "_minhash_band_"

_CHOICES = {
    "shingle": ("word", "char"),
    "verify": ("estimate", "exact"),
    "numbers": ("match", "ignore"),
    "sketch": ("oph", "classic"),
    "keep": ("first", "last", "longest_solution", "has_answer", "source_order"),
}


def exact_jaccard(
    texts: pl.Series, a: np.ndarray, b: np.ndarray, ngram: int, kind: Literal["word", "char"]
) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of ``texts[a[i]]`` and ``texts[b[i]]``.

    >>> t = pl.Series(["Find x if 2x = 6.", "find x if 2x=6", "Find y if 2x = 6."])
    >>> exact_jaccard(t, np.array([0, 0]), np.array([1, 2]), 3, "word").round(2).tolist()
    [1.0, 0.43]
    """
    inter, union = exact_overlap(texts, np.stack((a, b), axis=1), ngram, kind)
    similarity: np.ndarray = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return similarity


@dataclass(frozen=True)
class MinHashDedup(Filter):
    """Reject near-duplicate problems: MinHash signatures, LSH buckets, verified pairs, clusters.

    Two texts are duplicates when the Jaccard similarity of their shingle sets (word
    ``ngram``-grams of `curate.shingles.math_tokens`, or character n-grams with
    ``shingle="char"``) is at least ``threshold`` (estimated from the signatures, or exact
    with ``verify="exact"``) and, with ``numbers="match"``, they have the same numbers
    (`curate.shingles.numbers`). Duplicates form clusters (connected components); one row per
    cluster is kept by ``keep`` (see `curate.dedup.clusters.KeepRule`; ties go to the earliest
    row), the others are rejected with reason ``duplicate`` and a detail naming the keeper and
    their Jaccard similarity (``"<keeper id> (jaccard 0.84)"``: estimated from the signatures,
    exact with ``verify="exact"``; `curate.dedup.clusters.keeper_of` reads the id back). Every
    row gets ``minhash_cluster`` (the keeper's id, null when the row has no duplicate),
    ``minhash_dup_of``, ``minhash_cluster_size`` and ``minhash_answer_conflict`` (the
    cluster's gold answers differ); the manifest counts candidate and verified pairs,
    clusters, duplicates and conflicting clusters. An empty or null text is never a duplicate.
    Texts are compared by their statement (`curate.shingles.dedup_text`: figure code, picture
    file names, answer options, list numbers, wiki links and signatures left out).

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

    version: ClassVar[str] = "2"  # 2: `curate.shingles.dedup_text`; similarity in the detail

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

    def reads(self) -> tuple[str, ...]:
        return (self.column,)

    def global_reads(self) -> tuple[str, ...]:
        """The answer (conflicts), what ``keep`` ranks by, and the text only to verify
        candidate pairs exactly (``verify="exact"``)."""
        extra = {"longest_solution": ("solution",), "source_order": ("source",)}
        texts = (self.column,) if self.verify == "exact" else ()
        return ("answer", *extra.get(self.keep, ()), *texts)

    def optional_reads(self) -> tuple[str, ...]:
        return ("answer",)  # documents have none: no answer conflicts

    def adds(self) -> tuple[str, ...]:
        added = ("cluster", "dup_of", "cluster_size", "answer_conflict")
        ref = ("reference_match",) if self.reference is not None else ()
        return tuple(f"minhash_{c}" for c in (*added, *ref))

    def arrays(self) -> tuple[str, ...]:
        """Signatures (``num_perm`` x 4 bytes per row) and band keys (8 bytes per band):
        on disk, read by the global step's tasks."""
        return (_SIG, *(f"{_BAND}{b}" for b in range(self.lsh_params()[0])))

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Each row's signature, band keys, numbers key, content key and emptiness (for the
        global step)."""
        sig = self._signatures(batch[self.column].cast(pl.String), ctx)
        return batch.select("id").with_columns(self._columns(sig))

    def _columns(self, sig: Signatures) -> list[pl.Series]:
        bands, rows = self.lsh_params()
        keys = band_keys(sig.values, bands, rows)
        return [
            pl.Series(_SIG, sig.values),
            pl.Series(_NUM, sig.numbers),
            pl.Series(_EMPTY, sig.empty),
            pl.Series(_CONTENT, content_keys(sig.values, sig.numbers)),
            *(pl.Series(f"{_BAND}{b}", keys[:, b]) for b in range(bands)),
        ]

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        """LSH buckets, verified pairs and clusters: tasks over the signatures and band keys
        on disk, the compact columns here."""
        if "answer" not in table.columns:
            table = table.with_columns(pl.lit(None, pl.String).alias("answer"))
        n = table.height
        compact = (_NUM, _EMPTY, _CONTENT)
        sketches = Sketches(
            stacked(ctx.arrays[_SIG]),
            [stacked(ctx.arrays[f"{_BAND}{b}"]) for b in range(self.lsh_params()[0])],
            *(table[c].to_numpy() for c in compact),
        )
        texts = table[self.column].cast(pl.String) if self.verify == "exact" else None
        frame = table.drop(*compact)
        ref = load_reference(self.reference) if self.reference is not None else None
        n_ref = 0 if ref is None else ref.height
        if ref is not None:  # reference rows first: their sketches in memory
            cols = self._columns(self._signatures(ref["problem"], ctx))
            mine = pl.DataFrame(cols)
            sketches = Sketches(
                Stacked((mine[_SIG].to_numpy(), *sketches.values.pieces)),
                [
                    Stacked((mine[f"{_BAND}{b}"].to_numpy(), *s.pieces))
                    for b, s in enumerate(sketches.bands)
                ],
                *(
                    np.concatenate((mine[c].to_numpy(), a))
                    for c, a in zip(compact, sketches[2:], strict=True)
                ),
            )
            if texts is not None:
                texts = pl.concat([ref["problem"], texts])
        edges = self._duplicate_pairs(texts, sketches, n_ref, ctx)
        roots = components(n_ref + n, edges[:, 0], edges[:, 1], map=ctx.map)[n_ref:]
        similarity = self._similarity(sketches.values, texts)
        if ref is not None:
            ref_ids = ref["id"].to_list()
            matches = [ref_ids[r] if r < n_ref else None for r in roots.tolist()]
            matched = np.flatnonzero(roots < n_ref)
            sims: list[float | None] = [None] * n
            for i, s in zip(matched, similarity(matched + n_ref, roots[matched]), strict=True):
                sims[int(i)] = float(s)
            frame = mark_reference(
                self, frame.lazy(), matches, prefix="minhash", sims=sims, measure="jaccard"
            ).collect()
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
            similarity=lambda rows, keepers: similarity(rows + n_ref, keepers + n_ref),
            measure="jaccard",
        )

    def _similarity(self, values: Stacked, texts: pl.Series | None) -> Similarity:
        """Jaccard similarity of pairs of positions (reference rows first): estimated from
        the signatures, or exact with ``verify="exact"``; for the reject details."""

        def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            if texts is not None:
                return exact_jaccard(texts, a, b, self.ngram, self.shingle)
            return pair_similarity(values, a, b)

        return similarity

    def _signatures(self, texts: pl.Series, ctx: StageContext) -> Signatures:
        # a bar only for long inputs: below 20 batches (160K texts) this takes a few seconds
        total, name = len(texts), ctx.stage_name
        bar = progress_bar(total, name, enabled=ctx.progress, unit="texts", min_total=20 * BATCH)
        with bar:
            return signatures(
                texts,
                num_perm=self.num_perm,
                ngram=self.ngram,
                shingle=self.shingle,
                seed=self.seed,
                sketch=self.sketch,
                workers=ctx.workers,
                progress=bar.update,
            )

    def _duplicate_pairs(
        self, texts: pl.Series | None, sketches: Sketches, n_ref: int, ctx: StageContext
    ) -> np.ndarray:
        """Verified duplicate pairs of positions in ``texts`` (reference rows first)."""
        bands, rows = self.lsh_params()
        pairs, counts = find_duplicates(
            texts,
            sketches,
            threshold=self.threshold,
            n_ref=n_ref,
            verify=self.verify,
            numbers=self.numbers,
            ngram=self.ngram,
            shingle=self.shingle,
            map=ctx.map,  # the bands' buckets and the verification: tasks on the run's engine
        )
        ctx.stats.update(bands=bands, rows=rows, **counts)
        return pairs
