r"""`ExtractAnswer`: gold answers read out of worked solutions by a model (DeepScaleR).

DeepScaleR took problems from AoPS whose solutions state no separate answer, had an LLM
extract the final answer from each solution, sampling several times, and kept the answer
when the samples agreed. `ExtractAnswer` does this with any `curate.generate.Generator`
(vLLM, an OpenAI-compatible server, transformers): for each row with a solution and no
answer (``rows="missing"``; ``rows="all"``: every row with a solution) it asks for the final
answer ``samples`` times (default 3), reads each reply's answer (its ``\boxed{}``, else a
final-answer sentence or a bare answer), groups the answers that `curate.verify` finds
equivalent, and keeps the largest group's answer when it is large enough:

- ``agreement="all"`` (the default): every sample gives it (DeepScaleR's "kept when they
  agree");
- ``agreement="majority"``: more than half of the samples do.

Rejected: ``answer_disagreement`` (no group large enough; detail: the answers),
``no_extracted_answer`` (no sample stated one, or each said the solution has none),
``answer_generation_failed`` (too few samples came back from the backend to agree; a later
run with a changed stage tries them again), and with ``rows="all"``, ``answer_mismatch``
(the agreed answer differs from the row's ``answer``; detail: both).

The agreed answer becomes the row's ``answer`` where it has none (`curate.Stage.fills`: a
stage never changes an answer the row has), and is also the added column ``llm_answer``
(with ``llm_answers``, each sample's answer, and ``llm_agreement``, the size of the winning
group).

Generations are cached in ``RUN/cache/answer_extraction`` (the responses-table layout) under
a ``gen_key`` of the backend's description, the sampling, the prompt and its version, and
keyed by a digest of the prompt sent (so the same problem and solution reuse their
extraction under any id); a re-run generates only the samples it does not have.

>>> print(prompt_for(PROMPT, "What is 1+1?", "1+1=2, so two."))  # doctest: +ELLIPSIS
Here is a math problem and a worked solution. State the final answer the solution reaches, ...
## Problem
What is 1+1?
<BLANKLINE>
## Solution
1+1=2, so two.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

import polars as pl

from curate.errors import ConfigError
from curate.generate.base import Completion, Generator, Prompt, Request, Sampling, framed
from curate.generate.jobs import Task, done_keys, missing, run_tasks, settings_key
from curate.responses import ResponsesTable
from curate.stage import Filter, StageContext
from curate.verification import DEFAULT_TIMEOUT, read_answer, verify_many
from curate.verification.extract import Rule

PROMPT_VERSION = "1"
"""Bump when `PROMPT`'s wording changes (it is in the cache key and the stage's version)."""
PROMPT = (
    "Here is a math problem and a worked solution. State the final answer the solution "
    "reaches, and nothing else, inside \\boxed{}. If the solution reaches no final answer, "
    "write \\boxed{NONE}.\n\n## Problem\n{problem}\n\n## Solution\n{solution}"
)
"""The default prompt (``{problem}`` and ``{solution}`` are replaced)."""
CACHE = "answer_extraction"
"""The folder of the extraction cache inside ``RUN/cache``."""
ANSWER, ANSWERS, AGREEMENT = "llm_answer", "llm_answers", "llm_agreement"
_RULES: tuple[Rule, ...] = (
    "boxed",
    "final_answer",
    "bare",
)  # not "last": a stray number is not an answer
_NONE = frozenset({"none", "no answer", "n/a", "null"})


def prompt_for(template: str, problem: str, solution: str) -> str:
    """``template`` with ``{problem}`` and ``{solution}`` replaced (other braces stay)."""
    return template.replace("{problem}", problem).replace("{solution}", solution)


def reply_answer(text: str | None) -> str | None:
    r"""The answer a reply states, or None (also for "NONE": the solution has no answer).

    >>> reply_answer("The answer is \\boxed{\\frac{1}{2}}."), reply_answer("\\boxed{NONE}")
    ('\\frac{1}{2}', None)
    """
    answer = read_answer(text, rules=_RULES, think="after").answer
    if answer is None or answer.strip().casefold() in _NONE:
        return None
    return answer


@dataclass(frozen=True)
class ExtractAnswer(Filter):
    r"""Read gold answers out of solutions with a model, kept when its samples agree (see
    the module docstring).

    ``generator``: the backend (kept open between batches, closed when the stage ends).
    ``samples`` replies per row; ``agreement``: ``"all"`` or ``"majority"``; ``rows``:
    ``"missing"`` (rows with no answer) or ``"all"``. ``sampling`` defaults to DeepSeek-R1's
    temperature 0.6, top-p 0.95, with 1024 new tokens. ``template`` (with ``{problem}`` and
    ``{solution}``), ``system`` and ``chat`` build the prompt as `curate.Distill` does.
    ``chunk`` rows go to the engine per call (and make one cache part).
    """

    version: ClassVar[str] = f"1+prompt{PROMPT_VERSION}"
    keeps_state: ClassVar[bool] = True  # the generator's engine, between batches
    batch_rows: ClassVar[int] = 4096

    generator: Generator
    samples: int = 3
    agreement: Literal["all", "majority"] = "all"
    rows: Literal["missing", "all"] = "missing"
    sampling: Sampling = field(default_factory=lambda: Sampling(max_tokens=1024))
    template: str = PROMPT
    system: str | None = None
    chat: bool = True
    chunk: int = 64
    verify_timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.generator, Generator):
            raise ConfigError(
                f"ExtractAnswer: {self.generator!r} is not a Generator (see curate.generate)"
            )
        if not (isinstance(self.samples, int) and self.samples >= 1) or self.chunk < 1:
            raise ConfigError(
                f"ExtractAnswer(samples={self.samples}, chunk={self.chunk}): expected integers >= 1"
            )
        if self.agreement not in ("all", "majority"):
            raise ConfigError(
                f"ExtractAnswer(agreement={self.agreement!r}): expected 'all' or 'majority'"
            )
        if self.rows not in ("missing", "all"):
            raise ConfigError(f"ExtractAnswer(rows={self.rows!r}): expected 'missing' or 'all'")
        for slot in ("{problem}", "{solution}"):
            if slot not in self.template:
                raise ConfigError(f"ExtractAnswer(template=...): it has no {slot}")

    @property
    def needed(self) -> int:
        """How many samples must give the same answer for it to be kept."""
        return self.samples if self.agreement == "all" else self.samples // 2 + 1

    def gen_key(self) -> str:
        """The cache key part that says which settings produced a reply."""
        return settings_key(
            "extract-answer",
            PROMPT_VERSION,
            self.generator.describe(),
            asdict(self.sampling),
            self.template,
            self.system,
            self.chat,
        )

    def config(self) -> dict[str, Any]:
        """The options as JSON, the generator as its `~curate.generate.Generator.describe`
        (what decides its outputs, not where it runs), so any backend fingerprints."""
        values: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "generator"
        }
        values["sampling"] = asdict(self.sampling)
        values["generator"] = {"model": self.generator.model, **self.generator.describe()}
        out: dict[str, Any] = json.loads(json.dumps(values, sort_keys=True, default=str))
        return out

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["gen_key"] = self.gen_key()
        return out

    def prompt(self, problem: str, solution: str) -> Prompt:
        text = prompt_for(self.template, problem, solution)
        return framed(text, system=self.system, chat=self.chat)

    def reads(self) -> tuple[str, ...]:
        return ("problem", "solution", "answer")

    def adds(self) -> tuple[str, ...]:
        return (ANSWER, ANSWERS, AGREEMENT)

    def fills(self) -> tuple[str, ...]:
        return ("answer",)  # the agreed answer, where the row has none

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        problems = batch["problem"].cast(pl.String).to_list()
        solutions = batch["solution"].cast(pl.String).to_list()
        golds = batch["answer"].cast(pl.String).to_list()
        wanted: dict[int, tuple[str, Prompt]] = {}
        for i, (problem, solution, gold) in enumerate(zip(problems, solutions, golds, strict=True)):
            has_gold = gold is not None and gold.strip() != ""
            if not solution or not solution.strip() or (self.rows == "missing" and has_gold):
                continue
            prompt = self.prompt(problem or "", solution)
            wanted[i] = (_digest(prompt), prompt)
        replies = self._replies(dict(wanted.values()), ctx)
        answers: list[list[str | None] | None] = [None] * batch.height
        failed = [0] * batch.height
        for i, (key, _) in wanted.items():
            got = replies.get(key, {})
            answers[i] = [got[s][0] if s in got else None for s in range(self.samples)]
            failed[i] = sum(1 for s in range(self.samples) if s not in got or got[s][1])
        agreed, sizes, reasons, details = self._decide(answers, failed, golds)
        out = (
            batch.lazy()
            .with_columns(
                pl.Series(ANSWER, agreed, pl.String),
                pl.Series(ANSWERS, answers, pl.List(pl.String)),
                pl.Series(AGREEMENT, sizes, pl.Int32),
                pl.Series("__reason", reasons, pl.String),
                pl.Series("__detail", details, pl.String),
            )
            .with_columns(pl.coalesce("answer", ANSWER).alias("answer"))
        )
        return self.mark(
            out, pl.col("__reason").is_not_null(), pl.col("__reason"), pl.col("__detail")
        ).drop("__reason", "__detail")

    def _replies(
        self, prompts: dict[str, Prompt], ctx: StageContext
    ) -> dict[str, dict[int, tuple[str | None, bool]]]:
        """Per prompt digest, sample -> (its answer, whether generation failed): generated
        where the cache does not have it, then read back from the cache."""
        if not prompts:
            return {}
        cache = ResponsesTable(ctx.cache_dir / CACHE)
        cache.clean()
        key, model = self.gen_key(), self.generator.model
        stored = _stored(cache, key, model, list(prompts))
        tasks, _ = missing(prompts.items(), n=self.samples, done=done_keys(stored, model, key))
        if tasks:
            writer = _Writer(self, key, cache)
            run_tasks(
                self.generator,
                self.sampling,
                tasks,
                gen_key=key,
                seed=ctx.seed,
                chunk=self.chunk,
                finish=writer.finish,
                label=ctx.stage_name,
                progress=ctx.progress,
            )
            stored = _stored(cache, key, model, list(prompts))
        out: dict[str, dict[int, tuple[str | None, bool]]] = {}
        for row in stored.iter_rows(named=True):
            failed = row["finish_reason"] == "error"
            answer = None if row["finish_reason"] != "stop" else row["extracted_answer"]
            out.setdefault(row["problem_id"], {})[row["sample"]] = (answer, failed)
        return out

    def _decide(
        self,
        answers: list[list[str | None] | None],
        failed: list[int],
        golds: list[str | None],
    ) -> tuple[list[str | None], list[int | None], list[str | None], list[str | None]]:
        """The agreed answer, the size of its group, and the reason and detail of a reject,
        per row (rows not asked about: all None)."""
        pairs: set[tuple[str, str]] = set()
        for got in answers:
            distinct = sorted({a for a in got or [] if a is not None})
            pairs.update((a, b) for k, a in enumerate(distinct) for b in distinct[k + 1 :])
        same = dict(
            zip(
                sorted(pairs),
                (v.equivalent for v in verify_many(sorted(pairs), timeout=self.verify_timeout)),
                strict=True,
            )
        )
        agreed: list[str | None] = []
        sizes: list[int | None] = []
        reasons: list[str | None] = []
        details: list[str | None] = []
        for got, lost in zip(answers, failed, strict=True):
            if got is None:
                agreed.append(None)
                sizes.append(None)
                reasons.append(None)
                details.append(None)
                continue
            answer, size = _largest_group([a for a in got if a is not None], same)
            reason = detail = None
            if size < self.needed:
                shown = " | ".join("-" if a is None else a for a in got)
                if size + lost >= self.needed:
                    reason, detail = "answer_generation_failed", f"{lost} samples failed"
                elif answer is None:
                    reason, detail = "no_extracted_answer", f"answers: {shown}"
                else:
                    reason = "answer_disagreement"
                    detail = f"{size} of {self.samples} agree (need {self.needed}): {shown}"
                answer = None
            agreed.append(answer)
            sizes.append(size)
            reasons.append(reason)
            details.append(detail)
        if self.rows == "all":
            self._check_gold(agreed, golds, reasons, details)
        return agreed, sizes, reasons, details

    def _check_gold(
        self,
        agreed: list[str | None],
        golds: list[str | None],
        reasons: list[str | None],
        details: list[str | None],
    ) -> None:
        """Reject, as ``answer_mismatch``, rows whose agreed answer is not their gold one."""
        rows = [i for i, (a, g) in enumerate(zip(agreed, golds, strict=True)) if a and g]
        verdicts = verify_many([(golds[i], agreed[i]) for i in rows], timeout=self.verify_timeout)
        for i, v in zip(rows, verdicts, strict=True):
            if not v.equivalent:
                reasons[i] = "answer_mismatch"
                details[i] = f"answer {golds[i]!r}, extracted {agreed[i]!r}"

    def global_reads(self) -> tuple[str, ...]:
        return ()

    def global_step(self, table: pl.DataFrame, ctx: StageContext) -> pl.DataFrame:
        self.generator.close()
        asked = table.filter(pl.col(ANSWERS).is_not_null())
        ctx.stats.update(
            asked=asked.height,
            agreed=int(asked[ANSWER].is_not_null().sum()),
            agreement=dict(sorted(asked[AGREEMENT].value_counts().rows())),
        )
        return table.select("id")


def _largest_group(answers: list[str], same: dict[tuple[str, str], bool]) -> tuple[str | None, int]:
    """The answer of the largest group of equivalent answers (its most frequent spelling,
    the first on a tie) and the group's size; (None, 0) without answers."""
    groups: list[list[str]] = []
    for a in answers:
        for g in groups:
            b = g[0]
            if a == b or same.get((min(a, b), max(a, b)), False):
                g.append(a)
                break
        else:
            groups.append([a])
    if not groups:
        return None, 0
    best = max(groups, key=len)  # the first of the largest: sample order decides ties
    return Counter(best).most_common(1)[0][0], len(best)


def _digest(prompt: Prompt) -> str:
    blob = json.dumps(prompt, ensure_ascii=False, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


_KEYS = ("problem_id", "model", "sample", "gen_key", "finish_reason", "extracted_answer")


def _stored(cache: ResponsesTable, key: str, model: str, ids: list[str]) -> pl.DataFrame:
    """The cached replies of ``model`` under ``key`` for prompt digests ``ids`` (key columns
    and the answer read, not the texts), one per key."""
    wanted = (pl.col("gen_key") == key, pl.col("model") == model, pl.col("problem_id").is_in(ids))
    return cache.scan(*wanted).select(_KEYS).collect()


@dataclass
class _Writer:
    """Writes one chunk's replies, with the answer each states, as one cache part."""

    stage: ExtractAnswer
    key: str
    cache: ResponsesTable

    def finish(
        self, part: list[Task], requests: list[Request], results: list[list[Completion]]
    ) -> None:
        sampling, model = self.stage.sampling, self.stage.generator.model
        rows: list[dict[str, Any]] = []
        for task, request, completions in zip(part, requests, results, strict=True):
            prompt = json.dumps(request.prompt, ensure_ascii=False)
            for i, c in enumerate(completions):
                answer = reply_answer(c.text) if c.finish_reason == "stop" else None
                rows.append(
                    {
                        "problem_id": task.id, "model": model, "sample": task.first + i,
                        "gen_key": self.key, "prompt": prompt, "text": c.text,
                        "finish_reason": c.finish_reason, "n_tokens": c.n_tokens,
                        "error": c.error, "extracted_answer": answer,
                        "verdict": "extracted" if answer is not None else "no_answer",
                        "temperature": sampling.temperature, "top_p": sampling.top_p,
                        "max_tokens": sampling.max_tokens, "seed": request.seed,
                    }
                )  # fmt: skip
        self.cache.write(rows, self.cache.part_of(self.key, model, rows))
