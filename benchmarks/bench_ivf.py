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

Peak memory of SemanticDedup's global step (the vectors a `Stage.arrays` file on disk,
not a table column), no model run: random unit vectors (384 wide, every tenth a near copy
of the one before, the last 5% of rows repeat earlier texts) fed straight to the step,
in a fresh process each, with the code under ``src/`` or another checkout's ``src``:

    python benchmarks/bench_ivf.py --rss 200000 [--src /tmp/before/src] [--train-per-list 64]

It prints the process RSS when the step starts (its inputs loaded: for code that reads
the vectors from the table, the table holds them) and the peak during the step (VmHWM,
reset at the start), in MB, the step's seconds, and a digest of its output.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
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


def _status_mb(key: str) -> float:
    found = re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(found.group(1)) / 1024 if found else float("nan")


def step_inputs(folder: Path, n: int, dim: int = 384, seed: int = 0) -> None:
    """``vectors.npy`` (row order) and ``table.parquet`` (the step's compact columns)."""
    from curate.dedup.semantic import _KEY, _NUM

    rng = np.random.default_rng(seed)
    texts = n - n // 20  # the last 5% of rows repeat earlier texts (same key, same vector)
    v = rng.normal(size=(texts, dim)).astype(np.float32)
    near = v[0::10][: v[1::10].shape[0]]
    v[1::10] = near + 0.05 * rng.normal(size=near.shape).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    again = rng.integers(0, texts, n - texts)
    np.save(folder / "vectors.npy", np.concatenate([v, v[again]]))
    keys = np.concatenate([np.arange(texts), again])
    pl.DataFrame(
        {
            "id": [f"r{i:07d}" for i in range(n)],
            "answer": ["1"] * n,
            _KEY: [f"t{k}" for k in keys],
            _NUM: np.zeros(n, np.uint64),
        }
    ).write_parquet(folder / "table.parquet")


def step_child(folder: Path, train_per_list: int | None) -> None:
    """One global step in this process; prints a JSON line of its memory and output."""
    import curate.dedup.semantic as semantic
    from curate.stage import StageContext

    if train_per_list is not None:
        import curate.dedup.ivf as ivf

        ivf.TRAIN_PER_LIST = train_per_list
        defaults = ivf.partitioned_pairs.__kwdefaults__
        assert defaults is not None
        defaults["train_per_list"] = train_per_list
    stage = semantic.SemanticDedup(threshold=0.9)
    table = pl.read_parquet(folder / "table.parquet")
    ctx = StageContext.temporary(stage.name)
    path = str(folder / "vectors.npy")
    if semantic.SemanticDedup.arrays is semantic.Filter.arrays:  # code that reads a column
        vectors = np.load(path)
        table = table.with_columns(pl.Series("_semantic_vector", vectors))
        del vectors
    else:
        ctx.arrays = {"_semantic_vector": path}
    stage._check()  # imports torch (to look for a GPU): not the step's memory
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    start = _status_mb("VmRSS")
    t = time.perf_counter()
    out = stage.global_step(table, ctx).collect()
    seconds = time.perf_counter() - t
    peak = _status_mb("VmHWM")
    rows = out.hash_rows().to_numpy().tobytes()  # the content (IPC bytes vary with buffers)
    digest = hashlib.blake2b(rows, digest_size=8).hexdigest()
    stats = {k: ctx.stats[k] for k in ("texts", "index", "pairs", "clusters") if k in ctx.stats}
    print(json.dumps({"start_mb": start, "peak_mb": peak, "s": seconds, "out": digest, **stats}))


def rss(n: int, src: Path, train_per_list: int | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ivf-") as tmp:
        folder = Path(tmp)
        step_inputs(folder, n)
        command = [sys.executable, __file__, "--step-child", str(folder)]
        if train_per_list is not None:
            command += ["--train-per-list", str(train_per_list)]
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(done.stderr[-4000:])
        print(f"n={n:,} src={src}: {done.stdout.strip()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--ray", action="store_true", help="also run the tasks on Ray")
    parser.add_argument("--rss", type=int, help="peak RSS of the semantic step at this size")
    parser.add_argument("--src", type=Path, default=Path(__file__).parents[1] / "src")
    parser.add_argument("--train-per-list", type=int, help="IVF training rows per list")
    parser.add_argument("--step-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_child is not None:
        return step_child(args.step_child, args.train_per_list)
    if args.rss is not None:
        return rss(args.rss, args.src, args.train_per_list)
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
