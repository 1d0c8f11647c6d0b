"""``curate mine``: DeepSeekMath's mining loop from the command line, thin over
`curate.mine.mine`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli_common import fail as _fail
from curate.errors import CurateError


def mine_command(
    pool: Annotated[
        Path, typer.Argument(help="The pages to mine (JSONL, Parquet, ...: text, url).")
    ],
    seeds: Annotated[Path, typer.Option(help="Seed math pages (positives).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the iterations.")],
    negatives: Annotated[
        Path | None, typer.Option(help="Non-math pages (default: a random sample of the pool).")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Most iterations.")] = 4,
    threshold: Annotated[
        float | None, typer.Option(help="Keep pages scoring at least this.")
    ] = None,
    share: Annotated[float | None, typer.Option(help="Keep this top share of pages.")] = None,
    tokens: Annotated[
        int | None, typer.Option(help="Keep top pages up to this many tokens.")
    ] = None,
    paths: Annotated[
        Path | None,
        typer.Option(
            help="File of confirmed URL paths, one per line (domain/path), re-read "
            "at every iteration."
        ),
    ] = None,
    stop_at: Annotated[
        float, typer.Option(help="Stop when this share was already collected.")
    ] = 0.98,
    text: Annotated[str | None, typer.Option(help="The pages' text column.")] = None,
    url: Annotated[str | None, typer.Option(help="The pages' URL column.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the negative sample and training.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Mine POOL for math pages: train a fastText classifier on the seeds, score and keep
    the pool's pages, report domains, add confirmed paths' pages to the seeds, repeat."""
    from curate.io import read
    from curate.mine import FastTextOptions, mine

    try:
        mapping = {k: v for k, v in (("text", text), ("url", url)) if v is not None}

        def docs(path: Path, name: str) -> object:
            return read(path, kind="documents", source=name, **mapping)  # type: ignore[arg-type]

        result = mine(
            docs(pool, "pool"),  # type: ignore[arg-type]
            docs(seeds, "seeds"),  # type: ignore[arg-type]
            out,
            negatives=docs(negatives, "negatives") if negatives else None,  # type: ignore[arg-type]
            iterations=iterations, threshold=threshold, share=share, tokens=tokens,
            paths=paths or (), stop_at=stop_at, options=FastTextOptions(seed=seed), seed=seed,
            progress=not quiet,
        )  # fmt: skip
    except CurateError as e:
        raise _fail(e) from None
    for it in result.iterations:
        typer.echo(
            f"iteration {it.iteration}: {it.seeds:,} seeds, kept {it.kept:,} pages ({it.new:,} "
            f"new, {it.already_collected:.0%} already collected), {len(it.math_domains)} math "
            f"domains, {it.added_seeds:,} pages added to the seeds by {len(it.paths)} paths"
        )
    typer.echo(f"\n{len(result.collected):,} pages collected; see {Path(out) / 'mine.json'}")
    typer.echo(f'try:     curate sql {Path(out) / "iter-1"} "SELECT * FROM domains LIMIT 20"')
