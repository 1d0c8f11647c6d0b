"""DeepSeekMath's mining loop: train a classifier on seeds, score and rank the pool, keep
the top, find the math domains, add confirmed paths' pages to the seeds, and again.

Everything an iteration makes stays in ``OUT/iter-N/``:

- ``classifier.bin`` and ``classifier.json`` (its training: seed and negative counts,
  options, fingerprint; an unchanged training is not redone);
- ``run/``: a run over the pool (`ClassifierScore`, `KeepTop`): scores, ranks, the kept
  pages and the rejected ones, queryable with ``curate sql OUT/iter-N/run``;
- ``domains.parquet``: the domain report (`curate.mine.domain_report`), queryable with
  ``curate sql OUT/iter-N "SELECT * FROM domains"``; ``seeds.parquet``: the ids of the
  pool pages added to the seeds by confirmed paths.

``OUT/mine.json`` sums the iterations up: pages scored (empty pages are rejects of the
run's ingest) and those without a URL (a null domain in the report), pages kept, new (not
kept by an earlier iteration), the share already collected, math-related domains and the
paths confirmed.
Mining stops after ``iterations``, or when an iteration's share already collected reaches
``stop_at`` (DeepSeekMath stopped at 98%). Each iteration is resumable: its classifier is
kept, and its run skips finished stages.

Confirmed paths: a list (used from the first report on), a text file with one path per
line (read again at each iteration, so it can be edited between runs), or a function
``confirm(iteration, report) -> paths`` that sees each domain report.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.io import Source, write_json, write_parquet
from curate.mine.classifier import FastTextOptions, train_classifier
from curate.mine.domains import MIN_PAGES, MIN_SHARE, domain_report, under_paths
from curate.mine.stages import ClassifierScore, KeepTop

Confirm = Sequence[str] | str | Path | Callable[[int, pl.DataFrame], Sequence[str]]


@dataclass(frozen=True)
class Iteration:
    """What one iteration did (an entry of ``mine.json``)."""

    iteration: int
    pages: int
    no_url: int
    seeds: int
    negatives: int
    kept: int
    new: int
    already_collected: float
    math_domains: list[str]
    paths: list[str]
    added_seeds: int
    seconds: float


@dataclass
class MineResult:
    """The iterations, and the ids of every page kept by any of them."""

    out: Path
    iterations: list[Iteration] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)

    def run(self, iteration: int | None = None) -> Any:
        """The run of an iteration (default: the last)."""
        from curate.run import Run

        n = iteration or len(self.iterations)
        return Run(self.out / f"iter-{n}" / "run")


def mine(
    pool: Source,
    seeds: Source,
    out: str | Path,
    *,
    negatives: Source | None = None,
    iterations: int = 4,
    threshold: float | None = None,
    share: float | None = None,
    tokens: int | None = None,
    paths: Confirm = (),
    min_share: float = MIN_SHARE,
    min_pages: int = MIN_PAGES,
    stop_at: float = 0.98,
    negative_ratio: float = 1.0,
    options: FastTextOptions | None = None,
    seed: int = 0,
    progress: bool = False,
) -> MineResult:
    """Mine ``pool`` for math pages, starting from ``seeds`` (see the module docstring).

    ``negatives``: pages that are not math; default a seeded random sample of the pool,
    ``negative_ratio`` times as many as the seeds (DeepSeekMath: random Common Crawl pages).
    The cut: ``threshold``, ``share`` or ``tokens`` as in `KeepTop` (default
    ``threshold=0.5``).
    """
    for name, src in (("pool", pool), ("seeds", seeds), ("negatives", negatives)):
        if src is not None and (not isinstance(src, Source) or src.kind != "documents"):
            raise ConfigError(
                f"mine({name}=...): expected a documents source, curate.read(PATH, "
                "kind='documents')"
            )
    if iterations < 1:
        raise ConfigError(f"mine(iterations={iterations}): expected >= 1")
    if (threshold, share, tokens) == (None, None, None):
        threshold = 0.5
    keep = KeepTop(threshold=threshold, share=share, tokens=tokens)
    options = options or FastTextOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    docs = pool.frame().select("id", "text", "url")
    seed_texts = [t for t in seeds.frame()["text"].to_list() if t and t.strip()]
    negative_texts = None if negatives is None else negatives.frame()["text"].to_list()
    result = MineResult(out)
    collected: set[str] = set()
    added: set[str] = set()  # pool pages that joined the seeds
    confirmed: list[str] = []
    for n in range(1, iterations + 1):
        started = time.perf_counter()
        folder = out / f"iter-{n}"
        positives = seed_texts + docs.filter(pl.col("id").is_in(sorted(added)))["text"].to_list()
        negs = negative_texts
        if negs is None:
            negs = _sample_negatives(docs, added, round(negative_ratio * len(positives)), seed)
        model = _train(folder, positives, negs, options)
        from curate.run import Recipe

        run = Recipe(f"mine-{n}", [pool], [ClassifierScore(model=str(model)), keep], seed=seed).run(
            folder / "run", progress=progress
        )
        kept = set(run.sql("SELECT id FROM documents")["id"].to_list())
        scored = run.table("classifier_score").select("id", "url").collect()
        report = domain_report(
            scored["url"],
            scored["id"].is_in(sorted(kept)),
            min_share=min_share,
            min_pages=min_pages,
        )
        write_parquet(report, folder / "domains.parquet")
        new = kept - collected
        already = (len(kept) - len(new)) / len(kept) if kept else 1.0
        collected |= kept
        confirmed = sorted(set(confirmed) | set(_confirmed(paths, n, report)))
        under = docs.filter(under_paths(docs["url"], confirmed))["id"].to_list()
        joining = sorted(set(under) - collected - added)
        added |= set(joining)
        write_parquet(
            pl.DataFrame({"id": joining}, schema={"id": pl.String}), folder / "seeds.parquet"
        )
        math_domains = report.filter("math_related")["domain"].to_list()
        result.iterations.append(
            Iteration(
                iteration=n, pages=scored.height, no_url=int(scored["url"].is_null().sum()),
                seeds=len(positives), negatives=len(negs), kept=len(kept),
                new=len(new), already_collected=round(already, 4), math_domains=math_domains,
                paths=confirmed, added_seeds=len(joining),
                seconds=round(time.perf_counter() - started, 3),
            )
        )  # fmt: skip
        result.collected = sorted(collected)
        write_json({"iterations": [asdict(i) for i in result.iterations]}, out / "mine.json")
        if n > 1 and already >= stop_at:
            break
    return result


def _confirmed(paths: Confirm, iteration: int, report: pl.DataFrame) -> list[str]:
    if callable(paths):
        return [str(p) for p in paths(iteration, report)]
    if isinstance(paths, (str, Path)):
        file = Path(paths)
        if not file.is_file():
            raise ConfigError(f"paths={str(paths)!r}: no such file of confirmed URL paths")
        lines = file.read_text(encoding="utf-8").splitlines()
        return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
    return [str(p) for p in paths]


def _sample_negatives(docs: pl.DataFrame, exclude: set[str], count: int, seed: int) -> list[str]:
    """A seeded random sample of the pool's pages (not those that joined the seeds)."""
    pool = docs.filter(~pl.col("id").is_in(sorted(exclude)), pl.col("text").str.strip_chars() != "")
    rng = random.Random(seed)
    rows = sorted(rng.sample(range(pool.height), min(count, pool.height)))
    return pool[rows]["text"].to_list()


def _train(
    folder: Path, positives: list[str], negatives: list[str], options: FastTextOptions
) -> Path:
    """Train the iteration's classifier, unless the same training is already there."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(options.describe(), sort_keys=True).encode())
    for label, texts in ((b"+", positives), (b"-", negatives)):
        for t in texts:
            h.update(label + hashlib.blake2b((t or "").encode(), digest_size=8).digest())
    fingerprint = h.hexdigest()
    model, info = folder / "classifier.bin", folder / "classifier.json"
    if (
        model.is_file()
        and info.is_file()
        and json.loads(info.read_text()).get("fingerprint") == fingerprint
    ):
        return model
    trained = train_classifier(positives, negatives, model, options=options)
    write_json(
        {"fingerprint": fingerprint, "positives": trained.positives,
         "negatives": trained.negatives, "lr": trained.lr, "options": options.describe()},
        info,
    )  # fmt: skip
    return model
