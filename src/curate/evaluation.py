r"""`evaluate`: DeepScaleR's evaluation protocol over benchmarks, through any `Generator`.

Each problem gets ``n`` samples (default 16, temperature 0.6, top-p 0.95), each graded by
`curate.verify_many` against the gold answer; the numbers (`curate.passk`) are pass@1 with
its 95% interval over problems, pass@k and maj@k for k = 1, 2, 4, ... up to ``n``, and the
shares of samples cut at ``max_tokens``, without an answer, and failed. The prompt is the
one `curate.Distill` sends (``template``, default DeepScaleR's instruction, an optional
system message), through the model's chat template.

Output folder ``out``::

    cache/*.parquet   every sample ever generated here, in parts written atomically as they
                      finish, keyed by (benchmark, benchmark version, problem id, sample,
                      gen_key: a digest of the model's describe(), the sampling, prompt and
                      seed settings); a re-run generates only the keys it lacks (and failed
                      generations again), so a changed setting never reuses old samples
    samples.parquet   this evaluation's samples with their verdicts, one row per sample
    summary.json      settings, model, grader version and the numbers per benchmark

Samples are independent requests: sample ``s`` of problem ``p`` of benchmark ``b`` has the
seed ``derive_seed(seed, b, p, s)``, whatever else runs with it, so a run is repeatable and
two models or temperatures see the same seeds. Stored samples judged by another grader (or
whose check timed out) are graded again, not generated again.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from curate._progress import progress_bar
from curate._version import __version__
from curate.decontam.registry import Benchmark, benchmarks, load_benchmark
from curate.distill import DEFAULT_TEMPLATE, grader_key, prompt_for
from curate.errors import ConfigError, InputError
from curate.generate.base import (
    Generator,
    Prompt,
    Request,
    Sampling,
    derive_seed,
    framed,
    has_chat_template,
)
from curate.io import read, write_json, write_parquet
from curate.passk import powers_of_two, scores
from curate.verification import DEFAULT_TIMEOUT, VerifyOptions, verify_many
from curate.verification.verdict import GRADER_VERSION

EVAL_VERSION = "1"
"""Bump when what a stored sample means changes (its key, its prompt): old ones are redone."""
Engine = Literal["hf", "vllm", "openai"]
KEY = ("benchmark", "benchmark_version", "problem_id", "sample", "gen_key")
SCHEMA: dict[str, Any] = {
    "benchmark": pl.String, "benchmark_version": pl.String, "problem_id": pl.String,
    "sample": pl.Int64, "gen_key": pl.String, "model": pl.String, "prompt": pl.String,
    "text": pl.String, "finish_reason": pl.String, "n_tokens": pl.Int64, "error": pl.String,
    "seed": pl.Int64, "gold": pl.String, "extracted_answer": pl.String, "verdict": pl.String,
    "verdict_detail": pl.String, "correct": pl.Boolean, "grader": pl.String,
    "temperature": pl.Float64, "top_p": pl.Float64, "max_tokens": pl.Int64,
}  # fmt: skip
_RECHECK = ("timeout", "error")


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` returns: the numbers per benchmark (``scores[name]``, the dicts of
    ``summary.json``), the ``samples`` frame (as in ``samples.parquet``), the ``summary``
    written to ``out / "summary.json"``, and ``warnings`` (also in the summary)."""

    scores: dict[str, dict[str, Any]]
    samples: pl.DataFrame = field(repr=False)
    summary: dict[str, Any] = field(repr=False)
    out: Path
    warnings: list[str] = field(default_factory=list)

    def pass1(self) -> dict[str, dict[str, float | None]]:
        """pass@1 and the half-width of its 95% interval, per benchmark:
        ``{name: {"pass@1": ..., "ci95": ...}}`` (fractions; None for a benchmark of no
        problems)."""
        return {
            name: {"pass@1": s["pass@1"], "ci95": s["pass@1_ci95"]}
            for name, s in self.scores.items()
        }

    def table(self) -> str:
        """The numbers as a text table (percentages)."""
        k = self.summary["settings"]["n"]
        k = powers_of_two(k)[-1]
        head = ["benchmark", "problems", "samples", "pass@1 ±95% CI", f"pass@{k}", f"maj@{k}"]
        head += ["truncated", "no answer", "failed"]
        rows = [head]
        for name, s in self.scores.items():
            if not s["problems"]:
                rows.append([name, "0", "0", *["-"] * 6])
                continue
            rows.append(
                [name, str(s["problems"]), str(s["samples"]),
                 f"{100 * s['pass@1']:.1f} ± {100 * s['pass@1_ci95']:.1f}",
                 f"{100 * s[f'pass@{k}']:.1f}", f"{100 * s[f'maj@{k}']:.1f}",
                 f"{100 * s['truncated']:.1f}%", f"{100 * s['no_answer']:.1f}%",
                 f"{100 * s['errors']:.1f}%"]
            )  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [
            "  ".join(
                [r[0].ljust(widths[0])]
                + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
            )
            for r in rows
        ]
        return "\n".join(lines + [f"WARNING: {w}" for w in self.warnings])


def evaluate(
    model: Generator | str,
    benchmarks: str | Path | Benchmark | Sequence[str | Path | Benchmark],
    *,
    out: str | Path,
    n: int = 16,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_tokens: int = 32768,
    seed: int = 0,
    limit: int | None = None,
    template: str = DEFAULT_TEMPLATE,
    system: str | None = None,
    chat: bool = True,
    engine: Engine = "hf",
    base_url: str | None = None,
    columns: Mapping[str, str] | None = None,
    grading: VerifyOptions | None = None,
    chunk: int = 256,
    workers: int | None = None,
    verify_timeout: float = DEFAULT_TIMEOUT,
    threads: int | None = None,
    progress: bool = False,
) -> EvalResult:
    r"""Evaluate a model on benchmarks with ``n`` samples per problem (see the module doc).

    ``model``: a `Generator`, or a model path or name for ``engine`` (``hf``: transformers,
    ``vllm``, ``openai``: a server at ``base_url`` serving that name). ``benchmarks``: bundled
    or registered names (`curate.decontam.registry.benchmarks`), files `curate.read` accepts
    (``columns`` maps their columns, e.g. ``{"problem": "question"}``), or `Benchmark`
    objects. ``limit``: only the first problems of each. ``chat=False`` sends the templated
    problem as a raw prompt (base models without a chat template). ``grading``: the
    `VerifyOptions` of `curate.verify_many`. ``chunk``: samples per engine call and cache part.
    ``threads``: torch's CPU threads for an ``hf`` model built here (tiny models on shared
    cores are fastest with 1).

    >>> import json, tempfile, pathlib
    >>> from curate.generate import Completion
    >>> class Echo:  # a stand-in engine: answers with the first number of the prompt
    ...     model = "echo"
    ...     def describe(self): return {"class": "Echo"}
    ...     def close(self): pass
    ...     def generate(self, requests, sampling):
    ...         first = lambda r: r.prompt[-1]["content"].split()[2]
    ...         return [[Completion(f"\\boxed{{{first(r)}}}", "stop", 3)] * r.n for r in requests]
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"problem": "What is 2 + 0?", "answer": "2"}, {"problem": "What is 3 + 1?", "answer": "4"}]
    >>> _ = (d / "add.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    >>> result = evaluate(Echo(), d / "add.jsonl", out=d / "eval", n=2)
    >>> result.scores["add"]["pass@1"], result.samples.height
    (0.5, 4)
    >>> result.pass1()["add"]["pass@1"]
    0.5
    >>> print(result.table())  # doctest: +NORMALIZE_WHITESPACE
    benchmark  problems  samples  pass@1 ±95% CI  pass@2  maj@2  truncated  no answer  failed
    add               2        4     50.0 ± 98.0    50.0   50.0       0.0%       0.0%    0.0%
    """  # noqa: E501
    if not (isinstance(n, int) and n >= 1) or chunk < 1 or (limit is not None and limit < 1):
        raise ConfigError(f"evaluate(n={n}, chunk={chunk}, limit={limit}): expected integers >= 1")
    if "{problem}" not in template:
        raise ConfigError(f"evaluate(template={template!r}): it has no {{problem}}")
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    grading = grading or VerifyOptions()
    sets = [_benchmark(b, columns or {}) for b in _as_list(benchmarks)]
    if len({b.name for b in sets}) != len(sets):
        raise ConfigError(f"two benchmarks share a name: {[b.name for b in sets]}; rename one")
    notes: list[str] = []
    problems = {b.name: _problems(b, limit, notes) for b in sets}
    owned = not isinstance(model, Generator)  # the benchmarks checked before the model
    generator = make_generator(model, engine=engine, base_url=base_url, chat=chat, threads=threads)
    describe = generator.describe()
    settings = {"n": n, **asdict(sampling), "seed": seed, "limit": limit, "template": template,
                "system": system, "chat": chat}  # fmt: skip
    blob = [EVAL_VERSION, describe, asdict(sampling), template, system, chat, seed]
    key = hashlib.blake2b(json.dumps(blob, sort_keys=True, default=str).encode(), digest_size=10)
    gen_key = key.hexdigest()
    root, grader = Path(out), grader_key(grading)
    cache = root / "cache"
    for stale in cache.glob(".*.tmp"):  # a part being written when a run was killed
        stale.unlink(missing_ok=True)

    def prompt(problem: str) -> Prompt:
        return framed(prompt_for(template, problem), system=system, chat=chat)

    have = _read_cache(cache).filter(
        pl.col("gen_key") == gen_key, pl.col("finish_reason") != "error"
    )
    done = set(have.select("benchmark", "benchmark_version", "problem_id", "sample").iter_rows())
    todo = [
        (b, pid, text, gold, s)
        for b in sets
        for pid, text, gold in problems[b.name]
        for s in range(n)
        if (b.name, b.version, pid, s) not in done
    ]
    bar = progress_bar(len(todo), f"eval {generator.model}", enabled=progress, unit="sample")
    try:
        for lo in range(0, len(todo), chunk):
            part = todo[lo : lo + chunk]
            requests = [
                Request(prompt(text), n=1, seed=derive_seed(seed, b.name, pid, s))
                for b, pid, text, _, s in part
            ]
            results = generator.generate(requests, sampling)
            if len(results) != len(requests) or any(len(c) != 1 for c in results):
                raise ConfigError(
                    f"generator {generator.model!r} returned {len(results)} lists for "
                    f"{len(requests)} requests of n=1: expected one list of request.n each"
                )
            rows = [
                {"benchmark": b.name, "benchmark_version": b.version, "problem_id": pid,
                 "sample": s, "gen_key": gen_key, "model": generator.model,
                 "prompt": json.dumps(r.prompt, ensure_ascii=False), "text": c[0].text,
                 "finish_reason": c[0].finish_reason, "n_tokens": c[0].n_tokens,
                 "error": c[0].error, "seed": r.seed, "gold": gold,
                 "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
                for (b, pid, _, gold, s), r, c in zip(part, requests, results, strict=True)
            ]  # fmt: skip
            _judge(rows, grading, grader, verify_timeout, workers)
            names = [(r["benchmark"], r["problem_id"], r["sample"]) for r in rows]
            digest = hashlib.blake2b(json.dumps(names).encode(), digest_size=8).hexdigest()
            write_parquet(pl.DataFrame(rows, schema=SCHEMA), cache / f"{gen_key}-{digest}.parquet")
            bar.update(len(rows))
    finally:
        bar.close()
        if owned:
            generator.close()
    _regrade(cache, gen_key, grading, grader, verify_timeout, workers)
    keys = [(b.name, b.version, p[0], s) for b in sets for p in problems[b.name] for s in range(n)]
    wanted = pl.DataFrame(keys, schema=list(SCHEMA.items())[:4], orient="row")
    stored = _read_cache(cache).filter(pl.col("gen_key") == gen_key)
    samples = wanted.with_row_index("_at").join(stored, on=KEY[:4]).sort("_at")
    samples = samples.select(SCHEMA.keys())
    write_parquet(samples, root / "samples.parquet")
    numbers = {}
    for b in sets:
        mine = samples.filter(pl.col("benchmark") == b.name).sort("problem_id", "sample")
        grouped = mine.group_by("problem_id", maintain_order=True).agg(
            pl.col("correct"), pl.col("extracted_answer").alias("answers"),
            pl.col("finish_reason").alias("finish"), pl.col("verdict").alias("verdicts"),
        )  # fmt: skip
        s = {"version": b.version, **scores(grouped.to_dicts(), n)}
        s["all_truncated"] = bool(s["problems"]) and s["truncated"] == 1.0
        s["mean_tokens"] = mine["n_tokens"].mean() if mine.height else None
        if s["all_truncated"]:
            notes.append(f"{b.name}: every sample was cut at max_tokens={max_tokens}; raise it")
        elif s["problems"] and s["truncated"] >= 0.5:
            notes.append(f"{b.name}: {100 * s['truncated']:.0f}% of samples cut at max_tokens")
        elif s["problems"] and s["errors"]:
            notes.append(f"{b.name}: {100 * s['errors']:.1f}% of samples failed (re-run to retry)")
        if mine.filter(pl.col("verdict") == "gold_unparseable").height:
            notes.append(f"{b.name}: some gold answers cannot be parsed (counted wrong)")
        numbers[b.name] = s
    for note in notes:
        warnings.warn(note, stacklevel=2)
    summary = {
        "curate_version": __version__, "model": generator.model, "model_describe": describe,
        "gen_key": gen_key, "settings": settings, "grader_version": GRADER_VERSION,
        "grader": grader, "grading": json.loads(grading.key())[1],
        "all_truncated": any(s["all_truncated"] for s in numbers.values()),
        "warnings": notes, "benchmarks": numbers,
    }  # fmt: skip
    write_json(summary, root / "summary.json")
    return EvalResult(numbers, samples, summary, root, notes)


def make_generator(
    model: Generator | str,
    *,
    engine: Engine = "hf",
    base_url: str | None = None,
    chat: bool = True,
    threads: int | None = None,
) -> Generator:
    """``model`` itself if it is a `Generator`, else a backend for the path or name: a local
    folder without a chat template is refused when ``chat`` (say ``chat=False``);
    ``threads``: torch's CPU threads for ``hf`` (None: torch's default)."""
    if isinstance(model, Generator):
        return model
    if engine == "openai":
        from curate.generate.openai import OpenAIGenerator

        endpoint: Literal["chat", "completions"] = "chat" if chat else "completions"
        if base_url is None:
            return OpenAIGenerator(model, endpoint=endpoint)
        return OpenAIGenerator(model, base_url=base_url, endpoint=endpoint)
    if engine not in ("hf", "vllm"):
        raise ConfigError(f"engine={engine!r}: expected 'hf', 'vllm' or 'openai'")
    model = str(trained_model(model))
    if chat and Path(model).is_dir() and not has_chat_template(model):
        raise ConfigError(
            f"{model} has no chat template (none in tokenizer_config.json, no "
            "chat_template.jinja): for a base model pass chat=False (--no-chat) to send the "
            "templated problem as a raw prompt, or add the model's chat template"
        )
    if engine == "vllm":
        from curate.generate.vllm import VLLMGenerator

        return VLLMGenerator(model)
    from curate.generate.hf import HFGenerator

    return HFGenerator(model, device="auto", threads=threads)


def trained_model(folder: str | Path) -> Path:
    """The model a ``curate train`` output folder holds (``OUT/model``), else ``folder``."""
    from curate.train.session import MODEL_DIR, STATE

    root = Path(folder)
    if (root / STATE).is_file() and (root / MODEL_DIR).is_dir():
        return root / MODEL_DIR
    return root


def _as_list(spec: Any) -> list[Any]:
    return [spec] if isinstance(spec, str | Path | Benchmark) else list(spec)


def _benchmark(spec: str | Path | Benchmark, columns: Mapping[str, str]) -> Benchmark:
    """A benchmark by name, or read from a file with its ``columns`` mapped."""
    if isinstance(spec, Benchmark):
        return spec
    path = Path(spec)
    if (isinstance(spec, Path) or str(spec) not in benchmarks()) and path.exists():
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "benchmark"
        source = read(path, source=name, **columns)  # type: ignore[arg-type]
        frame = source.frame()
        if frame["answer"].is_null().all():
            column = source.mapping.get("answer", "answer (or a solution with a \\boxed{})")
            raise InputError(
                f"no gold answers: column {column!r} is missing or empty; map the column that "
                "holds them with --map answer=COLUMN (columns={'answer': ...})",
                path=path, field=column,
            )  # fmt: skip
        items = frame.select("id", "problem", "answer")
        return Benchmark(name, source.fingerprint(), items, title=str(path), path=path)
    return load_benchmark(str(spec))  # an unknown name: an error listing the known ones


def _problems(b: Benchmark, limit: int | None, notes: list[str]) -> list[tuple[str, str, str]]:
    """(id, problem, gold) of each item: its first wording, in order; the first ``limit``.
    Items without a gold answer are left out, with a note."""
    items = b.items.unique("id", keep="first", maintain_order=True)
    missing = items.filter(pl.col("answer").is_null() | (pl.col("answer").str.strip_chars() == ""))
    if missing.height:
        first = missing["id"][0]
        notes.append(f"{b.name}: {missing.height} item(s) without a gold answer left out ({first})")
        items = items.join(missing, on="id", how="anti")
    rows = list(items.select("id", "problem", "answer").iter_rows())
    return rows[:limit] if limit is not None else rows


def _judge(
    rows: list[dict[str, Any]], grading: VerifyOptions, grader: str, timeout: float,
    workers: int | None,
) -> None:  # fmt: skip
    """Fill extracted_answer, verdict, verdict_detail, correct and grader of sample rows."""
    checks = []
    for r in rows:
        r.update(grader=grader, extracted_answer=None, verdict_detail=None, correct=False)
        if r["finish_reason"] == "error":
            r["verdict"] = "generation_error"
        elif r["finish_reason"] == "length":
            r["verdict"] = "truncated"
        else:
            checks.append(r)
    verdicts = verify_many(
        [(r["gold"], r["text"]) for r in checks], options=grading, timeout=timeout, workers=workers
    )
    for r, v in zip(checks, verdicts, strict=True):
        r["verdict"], r["extracted_answer"], r["correct"] = v.status, v.pred, v.equivalent
        r["verdict_detail"] = f"{v.reason}: {v.detail}" if v.detail else v.reason


def _regrade(
    cache: Path, gen_key: str, grading: VerifyOptions, grader: str, timeout: float,
    workers: int | None,
) -> None:  # fmt: skip
    """Grade again the stored samples of ``gen_key`` another grader judged, or whose check
    timed out or failed; each part holding some is rewritten whole, atomically."""
    for part in sorted(cache.glob(f"{gen_key}-*.parquet")):
        table = pl.read_parquet(part)
        stale = (table["grader"] != grader) | table["verdict"].is_in(_RECHECK)
        if stale.any():
            rows = table.to_dicts()
            _judge(
                [r for r, s in zip(rows, stale, strict=True) if s],
                grading,
                grader,
                timeout,
                workers,
            )
            write_parquet(pl.DataFrame(rows, schema=SCHEMA), part)


def _read_cache(cache: Path) -> pl.DataFrame:
    """Every stored sample, one row per key: a key stored twice (a failed generation tried
    again) keeps a row that did not fail if there is one."""
    parts = sorted(cache.glob("*.parquet")) if cache.is_dir() else []
    if not parts:
        return pl.DataFrame(schema=SCHEMA)
    table = pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")
    return (
        table.with_row_index("_at")
        .sort(pl.col("finish_reason") == "error", "_at")
        .unique(KEY, keep="first", maintain_order=True)
        .sort("_at")
        .drop("_at")
        .select(SCHEMA.keys())
    )
