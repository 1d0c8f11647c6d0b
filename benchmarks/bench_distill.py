"""Overhead of the `Distill` stage over calling the same engine directly on the same prompts.

Both sides use one engine, loaded once and warmed up (its load time is not counted):

(a) direct: the engine's own batch call on every prompt at once (vLLM: ``LLM.generate``
    with ``SamplingParams(n=...)`` on chat-templated prompts; transformers: the backend's
    ``generate``), nothing else;
(b) ``Distill``: `curate.run.apply_stage(Distill(...), problems)` end to end: prompts,
    generation through the backend in chunks, answer extraction, verification in the
    checker's process pool beside generation, the responses parts written to disk, the
    ``samples`` column.

Runs alternate (a, b, a, b, ...) so that outside load hits both alike; the best of each is
kept. Data: `curate.toy.toy_problems`, the toy model of `curate.toy.toy_model` (2-layer
Qwen2, random init then a few hundred training steps). Run from the repository root::

    .venv/bin/python benchmarks/bench_distill.py --engine vllm --problems 512 --n 4
    .venv/bin/python benchmarks/bench_distill.py --engine hf --problems 64 --n 4
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
from _timing import toy_generator, vllm_direct


def problems(count: int) -> pl.DataFrame:
    from curate.schema import PROBLEM_DTYPES
    from curate.text import text_hash
    from curate.toy import toy_problems

    rows = toy_problems(count, seed=11)
    return pl.DataFrame(
        {
            "id": [r["id"] for r in rows],
            "text_hash": [text_hash(r["problem"]) for r in rows],
            "problem": [r["problem"] for r in rows],
            "answer": [r["answer"] for r in rows],
            "solution": [None] * len(rows),
            "source": ["toy"] * len(rows),
            "subject": [None] * len(rows),
            "level": [float(r["level"]) for r in rows],
            "meta": ["{}"] * len(rows),
        },
        schema=PROBLEM_DTYPES,
    )


def direct_vllm(generator: Any, frame: pl.DataFrame, n: int, sampling: Any) -> tuple[float, int]:
    """The engine alone: one ``LLM.generate`` over every chat-templated prompt."""
    from curate.distill import DEFAULT_TEMPLATE, prompt_for

    messages = [
        [{"role": "user", "content": prompt_for(DEFAULT_TEMPLATE, p)}]
        for p in frame["problem"].to_list()
    ]
    return vllm_direct(generator, messages, n, sampling)


def direct_backend(generator: Any, frame: pl.DataFrame, n: int, sampling: Any) -> tuple[float, int]:
    """The backend's own ``generate`` on every request at once (transformers)."""
    from curate.distill import DEFAULT_TEMPLATE, prompt_for
    from curate.generate import Request

    requests = [
        Request([{"role": "user", "content": prompt_for(DEFAULT_TEMPLATE, p)}], n=n, seed=i)
        for i, p in enumerate(frame["problem"].to_list())
    ]
    start = time.perf_counter()
    results = generator.generate(requests, sampling)
    seconds = time.perf_counter() - start
    return seconds, sum(c.n_tokens or 0 for r in results for c in r)


def through_distill(
    generator: Any, frame: pl.DataFrame, n: int, sampling: Any, chunk: int
) -> tuple[float, int]:
    from curate.distill import Distill
    from curate.responses import read_responses
    from curate.run import apply_stage
    from curate.stage import StageContext

    work = Path(tempfile.mkdtemp(prefix="bench-distill-"))
    ctx = StageContext(run_dir=work, cache_dir=work / "cache", stage_name="distill")
    stage = Distill(generator, n=n, sampling=sampling, chunk=chunk)
    object.__setattr__(generator, "close", lambda: None)  # keep the engine for the next run
    try:
        start = time.perf_counter()
        apply_stage(stage, frame, ctx)
        seconds = time.perf_counter() - start
    finally:
        object.__delattr__(generator, "close")
    tokens = int(read_responses(work / "responses")["n_tokens"].sum())
    generating = ctx.stats[generator.model]["seconds"]
    print(
        f"    (Distill: {generating:.2f} s inside generate, {seconds - generating:.2f} s around it)"
    )
    shutil.rmtree(work, ignore_errors=True)
    return seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--problems", type=int, default=512)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=256, help="Distill(chunk=...)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="model directory (default: curate.toy.toy_model())")
    args = parser.parse_args()

    from curate.generate import Request, Sampling
    from curate.toy import toy_model

    model = args.model or str(toy_model())
    sampling = Sampling(temperature=0.6, top_p=0.95, max_tokens=args.max_tokens)
    generator = toy_generator(args.engine, model)
    direct = direct_vllm if args.engine == "vllm" else direct_backend
    started = time.perf_counter()
    generator.generate([Request("warm up", n=1, seed=0)], Sampling(max_tokens=4))
    load = time.perf_counter() - started
    frame = problems(args.problems)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; engine {args.engine}, model {model}, "
        f"load + warm-up {load:.1f} s; {args.problems} problems x n={args.n}, "
        f"max_tokens {args.max_tokens}, Distill chunk {args.chunk}"
    )
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):
        for name, fn in (
            ("direct", lambda: direct(generator, frame, args.n, sampling)),
            ("distill", lambda: through_distill(generator, frame, args.n, sampling, args.chunk)),
        ):
            seconds, tokens = fn()
            print(f"  {name}: {seconds:.2f} s, {tokens:,} tokens, {tokens / seconds:,.0f} tokens/s")
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, tokens)
    (d, dt), (s, st) = best["direct"], best["distill"]
    print(
        f"best: direct {d:.2f} s ({dt / d:,.0f} tokens/s), Distill {s:.2f} s ({st / s:,.0f} "
        f"tokens/s); overhead {100 * (s - d) / d:+.1f}% in time, "
        f"{100 * ((dt / d) / (st / s) - 1):+.1f}% in tokens/s"
    )
    generator.close()


if __name__ == "__main__":  # vLLM starts worker processes: the entry point must be guarded
    main()
