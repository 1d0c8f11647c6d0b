"""Speed and quality of the embedding backends of `curate.embed` on CPU.

Backends: ``torch`` (sentence-transformers, float32: the reference), ``onnx``
(the same model exported to ONNX with fused attention, run by onnxruntime) and
``onnx-int8`` (its matrix products quantised to int8 per channel). For each:

``convert``  seconds to make the converted model on first use (in a fresh folder).
``speed``    texts/s encoding N real MATH train problems with an empty cache
             (`EmbeddingCache.embed`, batch 64, every core), timed on slices of the
             texts with the backends interleaved (the order alternating from slice to
             slice) and the median taken: the cores are shared with other processes.
``vectors``  against torch float32 on the same texts: 1 - cos(v, v_torch) per text;
             |cos difference| over all pairs and over the near pairs (torch cosine
             >= 0.8); pairs at cosine >= 0.9 found by `neighbour_pairs` in both.
``pairs``    precision and recall of `SemanticDedup` (cross-dataset mode) on the
             labelled pairs of benchmarks/bench_semantic.py's quality part, the
             stage's vectors made by each backend.

Run from the repository root (reads /work/shared/data; falls back to data/demo)::

    HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_embed_speed.py
    ... bench_embed_speed.py --n 1000 --slice 200 --backends torch,onnx

It prints a Markdown report (paste it into benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_semantic import GSM, MATH, _ctx, _lines, _machine, _rows  # noqa: E402


def speed(texts: list[str], backends: list[str], work: Path, slice_: int) -> dict[str, Any]:
    from curate.embed import EmbeddingCache, onnx_model

    out: dict[str, Any] = {"convert_s": {}, "rates": {b: [] for b in backends}}
    for b in backends:
        if b != "torch":
            started = time.perf_counter()
            onnx_model(backend=b, root=work / "models")  # type: ignore[arg-type]
            out["convert_s"][b] = time.perf_counter() - started
        warm = EmbeddingCache(work, backend=b, models_dir=work / "models")  # type: ignore[arg-type]
        warm.embed(texts[-64:])
    for i, start in enumerate(range(0, len(texts) - 64, slice_)):
        part = texts[start : min(start + slice_, len(texts) - 64)]
        for b in backends if i % 2 == 0 else backends[::-1]:
            cache = EmbeddingCache(None, backend=b, models_dir=work / "models")  # type: ignore[arg-type]
            started = time.perf_counter()
            cache.embed(part)
            out["rates"][b].append(len(part) / (time.perf_counter() - started))
        print({b: f"{r[-1]:.1f}" for b, r in out["rates"].items()}, file=sys.stderr, flush=True)
    out["median"] = {b: statistics.median(r) for b, r in out["rates"].items()}
    return out


def vectors(texts: list[str], backends: list[str], work: Path) -> dict[str, Any]:
    from curate.dedup.semantic import neighbour_pairs
    from curate.embed import EmbeddingCache

    ref = EmbeddingCache(work, backend="torch").embed(texts)
    upper = np.triu_indices(len(texts), 1)
    s_ref = (ref @ ref.T)[upper]
    near = s_ref >= 0.8
    left, right, _, _ = neighbour_pairs(ref, 0.9)
    pairs_ref = set(zip(left.tolist(), right.tolist(), strict=True))
    out: dict[str, Any] = {"near_pairs": int(near.sum())}
    for b in backends:
        v = EmbeddingCache(work, backend=b, models_dir=work / "models").embed(texts)  # type: ignore[arg-type]
        gap = 1 - (v * ref).sum(axis=1)
        diff = np.abs((v @ v.T)[upper] - s_ref)
        left, right, _, _ = neighbour_pairs(v, 0.9)
        pairs = set(zip(left.tolist(), right.tolist(), strict=True))
        out[b] = {
            "gap_mean": float(gap.mean()), "gap_max": float(gap.max()),
            "diff_mean": float(diff.mean()), "diff_max": float(diff.max()),
            "near_mean": float(diff[near].mean()) if near.any() else 0.0,
            "near_max": float(diff[near].max()) if near.any() else 0.0,
            "pairs_ref": len(pairs_ref), "pairs": len(pairs), "both": len(pairs & pairs_ref),
        }  # fmt: skip
    return out


def labelled(backends: list[str], work: Path, base_n: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_semantic_dedup import labelled_pool, precision_recall

    import curate.dedup.semantic as semantic
    from curate.embed import EmbeddingCache
    from curate.run import apply_stage

    math = _lines(MATH, ROOT / "data/demo/math_train.jsonl", "problem")[1500:]
    gsm = _lines(GSM, ROOT / "data/demo/gsm8k_train.jsonl", "question")[1000:]
    rng = random.Random(1)
    picked = rng.sample(math, base_n) + rng.sample(gsm, base_n // 4)
    n_base = len(picked) * 2 // 3
    base, unrelated = picked[:n_base], picked[n_base:]
    pool = labelled_pool(base, unrelated)
    reference = work / "originals.parquet"
    frame = pl.DataFrame({"id": [f"orig{i}" for i in range(len(base))], "problem": base})
    frame.write_parquet(reference)
    rows = _rows(pool["problem"].to_list(), "variants")
    out: dict[str, Any] = {"variants": pool.height, "positives": int(pool["positive"].sum())}
    for b in backends:
        semantic.EmbeddingCache = functools.partial(
            EmbeddingCache, backend=b, models_dir=work / "models"
        )  # type: ignore[misc]
        for threshold in (0.85, 0.9, 0.95):
            stage = semantic.SemanticDedup(threshold=threshold, reference=str(reference))
            kept, rejects = apply_stage(stage, rows, _ctx(work / "q"))
            both = pl.concat([kept, rejects.drop("stage", "reason", "detail")], how="diagonal")
            matched = rows.join(both, on="id", how="left")["semantic_reference_match"].to_list()
            out[f"{b}@{threshold}"] = precision_recall(pool, matched)
    semantic.EmbeddingCache = EmbeddingCache  # type: ignore[misc]
    return out


def report(r: dict[str, Any], args: argparse.Namespace) -> str:
    m, s, v, q = _machine(), r["speed"], r["vectors"], r["labelled"]
    base = s["median"].get("torch", 1.0)
    lines = [
        "## Embedding backends on CPU (`benchmarks/bench_embed_speed.py`)",
        "",
        f"`HF_HUB_OFFLINE=1 PYTHONPATH=src .venv/bin/python benchmarks/bench_embed_speed.py "
        f"--n {args.n} --slice {args.slice}`",
        "",
        f"Machine: {m['nproc']} cores (`nproc`), {m['cpu']}, {m['date']}, load average "
        f"{r['load_start']} at the start and {m['load']} at the end (shared cores: the "
        "backends were timed interleaved on the same slices; medians).",
        "",
        f"{args.n:,} MATH train problems, all-MiniLM-L6-v2, batch 64, empty cache:",
        "",
        "| backend | texts/s (median) | vs torch | slices | first-use conversion s |",
        "|---|---:|---:|---|---:|",
        *[
            f"| {b} | {s['median'][b]:.1f} | {s['median'][b] / base:.2f}x | "
            f"{', '.join(f'{x:.0f}' for x in s['rates'][b])} | "
            f"{s['convert_s'].get(b, 0):.0f} |"
            for b in s["median"]
        ],
        "",
        f"Vectors against torch float32 on the same texts ({v['near_pairs']:,} near pairs, "
        "torch cosine >= 0.8):",
        "",
        "| backend | 1-cos(v, torch) mean / max | pair |dcos| mean / max | near pairs |dcos| "
        "mean / max | pairs >= 0.9: torch / backend / both |",
        "|---|---|---|---|---|",
        *[
            f"| {b} | {x['gap_mean']:.1e} / {x['gap_max']:.1e} | {x['diff_mean']:.4f} / "
            f"{x['diff_max']:.4f} | {x['near_mean']:.4f} / {x['near_max']:.4f} | "
            f"{x['pairs_ref']} / {x['pairs']} / {x['both']} |"
            for b, x in v.items()
            if isinstance(x, dict)
        ],
        "",
        f"`SemanticDedup` (numbers must match, cross-dataset) on {q['variants']} labelled "
        f"variants ({q['positives']} duplicates), precision / recall:",
        "",
        "| backend | 0.85 | 0.9 | 0.95 |",
        "|---|---|---|---|",
        *[
            f"| {b} | "
            + " | ".join(
                f"{q[f'{b}@{t}'][0]:.3f} / {q[f'{b}@{t}'][1]:.3f}" for t in (0.85, 0.9, 0.95)
            )
            + " |"
            for b in args.backends
        ],
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1200, help="texts to encode")
    parser.add_argument("--slice", type=int, default=200, help="texts per interleaved slice")
    parser.add_argument("--base", type=int, default=240, help="MATH problems for labelled pairs")
    parser.add_argument("--backends", default="torch,onnx,onnx-int8")
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    math = _lines(MATH, ROOT / "data/demo/math_train.jsonl", "problem")
    texts = random.Random(0).sample(math, min(args.n + 64, len(math)))
    r: dict[str, Any] = {"load_start": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as tmp:
        work = Path(tmp)
        r["speed"] = speed(texts, args.backends, work, args.slice)
        r["vectors"] = vectors(texts[: args.n], args.backends, work)
        r["labelled"] = labelled(args.backends, work, args.base)
    print(json.dumps(r), file=sys.stderr)
    print(report(r, args))


if __name__ == "__main__":
    main()
