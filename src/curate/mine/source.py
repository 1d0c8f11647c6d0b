"""`Mined`: the pages the mining loop collects, as the source of a recipe that cleans them.

At ingest, `Mined` runs `curate.mine.mine` inside the run directory (``RUN/mine/iter-N``:
classifiers, scores, domain reports, kept sets, all resumable), and yields every pool page
that any iteration kept, in pool order, as rows of the documents table. The stages after it
clean the mined corpus (near-dedup, segment decontamination) and an export writes it.

>>> Mined.__name__
'Mined'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate.errors import ConfigError
from curate.io import Source
from curate.mine.classifier import FastTextOptions
from curate.mine.domains import MIN_PAGES, MIN_SHARE
from curate.mine.loop import mine
from curate.stage import GeneratedSource, StageContext

BATCH_ROWS = 10_000


@dataclass(frozen=True, repr=False)
class Mined(GeneratedSource):
    """The pool pages mined from ``seeds`` (the options are `curate.mine.mine`'s; ``paths``
    is a list of confirmed ``domain/path`` prefixes or a file of them)."""

    pool: Source
    seeds: Source
    negatives: Source | None = None
    iterations: int = 4
    threshold: float | None = None
    share: float | None = None
    tokens: int | None = None
    paths: Sequence[str] | str | Path = ()
    min_share: float = MIN_SHARE
    min_pages: int = MIN_PAGES
    stop_at: float = 0.98
    negative_ratio: float = 1.0
    options: FastTextOptions = field(default_factory=FastTextOptions)
    name: str = "mined"
    license: str | None = None
    kind: str = "documents"

    def __post_init__(self) -> None:
        for role in ("pool", "seeds", "negatives"):
            src = getattr(self, role)
            if src is not None and (not isinstance(src, Source) or src.kind != "documents"):
                raise ConfigError(
                    f"Mined({role}=...): expected a documents source, "
                    "curate.read(PATH, kind='documents')"
                )
        if not isinstance(self.paths, (str, Path)):
            object.__setattr__(self, "paths", tuple(self.paths))
        if self.license is None:
            object.__setattr__(self, "license", self.pool.license)

    @property
    def path(self) -> str:
        return self.pool.location

    def __repr__(self) -> str:
        return f"Mined(pool={self.pool.name!r}, seeds={self.seeds.name!r})"

    def fingerprint(self) -> str:
        paths: Any = self.paths
        if isinstance(paths, (str, Path)):  # a file of confirmed paths: its content counts
            file = Path(paths)
            paths = file.read_text(encoding="utf-8") if file.is_file() else str(paths)
        blob = json.dumps(
            [
                "mined", self.pool.fingerprint(), self.seeds.fingerprint(),
                self.negatives.fingerprint() if self.negatives else None, self.iterations,
                self.threshold, self.share, self.tokens, paths, self.min_share, self.min_pages,
                self.stop_at, self.negative_ratio, self.options.describe(), self.name,
            ],
            sort_keys=True,
            default=str,
        )  # fmt: skip
        return hashlib.blake2b(blob.encode(), digest_size=20).hexdigest()

    def batches(self, ctx: StageContext) -> Iterator[pl.DataFrame]:
        result = mine(
            self.pool, self.seeds, ctx.run_dir / "mine", negatives=self.negatives,
            iterations=self.iterations, threshold=self.threshold, share=self.share,
            tokens=self.tokens, paths=self.paths, min_share=self.min_share,
            min_pages=self.min_pages, stop_at=self.stop_at,
            negative_ratio=self.negative_ratio, options=self.options, seed=ctx.seed,
            progress=ctx.progress,
        )  # fmt: skip
        ctx.stats["iterations"] = [
            {k: v for k, v in vars(it).items() if k != "math_domains"}
            | {"math_domains": len(it.math_domains)}
            for it in result.iterations
        ]
        ctx.stats["collected"] = len(result.collected)
        collected = set(result.collected)
        empty: pl.DataFrame | None = None
        for frame in self.pool.batches():
            kept = frame.filter(pl.col("id").is_in(collected))
            empty = kept.head(0)
            if kept.height:
                yield kept
        if not collected and empty is not None:
            yield empty
