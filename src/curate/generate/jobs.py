"""Generate what a cache does not have yet, chunk by chunk: the loop `curate.Distill` and
`curate.Synthesize` share.

A job is a list of `Task` (an id, its prompt, and which samples are missing: ``first`` and
``count``), found by `missing` from the keys already done. `run_tasks` sends them to one
generator ``chunk`` tasks at a time, each request seeded from (run seed, generation key,
id, first sample) so a sample is the same wherever and whenever it is generated, and hands
each chunk's completions to ``finish`` on one background thread, in order, while the next
chunk generates (``finish`` checks or parses them and writes them as one cache part, so a
crash loses at most the chunks in flight).

>>> tasks, cached = missing([("a", "p"), ("b", "q")], n=3, done={"a\\x001"})
>>> [(t.id, t.first, t.count) for t in tasks], cached
([('a', 0, 1), ('a', 2, 1), ('b', 0, 3)], 1)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from curate._progress import progress_bar
from curate.errors import ConfigError
from curate.generate.base import Completion, Generator, Prompt, Request, Sampling, derive_seed

Finish = Callable[[list["Task"], list[Request], list[list[Completion]]], None]
"""Called with one chunk's tasks, its requests and their completions, in order."""


@dataclass(frozen=True)
class Task:
    """Samples ``first .. first+count-1`` of ``id``'s prompt (``data``: what ``finish``
    needs besides, such as a gold answer)."""

    id: str
    prompt: Prompt
    first: int
    count: int
    data: Any = None


def settings_key(*parts: object) -> str:
    """The ``gen_key`` of generation settings: a digest of ``parts`` (the backend's
    description, the sampling, the prompt's wording) as sorted JSON.

    >>> settings_key({"model": "m"}, 0.6) == settings_key({"model": "m"}, 0.6)
    True
    """
    blob = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()


def done_keys(stored: pl.DataFrame, model: str, gen_key: str) -> set[str]:
    """The ``id\\0sample`` keys of ``stored`` responses (the responses-table layout) that
    ``model`` generated under ``gen_key`` without failing: a failed generation is not done,
    so a re-run tries it again."""
    return set(
        stored.filter(
            pl.col("model") == model,
            pl.col("gen_key") == gen_key,
            pl.col("finish_reason") != "error",
        )
        .select(pl.concat_str("problem_id", pl.col("sample").cast(pl.String), separator="\x00"))
        .to_series()
        .to_list()
    )


def missing(
    items: Iterable[tuple[str, Prompt] | tuple[str, Prompt, Any]], *, n: int, done: set[str]
) -> tuple[list[Task], int]:
    """The tasks that generate the samples ``0..n-1`` of each ``(id, prompt[, data])`` not in
    ``done`` (consecutive missing samples make one task), and how many samples were done."""
    tasks: list[Task] = []
    cached = 0
    for item in items:
        key, prompt, data = item[0], item[1], item[2] if len(item) > 2 else None
        todo = [s for s in range(n) if f"{key}\x00{s}" not in done]
        cached += n - len(todo)
        for first, count in _runs(todo):
            tasks.append(Task(key, prompt, first, count, data))
    return tasks, cached


def run_tasks(
    generator: Generator,
    sampling: Sampling,
    tasks: Sequence[Task],
    *,
    gen_key: str,
    seed: int,
    chunk: int,
    finish: Finish,
    label: str,
    progress: bool = False,
) -> float:
    """Generate ``tasks`` with ``generator``, ``chunk`` at a time, handing each chunk to
    ``finish`` (see the module docstring); returns the seconds spent in the engine."""
    bar = progress_bar(
        sum(t.count for t in tasks), f"{label} {generator.model}", enabled=progress, unit="sample"
    )
    seconds = 0.0
    with ThreadPoolExecutor(1) as post:
        pending: Future[None] | None = None
        for lo in range(0, len(tasks), chunk):
            part = list(tasks[lo : lo + chunk])
            requests = [
                Request(t.prompt, n=t.count, seed=derive_seed(seed, gen_key, t.id, t.first))
                for t in part
            ]
            started = time.perf_counter()
            results = generator.generate(requests, sampling)
            seconds += time.perf_counter() - started
            check_shape(generator, requests, results)
            if pending is not None:
                pending.result()  # one part finished and written at a time, in order
            pending = post.submit(finish, part, requests, results)
            bar.update(sum(r.n for r in requests))
        if pending is not None:
            pending.result()
    bar.close()
    return seconds


def check_shape(g: Generator, requests: list[Request], results: list[list[Completion]]) -> None:
    """Refuse a backend's answer that is not one list of ``request.n`` completions per
    request."""
    if len(results) != len(requests) or any(
        len(c) != r.n for r, c in zip(requests, results, strict=False)
    ):
        raise ConfigError(
            f"generator {g.model!r} returned {[len(c) for c in results][:8]}... completions for "
            f"{len(requests)} requests asking for {[r.n for r in requests][:8]}...: a Generator "
            "must return one list of request.n completions per request, in order"
        )


def _runs(samples: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sample indices as (first, count)."""
    out: list[tuple[int, int]] = []
    for s in samples:
        if out and out[-1][0] + out[-1][1] == s:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((s, 1))
    return out
