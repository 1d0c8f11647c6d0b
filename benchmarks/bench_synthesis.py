"""Problem synthesis (`curate.Synthesize`): its overhead over the engine, and what cleaning
removes from a teacher's planted bad outputs.

**overhead** (``--part overhead``): the time of `curate.Synthesize` over calling the same
engine directly on the same prompts (the target: at most 5%). One engine, loaded once and
warmed up (load and warm-up not counted), then alternately (a, b, a, b, ...; the best of
each is kept, so that outside load hits both alike):

(a) direct: the engine's own batch call on every prompt at once (vLLM: one
    ``LLM.generate`` over every chat-templated prompt with ``SamplingParams(n=N, seed=i)``;
    transformers: the backend's own ``generate`` on every request), nothing else. The
    prompts are the ones Synthesize sends (the same texts, education stages and wording),
    built before the clock starts;
(b) Synthesize: ``curate.Recipe("bench", [Synthesize(texts, generator, n=N, chunk=C,
    ...)]).run(fresh_dir)`` end to end: reading the texts, drawing the stages, building the
    prompts, seeded requests ``chunk`` texts per engine call, parsing each output, the
    cache parts in ``RUN/cache/synthesis``, the ingest stage's kept and rejects files and
    the manifest. A fresh run directory per repeat, so nothing is cached.

`Synthesize` closes each generator when its work is done, and `VLLMGenerator.close` shuts
the engine down (the next call would load it again, a minute on a CPU). So (b) gets the
engine through `KeepOpen`, a thin `Generator` that passes ``model``, ``describe`` and
``generate`` through to the real one and makes ``close`` a no-op; the engine is closed
once at the end. Reported: seconds, completion tokens/s, the overhead (best against best,
and medians) in time and in tokens/s, and the time Synthesize spent outside ``generate``
(the run's total less the engine seconds of the manifest's source stats). The two sides
draw different samples (vLLM's ``n`` fan-out with seed ``i`` against Synthesize's
per-sample seeds), so their token counts differ by a few percent: tokens/s is the fairer
measure of throughput.

``--detail`` adds, in the same alternation, (c) ``backend``: `VLLMGenerator.generate` on
the requests Synthesize sends (the same prompts and seeds) in one call, and (d)
``backend-chunked``: the same in calls of ``chunk`` requests, so that the gap splits into
the backend (per-sample seeded requests, chat templates), the chunking and Synthesize's
own work; and, after the engine is closed, Synthesize with `Instant`, a generator that
answers at once (Synthesize's own work alone, no engine time).

Model: the toy model of `curate.toy.toy_model(steps=600)` (2-layer Qwen2, 512 positions,
so the prompts are short: the 4 short education stages and ``max_chars=100`` of
``recipes/jiuzhang.py``). Texts: the 160 bundled pages of ``data/demo/math_texts.jsonl``,
cycled to ``--texts`` (each copy with its own id and url). Sampling: temperature 1.0,
top-p 1.0, ``--max-tokens`` 48.

**cleaning** (``--part cleaning``): `curate.toy_teacher.ToyTeacher` (benchmark copies 0.1,
repeats 0.1, copies of the text 0.05, the other failures at their default rates) writes
``--n`` problems from each of the 160 texts (seed 0), and the recipe cleans them:
`RequireGradable`, `ExactDedup`, `MinHashDedup`, `SemanticDedup(threshold=0.95)`,
`Decontaminate` against the bundled benchmarks and the source texts (registered as
``source-texts``). The truth is computed apart from the stages: each sample's outcome is
drawn again with the teacher's own rule and seed (``ToyTeacher._outcome`` on
``Request.sample_seed``), the ingest-kept problems are compared with MATH-500's problems
and with the math content each prompt gave the teacher, and the exact-duplicate groups
(by ``text_hash``) are counted. Reported: per kind, planted, removed, by which stage, left
over; the ingest rejects by reason against the outcomes planted; clean rows removed and why.
``--source-texts`` registers the texts whole (``full``, as ``recipes/jiuzhang.py`` does),
cut to the ``max_chars`` the prompt shows (``cut``), or runs once with each (``both``, the
default).

Run from the repository root (it reads ``data/demo/math_texts.jsonl``; runs go to a
temporary directory)::

    .venv/bin/python benchmarks/bench_synthesis.py --part cleaning
    .venv/bin/python benchmarks/bench_synthesis.py --part overhead --engine vllm \\
        --texts 512 --n 4 --chunk 256 --repeats 9 --detail
    .venv/bin/python benchmarks/bench_synthesis.py --part overhead --engine hf --texts 64
    .venv/bin/python benchmarks/bench_synthesis.py --part both --json runs/bench_synthesis.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import polars as pl
from _timing import toy_generator, vllm_direct

TEXTS_PATH = Path("data/demo/math_texts.jsonl")
TEMPLATE = (
    "Write a new math problem for {audience}, from the content, and solve it.\n"
    "## Math content\n{text}\n## New problem\n"
)
STAGES = {
    "grade_school": "a grade school student",
    "middle_school": "a middle schooler",
    "high_school": "a high school student",
    "amc_8": "an AMC 8 contestant",
}
MAX_CHARS = 100
# the teacher's outcome -> the ingest reject reason it must get (None: accepted at ingest)
EXPECTED_REASON = {
    "refuse": "refusal",
    "empty": "empty",
    "truncate": "truncated",
    "no_box": "no_answer",
    "foreign": "wrong_language",
    "no_solution": "no_solution",
    "benchmark": None,
    "repeat": None,
    "copy": None,
    "ok": None,
}


def prompts() -> Any:
    from curate.synth import Prompts

    return Prompts(template=TEMPLATE, stages=STAGES, max_chars=MAX_CHARS)


def texts_file(count: int, folder: Path) -> Path:
    """The bundled texts, cycled to ``count`` (each copy with its own id and url)."""
    rows = [json.loads(line) for line in TEXTS_PATH.read_text().splitlines() if line.strip()]
    if count == len(rows):
        return TEXTS_PATH
    out = []
    for i in range(count):
        row, copy = dict(rows[i % len(rows)]), i // len(rows)
        if copy:
            row["id"], row["url"] = f"{row['id']}-r{copy}", f"{row['url']}#r{copy}"
        out.append(row)
    path = folder / f"texts-{count}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path


@dataclass(frozen=True)
class KeepOpen:
    """A `curate.generate.Generator` that passes everything to ``inner`` except ``close``:
    `Synthesize` closes its generators when done, and the benchmark keeps the engine
    loaded from one repeat to the next."""

    inner: Any

    @property
    def model(self) -> str:
        return str(self.inner.model)

    def describe(self) -> dict[str, Any]:
        return dict(self.inner.describe())

    def generate(self, requests: Sequence[Any], sampling: Any) -> list[list[Any]]:
        return list(self.inner.generate(requests, sampling))

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Instant:
    """A `curate.generate.Generator` that answers at once with one well-formed output (a
    problem, a solution, a boxed answer): a Synthesize run with it costs only its own work."""

    model: str = "instant"

    def describe(self) -> dict[str, Any]:
        return {"backend": "instant"}

    def generate(self, requests: Sequence[Any], sampling: Any) -> list[list[Any]]:
        from curate.generate import Completion

        text = "New problem: What is 2 + 3?\nSolution: 2 + 3 = 5, so the answer is \\boxed{5}."
        return [[Completion(text, "stop", 24)] * r.n for r in requests]

    def close(self) -> None:
        pass


def synthesizer(texts: Path, generator: Any, n: int, sampling: Any, chunk: int) -> Any:
    import curate
    from curate.synth import Synthesize

    source = curate.read(texts, kind="documents", source="texts")
    return Synthesize(source, generator, n=n, prompts=prompts(), sampling=sampling, chunk=chunk)


def chat_prompts(stage: Any, seed: int = 0) -> list[Any]:
    """The prompts ``stage`` (a Synthesize) sends, in text order."""
    docs = stage.chosen(seed)
    return [
        stage.prompt(text, stage.prompts.stage_for(i, seed))
        for i, text in zip(docs["id"].to_list(), docs["text"].to_list(), strict=True)
    ]


# --------------------------------------------------------------------------- overhead


def direct_vllm(generator: Any, messages: list[Any], n: int, sampling: Any) -> tuple[float, int]:
    """The engine alone: one ``LLM.generate`` over every chat-templated prompt."""
    return vllm_direct(generator, messages, n, sampling)


def direct_backend(generator: Any, messages: list[Any], n: int, sampling: Any) -> tuple[float, int]:
    """The backend's own ``generate`` on every request at once (transformers)."""
    from curate.generate import Request

    requests = [Request(m, n=n, seed=i) for i, m in enumerate(messages)]
    start = time.perf_counter()
    results = generator.generate(requests, sampling)
    seconds = time.perf_counter() - start
    return seconds, sum(c.n_tokens or 0 for r in results for c in r)


def through_backend(
    generator: Any, requests: list[Any], sampling: Any, chunk: int
) -> tuple[float, int]:
    """The backend alone (``generator.generate``) on the requests Synthesize sends (the same
    prompts and seeds), ``chunk`` requests per call: no parsing, no cache, no run."""
    seconds, tokens = 0.0, 0
    for lo in range(0, len(requests), chunk):
        start = time.perf_counter()
        results = generator.generate(requests[lo : lo + chunk], sampling)
        seconds += time.perf_counter() - start
        tokens += sum(c.n_tokens or 0 for r in results for c in r)
    return seconds, tokens


def through_synthesize(
    generator: Any, texts: Path, n: int, sampling: Any, chunk: int, work: Path
) -> dict[str, Any]:
    import curate

    out = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    stage = synthesizer(texts, KeepOpen(generator), n, sampling, chunk)
    start = time.perf_counter()
    run = curate.Recipe("bench", [stage]).run(out, progress=False)
    seconds = time.perf_counter() - start
    stats = run.manifest["sources"][0]["stats"]
    engine = stats[generator.model]
    ingest = run.manifest["stages"][0]
    result = {
        "seconds": seconds,
        "tokens": int(engine["completion_tokens"]),
        "engine_seconds": float(engine["seconds"]),
        "outside_generate_s": seconds - float(engine["seconds"]),
        "ingest_stage_s": float(ingest["seconds"]),
        "rows": int(ingest["rows_in"]),
        "kept": int(ingest["kept"]),
        "outputs": stats.get("outputs", {}),
        "calls": int(engine["calls"]),
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def overhead(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from curate.generate import Request, Sampling
    from curate.generate.base import derive_seed
    from curate.toy import toy_model

    model = args.model or str(toy_model(steps=600))
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    generator = toy_generator(args.engine, model)
    direct = direct_vllm if args.engine == "vllm" else direct_backend
    texts = texts_file(args.texts, work)
    messages = chat_prompts(synthesizer(texts, generator, args.n, sampling, args.chunk))
    started = time.perf_counter()
    generator.generate([Request(messages[0], n=1, seed=0)], Sampling(max_tokens=4))
    load = time.perf_counter() - started
    # warm the run path too (imports, the parser, Parquet writers): not counted
    warm_texts = texts_file(2, work)
    through_synthesize(generator, warm_texts, 1, Sampling(max_tokens=4), args.chunk, work)
    header = (
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; engine {args.engine}, "
        f"model {model}, load + warm-up {load:.1f} s; {args.texts} texts x n={args.n}, "
        f"max_tokens {args.max_tokens}, Synthesize chunk {args.chunk}"
    )
    print(header)
    sides = ["direct", "synthesize"]
    if args.detail:
        sides[1:1] = ["backend", "backend-chunked"]
        stage = synthesizer(texts, generator, args.n, sampling, args.chunk)
        key, ids = stage.gen_key(generator), stage.chosen(0)["id"].to_list()
        requests = [
            Request(m, n=args.n, seed=derive_seed(0, key, i, 0))
            for i, m in zip(ids, messages, strict=True)
        ]
    runs: list[dict[str, Any]] = []
    for repeat in range(args.repeats):
        for side in sides:
            if side == "direct":
                seconds, tokens = direct(generator, messages, args.n, sampling)
                got: dict[str, Any] = {"seconds": seconds, "tokens": tokens}
            elif side.startswith("backend"):
                size = args.chunk if side == "backend-chunked" else len(requests)
                seconds, tokens = through_backend(generator, requests, sampling, size)
                got = {"seconds": seconds, "tokens": tokens}
            else:
                got = through_synthesize(generator, texts, args.n, sampling, args.chunk, work)
            runs.append({"repeat": repeat, "side": side, **got, "load_average": os.getloadavg()[0]})
            line = (
                f"  {side}: {got['seconds']:.2f} s, {got['tokens']:,} tokens, "
                f"{got['tokens'] / got['seconds']:,.0f} tokens/s"
            )
            if side == "synthesize":
                line += (
                    f" ({got['engine_seconds']:.2f} s inside generate, "
                    f"{got['outside_generate_s']:.2f} s around it, ingest stage "
                    f"{got['ingest_stage_s']:.2f} s; {got['calls']} requests, "
                    f"{got['kept']:,} of {got['rows']:,} rows kept)"
                )
            print(line, flush=True)
    generator.close()
    own = None
    if args.detail:  # Synthesize's own work, with no engine time at all
        own = [
            through_synthesize(Instant(), texts, args.n, sampling, args.chunk, work)
            for _ in range(args.repeats)
        ]
        print(
            "  synthesize with an instant engine (its own work only): "
            + ", ".join(f"{o['seconds']:.3f}" for o in own)
            + f" s for {own[0]['rows']:,} well-formed outputs"
        )
    best = {
        side: min((r for r in runs if r["side"] == side), key=lambda r: r["seconds"])
        for side in sides
    }
    d, s = best["direct"], best["synthesize"]
    d_rate, s_rate = d["tokens"] / d["seconds"], s["tokens"] / s["seconds"]
    summary = {
        "direct_s": d["seconds"],
        "direct_tokens_per_s": d_rate,
        "synthesize_s": s["seconds"],
        "synthesize_tokens_per_s": s_rate,
        "overhead_time_pct": 100 * (s["seconds"] - d["seconds"]) / d["seconds"],
        "overhead_tokens_per_s_pct": 100 * (d_rate / s_rate - 1),
        "outside_generate_s": [r["outside_generate_s"] for r in runs if r["side"] == "synthesize"],
        "median_direct_s": median(r["seconds"] for r in runs if r["side"] == "direct"),
        "median_synthesize_s": median(r["seconds"] for r in runs if r["side"] == "synthesize"),
        "by_side": {
            side: {
                "best_s": b["seconds"],
                "median_s": median(r["seconds"] for r in runs if r["side"] == side),
                "tokens_per_s": b["tokens"] / b["seconds"],
                "vs_direct_time_pct": 100 * (b["seconds"] - d["seconds"]) / d["seconds"],
                "vs_direct_tokens_per_s_pct": 100 * (d_rate / (b["tokens"] / b["seconds"]) - 1),
            }
            for side, b in best.items()
        },
    }
    print()
    print(
        "| texts x n | chunk | direct s (tokens/s) | Synthesize s (tokens/s) | overhead in time "
        "| overhead in tokens/s | Synthesize outside `generate` |"
    )
    print("|---|---:|---|---|---:|---:|---:|")
    outside = summary["outside_generate_s"]
    print(
        f"| {args.texts} x {args.n} | {args.chunk} | "
        + ", ".join(f"{r['seconds']:.2f}" for r in runs if r["side"] == "direct")
        + f" (best {d_rate:,.0f}) | "
        + ", ".join(f"{r['seconds']:.2f}" for r in runs if r["side"] == "synthesize")
        + f" (best {s_rate:,.0f}) | {summary['overhead_time_pct']:+.1f}% | "
        f"{summary['overhead_tokens_per_s_pct']:+.1f}% | "
        f"{min(outside):.2f}-{max(outside):.2f} s |"
    )
    md, ms = summary["median_direct_s"], summary["median_synthesize_s"]
    print(
        f"\nmedians: direct {md:.2f} s, Synthesize {ms:.2f} s: "
        f"overhead {100 * (ms - md) / md:+.1f}%"
    )
    if args.detail:
        print()
        print(
            "| side | seconds (each repeat) | best s | median s | best tokens/s "
            "| best vs best direct: time | tokens/s |"
        )
        print("|---|---|---:|---:|---:|---:|---:|")
        for side in sides:
            b = summary["by_side"][side]
            each = ", ".join(f"{r['seconds']:.2f}" for r in runs if r["side"] == side)
            print(
                f"| {side} | {each} | {b['best_s']:.2f} | {b['median_s']:.2f} | "
                f"{b['tokens_per_s']:,.0f} | "
                f"{b['vs_direct_time_pct']:+.1f}% | {b['vs_direct_tokens_per_s_pct']:+.1f}% |"
            )
    return {
        "engine": args.engine,
        "model": model,
        "texts": args.texts,
        "n": args.n,
        "chunk": args.chunk,
        "max_tokens": args.max_tokens,
        "load_and_warmup_s": load,
        "header": header,
        "runs": runs,
        "best": summary,
        "instant_engine": own,
    }


# --------------------------------------------------------------------------- cleaning


def source_texts(texts: Path, how: str, work: Path) -> Path:
    """The file registered as the ``source-texts`` benchmark: the texts whole (``full``), or
    cut to what each prompt shows, the first ``MAX_CHARS`` characters (``cut``)."""
    if how == "full":
        return texts
    rows = [json.loads(line) for line in texts.read_text().splitlines() if line.strip()]
    path = work / f"{texts.stem}-cut.jsonl"
    cut = [{**r, "text": r["text"][:MAX_CHARS].strip()} for r in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in cut))
    return path


def cleaning(args: argparse.Namespace, work: Path, how: str) -> dict[str, Any]:
    import curate
    from curate.decontam import bundled, register_benchmark
    from curate.generate import Request, Sampling
    from curate.responses import ResponsesTable
    from curate.synth import CACHE
    from curate.toy_teacher import ToyTeacher, _content, _math500

    texts = texts_file(args.clean_texts, work)
    register_benchmark("source-texts", source_texts(texts, how, work), problem="text")
    teacher = ToyTeacher(benchmark=0.1, repeat=0.1, copy=0.05)
    sampling = Sampling(temperature=1.0, top_p=1.0, max_tokens=args.max_tokens)
    stage = synthesizer(texts, teacher, args.n, sampling, args.chunk)
    recipe = curate.Recipe(
        "bench-cleaning",
        sources=[stage],
        stages=[
            curate.RequireGradable(),
            curate.ExactDedup(),
            curate.MinHashDedup(),
            curate.SemanticDedup(threshold=0.95),
            curate.Decontaminate(benchmarks=[*bundled(), "source-texts"]),
        ],
        seed=0,
    )
    out = work / f"cleaning-{how}"
    started = time.perf_counter()
    run = recipe.run(out, progress=False)
    seconds = time.perf_counter() - started

    # every output, with the outcome the teacher drew for it (its own rule, its own seed)
    stored = ResponsesTable(out / "cache" / CACHE).read()
    outcome: dict[tuple[str, int], str] = {}
    content: dict[str, str] = {}
    for row in stored.iter_rows(named=True):
        request = Request(json.loads(row["prompt"]), n=args.n, seed=row["seed"])
        rng = random.Random(request.sample_seed(int(row["sample"])))  # fresh runs: first=0
        outcome[(row["problem_id"], int(row["sample"]))] = teacher._outcome(rng)
        content[row["problem_id"]] = " ".join(_content(request.prompt).split())
    planted = Counter(outcome.values())

    def key(row_id: str) -> tuple[str, int]:
        """(text id, sample) of a row id ``<name>:<text id>:<model>:<sample>``."""
        parts = row_id.split(":")
        return ":".join(parts[1:-2]), int(parts[-1])

    rejects = run.sql("SELECT id, stage, reason, detail FROM rejects")
    removed_by = {
        r["id"]: (r["stage"], r["reason"], r["detail"]) for r in rejects.iter_rows(named=True)
    }
    ingest_rejects = rejects.filter(pl.col("stage") == "ingest")

    # ingest: the reason each sample got against the outcome planted
    agree: Counter[tuple[str, str]] = Counter()
    for r in ingest_rejects.iter_rows(named=True):
        agree[(outcome[key(r["id"])], r["reason"])] += 1
    kept_ingest = run.table("ingest").collect()
    for row_id in kept_ingest["id"].to_list():
        agree[(outcome[key(row_id)], "kept")] += 1
    ingest_table = []
    for name, reason in EXPECTED_REASON.items():
        got = {r: c for (o, r), c in agree.items() if o == name}
        ingest_table.append(
            {
                "outcome": name,
                "planted": planted.get(name, 0),
                "expected": reason or "kept",
                "got": got,
                "match": got.get(reason or "kept", 0) == planted.get(name, 0),
            }
        )
    reasons = dict(Counter(ingest_rejects["reason"].to_list()).most_common())

    # the truth among the ingest-kept rows, apart from the stages
    math500 = {" ".join(p.split()) for p, _ in _math500()}
    rows = kept_ingest.select("id", "problem", "text_hash").to_dicts()
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        flat = " ".join(r["problem"].split())
        text_id, _sample = key(r["id"])
        r["outcome"] = outcome[key(r["id"])]
        r["kind"] = (
            "benchmark" if flat in math500
            else "copy" if flat in content[text_id]
            else "other"
        )  # fmt: skip
        r["removed"] = removed_by.get(r["id"])
        groups[r["text_hash"]].append(i)
    favourites = {f"What is {a} + {b}?" for a, b in ((12, 34), (25, 25), (7, 8))}
    for members in groups.values():
        for rank, i in enumerate(members):
            rows[i]["dup_rank"] = rank
            rows[i]["dup_size"] = len(members)

    def tally(name: str, chosen: list[dict[str, Any]], note: str = "") -> dict[str, Any]:
        stages = Counter(r["removed"][0] for r in chosen if r["removed"])
        removed = sum(stages.values())
        return {
            "kind": name,
            "planted": len(chosen),
            "removed": removed,
            "by": dict(stages.most_common()),
            "left": len(chosen) - removed,
            "note": note,
        }

    # the content checks against the outcomes drawn again: they must name the same rows
    mismatched = sum(
        (r["kind"] in ("benchmark", "copy")) != (r["outcome"] in ("benchmark", "copy"))
        or (r["kind"] != "other" and r["kind"] != r["outcome"])
        for r in rows
    )
    bench = [r for r in rows if r["kind"] == "benchmark"]
    copies = [r for r in rows if r["kind"] == "copy"]
    rest = [r for r in rows if r["kind"] == "other"]
    extra = [r for r in rest if r["dup_rank"] > 0]  # beyond the first of an exact group
    firsts = [r for r in rest if r["dup_rank"] == 0]
    fav_extra = [r for r in extra if r["problem"] in favourites]
    other_extra = [r for r in extra if r["problem"] not in favourites]
    # ExactDedup keeps the first row of each group (ingest order); a group none of whose
    # rows is left was removed whole by a later stage (a near duplicate of another group)
    lost_groups = 0
    for members in groups.values():
        ms = [rows[i] for i in members if rows[i]["kind"] == "other"]
        if ms and all(m["removed"] for m in ms):
            lost_groups += 1
    table = [
        tally(
            "MATH-500 copies (planted `benchmark`)",
            bench,
            f"teacher drew {planted.get('benchmark', 0)}",
        ),
        tally(
            "copies of the source text (planted `copy`)",
            copies,
            f"teacher drew {planted.get('copy', 0)}",
        ),
        tally(
            "repeats of the favourites beyond the first (planted `repeat`)",
            fav_extra,
            f"teacher drew {planted.get('repeat', 0)} favourites",
        ),
        tally(
            "other exact duplicates beyond the first",
            other_extra,
            "same numbers from one text's samples or from two texts",
        ),
        tally("clean rows, first of their group", firsts, "must all stay"),
    ]
    by_id = {r["id"]: r["problem"] for r in rows}
    clean_removed = [
        {
            "id": r["id"],
            "problem": r["problem"],
            "stage": r["removed"][0],
            "reason": r["removed"][1],
            "detail": r["removed"][2],
            "keeper": by_id.get(r["removed"][2] or "", "?"),
        }
        for r in firsts
        if r["removed"]
    ]
    summary = {
        s.name: {"in": s.rows_in, "kept": s.kept, "rejected": s.rejected} for s in run.stages
    }
    print(
        f"cleaning: {args.clean_texts} texts x n={args.n}, ToyTeacher(benchmark=0.1, repeat=0.1, "
        f"copy=0.05), seed 0, source-texts benchmark {how}; {len(outcome)} outputs, "
        f"{kept_ingest.height} kept at ingest, "
        f"{run.manifest['stages'][-1]['kept']} at the end; {seconds:.1f} s"
    )
    print()
    print("| stage | rows in | kept | rejected |")
    print("|---|---:|---:|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['in']:,} | {s['kept']:,} | {_fmt(s['rejected'])} |")
    print()
    print("| kind | planted | removed | by stage | left over | note |")
    print("|---|---:|---:|---|---:|---|")
    for t in table:
        print(
            f"| {t['kind']} | {t['planted']} | {t['removed']} | {_fmt(t['by'])} | {t['left']} "
            f"| {t['note']} |"
        )
    print(
        f"\nexact groups whose every clean row was removed: {lost_groups}; rows whose content "
        f"check disagrees with the outcome drawn again: {mismatched}"
    )
    print()
    print("| teacher outcome | planted | expected at ingest | got |")
    print("|---|---:|---|---|")
    for t in ingest_table:
        print(f"| {t['outcome']} | {t['planted']} | {t['expected']} | {_fmt(t['got'])} |")
    print(f"\ningest rejects by reason: {_fmt(reasons)}")
    if clean_removed:
        print("\nclean rows removed:")
        for c in clean_removed:
            print(
                f"  {c['id']}: {c['problem']!r} by {c['stage']} ({c['reason']}: kept "
                f"{c['keeper']!r}, {c['detail']})"
            )
    return {
        "texts": args.clean_texts,
        "n": args.n,
        "source_texts": how,
        "seconds": seconds,
        "outputs": len(outcome),
        "planted": dict(planted),
        "stages": summary,
        "kinds": table,
        "ingest": ingest_table,
        "ingest_rejects": reasons,
        "clean_removed": clean_removed,
        "groups_lost": lost_groups,
        "kind_outcome_mismatches": mismatched,
    }


def _fmt(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["overhead", "cleaning", "both"], default="both")
    parser.add_argument("--engine", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--texts", type=int, default=512, help="texts for the overhead part")
    parser.add_argument("--clean-texts", type=int, default=160, help="texts for cleaning")
    parser.add_argument("--n", type=int, default=4, help="samples per text")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--chunk", type=int, default=256, help="Synthesize(chunk=...)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--detail",
        action="store_true",
        help="overhead: also time the backend alone on Synthesize's requests, in one call and "
        "in chunks, to tell where the overhead comes from",
    )
    parser.add_argument("--model", help="model directory (default: curate.toy.toy_model(600))")
    parser.add_argument(
        "--source-texts",
        choices=["full", "cut", "both"],
        default="both",
        help="cleaning: register the texts whole, or cut to what the prompt shows, as the "
        "source-texts benchmark (both: one run each)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if not TEXTS_PATH.is_file():
        raise SystemExit(f"{TEXTS_PATH} not found: run from the repository root")
    results: dict[str, Any] = {"machine": {"cores": os.cpu_count(), "node": platform.node()}}
    work = Path(tempfile.mkdtemp(prefix="bench-synthesis-"))
    try:
        if args.part in ("cleaning", "both"):
            hows = ["full", "cut"] if args.source_texts == "both" else [args.source_texts]
            results["cleaning"] = {}
            for how in hows:
                results["cleaning"][how] = cleaning(args, work, how)
                print()
        if args.part in ("overhead", "both"):
            results["overhead"] = overhead(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


if __name__ == "__main__":  # vLLM starts worker processes: the entry point must be guarded
    main()
