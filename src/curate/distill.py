r"""The `Distill` stage: sample responses from one or more models, verify every one.

For each problem that reaches it, each generator and ``n`` samples, `Distill` builds the
prompt, generates, and grades the whole response against the gold answer with
`curate.verify` (which reads the final answer: after ``</think>``, the final boxes, a
final-answer sentence, the last math or number; ``grading=`` sets its options). Every
response is a row
of the run's **responses table** (`curate.responses`, ``ctx.responses``),
keyed by (``problem_id``, ``model``, ``sample``, ``gen_key``), where ``gen_key`` digests
what decides the text: the backend's `~curate.generate.Generator.describe`, the sampling
parameters and the prompt template. That table is the cache: a re-run, or a run after a
crash, generates only the keys it does not have (and tries failed generations again).
Responses are written in parts of ``chunk`` problems, each part atomically (temporary
file, then rename), so a killed run loses at most the parts in flight and never leaves a
half-written file.

Verification runs in the checker's process pool on a background thread while the next
chunk generates, so it never holds generation up. A response cut at ``max_tokens``
(``finish_reason="length"``) is recorded and never counted as correct; a failed generation
(``"error"``, with the backend's reason) is recorded and left out of pass rates; a response
with no extractable answer is wrong with verdict ``no_answer``. A gold answer the grader
cannot parse gives ``gold_unparseable`` with a null ``score``/``correct``: such responses
are left out of pass rates, not counted wrong. A check past its time limit or one that
failed (``timeout``, ``error``; the prediction may be what made it fail) counts as wrong
and is checked again when the stage runs again.

Each stored response records the grader that judged it (``grader``: a digest of the grading
options and `curate.verification.verdict.GRADER_VERSION`). When the grader changes, a
re-run re-grades the stored texts (``regraded`` in the manifest) and generates nothing.

Each problem row gets ``samples``: one struct per response (model, sample, score, correct,
verdict, finish_reason, n_tokens, extracted_answer, gen_key), ordered by generator then
sample, which
`curate.grade.Grade` turns into pass rates. The texts stay in the responses table.

>>> from curate.generate import Sampling
>>> prompt_for(DEFAULT_TEMPLATE, "What is $1+1$?")
"What is $1+1$? Let's think step by step and output the final answer within \\boxed{}."
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from curate.errors import ConfigError
from curate.generate.base import Completion, Generator, Prompt, Request, Sampling, framed
from curate.generate.jobs import Task, done_keys, missing, run_tasks, settings_key
from curate.responses import ResponsesTable, bucket_count, one_per_key, routed
from curate.stage import Stage, StageContext
from curate.verification import DEFAULT_TIMEOUT, VerifyOptions, verify_many
from curate.verification.verdict import GRADER_VERSION

DEFAULT_TEMPLATE = (
    "{problem} Let's think step by step and output the final answer within \\boxed{}."
)
"""DeepScaleR's prompt: the problem, then the instruction to box the final answer."""

_SAMPLE_FIELDS = (
    "model", "sample", "score", "correct", "verdict", "finish_reason", "n_tokens",
    "extracted_answer", "gen_key",
)  # fmt: skip


def prompt_for(template: str, problem: str) -> str:
    """The user message for ``problem``: ``template`` with ``{problem}`` replaced (only that
    placeholder; other braces, such as ``\\boxed{}``, stay as they are)."""
    return template.replace("{problem}", problem)


@dataclass(frozen=True)
class Distill(Stage):
    r"""Generate ``n`` responses per problem with each generator, and verify them.

    ``generators``: one backend or several (`curate.generate`: vLLM, an OpenAI-compatible
    server, transformers), run one after the other; each is closed when its work is done, so
    several models fit on one GPU in turn. ``template`` builds the user message
    (``{problem}`` is replaced; default DeepScaleR's "Let's think step by step and output
    the final answer within \boxed{}."), ``system`` an optional system message, ``chat=False``
    sends the templated text as a raw completion prompt. ``grading`` (`curate.VerifyOptions`)
    says how responses are read and compared (``think="require"`` for models whose template
    opens ``<think>`` in the prompt; tolerances, percent, ...). Seeds: each request's seed derives
    from the recipe seed, the ``gen_key``, the problem id and its first sample, so a run is
    repeatable wherever the engine is. ``chunk`` problems go to the engine per call (and make
    one cache part); larger chunks batch better, smaller ones lose less to a crash.

    Stats in the manifest, per model: responses generated and reused from the cache, tokens,
    generation seconds and tokens/s, truncated, failed, correct.

    **Batches.** Problems go through in batches of `batch_rows`, each generator in turn
    per batch (a local model is loaded once per batch and closed after it). On
    ``engine="ray"`` batches run on a pool of actors, each asking for the GPUs its largest
    local model needs (vLLM: ``tensor_parallel_size``), so several GPUs or machines
    generate at once. The ``samples`` of every problem are gathered at the end from the
    responses table, without the texts.
    """

    # 2: whole responses graded by curate.verify, with re-grading; a new grader re-runs it
    # 3: each entry of samples carries its gen_key (the export joins on exact keys)
    version: ClassVar[str] = f"3+grader{GRADER_VERSION}"
    batch_rows: ClassVar[int] = 16_384  # problems per batch: the unit of parallel work
    keeps_state: ClassVar[bool] = True  # on Ray: actors (with GPUs for local models)

    generators: Generator | tuple[Generator, ...]
    n: int = 4
    sampling: Sampling = field(default_factory=Sampling)
    template: str = DEFAULT_TEMPLATE
    system: str | None = None
    chat: bool = True
    grading: VerifyOptions = field(default_factory=VerifyOptions)
    chunk: int = 256
    verify_timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        gens = self.generators if isinstance(self.generators, tuple) else (self.generators,)
        if isinstance(self.generators, list):
            gens = tuple(self.generators)
        object.__setattr__(self, "generators", gens)
        for g in gens:
            if not isinstance(g, Generator):
                raise ConfigError(f"Distill: {g!r} is not a Generator (see curate.generate)")
        models = [g.model for g in gens]
        if not gens or len(set(models)) != len(models):
            raise ConfigError(
                f"Distill: expected one or more generators with distinct model labels, got "
                f"{models}; give each a label= to tell them apart"
            )
        if not (isinstance(self.n, int) and self.n >= 1) or self.chunk < 1:
            raise ConfigError(f"Distill(n={self.n}, chunk={self.chunk}): expected integers >= 1")
        if "{problem}" not in self.template:
            raise ConfigError(f"Distill(template={self.template!r}): it has no {{problem}}")
        if not isinstance(self.grading, VerifyOptions):
            raise ConfigError(
                f"Distill(grading={self.grading!r}): expected curate.VerifyOptions(...)"
            )
        # each Ray actor asks for the GPUs of its largest local model (they run in turn)
        object.__setattr__(self, "num_gpus", float(max(_gpus(g) for g in gens)))

    def gen_key(self, generator: Generator) -> str:
        """The cache key part that says which settings produced a response."""
        return settings_key(
            generator.describe(), asdict(self.sampling), self.template, self.system, self.chat
        )

    def prompt(self, problem: str) -> Prompt:
        return framed(prompt_for(self.template, problem), system=self.system, chat=self.chat)

    def reads(self) -> tuple[str, ...]:
        return ("problem", "answer")

    def global_reads(self) -> tuple[str, ...]:
        return ("answer",)

    def adds(self) -> tuple[str, ...]:
        return ("samples",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Generate and verify what the responses table lacks for this batch's problems,
        one generator after the other (each closed when its share is done)."""
        frame = batch.select("id", "problem", "answer")
        out = ctx.responses
        have = (
            out.scan(pl.col("problem_id").is_in(frame["id"].implode()))
            .select("problem_id", "model", "sample", "gen_key", "finish_reason")
            .collect()
        )
        for generator in self.generators:  # type: ignore[union-attr]
            key = self.gen_key(generator)
            stats = _Stats()
            done = done_keys(have, generator.model, key)
            try:
                _Job(self, generator, key, ctx, out, stats).run(frame, done)
            finally:
                generator.close()
            ctx.stats[generator.model] = asdict(stats)  # summed over the batches
        return frame.select("id")

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        """Re-grade what another grader judged, then each problem's ``samples`` (read from
        the responses table without the texts)."""
        out = ctx.responses
        out.clean()  # parts being written when an earlier run was killed
        wanted = []
        for generator in self.generators:  # type: ignore[union-attr]
            wanted.append((generator.model, self.gen_key(generator)))
            ctx.stats[generator.model] = _Stats(**ctx.stats.get(generator.model, {})).as_dict()
        regraded = _regrade(self, out, table, {key for _, key in wanted}, ctx.workers)
        if regraded:
            ctx.stats["regraded"] = regraded
        keys = [key for _, key in wanted]
        samples = _samples(out, keys, table["id"], wanted, buckets=_buckets(out, keys))
        return table.select("id").with_columns(samples)


def _gpus(generator: Generator) -> int:
    """GPUs a generator's model needs where it runs (vLLM: its tensor-parallel size; a
    transformers model on ``cuda``: one; a server: none)."""
    if hasattr(generator, "tensor_parallel_size"):
        return int(generator.tensor_parallel_size)
    return int(str(getattr(generator, "device", "cpu")).startswith("cuda"))


@dataclass
class _Stats:
    generated: int = 0
    cached: int = 0
    tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0
    failed: int = 0
    correct: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["tokens_per_second"] = round(self.tokens / self.seconds, 1) if self.seconds else None
        return out


@dataclass
class _Job:
    """One generator's share of a `Distill` stage: generate what is missing, chunk by chunk."""

    stage: Distill
    generator: Generator
    key: str
    ctx: StageContext
    out: ResponsesTable
    stats: _Stats

    def run(self, frame: pl.DataFrame, done: set[str]) -> None:
        stage = self.stage
        tasks, self.stats.cached = missing(
            ((pid, stage.prompt(problem), gold) for pid, problem, gold in frame.iter_rows()),
            n=stage.n,
            done=done,
        )
        self.stats.seconds += run_tasks(
            self.generator,
            stage.sampling,
            tasks,
            gen_key=self.key,
            seed=self.ctx.seed,
            chunk=stage.chunk,
            finish=self._finish,
            label=self.ctx.stage_name,
            progress=self.ctx.progress,
        )

    def _finish(
        self, part: list[Task], requests: list[Request], results: list[list[Completion]]
    ) -> None:
        """Verify one chunk's responses and write them as one cache part."""
        stage, sampling = self.stage, self.stage.sampling
        rows: list[dict[str, Any]] = []
        for task, request, completions in zip(part, requests, results, strict=True):
            pid, gold, first = task.id, task.data, task.first
            prompt = json.dumps(request.prompt, ensure_ascii=False)
            for i, c in enumerate(completions):
                rows.append(
                    {
                        "problem_id": pid, "model": self.generator.model, "sample": first + i,
                        "gen_key": self.key, "prompt": prompt, "text": c.text,
                        "finish_reason": c.finish_reason, "n_tokens": c.n_tokens,
                        "error": c.error, "gold": gold,
                        "temperature": sampling.temperature, "top_p": sampling.top_p,
                        "max_tokens": sampling.max_tokens, "seed": request.seed,
                    }
                )  # fmt: skip
        _judge(rows, stage, self.ctx.workers)
        for r in rows:
            self.stats.generated += 1
            self.stats.tokens += r["n_tokens"] or 0
            self.stats.truncated += r["finish_reason"] == "length"
            self.stats.failed += r["finish_reason"] == "error"
            self.stats.correct += bool(r["correct"])
        self.out.write(rows, self.out.part_of(self.key, self.generator.model, rows))


_UNCHECKED = ("gold_unparseable",)  # the gold's fault, not the response's: left out
_RECHECK = ("timeout", "error")  # checked again when the stage runs again
REGRADE_BATCH = 16_384  # responses graded and rewritten at a time: memory stays flat


def grader_key(options: VerifyOptions) -> str:
    """What the ``grader`` column of a response judged under ``options`` holds."""
    return hashlib.blake2b(options.key().encode(), digest_size=8).hexdigest()


def _judge(rows: list[dict[str, Any]], stage: Distill, workers: int | None) -> None:
    """Fill the judged columns (extracted_answer, verdict, verdict_detail, score, correct,
    grader) of each response row (with its ``gold``): the whole response goes to
    `curate.verify`, which reads its final answer."""
    grader = grader_key(stage.grading)
    checks = []
    for r in rows:
        r["grader"], r["extracted_answer"], r["verdict_detail"] = grader, None, None
        if r["finish_reason"] == "error":
            r["verdict"] = "generation_error"
        elif r["finish_reason"] == "length":
            r["verdict"] = "truncated"
        elif r["gold"] is None or not str(r["gold"]).strip():
            r["verdict"] = "no_gold"
        else:
            checks.append(r)
            continue
        no_gold = r["verdict"] == "no_gold"
        r["correct"], r["score"] = (None, None) if no_gold else (False, 0.0)
    verdicts = verify_many(
        [(r["gold"], r["text"]) for r in checks],
        options=stage.grading,
        timeout=stage.verify_timeout,
        workers=workers,
    )
    for r, v in zip(checks, verdicts, strict=True):
        r["verdict"], r["extracted_answer"] = v.status, v.pred
        r["verdict_detail"] = f"{v.reason}: {v.detail}" if v.detail else v.reason
        if v.status in _UNCHECKED:  # left out of pass rates, not counted wrong
            r["correct"], r["score"] = None, None
        else:
            r["correct"], r["score"] = v.equivalent, float(v.equivalent)


def _regrade(
    stage: Distill, out: ResponsesTable, frame: pl.DataFrame, keys: set[str], workers: int | None
) -> int:
    """Grade again the stored responses of ``keys`` that another grader judged, or whose
    check timed out or failed (the grader may do better now), `REGRADE_BATCH` at a time;
    each part with such rows is rewritten whole (atomically). A part whose verdicts are all
    current is not read past its grader and verdict columns. Returns how many responses
    were re-graded."""
    grader = grader_key(stage.grading)
    gold = dict(zip(frame["id"].to_list(), frame["answer"].to_list(), strict=True))
    parts: list[tuple[Path, list[dict[str, Any]]]] = []
    stale: list[dict[str, Any]] = []
    done = 0

    def flush() -> int:
        if stale:
            _judge(stale, stage, workers)
        for part, rows in parts:
            out.write(rows, part)
        n = len(stale)
        parts.clear()
        stale.clear()
        return n

    for part in out.parts():
        if out.gen_key_of(part) not in keys:
            continue
        if "grader" in pl.read_parquet_schema(part):
            judged = pl.read_parquet(part, columns=["grader", "verdict"])
            if (judged["grader"].eq_missing(grader) & ~judged["verdict"].is_in(_RECHECK)).all():
                continue
        rows = pl.read_parquet(part).to_dicts()
        mine = [  # responses of problems no longer in the stage's input stay as they are
            r
            for r in rows
            if (r.get("grader") != grader or r["verdict"] in _RECHECK) and r["problem_id"] in gold
        ]
        for r in mine:
            r["gold"] = gold[r["problem_id"]]
        if mine:
            parts.append((part, rows))
            stale += mine
        if len(stale) >= REGRADE_BATCH:
            done += flush()
    return done + flush()


SAMPLES_BUCKET = 250_000
"""Responses per bucket of `_samples` (the table's compact columns are read once and routed
to bucket files: more buckets hold less at once)."""


def _buckets(out: ResponsesTable, keys: list[str]) -> int:
    """How many buckets `_samples` gathers the responses of ``keys`` in: one per
    `SAMPLES_BUCKET` stored rows (from the parts' metadata), at least one."""
    return bucket_count([p for p in out.parts() if out.gen_key_of(p) in keys], SAMPLES_BUCKET)


def _samples(
    out: ResponsesTable,
    keys: list[str],
    ids: pl.Series,
    wanted: list[tuple[str, str]],
    *,
    buckets: int = 1,
) -> pl.Series:
    """The ``samples`` list column, in the order of ``ids``, from the stored responses of
    ``keys`` (one per key: `one_per_key`).

    Gathered in ``buckets`` buckets of a hash of the problem id, one at a time, so that
    memory holds one bucket's responses (and the structs gathered so far), not all of
    them: the parts' compact columns are read once and routed to a temporary file per
    bucket (`curate.responses.routed`, beside the parts). A key's copies share its
    problem, so one row per key in each bucket is one row per key overall, and each
    problem's structs come from one bucket; the column is the same for any number of
    buckets.
    """
    order = pl.LazyFrame({"model": [m for m, _ in wanted], "gen_key": [k for _, k in wanted]})
    order = order.with_row_index("_model_order")

    def gathered(responses: pl.LazyFrame) -> pl.DataFrame:
        return (
            responses.select("problem_id", *_SAMPLE_FIELDS)
            .join(order, on=["model", "gen_key"])
            .sort("problem_id", "_model_order", "sample")
            .group_by("problem_id", maintain_order=True)
            .agg(pl.struct(*_SAMPLE_FIELDS).alias("samples"))
            .collect()
        )

    mine = pl.col("gen_key").is_in(keys)
    if buckets == 1:
        picked = [gathered(out.scan(mine))]
    else:
        columns = ["problem_id", *_SAMPLE_FIELDS]
        frames = out.frames(columns, mine)
        schema = out.frames_schema(columns)
        with routed(frames, key="problem_id", count=buckets, schema=schema, under=out.path) as on:
            picked = [gathered(one_per_key(on.read(b).lazy())) for b in range(buckets)]
    ordered = pl.DataFrame({"problem_id": ids})
    joined = ordered.join(pl.concat(picked), on="problem_id", how="left", maintain_order="left")
    return joined["samples"]
