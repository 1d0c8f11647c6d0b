"""The ``curate`` command line: a thin layer over the Python API."""

from __future__ import annotations

import dataclasses
import json
import runpy
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.cli_common import fail as _fail
from curate.cli_common import quiet_logs, require_path, setup_output, show_version
from curate.errors import ConfigError, CurateError, InputError

app = typer.Typer(
    name="curate",
    help="Curate LLM reasoning training data: ingest, dedup, decontaminate, verify, query.\n\n"
    "Progress goes to stderr: bars on a terminal, whole lines in a log file or a pipe; "
    "CURATE_PROGRESS=0 (or a command's --quiet) silences it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: Rich's panels showed every flag as `--flag <bool>` and read the
    # brackets of `pip install 'curate[ray]'` as markup.
    rich_markup_mode=None,
)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")]


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print curate's version and exit.", is_eager=True,
            callback=show_version,
        ),
    ] = False,
) -> None:  # fmt: skip
    """The options before any command (the app's help text is the ``help`` above)."""


def _load_recipe(path: Path) -> tuple[object, object | None]:
    """The file's ``recipe`` and its ``then(run, out)`` (what follows curation), if any."""
    from curate.run import Recipe

    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist")
    namespace = runpy.run_path(str(path), run_name="curate_recipe")
    recipe = namespace.get("recipe")
    if not isinstance(recipe, Recipe):
        raise ConfigError(f"{path} must define a variable `recipe = curate.Recipe(...)`")
    then = namespace.get("then")
    if then is not None and not callable(then):
        raise ConfigError(f"{path}: `then` must be a function then(run, out), got {then!r}")
    return recipe, then


@app.command()
def run(
    recipe_file: Annotated[Path, typer.Argument(help="A Python file that defines `recipe`.")],
    out: OutDir,
    force: Annotated[bool, typer.Option(help="Re-run every stage.")] = False,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    engine: Annotated[
        str,
        typer.Option(
            help="Who runs the stages' per-row batches: local (this process) or ray (a Ray "
            "cluster; pip install 'curate[ray]'). The output is the same."
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="The Ray cluster to join: auto (the one `ray start` runs on this machine), "
            "ray://HOST:10001, or unset for a new local one. Implies --engine ray."
        ),
    ] = None,
    then: Annotated[
        bool,
        typer.Option(
            help="After the run (and its exports), call the recipe file's then(run, out) "
            "function if it has one: what follows curation (train, evaluate). --no-then "
            "stops after curation."
        ),
    ] = True,
    limit: Limit = None,
    sample: Sample = None,
    seed: Seed = 0,
) -> None:
    """Run a recipe into a run directory (finished, unchanged stages are skipped), then
    the recipe file's ``then(run, out)`` if it defines one (see --then/--no-then)."""
    quiet_logs(quiet)
    progress = False if quiet else None  # None: CURATE_PROGRESS=0 silences it too
    try:
        if progress is None and recipe_file.is_file():
            from curate._progress import note

            note(f"reading {recipe_file} (its sources and models are set up now) ...")
        recipe, after = _load_recipe(recipe_file)
        sliced = _slice(limit, sample, seed)
        if sliced:  # a slice of every file source, to try the recipe
            from curate.io import Source

            sources = [
                dataclasses.replace(s, **sliced) if isinstance(s, Source) else s
                for s in recipe.sources  # type: ignore[attr-defined]
            ]
            recipe = dataclasses.replace(recipe, sources=sources)  # type: ignore[type-var]
        if ray_address is not None:
            engine = "ray"
        if engine not in ("local", "ray"):
            raise ConfigError(f"--engine {engine!r}: expected local or ray")
        result = recipe.run(  # type: ignore[attr-defined]
            out,
            force=force,
            workers=workers,
            progress=progress,
            engine=engine,
            address=ray_address,
        )
    except CurateError as e:
        raise _fail(e) from None
    _print_summary(result)
    typer.echo(f"\nresults: {out}/  (problems: {result.tables()['problems'][0]})")
    typer.echo(
        f'try:     curate sql {out} "SELECT stage, reason, count(*) FROM rejects GROUP BY ALL"'
    )
    if then and after is not None:
        typer.echo(f"\nthen: {recipe_file}'s then(run, out)")
        try:
            after(result, out)  # type: ignore[operator]
        except CurateError as e:
            raise _fail(e) from None


Limit = Annotated[
    int | None, typer.Option(help="Read only the first N rows of each source (to try a recipe).")
]
Sample = Annotated[
    float | None,
    typer.Option(help="Read a seeded random sample of each source: a fraction if <= 1, else rows."),
]
Seed = Annotated[int, typer.Option(help="Seed of --sample.")]


def _slice(limit: int | None, sample: float | None, seed: int) -> dict[str, Any]:
    """`curate.read`'s slice options from the CLI's (--sample 500 is 500 rows)."""
    out: dict[str, Any] = {}
    if limit is not None:
        out["limit"] = limit
    if sample is not None:
        out["sample"] = int(sample) if sample > 1 else sample
        out["seed"] = seed
    return out


@app.command()
def ingest(
    files: Annotated[
        list[str],
        typer.Argument(
            help="JSONL, JSON, Parquet, CSV files (also .gz/.zst/.bz2/.xz), globs, folders of "
            "shards, HF dataset folders, or URLs (hf://, s3://, gs://)."
        ),
    ],
    out: OutDir,
    format_: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="The files' format when their names do not say it (jsonl, json, parquet, "
            "csv, hf, warc; default: from the suffix).",
        ),
    ] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", "-m", help="Column mapping, e.g. problem=question (repeatable)."),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Source name (one file only).")] = None,
    split: Annotated[str | None, typer.Option(help="Split of an HF DatasetDict folder.")] = None,
    kind: Annotated[
        str,
        typer.Option(help="problems, or documents: texts (web pages, books) for synthesis."),
    ] = "problems",
    limit: Limit = None,
    sample: Sample = None,
    seed: Seed = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Read files into a run directory in the canonical schema, with no other stage."""
    from curate.io import read
    from curate.run import Recipe

    try:
        if kind not in ("problems", "documents"):
            raise ConfigError(f"--kind {kind!r}: expected problems or documents")
        mapping = _parse_map(map_ or [], kind)
        if source is not None and len(files) != 1:
            raise ConfigError("--source names one file; omit it to name sources by file name")
        sliced = _slice(limit, sample, seed)
        sources = [
            read(f, source=source, split=split, kind=kind, format=format_, **mapping, **sliced)  # type: ignore[arg-type]
            for f in files
        ]
        name = source or (sources[0].name if len(sources) == 1 else "ingest")
        result = Recipe(name, sources=sources).run(out, progress=False if quiet else None)
    except CurateError as e:
        raise _fail(e) from None
    _print_summary(result)


_MAPPABLE = {
    "problems": ("problem", "answer", "solution", "subject", "level"),
    "documents": ("text", "url", "title"),
}


def _parse_map(items: list[str], kind: str = "problems") -> dict[str, str]:
    mapping = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in _MAPPABLE[kind] or not value:
            raise ConfigError(
                f"--map {item!r}: expected FIELD=COLUMN with FIELD one of {_MAPPABLE[kind]} "
                f"(--kind {kind})"
            )
        mapping[key] = value
    return mapping


@app.command()
def sql(
    run_dir: Annotated[
        Path, typer.Argument(help="A run directory, or a training or evaluation folder.")
    ],
    query: Annotated[
        str,
        typer.Argument(
            help="DuckDB SQL over problems, rejects and stage views (a run), or over each "
            "Parquet file of a folder by its name (metrics, samples)."
        ),
    ],
    format_: Annotated[
        str, typer.Option("--format", "-f", help="table, csv, json (one object per line).")
    ] = "table",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Query a run (or a training or evaluation folder) with SQL."""
    import polars as pl

    from curate.run import MANIFEST, RunWarning, open_run
    from curate.sql import folder_tables
    from curate.sql import query as sql_query

    try:
        require_path(run_dir, "a run directory, or a training or evaluation folder")
        if (run_dir / MANIFEST).exists() or not run_dir.is_dir():
            opened = open_run(run_dir)
            notice = opened.notice()
            if notice is not None:
                typer.echo(f"warning: {notice}", err=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RunWarning)
                frame = opened.sql(query)
        else:  # a training or evaluation folder: its Parquet files
            frame = sql_query(folder_tables(run_dir), query)
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
        require_path(run_dir, "a run directory")
        result = open_run(run_dir)
    except CurateError as e:
        raise _fail(e) from None
    m = result.manifest
    typer.echo(
        f"run {run_dir}: recipe {m['recipe']!r}, status {m.get('status')}, "
        f"curate {m['curate_version']}, seed {m['seed']}"
    )
    notice = result.notice()
    if notice is not None:
        typer.echo(f"  {notice}")
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
    format: Annotated[
        str, typer.Option("--format", "-f", help="sft | rl | verl | trl | pretrain (pages)")
    ] = "verl",
    test_fraction: Annotated[float, typer.Option(help="Share of problems in 'test'.")] = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the train/test split and of --order shuffle.")
    ] = 0,
    order: Annotated[
        str,
        typer.Option(help="Row order in the shards: id (sources in blocks) | shuffle (seeded)."),
    ] = "id",
    shard_rows: Annotated[int | None, typer.Option(help="Rows per shard.")] = None,
    shard_mb: Annotated[int, typer.Option(help="Target shard size in MB.")] = 256,
    card: Annotated[bool, typer.Option(help="Write README.md and plots too.")] = True,
    completions: Annotated[
        str,
        typer.Option(
            help="sft/trl: the assistant messages are the run's responses, the problems' "
            "reference solutions, or both; auto: responses when the run has them, else "
            "solutions (auto | responses | solutions | both)."
        ),
    ] = "auto",
    tokenizer: Annotated[
        str | None, typer.Option(help="pretrain: count each page's tokens with this tokenizer.")
    ] = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="A system message at the start of every prompt.")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            help="The user message, with {problem} where the problem goes; '{problem}' alone: "
            "the bare problem (default: rl/verl the problem with DeepScaleR's instruction, "
            "sft/trl the prompt each response was generated from)."
        ),
    ] = None,
) -> None:
    """Export a run as training-ready Parquet shards (and its dataset card)."""
    from curate.export.shards import export_run

    if format == "pretrain":
        from curate.export.pretrain import export_pretrain

        try:
            done = export_pretrain(
                run_dir, out_dir, tokenizer=tokenizer, shard_rows=shard_rows,
                shard_bytes=shard_mb * 2**20,
            )  # fmt: skip
        except CurateError as e:
            raise _fail(e) from None
        tokens = f", {done.tokens:,} tokens" if done.tokens is not None else ""
        typer.echo(f"train: {done.rows:,} pages, {done.chars:,} characters{tokens} in "
                   f"{len(done.files)} shard(s)")  # fmt: skip
        return
    try:
        result = export_run(
            run_dir,
            out_dir,
            format=format,  # type: ignore[arg-type]  # checked by ExportOptions
            test_fraction=test_fraction,
            seed=seed,
            order=order,  # type: ignore[arg-type]  # checked by ExportOptions
            shard_rows=shard_rows,
            shard_bytes=shard_mb * 2**20,
            completions=completions,  # type: ignore[arg-type]  # checked by ExportOptions
            system_prompt=system_prompt,
            template=template,
        )
        if card:
            from curate.export.card import write_card

            write_card(run_dir, out_dir, export=out_dir)
    except CurateError as e:
        raise _fail(e) from None
    for split, rows in result.rows.items():
        typer.echo(f"{split}: {rows:,} rows in {len(result.files.get(split, []))} shard(s)")
    if result.completions is not None:
        line = f"completions: {result.completions}"
        if result.without_solution is not None:
            line += f"; {result.without_solution:,} problem(s) without a solution left out"
        line += f"; {result.duplicates:,} duplicate (prompt, completion) pair(s) dropped"
        typer.echo(line)
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
    force: Annotated[
        bool, typer.Option(help="Publish even when the run changed since the export.")
    ] = False,
) -> None:
    """Upload an export to the Hugging Face Hub (token from HF_TOKEN or `hf auth login`).

    The uploaded card and export.json name no local path (made relative); an export whose
    run changed since it was written is refused without --force.
    """
    from curate.export.hub import publish as upload

    try:
        result = upload(
            out_dir, repo, private=private, revision=revision, dry_run=dry_run, large=large,
            force=force,
        )  # fmt: skip
    except CurateError as e:
        raise _fail(e) from None
    typer.echo(result.summary())


@app.command()
def verify(
    gold: Annotated[
        str | None, typer.Argument(help="Gold answer (or a reference solution).")
    ] = None,
    pred: Annotated[
        str | None, typer.Argument(help="Predicted answer or a whole model response.")
    ] = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help='JSONL file of {"gold": ..., "pred": ...} lines; prints one verdict per line.'
        ),
    ] = None,
    rel_tol: Annotated[float, typer.Option(help="Relative tolerance for numbers.")] = 0.0,
    abs_tol: Annotated[float, typer.Option(help="Absolute tolerance for numbers.")] = 0.0,
    decimals: Annotated[
        int, typer.Option(help="Round to this many decimals when a decimal is involved (-1: off).")
    ] = 6,
    percent: Annotated[
        str, typer.Option(help="50% equals: either (50 and 0.5), value (0.5), number (50).")
    ] = "either",
    relations: Annotated[
        str, typer.Option(help="as_sets (x<=7 equals (-inf, 7]) or as_written.")
    ] = "as_sets",
    symbols: Annotated[
        str, typer.Option(help="strict (variable names matter) or lenient.")
    ] = "strict",
    think: Annotated[
        str, typer.Option(help="after (read after </think>), require, or ignore.")
    ] = "after",
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per check.")] = 5.0,
) -> None:
    """Check whether PRED states the same answer as GOLD.

    Exit 0 if equivalent, 1 if different, 2 if it could not be decided (no answer in PRED,
    an unparseable side, a timeout, an error). With --pairs, every line of the file gets a
    verdict line (a malformed line gets status "error"), in order, and the exit code is 0.
    """
    from curate.verification import VerifyOptions, verify_many

    try:
        options = VerifyOptions(
            rel_tol=rel_tol,
            abs_tol=abs_tol,
            decimals=None if decimals < 0 else decimals,
            percent=percent,  # type: ignore[arg-type]
            relations=relations,  # type: ignore[arg-type]
            symbols=symbols,  # type: ignore[arg-type]
            think=think,  # type: ignore[arg-type]
        )
        if pairs is not None and (gold is not None or pred is not None):
            raise ConfigError("give either GOLD PRED or --pairs FILE, not both")
        if pairs is None and (gold is None or pred is None):
            raise ConfigError("give GOLD and PRED, or --pairs FILE")
        lines = _read_pairs(pairs) if pairs is not None else [(gold, pred)]
    except CurateError as e:
        raise _fail(e) from None
    good = [(i, item) for i, item in enumerate(lines) if isinstance(item, tuple)]
    verdicts = dict(
        zip(
            [i for i, _ in good],
            verify_many(
                [item for _, item in good],
                options=options,
                timeout=timeout,
                progress=pairs is not None,  # a bar on a terminal, else lines (curate._progress)
            ),
            strict=True,
        )
    )
    if pairs is not None:
        counts: dict[str, int] = {}
        for i, item in enumerate(lines):
            v = verdicts.get(i)
            out = v.as_dict() if v else {"equivalent": False, **_bad_line(str(item))}
            status = str(out["status"])
            counts[status] = counts.get(status, 0) + 1
            sys.stdout.write(json.dumps({"line": i + 1, **out}, ensure_ascii=False) + "\n")
        typer.echo(", ".join(f"{k}: {n}" for k, n in sorted(counts.items())), err=True)
        return
    verdict = verdicts[0]
    if as_json:
        typer.echo(json.dumps(verdict.as_dict(), ensure_ascii=False))
    else:
        why = f"{verdict.reason}: {verdict.detail}" if verdict.detail else verdict.reason
        typer.echo(f"{verdict.status} ({why})")
        typer.echo(f"  gold: {verdict.gold}\n  pred: {verdict.pred}", err=True)
    raise typer.Exit({"equivalent": 0, "different": 1}.get(verdict.status, 2))


def _bad_line(problem: str) -> dict[str, str | None]:
    return {"status": "error", "reason": "bad_input", "detail": problem, "gold": None, "pred": None}


def _read_pairs(path: Path) -> list[tuple[str, str] | str]:
    """Each line of a JSONL file of gold/pred pairs: the pair, or what is wrong with it."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", path=path) from None
    items: list[tuple[str, str] | str] = []
    for number, line in enumerate(raw.splitlines(), 1):
        where = f"{path}, line {number}"
        if not line.strip():
            items.append(f"{where}: empty line")
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            items.append(f"{where}: not valid JSON: {e}")
            continue
        if not isinstance(obj, dict):
            items.append(f"{where}: expected a JSON object with gold and pred")
            continue
        problems = []
        for key in ("gold", "pred"):
            if key not in obj:
                problems.append(f"field {key!r}: missing")
            elif isinstance(obj[key], bool) or not isinstance(obj[key], (str, int, float)):
                problems.append(
                    f"field {key!r}: expected a string or number, got {type(obj[key]).__name__}"
                )
        if problems:
            items.append(f"{where}: " + "; ".join(problems))
        else:
            items.append((_as_text(obj["gold"]), _as_text(obj["pred"])))
    return items


def _as_text(value: str | int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Argument(help="Model folder or name (served name for openai).")],
    benchmark: Annotated[
        list[str],
        typer.Option("--benchmark", "-b", help="Bundled name or a problems file (repeatable)."),
    ],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", "-m", help="Column mapping of files, e.g. problem=question."),
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Samples per problem.")] = 16,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.6,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling top-p.")] = 0.95,
    max_tokens: Annotated[int, typer.Option(help="Longest completion, in tokens.")] = 32768,
    engine: Annotated[str, typer.Option(help="hf | vllm | openai")] = "hf",
    base_url: Annotated[
        str | None, typer.Option(help="Server URL for --engine openai (…/v1).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder (default: evals/MODEL-NAME).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every sample's seed.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems of each.")] = None,
    template: Annotated[
        str | None, typer.Option(help="Prompt template with {problem} (default: DeepScaleR's).")
    ] = None,
    system_prompt: Annotated[str | None, typer.Option(help="A system message.")] = None,
    chat: Annotated[
        bool, typer.Option(help="Use the chat template (--no-chat: raw prompt, base models).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Evaluate a model on benchmarks: pass@1 (±95% CI), pass@k, maj@k over N samples each."""
    import re

    from curate.distill import DEFAULT_TEMPLATE
    from curate.evaluation import evaluate

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(model.rstrip("/")).name) or "model"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # they are printed with the table
            result = evaluate(
                model,
                benchmark,
                out=out or Path("evals") / name,
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                seed=seed,
                limit=limit,
                template=template or DEFAULT_TEMPLATE,
                system=system_prompt,
                chat=chat,
                engine=engine,  # type: ignore[arg-type]  # checked by evaluate
                base_url=base_url,
                columns=_parse_map(map_ or []),
                progress=not quiet and not as_json,
            )
    except CurateError as e:
        raise _fail(e) from None
    if as_json:
        typer.echo(json.dumps(result.summary, indent=2, ensure_ascii=False, default=str))
        for warning in result.warnings:
            typer.echo(f"WARNING: {warning}", err=True)
        return
    typer.echo(result.table())
    typer.echo(f"\nwrote {result.out}/samples.parquet and summary.json")


from curate.cli_mine import mine_command  # noqa: E402  (the commands below the app)
from curate.cli_train import train_app  # noqa: E402

app.add_typer(train_app)
app.command("mine")(mine_command)


def main() -> None:
    setup_output()  # here, not in a callback: it sets environment variables for the process
    app()


if __name__ == "__main__":
    main()
