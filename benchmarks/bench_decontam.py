"""Decontamination benchmark: speed, recall/precision, and overlap of real pools.

    python benchmarks/bench_decontam.py                  # everything, Markdown on stdout
    python benchmarks/bench_decontam.py --part speed     # or: quality, pools
    python benchmarks/bench_decontam.py --shared ../shared/data

speed    problems/s of the n-gram rule (tokenize + index lookup + evidence) and of the
         whole stage (plus gold-answer comparison and the contamination column), against
         all bundled benchmarks, the index built once; index build time and memory.
         Pool: MATH train + GSM8K train + AIME 1983-2023 + DAPO-Math-17k from the shared
         data (33,865 rows), or the demo pool repeated to that size.
quality  recall of benchmark items inserted into the demo pool under realistic edits
         (tests/test_decontam_quality.py), with and without their gold answers;
         rows flagged in the demo pools.
pools    which benchmarks the real pools overlap, and how much (default rule, and with
         answer_aware=False).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import curate  # noqa: E402
from curate.decontam import Decontaminate, bundled, load_benchmark  # noqa: E402
from curate.decontam import hits as H  # noqa: E402
from curate.decontam import stage as S  # noqa: E402
from curate.decontam.ngram import tokenize_many  # noqa: E402
from curate.decontam.registry import resolve  # noqa: E402


def ctx() -> curate.StageContext:
    tmp = Path(tempfile.mkdtemp())
    return curate.StageContext(run_dir=tmp, cache_dir=tmp / "cache", stage_name="decontaminate")


def shared_pools(shared: Path) -> dict[str, pl.DataFrame]:
    return {
        "MATH train": curate.read(shared / "hendrycks_math/train.jsonl", source="math").frame(),
        "GSM8K train": curate.read(
            shared / "grade_school_math/train.jsonl",
            source="gsm8k",
            problem="question",
            solution="answer",
        ).frame(),
        "AIME 1983-2023": curate.read(shared / "rllm/train/aime.json", source="aime").frame(),
        "DAPO-Math-17k": curate.read(
            shared / "svs_dapo/dapo_math_17k.parquet", source="dapo"
        ).frame(),
    }


def machine() -> str:
    model = (
        subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True)
        .stdout.split(":")[-1]
        .strip()
    )
    return (
        f"{os.cpu_count()} cores (`nproc` {subprocess.getoutput('nproc')}), {model}, "
        f"Python {platform.python_version()}, polars {pl.__version__}, "
        f"{datetime.date.today().isoformat()}"
    )


def index_bytes(index: object) -> int:
    total = 0
    for value in vars(index).values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif hasattr(value, "keys") and hasattr(value, "bloom"):
            total += sum(getattr(value, f).nbytes for f in ("keys", "items", "positions", "bloom"))
        elif hasattr(value, "flat"):
            total += int(value.flat.estimated_size()) + value.offsets.nbytes
    return total


def speed(pool: pl.DataFrame, repeats: int = 5) -> list[str]:
    benches = resolve("all")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index, items, build = S._index(benches, 10, 3, 5)  # items table + index, timed
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    texts = pool["problem"]
    ngram_best = stage_best = ngram_cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        H.ngram_hits(index, tokenize_many(texts))
        ngram_best = min(ngram_best, time.perf_counter() - t)
        ngram_cpu = min(ngram_cpu, time.process_time() - c)
    stage = Decontaminate(mode="annotate")
    stage.apply(pool.lazy(), ctx()).collect()  # warm: verifier workers started
    blind_best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        stage.apply(pool.lazy(), ctx()).collect()
        stage_best = min(stage_best, time.perf_counter() - t)
        t = time.perf_counter()
        Decontaminate(mode="annotate", answer_aware=False).apply(pool.lazy(), ctx()).collect()
        blind_best = min(blind_best, time.perf_counter() - t)
    n = pool.height
    return [
        f"Pool: {n:,} problems; index: {len(items):,} benchmark texts of {len(benches)} "
        f"benchmarks, {len(index):,} keys ({index.boilerplate:,} boilerplate n-grams left out).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| index build (tokenize + hash + sort, once per process) | {build:.2f} s |",
        f"| index memory (arrays) | {index_bytes(index) / 2**20:.1f} MiB |",
        f"| max RSS growth while building | {(rss1 - rss0) / 1024:.0f} MiB |",
        f"| n-gram rule: tokenize + lookup + evidence | {n / ngram_best:,.0f} problems/s "
        f"({ngram_best:.2f} s) |",
        f"| n-gram rule, CPU time (all threads) | {n / ngram_cpu:,.0f} problems per "
        f"CPU-second ({ngram_cpu:.2f} s) |",
        f"| whole stage, default (+ gold answers compared by curate.verify) | "
        f"{n / stage_best:,.0f} problems/s ({stage_best:.2f} s) |",
        f"| whole stage, answer_aware=False | {n / blind_best:,.0f} problems/s "
        f"({blind_best:.2f} s) |",
        f"| load average during the run | {os.getloadavg()[0]:.1f} |",
    ]


def quality(per_benchmark: int) -> list[str]:
    from test_decontam_quality import (
        contaminated_pool,
        demo_pool,
        recall_by_edit,
        sample_items,
    )

    pool = pl.concat([demo_pool("math"), demo_pool("gsm8k")])
    items = sample_items(per_benchmark)
    out = ["| edit | recall (gold answer kept) | recall (no answer) |", "|---|---:|---:|"]
    results = []
    for keep_answer in (True, False):
        chosen = items if keep_answer else items.with_columns(pl.lit(None).alias("answer"))
        rows, truth = contaminated_pool(pool, chosen)
        flagged = Decontaminate(mode="annotate").apply(rows.lazy(), ctx()).collect()
        results.append(recall_by_edit(flagged, truth))
    for (edit, r1, _n), (_, r2, _) in zip(results[0].rows(), results[1].rows(), strict=True):
        out.append(f"| {edit} | {r1:.3f} | {r2:.3f} |")
    overall = [float((r["recall"] * r["len"]).sum() / r["len"].sum()) for r in results]
    out.append(
        f"| **all** ({results[0]['len'].sum():,} rows) | **{overall[0]:.3f}** | "
        f"**{overall[1]:.3f}** |"
    )
    out += ["", f"{len(items):,} items ({per_benchmark} per benchmark, all of the smaller ones)."]
    out += ["", "| demo pool | benchmarks | rows | flagged |", "|---|---|---:|---:|"]
    for name in ("math", "gsm8k"):
        rows = demo_pool(name)
        for bench in ("math500" if name == "math" else "gsm8k", "all"):
            c = ctx()
            Decontaminate(bench, mode="annotate").apply(rows.lazy(), c).collect()
            flagged = c.stats["decontam"]["rows_flagged"]
            out.append(f"| {name} | {bench} | {rows.height:,} | {flagged} |")
    return out


def pools(shared: Path) -> list[str]:
    out = []
    for name, frame in shared_pools(shared).items():
        for aware in (True, False):
            c = ctx()
            Decontaminate(mode="annotate", answer_aware=aware).apply(frame.lazy(), c).collect()
            s = c.stats["decontam"]
            hit = {b: v for b, v in s["benchmarks"].items() if v["rows_hit"]}
            listed = ", ".join(
                f"{b} {v['rows_hit']} rows / {v['items_hit']} items"
                for b, v in sorted(hit.items(), key=lambda kv: -kv[1]["rows_hit"])
            )
            share = s["rows_flagged"] / frame.height
            out.append(
                f"| {name} | {frame.height:,} | {'yes' if aware else 'no'} | "
                f"{s['rows_flagged']:,} ({share:.2%}) | {listed or '-'} |"
            )
    head = [
        "| pool | rows | answer_aware | rows flagged | benchmarks hit (rows / items) |",
        "|---|---:|---|---:|---|",
    ]
    return head + out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["speed", "quality", "pools", "all"], default="all")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--per-benchmark", type=int, default=40)
    args = parser.parse_args()
    have_shared = (args.shared / "svs_dapo").is_dir()
    print(f"Machine: {machine()}\n")
    print(
        f"Bundled: {len(bundled())} benchmarks, "
        f"{sum(load_benchmark(b).items.height for b in bundled()):,} texts.\n"
    )
    if args.part in ("speed", "all"):
        if have_shared:
            pool = pl.concat(list(shared_pools(args.shared).values()))
        else:
            from test_decontam_quality import demo_pool

            demo = pl.concat([demo_pool("math"), demo_pool("gsm8k")])
            pool = (
                pl.concat([demo] * 14)
                .with_row_index("n")
                .with_columns(
                    pl.concat_str(pl.col("id"), pl.col("n").cast(pl.String), separator="#").alias(
                        "id"
                    )
                )
                .drop("n")
            )
        print("### Speed\n")
        print("\n".join(speed(pool)) + "\n")
    if args.part in ("quality", "all"):
        print("### Recall and precision\n")
        print("\n".join(quality(args.per_benchmark)) + "\n")
    if args.part in ("pools", "all") and have_shared:
        print("### Overlap of real pools with the bundled benchmarks\n")
        print("\n".join(pools(args.shared)) + "\n")


if __name__ == "__main__":
    main()
