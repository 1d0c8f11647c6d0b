"""Time and peak memory of `curate.export_run` on a run with many long responses.

A run is built once: ``--problems`` real MATH train problems (resampled past its 7,500,
with new ids), then `Distill` with a stand-in generator (defined here, instant) that writes
``--n`` responses per problem of about ``--chars`` characters each: a real MATH solution
repeated as the "thinking", then the boxed gold answer, so every response verifies through
the real checker. Then each format is exported in a fresh process (so its peak RSS is its
own), and the peak is compared with the size of what it exports: the Parquet shards written
and the raw text of the exported rows.

Run from the repository root (reads ../shared/data; falls back to data/demo)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_export.py --problems 25000 --n 4
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
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LongWriter:
    """Answers every problem right after a long "thinking": its solution, repeated."""

    chars: int
    solutions: dict[str, tuple[str, str]]  # problem -> (solution, answer)
    label: str = "long-writer"

    @property
    def model(self) -> str:
        return self.label

    def describe(self) -> dict[str, Any]:
        return {"class": "LongWriter", "chars": self.chars}

    def generate(self, requests: Sequence[Any], sampling: Any) -> list[list[Any]]:
        from curate.generate import Completion

        out = []
        for r in requests:
            text = r.prompt if isinstance(r.prompt, str) else r.prompt[-1]["content"]
            solution, answer = self.solutions[text]  # the template is "{problem}"
            body = (solution + "\n") * max(1, self.chars // max(1, len(solution) + 1))
            body = f"<think>\n{body[: self.chars]}</think>\nSo the answer is $\\boxed{{{answer}}}$."
            out.append([Completion(body, "stop", len(body) // 4)] * r.n)
        return out

    def close(self) -> None:
        pass


def build(data: Path, count: int, n: int, chars: int, run_dir: Path) -> dict[str, Any]:
    import curate

    math = data / "hendrycks_math" / "train.jsonl"
    pool = curate.read(math if math.exists() else ROOT / "data/demo/math_train.jsonl").frame()
    pool = pool.filter(pl.col("answer").is_not_null() & pl.col("solution").is_not_null())
    reps = -(-count // pool.height)
    rows = pl.concat([pool] * reps)[:count].with_columns(
        pl.col("problem") + pl.lit(" (copy ") + pl.int_range(pl.len()).cast(pl.String) + ")"
    )
    jsonl = run_dir.parent / "pool.jsonl"
    rows.select("problem", "solution", "answer").write_ndjson(jsonl)
    solutions = {p: (s, a) for p, s, a in rows.select("problem", "solution", "answer").iter_rows()}
    writer = LongWriter(chars, solutions)
    template = "{problem}"
    stage = curate.Distill(writer, n=n, template=template, chunk=2048)
    start = time.perf_counter()
    curate.Recipe("export-bench", [curate.read(jsonl)], [stage, curate.Grade()]).run(run_dir)
    return {"build_seconds": time.perf_counter() - start}


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(run_dir: Path, out: Path, fmt: str, result: Path) -> None:
    import curate

    run = curate.Run(run_dir)
    base = peak_mb()
    start = time.perf_counter()
    exported = curate.export_run(run, out, format=fmt, test_fraction=0.01)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    peak = peak_mb()  # before reading the shards back below
    shards = sum(p.stat().st_size for files in exported.files.values() for p in files)
    text = 0
    for files in exported.files.values():
        for p in files:
            frame = pl.read_parquet(p)
            for name, dtype in frame.schema.items():
                if dtype == pl.String:
                    text += int(frame[name].str.len_bytes().sum() or 0)
                elif isinstance(dtype, pl.List):  # SFT/TRL messages: their contents
                    text += int(
                        frame[name].explode().struct.field("content").str.len_bytes().sum() or 0
                    )
    result.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak,
                "before_mb": base,
                "rows": sum(exported.rows.values()),
                "shard_mb": shards / 2**20,
                "text_mb": text / 2**20,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--problems", type=int, default=25_000)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--chars", type=int, default=4000, help="characters per response")
    parser.add_argument("--formats", default="verl,sft,trl")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_dir, out, fmt = args.child
        child(Path(run_dir), Path(out), fmt, args.result)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        run_dir = work / "run"
        built = build(args.data, args.problems, args.n, args.chars, run_dir)
        responses = sum(p.stat().st_size for p in (run_dir / "responses").glob("*.parquet"))
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(
            f"{when}, {platform.processor() or 'cpu'}, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
            f"{args.problems:,} problems x {args.n} responses of ~{args.chars:,} chars; run built "
            f"in {built['build_seconds']:.0f} s, responses parts {responses / 2**20:.0f} MB"
        )
        print("| format | rows | seconds | rows/s | peak RSS MB | shards MB | text MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for fmt in args.formats.split(","):
            result = work / f"{fmt}.json"
            cmd = [sys.executable, __file__, "--child", str(run_dir), str(work / fmt), fmt]
            subprocess.run([*cmd, "--result", str(result)], check=True)
            r = json.loads(result.read_text())
            print(
                f"| {fmt} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} "
                f"| {r['peak_mb']:,.0f} | {r['shard_mb']:,.0f} | {r['text_mb']:,.0f} |",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
