"""Speed and quality of `curate.SemanticDedup` (MiniLM embeddings + faiss) on CPU.

Three parts, each in its own process (so each reports its own peak memory):

``encode``   N real MATH problems: sentence-transformers alone (``model.encode`` of
             the texts, one call, which sorts by length itself) against
             ``SemanticDedup`` end to end on the same texts with an empty cache
             (normalize, hash, encode, search, cluster), then again at another
             threshold (everything cached). Also the effect of length sorting
             (one call vs. one call per batch in file order), and the rows the
             stage flags among real, distinct MATH problems.
``index``    all-pairs search at cosine >= 0.9 with flat (exact), IVF and HNSW at
             10K and 100K vectors: time, pairs, recall against flat. The vectors
             are the ``encode`` part's real embeddings resampled with Gaussian
             noise (so there are more of them than encoded texts; see `_resample`).
``quality``  precision and recall on labelled pairs built from real problems by
             the generators of tests/test_semantic_dedup.py (rewordings, LaTeX,
             clause order, formatting vs. changed numbers and unrelated problems),
             at several thresholds, with and without ``numbers_must_match``.

Run from the repository root (reads /work/shared/data; falls back to data/demo)::

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_semantic.py
    ... bench_semantic.py --n 2000 --sizes 10000 --parts encode,index

It prints a Markdown report (paste it into benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path("/work/shared/data")
MATH = SHARED / "hendrycks_math" / "train.jsonl"
GSM = SHARED / "grade_school_math" / "train.jsonl"


def _lines(path: Path, fallback: Path, field: str) -> list[str]:
    path = path if path.exists() else fallback
    return [json.loads(x)[field] for x in path.open()]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ctx(cache: Path) -> Any:
    from curate.stage import StageContext

    return StageContext(run_dir=cache, cache_dir=cache, stage_name="semantic_dedup")


def _rows(texts: list[str], source: str = "bench") -> pl.DataFrame:
    sys.path.insert(0, str(ROOT / "tests"))
    from _factories import problems_frame

    return problems_frame([(t, None) for t in texts], source=source)


def part_encode(args: argparse.Namespace) -> dict[str, Any]:
    from curate.dedup.semantic import SemanticDedup
    from curate.embed import load_model
    from curate.run import apply_stage

    math = _lines(MATH, ROOT / "data/demo/math_train.jsonl", "problem")
    texts = random.Random(0).sample(math, min(args.n, len(math)))
    out: dict[str, Any] = {"n": len(texts), "mean_chars": float(np.mean([len(t) for t in texts]))}
    started = time.perf_counter()
    model = load_model(device="cpu")
    out["load_s"] = time.perf_counter() - started
    model.encode(math[-128:], batch_size=64)  # warm-up on other texts

    rows = _rows(texts)
    cache = Path(args.work) / "cache"
    raw, cold = [], []
    # alternate the two on slices of the texts: other processes share the cores, and
    # alternating spreads their load evenly over both measurements
    for start in range(0, len(texts), args.slice):
        part = texts[start : start + args.slice]
        started = time.perf_counter()
        model.encode(part, batch_size=64, normalize_embeddings=True)
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        apply_stage(SemanticDedup(), rows.slice(start, args.slice), _ctx(cache))
        cold.append(time.perf_counter() - started)
        print(f"encode: raw {raw[-1]:.1f} s, end to end {cold[-1]:.1f} s", file=sys.stderr)
    out.update(raw_s=sum(raw), cold_s=sum(cold), raw_all=raw, cold_all=cold)
    stats = {}
    for name, stage in [
        ("all", SemanticDedup()),
        ("warm_095", SemanticDedup(threshold=0.95)),
        ("warm_no_numbers", SemanticDedup(numbers_must_match=False)),
    ]:
        ctx = _ctx(cache)
        started = time.perf_counter()
        _, rejects = apply_stage(stage, rows, ctx)
        out[f"{name}_s"] = time.perf_counter() - started
        stats[name] = ctx.stats
        if name == "all":
            problems = dict(zip(rows["id"], rows["problem"], strict=True))
            out["flagged_examples"] = [
                (problems[d][:90], p[:90]) for p, d in rejects.select("problem", "detail").rows()
            ][:6]
    out["stats"] = stats

    sample = texts[: args.sort_sample]  # length sorting: one call vs. batches in file order
    started = time.perf_counter()
    model.encode(sample, batch_size=64)
    out["sorted_s"] = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, len(sample), 64):
        model.encode(sample[i : i + 64], batch_size=64)
    out["unsorted_s"] = time.perf_counter() - started
    out["peak_mib"] = _peak_mib()
    return out


def _resample(base: np.ndarray, n: int, sigma: float, near: float, seed: int = 0) -> np.ndarray:
    """``n`` vectors: random real embeddings plus N(0, s^2) noise per dimension, renormalised.

    ``s`` is ``sigma`` except for a share ``near`` of the vectors, which get ``s = 0.006``.
    Two copies of one embedding end at cosine about 1 / (1 + 2 d s^2) of each other
    (d = 384: 0.97 for s = 0.006, 0.90 for 0.012, 0.59 for 0.03).
    """
    rng = np.random.default_rng(seed)
    v = base[rng.integers(0, base.shape[0], n)]
    s = np.where(rng.random(n) < near, 0.006, sigma).astype(np.float32)[:, None]
    v = v + s * rng.standard_normal(v.shape).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def part_index(args: argparse.Namespace) -> dict[str, Any]:
    from curate.dedup.clusters import components
    from curate.dedup.semantic import neighbour_pairs

    folder = next((Path(args.work) / "cache" / "embeddings").iterdir())
    base = pl.read_parquet(folder / "part-*.parquet")["vector"].to_numpy()
    out: dict[str, Any] = {"real_vectors": base.shape[0], "dim": base.shape[1], "runs": []}
    for n in args.sizes:
        for label, sigma, near in (("sparse", 0.03, 0.1), ("dense", 0.012, 0.0)):
            vectors = _resample(base, n, sigma, near)
            flat: set[tuple[int, int]] = set()
            for kind in ("flat", "ivf", "hnsw"):
                started = time.perf_counter()
                left, right, _, used = neighbour_pairs(vectors, 0.9, index=kind)  # type: ignore[arg-type]
                seconds = time.perf_counter() - started
                pairs = set(zip(left.tolist(), right.tolist(), strict=True))
                if kind == "flat":
                    flat = pairs
                recall = len(pairs & flat) / max(len(flat), 1)
                removed = n - len(set(components(n, left, right).tolist()))
                out["runs"].append(
                    {"n": n, "dup": label, "index": used, "seconds": seconds,
                     "pairs": len(pairs), "recall": recall, "extra": len(pairs - flat),
                     "removed": removed}
                )  # fmt: skip
                print(out["runs"][-1], file=sys.stderr, flush=True)
    out["peak_mib"] = _peak_mib()
    return out


def part_quality(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_semantic_dedup import labelled_pool, precision_recall

    from curate.dedup.semantic import SemanticDedup
    from curate.run import apply_stage

    math = _lines(MATH, ROOT / "data/demo/math_train.jsonl", "problem")[1500:]  # not the demo
    gsm = _lines(GSM, ROOT / "data/demo/gsm8k_train.jsonl", "question")[1000:]
    rng = random.Random(1)
    picked = rng.sample(math, args.base) + rng.sample(gsm, args.base // 4)
    n_base = len(picked) * 2 // 3
    base, unrelated = picked[:n_base], picked[n_base:]
    pool = labelled_pool(base, unrelated)
    reference = Path(args.work) / "originals.parquet"
    pl.DataFrame({"id": [f"orig{i}" for i in range(len(base))], "problem": base}).write_parquet(
        reference
    )
    rows = _rows(pool["problem"].to_list(), "variants")
    out: dict[str, Any] = {"pool": pool.group_by("kind").len().sort("kind").rows(), "runs": []}
    for threshold in (0.85, 0.9, 0.95):
        for numbers in (True, False):
            stage = SemanticDedup(
                threshold=threshold, numbers_must_match=numbers, reference=str(reference)
            )
            kept, rejects = apply_stage(stage, rows, _ctx(Path(args.work) / "qcache"))
            both = pl.concat([kept, rejects.drop("stage", "reason", "detail")], how="diagonal")
            matched = rows.join(both, on="id", how="left")["semantic_reference_match"].to_list()
            precision, recall = precision_recall(pool, matched)
            hit = pool.with_columns(m=pl.Series(matched).is_not_null())
            rates = dict(hit.group_by("kind").agg(pl.col("m").mean()).rows())
            out["runs"].append(
                {"threshold": threshold, "numbers_must_match": numbers,
                 "precision": precision, "recall": recall, "match_rate": rates}
            )  # fmt: skip
    out["peak_mib"] = _peak_mib()
    return out


PARTS = {"encode": part_encode, "index": part_index, "quality": part_quality}


def _machine() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")),
        platform.processor(),
    )
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = _machine()
    lines = [
        "## Semantic dedup (`benchmarks/bench_semantic.py`)",
        "",
        f"`HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_semantic.py "
        f"--n {args.n} --sizes {','.join(map(str, args.sizes))} --base {args.base}`",
        "",
        f"Machine: {m['nproc']} cores (`nproc`), {m['cpu']}, {m['date']}, load average "
        f"{m['load']} at the end (the cores are shared: times are upper bounds).",
        "",
    ]
    if "encode" in results:
        e = results["encode"]
        raw, cold = e["raw_s"], e["cold_s"]
        lines += [
            f"**Encoding** {e['n']:,} MATH train problems (mean {e['mean_chars']:.0f} chars), "
            f"all-MiniLM-L6-v2, batch 64, CPU (model load {e['load_s']:.1f} s, not counted):",
            "",
            "| | seconds | docs/s |",
            "|---|---:|---:|",
            f"| sentence-transformers `encode` alone | {raw:.1f} | {e['n'] / raw:.1f} |",
            f"| `SemanticDedup()` end to end, empty cache | {cold:.1f} | {e['n'] / cold:.1f} |",
            f"| again at threshold 0.95 (all cached) | {e['warm_095_s']:.2f} | "
            f"{e['n'] / e['warm_095_s']:,.0f} |",
            "",
            f"End to end / encode alone: **{cold / raw:.2f}x**, measured alternately on slices "
            f"of {args.slice} texts (encode {', '.join(f'{x:.1f}' for x in e['raw_all'])} s; "
            f"end to end {', '.join(f'{x:.1f}' for x in e['cold_all'])} s). "
            f"Length sorting: one `encode` call (sorted by length inside) {e['sorted_s']:.1f} s "
            f"vs. one call per batch of 64 in file order {e['unsorted_s']:.1f} s on "
            f"{args.sort_sample} texts. Peak RSS {e['peak_mib']:.0f} MiB.",
            "",
            "Stage stats (all texts): `" + json.dumps(e["stats"]["all"]) + "`; without the numbers "
            f"rule {e['stats']['warm_no_numbers']['duplicates']} rows would be flagged. The "
            "texts are distinct MATH problems, so flagged rows are near-variants "
            "(same setup, another question), e.g.:",
            "",
            *[f"- `{a}` ~ `{b}`" for a, b in e["flagged_examples"]],
            "",
        ]
    if "index" in results:
        x = results["index"]
        lines += [
            f"**Search** (cosine >= 0.9, all pairs) over {x['real_vectors']:,} real MiniLM "
            "embeddings resampled with Gaussian noise to n vectors (`_resample`: *sparse*: 10% "
            "of the vectors are near copies, cosine ~0.97 to each other, the rest noisy enough "
            "to have no pair; *dense*: every copy at cosine ~0.90 to the other copies of its "
            "source, a worst case with many pairs right at the threshold). ivf: 4 sqrt(n) "
            "lists, nprobe 16, range search; hnsw: M 32, efConstruction 80, efSearch 64, "
            "k=10 nearest. Build + search seconds; rows removed = n - connected components "
            f"(what the stage would reject); peak RSS {x['peak_mib']:.0f} MiB:",
            "",
            "| n | duplicates | index | seconds | pairs | pair recall vs flat | rows removed |",
            "|---:|---|---|---:|---:|---:|---:|",
            *[
                f"| {r['n']:,} | {r['dup']} | {r['index']} | {r['seconds']:.1f} | "
                f"{r['pairs']:,} | {r['recall']:.4f} | {r['removed']:,} |"
                for r in x["runs"]
            ],
            "",
        ]
    if "quality" in results:
        q = results["quality"]
        lines += [
            "**Quality** on labelled pairs from real MATH/GSM8K train problems (not the demo "
            "subset) made by the generators in tests/test_semantic_dedup.py; the originals are "
            "the reference corpus, every variant is matched against them (cross-dataset mode, "
            f"the same pair rule as within a pool). Variants: {dict(q['pool'])}. Peak RSS "
            f"{q['peak_mib']:.0f} MiB.",
            "",
            "| threshold | numbers_must_match | precision | recall | one_number | all_numbers |",
            "|---:|---|---:|---:|---:|---:|",
            *[
                f"| {r['threshold']} | {r['numbers_must_match']} | {r['precision']:.3f} | "
                f"{r['recall']:.3f} | {r['match_rate'].get('one_number', 0):.2f} | "
                f"{r['match_rate'].get('all_numbers', 0):.2f} |"
                for r in q["runs"]
            ],
            "",
            "(one_number / all_numbers: share of changed-number variants called duplicates.)",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="texts to encode")
    parser.add_argument("--sizes", default="10000,100000", help="index sizes, comma-separated")
    parser.add_argument("--base", type=int, default=240, help="MATH problems for quality pairs")
    parser.add_argument("--sort-sample", type=int, default=512)
    parser.add_argument("--slice", type=int, default=500, help="texts per alternated slice")
    parser.add_argument("--parts", default="encode,index,quality")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.part:  # a child: one part, JSON on stdout
        print(json.dumps(PARTS[args.part](args)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-semantic-") as work:
        for part in args.parts.split(","):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--part", part, "--work", work]
            done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            results[part] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{part}: done", file=sys.stderr, flush=True)
    print(report(results, args))


if __name__ == "__main__":
    main()
