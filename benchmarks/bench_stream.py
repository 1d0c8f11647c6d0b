"""The streaming runner at scale: seconds per stage and peak memory of a whole recipe run.

For each size N, a fresh process runs ``curate.Recipe(...).run(engine="local")`` over an
N-row Parquet pool: ingest, then ``RequireGradable()``, ``ExactDedup()``,
``MinHashDedup()`` and ``Decontaminate(benchmarks="all")`` (``--stages`` picks a subset).
Seconds per stage come from the run's manifest. Memory, sampled every 50 ms by a thread
of that process, which resets the kernel's peak (VmHWM, via ``/proc/self/clear_refs``)
whenever the manifest shows a stage finished:

- main peak: VmHWM of the runner's process over each stage; over ingest (the first
  stage, from process start) it is the peak of ingest alone;
- +workers: the largest sampled sum of VmRSS over that process and its worker processes
  (the checker pool, MinHash signature workers), which start fresh (no shared pages).

A stage's peak includes what earlier stages left resident (freed memory the allocator
keeps), shown as its RSS at start; the stats of each stage (candidate pairs, ...) go to
``--json``. (``ru_maxrss`` is no use here: resetting VmHWM resets it too.)

The pool (cached under ``--data-dir``, reused): the problems of PRM800K's MATH train,
rllm's MATH train, AIME 1983-2023 and DAPO-Math-17k (38,366 rows; MATH appears in two of
them) resampled with a fixed seed to N rows. In each row the first number is replaced by
a random one (or, with no number, a "(Variant k.)" note is added): a distinct problem for
ExactDedup and for MinHash's numbers rule, yet a near one in shingles, so LSH still finds
and verifies candidates, as with templated synthetic data. Then 6% of rows become exact
copies of another row and 6% copies with one word changed (near duplicates, same numbers).

Run from the repository root (``--quick``: N = 20K and 50K, about 20 s on 2 cores, to
check the script; the default sizes take minutes each and, at 5M rows, tens of GB)::

    .venv/bin/python benchmarks/bench_stream.py [--rows 250000,1000000] [--stages exact,minhash]
        [--data-dir /tmp/curate-bench-stream] [--json out.json] [--workers 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
POOLS = [
    ("prm800k_math_splits/train_reconstructed.jsonl", "prm800k"),
    ("rllm/train/math.json", "rllm_math"),
    ("rllm/train/aime.json", "aime"),
    ("svs_dapo/dapo_math_17k.jsonl", "dapo"),
]
STAGES = ("gradable", "exact", "minhash", "decontam")
DATA_VERSION = 1  # bump when `build` changes the rows it writes


def build(shared: Path, n: int, out: Path) -> None:
    """Write the N-row pool described in the module docstring to ``out``."""
    import curate

    frames = [curate.read(shared / rel, source=name).frame() for rel, name in POOLS]
    base = pl.concat(frames).select("problem", "answer", "subject", "level", pool="source")
    rng = np.random.default_rng(0)
    rows = base[rng.integers(base.height, size=n)]
    p, v = pl.col("problem"), pl.col("_v")
    rows = rows.with_columns(pl.Series("_v", rng.integers(10, 10**6, size=n)).cast(pl.String))
    variant = pl.when(p.str.contains(r"\d")).then(p.str.replace(r"\d+", v))
    rows = rows.with_columns(variant.otherwise(p + " (Variant " + v + ".)")).drop("_v")
    kind = rng.random(n)  # < 0.06: exact copy of another row; < 0.12: near copy
    rows = rows[np.where(kind < 0.12, rng.integers(n, size=n), np.arange(n))]
    near = pl.lit(pl.Series((kind >= 0.06) & (kind < 0.12)))
    edit = pl.when(p.str.contains(" the ")).then(p.str.replace(" the ", " this ", literal=True))
    rows = rows.with_columns(pl.when(near).then(edit.otherwise(p + " Explain.")).otherwise(p))
    tmp = out.with_suffix(f".tmp-{os.getpid()}")
    rows.write_parquet(tmp)
    tmp.replace(out)


# ---- the child: one recipe run, sampled ------------------------------------------------------


def status_kb(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass  # the process ended
    return 0


def tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and of all its descendants (children listed per thread)."""
    total, todo = 0, [str(pid)]
    while todo:
        p = todo.pop()
        total += status_kb(p, "VmRSS")
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += (task / "children").read_text().split()
        except OSError:
            continue
    return total


class Watch(threading.Thread):
    """Per stage: the main process's VmHWM (reset at each stage's end) and the largest
    sampled RSS of the process tree; the stage is the count of stages in the manifest."""

    def __init__(self, manifest: Path) -> None:
        super().__init__(daemon=True)
        self.manifest, self.done, self.stage = manifest, threading.Event(), 0
        self.main, self.tree, self.rss0 = {}, {}, {0: status_kb("self", "VmRSS")}
        self.seen: tuple[int, int] | None = None

    def sample(self) -> None:
        stage = self.stage
        try:
            stat = self.manifest.stat()
            if (key := (stat.st_mtime_ns, stat.st_size)) != self.seen:
                stage = len(json.loads(self.manifest.read_text())["stages"])
                self.seen = key
        except (OSError, ValueError, KeyError):
            pass  # not written yet, or caught mid-write: look again next time
        if stage != self.stage:
            hwm = status_kb("self", "VmHWM")
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
            for k in range(self.stage + 1, stage + 1):  # several if a stage took < 50 ms
                self.main[k - 1], self.rss0[k] = hwm, status_kb("self", "VmRSS")
            self.stage = stage
        self.tree[stage] = max(self.tree.get(stage, 0), tree_rss_kb(os.getpid()))

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.sample()

    def stop(self) -> None:
        self.done.set()
        self.join()
        self.sample()
        self.main[self.stage] = status_kb("self", "VmHWM")


def child(path: Path, out: Path, stages: list[str], workers: int | None, result: Path) -> None:
    import curate

    make = {
        "gradable": curate.RequireGradable,
        "exact": curate.ExactDedup,
        "minhash": curate.MinHashDedup,
        "decontam": lambda: curate.Decontaminate(benchmarks="all"),
    }
    source = curate.read(path, source="pool")
    recipe = curate.Recipe("bench-stream", [source], [make[s]() for s in stages])
    watch = Watch(out / "manifest.json")
    watch.start()
    start = time.perf_counter()
    run = recipe.run(out, progress=False, engine="local", workers=workers)
    wall = time.perf_counter() - start
    watch.stop()
    rows = [
        {k: s[k] for k in ("name", "rows_in", "kept", "seconds", "stats")}
        | {"rejected": sum(s["rejected"].values()), "start_gb": watch.rss0.get(i, 0) / 2**20}
        | {"peak_gb": watch.main.get(i, 0) / 2**20}
        # sampled, so it can miss the main process's exact peak: never below that
        | {"peak_tree_gb": max(watch.tree.get(i, 0), watch.main.get(i, 0)) / 2**20}
        for i, s in enumerate(run.manifest["stages"])
    ]
    baseline = watch.rss0[0] / 2**20
    result.write_text(json.dumps({"wall": wall, "baseline_gb": baseline, "stages": rows}))


# ---- the parent: data, one child per size, tables ---------------------------------------------


def measure(args: argparse.Namespace, n: int, stages: list[str]) -> dict[str, Any]:
    path = args.data_dir / f"pool-v{DATA_VERSION}-{n}.parquet"
    if not path.exists():
        start = time.perf_counter()
        build(args.shared, n, path)
        print(f"built {path} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=f"bench-stream-{n}-", dir=args.work))
    try:
        cmd = [sys.executable, __file__, "--child", str(path), "--out", str(work / "run")]
        cmd += ["--result", str(work / "result.json"), "--stages", ",".join(stages)]
        cmd += ["--workers", str(args.workers)] if args.workers else []
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        out: dict[str, Any] = json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stats = out["stages"]
    return out | {
        "rows": n,
        "seconds": sum(s["seconds"] for s in stats),
        "ingest_peak_gb": stats[0]["peak_gb"],
        "peak_gb": max(s["peak_gb"] for s in stats),
        "peak_tree_gb": max(s["peak_tree_gb"] for s in stats),
    }


def tables(results: list[dict[str, Any]]) -> str:
    names = [s["name"] for s in results[0]["stages"]]
    lines = [
        "| rows | " + " | ".join(f"{n} s" for n in names) + " | total s | rows/s | "
        "ingest peak GB | run peak GB | +workers GB |",
        "|---:|" + "---:|" * (len(names) + 5),
    ]
    for r in results:
        secs = " | ".join(f"{s['seconds']:.2f}" for s in r["stages"])
        lines.append(
            f"| {r['rows']:,} | {secs} | {r['seconds']:.2f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['ingest_peak_gb']:.2f} | {r['peak_gb']:.2f} | {r['peak_tree_gb']:.2f} |"
        )
    lines += ["", "| rows | stage | rows in | rejected | s | rows/s | RSS at start GB | peak GB "
              "| +workers GB |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        for s in r["stages"]:
            lines.append(
                f"| {r['rows']:,} | {s['name']} | {s['rows_in']:,} | {s['rejected']:,} | "
                f"{s['seconds']:.2f} | {s['rows_in'] / max(s['seconds'], 1e-9):,.0f} | "
                f"{s['start_gb']:.2f} | {s['peak_gb']:.2f} | {s['peak_tree_gb']:.2f} |"
            )
    return "\n".join(lines)


def describe_machine(extra: str = "") -> str:
    """Date, CPU, cores, versions and load average, for the header of a results table."""
    from importlib.metadata import version

    info = [x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model n")]
    cpu = info[0].split(":", 1)[1].strip() if info else platform.processor()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, polars {version('polars')}, curate "
        f"{version('curate')}, load average {os.getloadavg()[0]:.1f}{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="250000,1000000,2000000,5000000", help="sizes N")
    parser.add_argument("--quick", action="store_true", help="N = 20000,50000")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"subset of {STAGES}")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/curate-bench-stream"))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=None, help="where runs go (temp dir)")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    stages = [s for s in args.stages.split(",") if s]
    if unknown := set(stages) - set(STAGES):
        parser.error(f"unknown stages {sorted(unknown)}; choose from {STAGES}")
    if args.child:
        child(args.child, args.out, stages, args.workers, args.result)
        return

    sizes = [20_000, 50_000] if args.quick else [int(s) for s in args.rows.split(",")]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    print(machine, flush=True)
    results = [measure(args, n, stages) for n in sorted(sizes)]
    print(f"\nbaseline RSS after imports: {results[0]['baseline_gb']:.2f} GB\n")
    print(tables(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
