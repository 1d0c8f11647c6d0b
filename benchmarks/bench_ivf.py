"""SemanticDedup's similarity search by IVF partition (`curate.dedup.ivf`): the same pairs
as faiss' own IVF range search, its cost here and as Ray tasks.

Vectors: real MiniLM embeddings of the bundled demo pool (the embedding cache of
``make demo``'s run, ``runs/demo``), resampled to N with noise around each (cosine ~0.85
to its parent) and a planted near copy (cosine ~0.97) for every tenth vector, so the
search meets the topic structure of real problems at a size the CPU can afford.

    python benchmarks/bench_ivf.py --sizes 100000 200000 [--ray] [--run runs/demo]

Prints one row per size: seconds for faiss' IVF index (build, add, range search),
for the partitioned search run in this process and on a local Ray cluster, whether the
pairs are identical, and the recall of the planted copies.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl

from curate.dedup.ivf import faiss_module, nlist_for, partitioned_pairs


def real_vectors(run: Path) -> np.ndarray:
    parts = sorted(run.glob("cache/embeddings/*/part-*.parquet"))
    if not parts:
        raise SystemExit(f"no embeddings under {run}/cache/embeddings: run `make demo` first")
    frame = pl.read_parquet(parts).unique("key", keep="first", maintain_order=True)
    return frame["vector"].to_numpy().astype(np.float32)


def resampled(real: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    dim = real.shape[1]
    v = real[rng.integers(0, real.shape[0], n)] + 0.035 * rng.normal(size=(n, dim))
    copies = v[0::10][: v[1::10].shape[0]]
    v[1::10] = copies + 0.012 * rng.normal(size=copies.shape)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32), v[1::10].shape[0]


def faiss_ivf(v: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    faiss = faiss_module()
    n, dim = v.shape
    nlist = nlist_for(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.train(v)
    index.add(v)
    index.nprobe = min(nlist, 16)
    lims, s, b = index.range_search(v, threshold - 1e-6)
    q = np.repeat(np.arange(n), np.diff(lims).astype(np.int64))
    keep = (s >= threshold) & (q != b)
    lo, hi = np.minimum(q[keep], b[keep]), np.maximum(q[keep], b[keep])
    return set(zip(lo.tolist(), hi.tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--ray", action="store_true", help="also run the tasks on Ray")
    args = parser.parse_args()
    real = real_vectors(args.run)
    engine = None
    if args.ray:
        import ray

        from curate.engines import RayEngine

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        engine = RayEngine()
    print(f"{len(real)} real vectors from {args.run}")
    print("| n | faiss IVF s | partitioned s | on Ray s | same pairs | planted recall |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        v, planted = resampled(real, n)
        t = time.perf_counter()
        reference = faiss_ivf(v, args.threshold)
        t_faiss = time.perf_counter() - t
        t = time.perf_counter()
        left, right, _ = partitioned_pairs(v, args.threshold)
        t_part = time.perf_counter() - t
        found = set(zip(left.tolist(), right.tolist(), strict=True))
        t_ray = float("nan")
        if engine is not None:
            t = time.perf_counter()
            rl, rr, _ = partitioned_pairs(v, args.threshold, map=engine.map_tasks)
            t_ray = time.perf_counter() - t
            assert np.array_equal(rl, left) and np.array_equal(rr, right)
        hits = sum((i - 1, i) in found for i in range(1, n, 10))
        print(
            f"| {n:,} | {t_faiss:.1f} | {t_part:.1f} | {t_ray:.1f} | {found == reference} "
            f"| {hits / planted:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
