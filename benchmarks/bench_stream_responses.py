r"""A responses table at scale: seconds and peak memory of grading it and of its SFT export.

For each size R (responses), a run of P = R / k problems with k responses each is built
without a model, then measured in fresh processes, one per step:

- **build** (not measured): real MATH train problems (``hendrycks_math/train.jsonl``,
  7,500, each with its solution and boxed answer) resampled with a fixed seed to P rows,
  each renamed ``(Copy i.)`` so that every problem is distinct; ingested by a recipe with
  no stages; then the responses table written directly through `curate.ResponsesTable`
  (``RUN/responses``, its real layout: one part per 2,048 problems, named as `Distill`
  names them, under the ``gen_key`` of the `Distill` stage measured below). A response is
  ``<think>`` + a line naming the attempt + the problem's real solution + ``</think>`` +
  a final sentence with ``\boxed{...}``: the gold answer (60%), another problem's answer
  (25%), no box (8%), or the text cut in half with ``finish_reason="length"`` (7%).
  Written **ungraded** (``grader`` null) by default, so the next step grades every text;
  ``--pregraded`` writes them judged already (the verdicts as constructed, the current
  grader's key), so it grades nothing and measures only the reading.
- **grade**: the recipe ingest + ``Distill(stand-in, n=k)`` + ``Grade()`` on that run.
  The stand-in generator refuses to generate (every response is in the cache), so
  `Distill` reads the table, grades every ungraded response with `curate.verify_many`
  (the re-grading path: ``regraded`` in its stats) and gives each problem its ``samples``;
  `Grade` turns them into pass rates. Per stage: seconds (from the run's manifest) and the
  peak RSS (VmHWM, reset when a stage ends; `bench_stream.Watch`), and the largest sampled
  RSS of the process and its checker workers.
- **sft**: ``curate.export_run(run, OUT, format="sft")`` (the correct, finished
  responses), in its own process: seconds and peak RSS (VmHWM), and a SHA-256 of the
  shards (``shards_sha256`` in ``--json``: two exports of one run wrote the same bytes
  when it is the same).

A child whose process tree passes ``--max-gb`` of RSS is killed (the machine is shared),
and one that fails is recorded: its row says so, and the next sizes still run. Run from the
repository root (``--quick``: R = 16K and 40K, to check the script)::

    .venv/bin/python benchmarks/bench_stream_responses.py [--responses 500000,1000000]
        [--k 8] [--pregraded] [--data-dir /tmp/curate-bench-responses] [--max-gb 12]
        [--work DIR] [--keep] [--reuse] [--json out.json] [--quick]

``--reuse`` (with ``--work``) keeps each size's run in ``DIR/responses-v1-R-k8-...`` and,
on a later call, measures only the export again: the run is built and graded once (its
build and grade figures are those of the first time), and the shards are removed after
each export unless ``--keep``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_stream import Watch, describe_machine, tree_rss_kb  # noqa: E402  (the same sampling)

DATA_VERSION = 1  # bump when `build` changes what it writes
CHUNK = 2048  # problems per responses part (Distill(chunk=...))
MODEL = "stand-in"


@dataclass(frozen=True)
class CachedOnly:
    """A generator for a run whose responses are all stored: asked for one, it fails."""

    label: str = MODEL

    @property
    def model(self) -> str:
        return self.label

    def describe(self) -> dict[str, Any]:
        return {"class": "CachedOnly", "bench": "bench_stream_responses"}

    def generate(self, requests: Sequence[Any], sampling: Any) -> list[list[Any]]:
        raise RuntimeError(f"CachedOnly asked to generate {len(requests)} requests")

    def close(self) -> None:
        pass


def distill(k: int) -> Any:
    import curate

    return curate.Distill(CachedOnly(), n=k, chunk=CHUNK)


# ---- build -----------------------------------------------------------------------------------


def build_problems(shared: Path, p: int, out: Path) -> None:
    """P real MATH train problems, resampled with a fixed seed, each made distinct."""
    import curate

    pool = curate.read(shared / "hendrycks_math" / "train.jsonl", source="math").frame()
    pool = pool.filter(pl.col("answer").is_not_null() & pl.col("solution").is_not_null())
    rng = np.random.default_rng(0)
    rows = pool[rng.integers(pool.height, size=p)].select(
        "problem", "solution", "answer", "subject", "level"
    )
    copy = pl.lit(" (Copy ") + pl.int_range(pl.len()).cast(pl.String) + pl.lit(".)")
    rows = rows.with_columns(pl.col("problem") + copy)
    tmp = out.with_suffix(f".tmp-{os.getpid()}")
    rows.write_parquet(tmp)
    tmp.replace(out)


def write_responses(run_dir: Path, k: int, pregraded: bool, seed: int = 1) -> int:
    """Write k responses per problem of the ingested run (see the module doc); returns R."""
    import pyarrow.parquet as pq

    import curate
    from curate.distill import grader_key
    from curate.generate import Sampling
    from curate.responses import ResponsesTable
    from curate.verification import VerifyOptions

    stage = distill(k)
    key, sampling = stage.gen_key(CachedOnly()), Sampling()
    grader = grader_key(VerifyOptions())
    table = ResponsesTable.of_run(run_dir)
    [path] = curate.Run(run_dir).tables()["problems"]
    answers = pl.read_parquet(path, columns=["answer"])["answer"]  # the wrong answers' pool
    rng = np.random.default_rng(seed)
    written = 0
    batches = pq.ParquetFile(path).iter_batches(
        CHUNK, columns=["id", "problem", "solution", "answer"]
    )
    for batch in batches:
        frame = pl.DataFrame(pl.from_arrow(batch))
        rows: list[dict[str, Any]] = []
        draws = rng.random((frame.height, k))
        others = answers.gather(rng.integers(answers.len(), size=(frame.height * k)))
        for i, (pid, problem, solution, gold) in enumerate(frame.iter_rows()):
            prompt = json.dumps(stage.prompt(problem), ensure_ascii=False)
            for s in range(k):
                u = draws[i, s]
                think = f"<think>\nAttempt {s} at {pid}.\n{solution}\n</think>\n"
                finish, verdict, correct, said = "stop", "equivalent", True, gold
                if u < 0.60:
                    text = f"{think}So the final answer is $\\boxed{{{gold}}}$."
                elif u < 0.85:
                    said = others[i * k + s]
                    text = f"{think}So the final answer is $\\boxed{{{said}}}$."
                    verdict, correct = (
                        ("equivalent", True) if said == gold else ("different", False)
                    )
                elif u < 0.93:
                    text, said = f"{think}I could not finish this one.", None
                    verdict, correct = "no_answer", False
                else:
                    text, said = think[: len(think) // 2], None
                    finish, verdict, correct = "length", "truncated", False
                judged = {"grader": grader, "verdict": verdict, "extracted_answer": said}
                judged |= {"score": float(correct), "correct": correct, "verdict_detail": None}
                if not pregraded and finish == "stop":
                    judged = {"grader": None, "verdict": "error", "extracted_answer": None}
                    judged |= {"score": None, "correct": None, "verdict_detail": "not graded"}
                rows.append(
                    {
                        "problem_id": pid, "model": MODEL, "sample": s, "gen_key": key,
                        "prompt": prompt, "text": text, "finish_reason": finish,
                        "n_tokens": len(text) // 4, "error": None, "gold": gold,
                        "temperature": sampling.temperature, "top_p": sampling.top_p,
                        "max_tokens": sampling.max_tokens, "seed": 0, **judged,
                    }
                )  # fmt: skip
        table.write(rows, table.part_of(key, MODEL, rows))
        written += len(rows)
    return written


def build_run(args: argparse.Namespace, r: int, run_dir: Path) -> dict[str, Any]:
    import curate

    p = r // args.k
    path = args.data_dir / f"problems-v{DATA_VERSION}-{p}.parquet"
    if not path.exists():
        build_problems(args.shared, p, path)
    start = time.perf_counter()
    curate.Recipe("bench-responses", [curate.read(path, source="pool")]).run(
        run_dir, progress=False
    )
    written = write_responses(run_dir, args.k, args.pregraded)
    from curate.responses import ResponsesTable

    parts = ResponsesTable.of_run(run_dir).parts()
    return {
        "problems": p,
        "responses": written,
        "build_seconds": time.perf_counter() - start,
        "parts": len(parts),
        "parts_mb": sum(f.stat().st_size for f in parts) / 2**20,
    }


# ---- the children ----------------------------------------------------------------------------


def child_grade(run_dir: Path, k: int, result: Path) -> None:
    import curate

    source = curate.read(curate.Run(run_dir).manifest["sources"][0]["path"], source="pool")
    recipe = curate.Recipe("bench-responses", [source], [distill(k), curate.Grade()])
    watch = Watch(run_dir / "manifest.json")
    watch.start()
    start = time.perf_counter()
    run = recipe.run(run_dir, progress=False, engine="local")
    wall = time.perf_counter() - start
    watch.stop()
    rows = [
        {k: s[k] for k in ("name", "rows_in", "seconds", "stats")}
        | {"start_gb": watch.rss0.get(i, 0) / 2**20, "peak_gb": watch.main.get(i, 0) / 2**20}
        | {"peak_tree_gb": max(watch.tree.get(i, 0), watch.main.get(i, 0)) / 2**20}
        for i, s in enumerate(run.manifest["stages"])
    ]
    result.write_text(json.dumps({"wall": wall, "stages": rows}))


def child_export(run_dir: Path, out: Path, result: Path) -> None:
    import curate

    run = curate.Run(run_dir)
    before = status_gb("VmHWM")
    start = time.perf_counter()
    exported = curate.export_run(run, out, format="sft")
    seconds = time.perf_counter() - start
    peak = status_gb("VmHWM")
    rows = sum(exported.rows.values())
    digest = hashlib.sha256()  # of every shard, in order: the same bytes give the same
    for path in sorted(p for paths in exported.files.values() for p in paths):
        digest.update(path.name.encode() + b"\x00")
        with path.open("rb") as f:
            while block := f.read(2**20):
                digest.update(block)
    result.write_text(
        json.dumps(
            {"seconds": seconds, "peak_gb": peak, "before_gb": before, "rows": rows}
            | {"shards_sha256": digest.hexdigest()}
        )
    )


def status_gb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return 0.0


def guarded(cmd: list[str], max_gb: float, log: Path) -> dict[str, Any]:
    """Run ``cmd`` (stderr to ``log``); kill it if its process tree passes ``max_gb`` of RSS.
    Returns the largest sampled tree RSS (GB) and, if it did not finish, why."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stderr=err)
        top, failed = 0.0, None
        while proc.poll() is None:
            top = max(top, tree_rss_kb(proc.pid) / 2**20)
            if top > max_gb and failed is None:
                proc.kill()
                failed = f"killed at {top:.1f} GB (--max-gb)"
            time.sleep(0.1)
    if proc.returncode and failed is None:
        lines = [x for x in log.read_text().splitlines() if x.strip()]
        errors = [x for x in lines if "Error" in x or "Exception" in x]
        failed = (errors or lines or [f"exit status {proc.returncode}"])[-1][:300]
        sys.stderr.write(log.read_text()[-3000:])
    return {"sampled_gb": top, "failed": failed}


# ---- the parent ------------------------------------------------------------------------------


def measure(args: argparse.Namespace, r: int) -> dict[str, Any]:
    if args.reuse:  # one folder per size and kind, kept: built and graded once
        graded = "pregraded" if args.pregraded else "ungraded"
        work = args.work / f"responses-v{DATA_VERSION}-{r}-k{args.k}-{graded}"
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix=f"bench-responses-{r}-", dir=args.work))
    try:
        return measure_in(args, r, work)
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(work, ignore_errors=True)


def measure_in(args: argparse.Namespace, r: int, work: Path) -> dict[str, Any]:
    run_dir, built, graded = work / "run", work / "built.json", work / "grade.json"
    reused = args.reuse and built.exists() and graded.exists()
    if reused:  # the grade step's result of the first time (the run is as it left it)
        out: dict[str, Any] = json.loads(built.read_text())
        out["grade"] = json.loads(graded.read_text())
        print(f"reused {work}", file=sys.stderr, flush=True)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        out = {"rows": r, **build_run(args, r, run_dir)}
        print(f"built {out}", file=sys.stderr, flush=True)
    me = [sys.executable, __file__, "--run", str(run_dir), "--k", str(args.k)]
    if not reused:
        res = work / "grade-child.json"
        cmd = [*me, "--child", "grade", "--result", str(res)]
        out["grade"] = guarded(cmd, args.max_gb, work / "grade.log")
        if out["grade"]["failed"]:
            return out
        out["grade"] |= json.loads(res.read_text())
        if args.reuse:
            graded.write_text(json.dumps(out["grade"]))
            built.write_text(json.dumps({k: v for k, v in out.items() if k != "grade"}))
    shutil.rmtree(work / "sft", ignore_errors=True)
    try:
        res = work / "sft.json"
        cmd = [*me, "--child", "sft", "--result", str(res), "--out", str(work / "sft")]
        out["sft"] = guarded(cmd, args.max_gb, work / "sft.log")
        if not out["sft"]["failed"]:
            out["sft"] |= json.loads(res.read_text())
    finally:
        if args.reuse and not args.keep:  # the shards: big, and rewritten next time
            shutil.rmtree(work / "sft", ignore_errors=True)
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| responses | problems | step | s | responses/s | RSS at start GB | peak GB "
        "| +workers GB |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        head = f"| {r['rows']:,} | {r['problems']:,} "
        g = r["grade"]
        if g["failed"]:
            lines.append(head + f"| grade | failed: {g['failed']} | | | | |")
            continue
        for s in g["stages"]:
            sec = s["seconds"]
            lines.append(
                head + f"| {s['name']} | {sec:.1f} | {r['rows'] / max(sec, 1e-9):,.0f} | "
                f"{s['start_gb']:.2f} | {s['peak_gb']:.2f} | {s['peak_tree_gb']:.2f} |"
            )
        x = r["sft"]
        if x["failed"]:
            lines.append(
                head + f"| sft export | failed after {x['sampled_gb']:.2f} GB: {x['failed']} "
                "| | | | |"
            )
        else:
            lines.append(
                head + f"| sft export ({x['rows']:,} rows) | {x['seconds']:.1f} | "
                f"{r['rows'] / x['seconds']:,.0f} | {x['before_gb']:.2f} | {x['peak_gb']:.2f} "
                f"| {max(x['peak_gb'], x['sampled_gb']):.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", default="500000,1000000,2000000,5000000", help="sizes R")
    parser.add_argument("--k", type=int, default=8, help="responses per problem")
    parser.add_argument("--pregraded", action="store_true", help="write the verdicts too")
    parser.add_argument("--quick", action="store_true", help="R = 16000,40000")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/curate-bench-responses"))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=None, help="where runs go (temp dir)")
    parser.add_argument("--max-gb", type=float, default=12.0, help="kill a child past this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the runs (in --work)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep each size's run in --work and, when it is there already, measure only "
        "the export again (no build, no grade: their figures are those of the first time)",
    )
    parser.add_argument("--child", choices=("grade", "sft"), help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "grade":
        child_grade(args.run, args.k, args.result)
        return
    if args.child == "sft":
        child_export(args.run, args.out, args.result)
        return

    if args.reuse and args.work is None:
        parser.error("--reuse needs --work DIR (where the runs are kept)")
    sizes = [16_000, 40_000] if args.quick else [int(s) for s in args.responses.split(",")]
    args.data_dir.mkdir(parents=True, exist_ok=True)
    graded = "pregraded" if args.pregraded else "ungraded"
    machine = describe_machine(f", k = {args.k}, {graded}")
    print(machine, flush=True)
    results = []
    for r in sorted(sizes):
        results.append(measure(args, r))
        print(table(results[-1:]), flush=True)
    print("\n" + table(results))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
