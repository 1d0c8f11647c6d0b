"""MinHashDedup's LSH bands as tasks (`curate.stage.StageContext.map`): the candidate
pairs of a pool computed band after band here, and as Ray tasks on a local cluster.

Data: bench_minhash.py's pool (the problems of MATH train, DAPO-17k, GSM8K train and
rllm's AIME, then perturbed copies up to each size). Signatures are computed once per
size (not timed); then `find_duplicates` runs here and with `RayEngine.map_tasks`, and
the pairs are compared.

    .venv/bin/python benchmarks/bench_lsh_tasks.py --sizes 250000 1000000 [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_minhash import build  # noqa: E402

from curate.dedup.minhash import MinHashDedup  # noqa: E402
from curate.dedup.sketch import Sketches, find_duplicates, signatures  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    from curate.engines import RayEngine

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    engine = RayEngine()
    bands, rows = MinHashDedup().lsh_params()
    print(f"| texts | bands here s | bands on Ray ({args.cpus} CPUs) s | same pairs | pairs |")
    print("|---:|---:|---:|---|---:|")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pool.parquet"
            build(args.data, size, path)
            texts = pl.read_parquet(path)["problem"]
        sketches = Sketches.of(signatures(texts, num_perm=128), bands, rows)
        t = time.perf_counter()
        here, _ = find_duplicates(None, sketches, threshold=0.7)
        t_here = time.perf_counter() - t
        t = time.perf_counter()
        there, _ = find_duplicates(None, sketches, threshold=0.7, map=engine.map_tasks)
        t_ray = time.perf_counter() - t
        same = np.array_equal(here, there)
        print(f"| {size:,} | {t_here:.1f} | {t_ray:.1f} | {same} | {len(here):,} |", flush=True)


if __name__ == "__main__":
    main()
