r"""`Synthesize`: new problems written by a model from texts (JiuZhang3.0's synthesis).

A `Synthesize` is a source of a recipe: at ingest it takes texts from a documents source
(`curate.read(..., kind="documents")`), builds one prompt per text (`curate.synth.Prompts`:
an education stage drawn per text, the text cut to its first ``max_chars``), samples ``n``
outputs per text from each generator, and reads each output into a problem, its solution
and its final answer (`curate.synth.parse`). Every output is a row of the problems table:

- ``id`` ``<name>:<text id>:<model>:<sample>``; ``source`` the synthesizer's ``name``;
  ``level`` null (a number; the education stage is in ``meta``); ``answer`` the last
  ``\boxed{}`` of the solution;
- ``meta`` its lineage: ``text_id``, ``text_source``, ``url``, ``title``, ``model``,
  ``sample``, ``education_stage``, ``prompt_version``, ``gen_key``, ``finish_reason``,
  ``n_tokens`` (and, for a rejected output, the ``output`` itself);
- an output that cannot be used is rejected at ingest with its reason (``empty``,
  ``truncated``, ``refusal``, ``no_answer``, ...), never a crash.

Outputs are cached in ``RUN/cache/synthesis`` (the responses-table layout, keyed by text
id, model, sample and a ``gen_key`` of the backend, sampling and prompt wording), written
in parts of ``chunk`` texts: a re-run, or a run after a crash, generates only what is
missing, and re-reads every stored output with the current parser. The manifest's entry
for the source counts, per model, the calls, samples generated and reused, tokens (prompt
tokens estimated as characters / 4 where the backend does not say), seconds, and the
estimated cost from ``prices``; and the outputs by status.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
import pyarrow.parquet as pq

from curate.errors import ConfigError
from curate.generate.base import (
    Completion,
    Generator,
    Prompt,
    Request,
    Sampling,
    derive_seed,
    framed,
)
from curate.generate.jobs import Task, done_keys, missing, run_tasks, settings_key
from curate.io import Source
from curate.responses import RESPONSE_SCHEMA, ResponsesTable
from curate.schema import PROBLEM_DTYPES
from curate.stage import DETAIL, REASON, GeneratedSource, StageContext
from curate.synth.parse import REASONS, parse
from curate.synth.prompts import Prompts
from curate.text import text_hash

_NAME_OK = re.compile(r"[A-Za-z0-9_.\-/]+")
CACHE = "synthesis"
"""The folder of the synthesis cache inside ``RUN/cache``."""

BATCH_ROWS = 10_000


@dataclass(frozen=True, repr=False)
class Synthesize(GeneratedSource):
    r"""New problems from texts: ``n`` outputs per text from each generator (see the
    module docstring), as a source of a recipe.

    ``texts``: a documents source. Which texts: all, or only ``ids``, less ``exclude``,
    then a seeded random ``sample`` of that many (in file order). ``generators``: one
    backend or several (`curate.generate`), each closed when its work is done. ``prompts``
    sets the wording (`curate.synth.Prompts`); ``system`` an optional system message;
    ``chat=False`` sends the prompt as a raw completion. ``sampling`` defaults to
    JiuZhang3.0's temperature 1.0. ``language="en"`` rejects outputs not mostly in Latin
    script. ``prices``: USD per million (prompt, completion) tokens, per model label, for the
    cost estimate in the manifest.

    >>> import curate, tempfile, pathlib
    >>> from curate.synth.source import Synthesize
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "pages.jsonl").write_text('{"text": "Two plus two is four."}\n')
    >>> class Teacher:  # any curate.generate.Generator
    ...     model = "teacher"
    ...     def describe(self): return {"kind": "doc"}
    ...     def generate(self, requests, sampling):
    ...         out = "What is 2+2?\nSolution: 2+2=4, so \\boxed{4}."
    ...         return [[curate.generate.Completion(out, "stop", 12)] * r.n for r in requests]
    ...     def close(self): pass
    >>> texts = curate.read(d / "pages.jsonl", kind="documents")
    >>> run = curate.Recipe("jz", [Synthesize(texts, Teacher())]).run(d / "run")
    >>> run.sql("SELECT problem, answer, json_extract_string(meta, '$.text_id') "
    ...         "FROM problems").rows()
    [('What is 2+2?', '4', 'pages:0:...')]
    """

    version: ClassVar[str] = "1"

    texts: Source
    generators: Generator | tuple[Generator, ...]
    name: str = "synthetic"
    n: int = 1
    ids: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    sample: int | None = None
    prompts: Prompts = field(default_factory=Prompts)
    sampling: Sampling = field(
        default_factory=lambda: Sampling(temperature=1.0, top_p=1.0, max_tokens=2048)
    )
    system: str | None = None
    chat: bool = True
    language: Literal["en", "any"] = "en"
    chunk: int = 256
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    license: str | None = None

    def __post_init__(self) -> None:
        gens = self.generators
        gens = tuple(gens) if isinstance(gens, (list, tuple)) else (gens,)
        object.__setattr__(self, "generators", gens)
        for g in gens:
            if not isinstance(g, Generator):
                raise ConfigError(f"Synthesize: {g!r} is not a Generator (see curate.generate)")
        models = [g.model for g in gens]
        if not gens or len(set(models)) != len(models):
            raise ConfigError(
                f"Synthesize: expected one or more generators with distinct model labels, got "
                f"{models}; give each a label= to tell them apart"
            )
        if not isinstance(self.texts, Source) or self.texts.kind != "documents":
            raise ConfigError(
                f"Synthesize(texts={self.texts!r}): expected a documents source, "
                "curate.read(PATH, kind='documents')"
            )
        if not (isinstance(self.n, int) and self.n >= 1) or self.chunk < 1:
            raise ConfigError(f"Synthesize(n={self.n}, chunk={self.chunk}): expected >= 1")
        if self.sample is not None and self.sample < 1:
            raise ConfigError(f"Synthesize(sample={self.sample}): expected >= 1 or None")
        if self.language not in ("en", "any"):
            raise ConfigError(f"Synthesize(language={self.language!r}): expected 'en' or 'any'")
        for label in self.prices:
            if label not in models:
                raise ConfigError(
                    f"Synthesize(prices=...): no generator is labelled {label!r}; "
                    f"the labels are {models}"
                )
        for key in ("ids", "exclude"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, tuple(value))
        object.__setattr__(self, "prices", dict(self.prices))
        if self.license is None:
            object.__setattr__(self, "license", self.texts.license)
        if not _NAME_OK.fullmatch(self.name):
            raise ConfigError(
                f"Synthesize(name={self.name!r}): a source name may only hold letters, digits "
                "and _ . - /"
            )

    @property
    def path(self) -> str:
        return self.texts.location

    def __repr__(self) -> str:
        models = [g.model for g in self.generators]  # type: ignore[union-attr]
        return f"Synthesize({self.name!r}, texts={self.texts.name!r}, models={models}, n={self.n})"

    def gen_key(self, generator: Generator) -> str:
        """The cache key part that says which settings produced an output."""
        return settings_key(
            "synthesize",
            generator.describe(),
            asdict(self.sampling),
            self.prompts.describe(),
            self.system,
            self.chat,
        )

    def fingerprint(self) -> str:
        """Digest of the texts, which of them, the models, settings and wording (the seed is
        added by the run)."""
        blob = json.dumps(
            [
                "synthesize",
                self.version,
                self.texts.fingerprint(),
                self.name,
                self.n,
                self.ids,
                self.exclude,
                self.sample,
                [self.gen_key(g) for g in self.generators],  # type: ignore[union-attr]
                [g.model for g in self.generators],  # type: ignore[union-attr]
                self.prompts.describe(),
                self.language,
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.blake2b(blob.encode(), digest_size=20).hexdigest()

    def prompt(self, text: str, stage: str) -> Prompt:
        """What is sent for ``text`` at education ``stage``."""
        return framed(self.prompts.build(text, stage), system=self.system, chat=self.chat)

    def chosen(self, seed: int) -> pl.DataFrame:
        """The texts this synthesizer writes from (id, text, url, title, source), in file
        order: non-empty, in ``ids`` when given, not in ``exclude``, then ``sample`` of them."""
        docs = self.texts.frame().select("id", "text", "url", "title", "source")
        docs = docs.filter(pl.col("text").str.strip_chars() != "")
        if self.ids is not None:
            unknown = sorted(set(self.ids) - set(docs["id"].to_list()))
            if unknown:
                raise ConfigError(
                    f"Synthesize(ids=...): {len(unknown)} ids are not non-empty texts of "
                    f"{self.texts.name}, e.g. {unknown[:3]}"
                )
            docs = docs.filter(pl.col("id").is_in(self.ids))
        if self.exclude:
            docs = docs.filter(~pl.col("id").is_in(self.exclude))
        if self.sample is not None and self.sample < docs.height:
            rng = random.Random(derive_seed(seed, "synthesize-sample", self.name))
            docs = docs[sorted(rng.sample(range(docs.height), self.sample))]
        return docs

    def batches(self, ctx: StageContext) -> Iterator[pl.DataFrame]:
        docs = self.chosen(ctx.seed)
        stages = [self.prompts.stage_for(i, ctx.seed) for i in docs["id"].to_list()]
        prompts = [self.prompt(t, s) for t, s in zip(docs["text"], stages, strict=True)]
        cache = ResponsesTable(ctx.cache_dir / CACHE)
        cache.clean()
        stored = _keys(cache.parts())
        ctx.stats["texts"] = docs.height
        keys: list[tuple[str, str]] = []
        for generator in self.generators:  # type: ignore[union-attr]
            key = self.gen_key(generator)
            keys.append((generator.model, key))
            tasks, cached = missing(
                zip(docs["id"].to_list(), prompts, strict=True),
                n=self.n,
                done=done_keys(stored, generator.model, key),
            )
            stats = _Stats(cached=cached, price=self.prices.get(generator.model))
            job = _Writer(self, generator, key, cache, stats)
            try:
                stats.seconds = run_tasks(
                    generator,
                    self.sampling,
                    tasks,
                    gen_key=key,
                    seed=ctx.seed,
                    chunk=self.chunk,
                    finish=job.finish,
                    label=ctx.stage_name,
                    progress=ctx.progress,
                )
            finally:
                generator.close()
            ctx.stats[generator.model] = stats.as_dict()
        scratch = ctx.cache_dir / f".{CACHE}-{self.name}-sorted.parquet"
        outputs = _outputs(cache.parts(), keys, docs["id"], scratch)
        yield from self._rows(docs, stages, outputs, ctx)

    def _rows(
        self,
        docs: pl.DataFrame,
        stages: list[str],
        outputs: Iterator[dict[str, Any]],
        ctx: StageContext,
    ) -> Iterator[pl.DataFrame]:
        """One problem row per stored output, in text, model, sample order."""
        info = {
            d["id"]: (d, stage) for d, stage in zip(docs.iter_rows(named=True), stages, strict=True)
        }
        counts: Counter[str] = Counter()
        rows: list[dict[str, Any]] = []
        version = self.prompts.version
        for out in outputs:
            doc, stage = info[out["problem_id"]]
            got = parse(
                out["text"], out["finish_reason"], error=out["error"], language=self.language
            )
            counts[got.status] += 1
            meta: dict[str, Any] = {
                "text_id": doc["id"], "text_source": doc["source"], "url": doc["url"],
                "title": doc["title"], "model": out["model"], "sample": out["sample"],
                "education_stage": stage, "prompt_version": version,
                "gen_key": out["gen_key"], "finish_reason": out["finish_reason"],
                "n_tokens": out["n_tokens"],
            }  # fmt: skip
            if got.status != "ok":
                meta["output"] = out["text"]
            rows.append(
                {
                    "id": f"{self.name}:{doc['id']}:{out['model']}:{out['sample']}",
                    "text_hash": text_hash(got.problem),
                    "problem": got.problem,
                    "answer": got.answer,
                    "solution": got.solution,
                    "source": self.name,
                    "subject": None,
                    "level": None,
                    "meta": json.dumps(meta, ensure_ascii=False),
                    REASON: None if got.status == "ok" else got.status,
                    DETAIL: got.detail,
                }
            )
            if len(rows) >= BATCH_ROWS:
                yield _frame(rows)
                rows = []
        ctx.stats["outputs"] = {s: counts[s] for s in ("ok", *REASONS) if counts[s]}
        if rows or not counts:
            yield _frame(rows)


_SCHEMA = {**PROBLEM_DTYPES, REASON: pl.String, DETAIL: pl.String}


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_SCHEMA)


_KEY_COLUMNS = ("problem_id", "model", "sample", "gen_key", "finish_reason")
_OUTPUT_COLUMNS = (*_KEY_COLUMNS, "text", "n_tokens", "error")


def _keys(parts: list[Path]) -> pl.DataFrame:
    """The key columns of every stored output (what is done), without the texts."""
    if not parts:
        return pl.DataFrame(schema={c: RESPONSE_SCHEMA[c] for c in _KEY_COLUMNS})
    return pl.scan_parquet(parts).select(_KEY_COLUMNS).collect()


def _outputs(
    parts: list[Path], keys: list[tuple[str, str]], ids: pl.Series, scratch: Path
) -> Iterator[dict[str, Any]]:
    """The stored outputs of (model, gen_key) ``keys`` for text ``ids``, one per key (a key
    stored twice, after a failed try, keeps the one that did not fail), ordered by text,
    then model (in ``keys`` order), then sample. Sorted on disk and read back in batches, so
    memory holds a batch of outputs, not all of them."""
    if not parts:
        return
    order = pl.LazyFrame(
        {"model": [m for m, _ in keys], "gen_key": [k for _, k in keys]}
    ).with_row_index("_model")
    texts = pl.LazyFrame({"problem_id": ids}).with_row_index("_text")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    (
        pl.scan_parquet(parts)
        .select(_OUTPUT_COLUMNS)
        .join(order, on=["model", "gen_key"])
        .join(texts, on="problem_id")
        .with_columns((pl.col("finish_reason") == "error").alias("_failed"))
        .sort("_text", "_model", "sample", "_failed", maintain_order=True)
        .select(_OUTPUT_COLUMNS)
        .sink_parquet(scratch)
    )
    try:
        last = None
        for batch in pq.ParquetFile(scratch).iter_batches(batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                key = (row["problem_id"], row["model"], row["sample"])
                if key != last:
                    last = key
                    yield row
    finally:
        scratch.unlink(missing_ok=True)


@dataclass
class _Stats:
    cached: int = 0
    price: tuple[float, float] | None = None
    calls: int = 0
    generated: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self.calls,
            "generated": self.generated,
            "cached": self.cached,
            "failed": self.failed,
            "prompt_tokens_estimated": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_second": (
                round(self.completion_tokens / self.seconds, 1) if self.seconds else None
            ),
        }
        if self.price is not None:
            cost = self.prompt_tokens * self.price[0] + self.completion_tokens * self.price[1]
            out["estimated_cost_usd"] = round(cost / 1e6, 4)
        return out


@dataclass
class _Writer:
    """Writes one generator's outputs, chunk by chunk, into the synthesis cache."""

    stage: Synthesize
    generator: Generator
    key: str
    cache: ResponsesTable
    stats: _Stats

    def finish(
        self, part: list[Task], requests: list[Request], results: list[list[Completion]]
    ) -> None:
        sampling, lang = self.stage.sampling, self.stage.language
        rows: list[dict[str, Any]] = []
        for task, request, completions in zip(part, requests, results, strict=True):
            prompt = json.dumps(request.prompt, ensure_ascii=False)
            self.stats.calls += 1
            self.stats.prompt_tokens += len(prompt) // 4  # billed once per request
            for i, c in enumerate(completions):
                got = parse(c.text, c.finish_reason, error=c.error, language=lang)
                self.stats.generated += 1
                self.stats.completion_tokens += c.n_tokens or 0
                self.stats.failed += c.finish_reason == "error"
                rows.append(
                    {
                        "problem_id": task.id, "model": self.generator.model,
                        "sample": task.first + i, "gen_key": self.key, "prompt": prompt,
                        "text": c.text, "finish_reason": c.finish_reason,
                        "n_tokens": c.n_tokens, "error": c.error,
                        "extracted_answer": got.answer, "verdict": got.status,
                        "verdict_detail": got.detail, "temperature": sampling.temperature,
                        "top_p": sampling.top_p, "max_tokens": sampling.max_tokens,
                        "seed": request.seed,
                    }
                )  # fmt: skip
        self.cache.write(rows, self.cache.part_of(self.key, self.generator.model, rows))


def kd_pairs(run: Any, *, source: str | Sequence[str] | None = None) -> pl.DataFrame:
    """The (``prompt``, ``completion``) pairs that teach a model to synthesize: for each
    synthesized problem the run kept (of ``source``, default every synthesized source), the
    prompt it came from (the user message) and its problem and solution written in the form
    the prompt asks for (`render`), with ``id`` and ``text_id``."""
    from curate.run import Run

    run = run if isinstance(run, Run) else Run(run)
    kept = run.sql("SELECT id, source, problem, solution, meta FROM problems")
    if source is not None:
        kept = kept.filter(pl.col("source").is_in([source] if isinstance(source, str) else source))
    meta = kept["meta"].str.json_decode(
        pl.Struct(
            {"text_id": pl.String, "model": pl.String, "sample": pl.Int64, "gen_key": pl.String}
        )
    )
    kept = kept.with_columns(meta.struct.unnest()).filter(pl.col("gen_key").is_not_null())
    parts = ResponsesTable(Path(run.path) / "cache" / CACHE).parts()
    stored = (
        pl.scan_parquet(parts)
        .filter(pl.col("finish_reason") != "error")
        .select(pl.col("problem_id").alias("text_id"), "model", "sample", "gen_key", "prompt")
        .unique(["text_id", "model", "sample", "gen_key"], keep="first", maintain_order=True)
        .with_columns(pl.col("sample").cast(pl.Int64))
        .collect()
        if parts
        else pl.DataFrame(
            schema={"text_id": pl.String, "model": pl.String, "sample": pl.Int64,
                    "gen_key": pl.String, "prompt": pl.String}
        )
    )  # fmt: skip
    joined = kept.join(stored, on=["text_id", "model", "sample", "gen_key"], how="left")
    prompts = [_user(p) for p in joined["prompt"].to_list()]
    completions = [render(p, s) for p, s in zip(joined["problem"], joined["solution"], strict=True)]
    return pl.DataFrame(
        {
            "id": joined["id"],
            "text_id": joined["text_id"],
            "prompt": prompts,
            "completion": completions,
        }
    )


def render(problem: str, solution: str | None) -> str:
    """A problem and its solution in the form the synthesis prompt asks for."""
    return f"New problem: {problem}\nSolution: {solution or ''}"


def _user(prompt: str | None) -> str | None:
    if prompt is None:
        return None
    value = json.loads(prompt)
    if isinstance(value, str):
        return value
    return next((m["content"] for m in reversed(value) if m.get("role") == "user"), None)
