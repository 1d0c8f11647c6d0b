"""The ``curate`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Annotated

import typer

from curate.errors import ConfigError, CurateError, InputError

app = typer.Typer(
    name="curate",
    help="Curate LLM reasoning training data: ingest, dedup, decontaminate, verify, query.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")]


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)


def _load_recipe(path: Path) -> object:
    from curate.run import Recipe

    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist")
    namespace = runpy.run_path(str(path), run_name="curate_recipe")
    recipe = namespace.get("recipe")
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"{path} must define a variable `recipe = curate.Recipe(...)`")
    return recipe


@app.command()
def run(
    recipe_file: Annotated[Path, typer.Argument(help="A Python file that defines `recipe`.")],
    out: OutDir,
    force: Annotated[bool, typer.Option(help="Re-run every stage.")] = False,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run a recipe into a run directory (finished, unchanged stages are skipped)."""
    try:
        recipe = _load_recipe(recipe_file)
        result = recipe.run(out, force=force, workers=workers, progress=not quiet)  # type: ignore[attr-defined]
    except CurateError as e:
        raise _fail(e) from None
    _print_summary(result)
    typer.echo(f"\nresults: {out}/  (problems: {result.tables()['problems'][0]})")
    typer.echo(
        f'try:     curate sql {out} "SELECT stage, reason, count(*) FROM rejects GROUP BY ALL"'
    )


@app.command()
def ingest(
    files: Annotated[
        list[Path], typer.Argument(help="JSONL, JSON, Parquet, CSV files or HF dataset folders.")
    ],
    out: OutDir,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", "-m", help="Column mapping, e.g. problem=question (repeatable)."),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Source name (one file only).")] = None,
    split: Annotated[str | None, typer.Option(help="Split of an HF DatasetDict folder.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Read files into a run directory in the canonical schema, with no other stage."""
    from curate.io import read
    from curate.run import Recipe

    try:
        mapping = _parse_map(map_ or [])
        if source is not None and len(files) != 1:
            raise ConfigError("--source names one file; omit it to name sources by file name")
        sources = [read(f, source=source, split=split, **mapping) for f in files]  # type: ignore[arg-type]
        name = source or (sources[0].name if len(sources) == 1 else "ingest")
        result = Recipe(name, sources=sources).run(out, progress=not quiet)
    except CurateError as e:
        raise _fail(e) from None
    _print_summary(result)


_MAPPABLE = ("problem", "answer", "solution", "subject", "level")


def _parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in _MAPPABLE or not value:
            raise ConfigError(
                f"--map {item!r}: expected FIELD=COLUMN with FIELD one of {_MAPPABLE}"
            )
        mapping[key] = value
    return mapping


@app.command()
def sql(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    query: Annotated[
        str, typer.Argument(help="DuckDB SQL over problems, rejects and stage views.")
    ],
    format_: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json (one object per line).")
    ] = "table",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Query a run with SQL."""
    import polars as pl

    from curate.run import open_run

    try:
        frame = open_run(run_dir).sql(query)
    except CurateError as e:
        raise _fail(e) from None
    if format_ == "csv":
        sys.stdout.write(frame.write_csv())
    elif format_ == "json":
        sys.stdout.write(frame.write_ndjson())
    elif format_ == "table":
        with pl.Config(
            tbl_rows=limit, fmt_str_lengths=80, tbl_width_chars=200, tbl_hide_dataframe_shape=True
        ):
            typer.echo(frame)
        if frame.height > limit:
            typer.echo(f"... {frame.height:,} rows in all (--limit to show more)")
    else:
        raise _fail(ConfigError(f"--format {format_!r}: expected table, csv or json"))


@app.command()
def info(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Show a run's manifest: sources and per-stage counts."""
    from curate.run import open_run

    try:
        result = open_run(run_dir)
    except CurateError as e:
        raise _fail(e) from None
    m = result.manifest
    typer.echo(
        f"run {run_dir}: recipe {m['recipe']!r}, status {m.get('status')}, "
        f"curate {m['curate_version']}, seed {m['seed']}"
    )
    for s in m["sources"]:
        typer.echo(f"  source {s['name']}: {s.get('rows', '?')} rows from {s['path']}")
    _print_summary(result)


def _print_summary(result: object) -> None:
    import polars as pl

    with pl.Config(
        tbl_rows=100,
        fmt_str_lengths=100,
        tbl_width_chars=200,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
    ):
        typer.echo(result.summary())  # type: ignore[attr-defined]


@app.command("decontam-report")
def decontam_report(run_dir: Annotated[Path, typer.Argument(help="A run directory.")]) -> None:
    """Per benchmark: its items that were hit and the training rows that hit it."""
    from curate.decontam.report import format_report

    try:
        typer.echo(format_report(run_dir))
    except CurateError as e:
        raise _fail(e) from None


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for the shards and the card.")],
    format: Annotated[str, typer.Option("--format", "-f", help="sft | rl | verl | trl")] = "verl",
    test_fraction: Annotated[float, typer.Option(help="Share of problems in 'test'.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    shard_rows: Annotated[int | None, typer.Option(help="Rows per shard.")] = None,
    shard_mb: Annotated[int, typer.Option(help="Target shard size in MB.")] = 256,
    card: Annotated[bool, typer.Option(help="Write README.md and plots too.")] = True,
) -> None:
    """Export a run as training-ready Parquet shards (and its dataset card)."""
    from curate.export.shards import export_run

    try:
        result = export_run(
            run_dir,
            out_dir,
            format=format,  # type: ignore[arg-type]  # checked by ExportOptions
            test_fraction=test_fraction,
            seed=seed,
            shard_rows=shard_rows,
            shard_bytes=shard_mb * 2**20,
        )
        if card:
            from curate.export.card import write_card

            write_card(run_dir, out_dir, export=out_dir)
    except CurateError as e:
        raise _fail(e) from None
    for split, rows in result.rows.items():
        typer.echo(f"{split}: {rows:,} rows in {len(result.files.get(split, []))} shard(s)")
    typer.echo(f"wrote {out_dir}/  (publish with: curate publish {out_dir} --repo NAME)")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder (default: RUN_DIR/report).")
    ] = None,
) -> None:
    """Write the dataset card (README.md) and plots for a run, without exporting."""
    from curate.export.card import write_card

    try:
        path = write_card(run_dir, out or run_dir / "report")
    except CurateError as e:
        raise _fail(e) from None
    typer.echo(f"wrote {path} and {path.parent / 'plots'}/")


@app.command()
def publish(
    out_dir: Annotated[Path, typer.Argument(help="A folder written by `curate export`.")],
    repo: Annotated[str, typer.Option(help="Hub dataset repo, e.g. user/name.")],
    private: Annotated[bool, typer.Option(help="Create the repo private.")] = False,
    revision: Annotated[str | None, typer.Option(help="Branch to upload to.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Show what would be uploaded.")] = False,
    large: Annotated[
        bool | None, typer.Option(help="Resumable multi-commit upload (default: by size).")
    ] = None,
) -> None:
    """Upload an export to the Hugging Face Hub (token from HF_TOKEN or `hf auth login`)."""
    from curate.export.hub import publish as upload

    try:
        result = upload(
            out_dir, repo, private=private, revision=revision, dry_run=dry_run, large=large
        )
    except CurateError as e:
        raise _fail(e) from None
    typer.echo(result.summary())


@app.command()
def verify(
    gold: Annotated[str | None, typer.Argument(help="Gold answer.")] = None,
    pred: Annotated[
        str | None, typer.Argument(help="Predicted answer (or text with \\boxed{}).")
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help='JSONL file of {"gold": ..., "pred": ...} lines; prints one verdict per line.'
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per check.")] = 5.0,
) -> None:
    """Check whether PRED is the same answer as GOLD (exit 0 if equivalent, 1 if not)."""
    from curate.verify import verify as check
    from curate.verify import verify_many

    if pairs is not None:
        if gold is not None or pred is not None:
            raise _fail(ConfigError("give either GOLD PRED or --pairs FILE, not both"))
        try:
            items = _read_pairs(pairs)
        except CurateError as e:
            raise _fail(e) from None
        for v in verify_many(items, timeout=timeout, progress=sys.stderr.isatty()):
            sys.stdout.write(
                json.dumps({"equivalent": v.equivalent, "reason": v.reason, "detail": v.detail})
                + "\n"
            )
        return
    if gold is None or pred is None:
        raise _fail(ConfigError("give GOLD and PRED, or --pairs FILE"))
    verdict = check(gold, pred, timeout=timeout)
    typer.echo("equivalent" if verdict.equivalent else "different")
    if verdict.reason not in (
        "identical",
        "normalized",
        "numeric",
        "symbolic",
        "choice",
        "different",
    ):
        typer.echo(f"({verdict.reason}{': ' + verdict.detail if verdict.detail else ''})", err=True)
    raise typer.Exit(0 if verdict.equivalent else 1)


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    items = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"not valid JSON: {e}", path=path, line=number) from None
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object with gold and pred", path=path, line=number)
        for key in ("gold", "pred"):
            if key not in obj:
                raise InputError("missing", path=path, line=number, field=key)
            if isinstance(obj[key], bool) or not isinstance(obj[key], (str, int, float)):
                raise InputError(
                    f"expected a string or number, got {type(obj[key]).__name__}",
                    path=path,
                    line=number,
                    field=key,
                )
        items.append((_as_text(obj["gold"]), _as_text(obj["pred"])))
    return items


def _as_text(value: str | int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
