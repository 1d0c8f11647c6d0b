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
clean    share of a clean pool flagged: MATH train (7,500) less the rows checked by hand
         to hold a benchmark problem (TRUE_OVERLAPS below), with and without answers.
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
    index, items, build = Decontaminate()._index(benches)  # items table + index, timed
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

    pool = pl.concat([demo_pool("math"), demo_pool("gsm8k")], how="diagonal_relaxed")
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


# Rows of MATH train (hendrycks_math/train.jsonl, line number from 0) that hold a benchmark problem:
# the same problem, re-typeset or re-worded, with the same answer (checked by hand).
TRUE_OVERLAPS = {
    389: "math500 test/intermediate_algebra/337",  # xy=24, xz=48, yz=72
    873: "math500 test/algebra/170",  # integers in |x-2| <= 5.6
    1487: "carp_en 87",  # x + 1/y = 1, y + 1/z = 1
    3816: "olympiadbench 2791",  # four zeros in arithmetic progression
    3859: "olympiadbench 2895",  # a^3 - 15a^2 + 20a - 50 = 0
    4015: "olympiadbench 2890",  # ellipse tangent to both axes
    4531: "olympiadbench 2607",  # tenuous function
    6725: "college_math 200",  # simplify sqrt(245)
    7145: "olympiadbench 2794",  # parallelogram 0, z, 1/z, z + 1/z
    7421: "olympiadbench 2644",  # sin^2 4 + ... + sin^2 176
}


def clean(shared: Path) -> list[str]:
    """Share of the clean MATH train pool flagged, with and without gold answers."""
    pool = curate.read(shared / "hendrycks_math/train.jsonl", source="math").frame()
    pool = pool.with_row_index("n")
    out = ["| answer_aware | rows flagged | true overlaps found | clean pool flagged |"]
    out.append("|---|---:|---:|---:|")
    for aware in (True, False):
        flagged = Decontaminate(mode="annotate", answer_aware=aware).apply(pool.lazy(), ctx())
        hit = flagged.collect().join(pool.select("id", "n"), on="id")
        hit = hit.filter(pl.col("contamination").list.len() > 0)["n"].to_list()
        true = sum(n in TRUE_OVERLAPS for n in hit)
        false, size = len(hit) - true, pool.height - len(TRUE_OVERLAPS)
        out.append(
            f"| {'yes' if aware else 'no'} | {len(hit)} ({len(hit) / pool.height:.2%}) | "
            f"{true}/{len(TRUE_OVERLAPS)} | {false} of {size:,} ({false / size:.2%}) |"
        )
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
    parser.add_argument(
        "--part", choices=["speed", "quality", "clean", "pools", "all"], default="all"
    )
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

            demo = pl.concat([demo_pool("math"), demo_pool("gsm8k")], how="diagonal_relaxed")
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
    if args.part in ("clean", "all") and have_shared:
        print("### False positives on a clean pool (MATH train)\n")
        print("\n".join(clean(args.shared)) + "\n")
    if args.part in ("pools", "all") and have_shared:
        print("### Overlap of real pools with the bundled benchmarks\n")
        print("\n".join(pools(args.shared)) + "\n")


if __name__ == "__main__":
    main()
