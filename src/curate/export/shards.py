r"""Export a run as training-ready Parquet shards: rows, split, shards, manifest.

`export_run` reads the run's final problems (and, for ``sft``/``trl``, its responses),
shapes them into one of the formats of `curate.export.formats`, validates every row, and
only then writes::

    OUT/data/train-00000-of-00002.parquet   the Hub's shard naming: load_dataset finds the
    OUT/data/train-00001-of-00002.parquet   splits by file name
    OUT/data/test-00000-of-00001.parquet    (only when test_fraction > 0)
    OUT/export.json                         format, splits (rows, bytes, files), features,
                                            the run's path and stage fingerprints, options

- **Split**: a row goes to ``test`` when `split_draw` (BLAKE2b of the seed and the problem
  id) falls below ``test_fraction``; the responses of one problem share its split, so no
  problem is in both. The same ids and seed give the same split on every machine.
- **Order**: by problem id, then model and sample; the same run gives the same rows in the
  same order, and the same bytes (zstd level 3, no pandas or `datasets` metadata in the
  file: any Parquet reader gets the plain Arrow types).
- **Shards**: ``shard_rows`` rows each, or as many rows as fit in about ``shard_bytes`` of
  uncompressed Arrow data (so files on disk come out smaller); row groups of
  ``row_group_rows``, by default about 100 MB of uncompressed data, the bound `datasets`
  and the Hub's viewer use.
- **Replace**: shards are written into a hidden folder and swapped in for ``OUT/data`` in
  one rename, so a re-export never leaves a stale shard of a bigger earlier export; the
  manifest is replaced last. ``OUT`` must be new, empty, or a previous export.
- **Empty**: a split with no rows has no file (`datasets` cannot load a file-less or
  zero-row split beside others), except that an export with no rows at all writes one
  zero-row shard per split, so its schema is still on disk.

>>> split_draw(0, "math:0:1a2b3c4d") == split_draw(0, "math:0:1a2b3c4d")
True
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from curate._version import __version__
from curate.distill import DEFAULT_TEMPLATE, RESPONSES_DIR
from curate.errors import ConfigError, InputError, RunError
from curate.export.formats import (
    FORMATS,
    THINK_END,
    THINK_START,
    Format,
    fields_for,
    hub_features,
    select,
    to_arrow,
)
from curate.io import write_json
from curate.run import Run

if TYPE_CHECKING:
    import pyarrow as pa

EXPORT_MANIFEST = "export.json"
EXPORT_VERSION = 1
DATA_DIR = "data"
ROW_GROUP_BYTES = 100 * 2**20
_MSG = pl.Struct({"role": pl.String, "content": pl.String})
_KEYS = ["problem_id", "model", "sample"]
# the problem columns a response row carries (the last three only when graded)
_PROBLEM_COLUMNS: tuple[str, ...] = ("id", "problem", "answer", "source", "level", "subject")
_PROBLEM_COLUMNS += ("pass_rate", "cv", "difficulty")
_SAMPLE_MATCH = ["finish_reason", "n_tokens", "extracted_answer", "verdict"]


@dataclass(frozen=True)
class ExportOptions:
    """How `export_run` shapes and shards a run (see the module doc for each option)."""

    format: Format
    test_fraction: float = 0.0
    seed: int = 0
    shard_rows: int | None = None
    shard_bytes: int = 256 * 2**20
    row_group_rows: int | None = None
    system_prompt: str | None = None
    template: str | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"export format {self.format!r}: expected one of {list(FORMATS)}")
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(
                f"test_fraction={self.test_fraction}: expected 0 <= test_fraction < 1"
            )
        for name in ("shard_rows", "row_group_rows"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and value >= 1):
                raise ConfigError(f"{name}={value!r}: expected a positive integer or None")
        if not (isinstance(self.shard_bytes, int) and self.shard_bytes >= 1):
            raise ConfigError(f"shard_bytes={self.shard_bytes!r}: expected a positive integer")
        if self.template is not None and "{problem}" not in self.template:
            raise ConfigError(
                f"template={self.template!r} has no {{problem}}: the problem goes where it is"
            )

    @property
    def splits(self) -> tuple[str, ...]:
        return ("train", "test") if self.test_fraction > 0 else ("train",)


@dataclass(frozen=True)
class ExportResult:
    """What `export_run` wrote: rows and files per split (paths absolute), the manifest."""

    out: Path
    format: Format
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def manifest(self) -> Path:
        return self.out / EXPORT_MANIFEST


def split_draw(seed: int, key: str) -> float:
    """A number in [0, 1) from ``seed`` and ``key``: a row is ``test`` when it is below the
    test fraction (BLAKE2b, so the same on every machine and Python)."""
    digest = hashlib.blake2b(f"curate-split\x00{seed}\x00{key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / 2**64


def export_run(
    run: Run | str | Path,
    out: str | Path,
    *,
    format: Format,
    test_fraction: float = 0.0,
    seed: int = 0,
    shard_rows: int | None = None,
    shard_bytes: int = 256 * 2**20,
    row_group_rows: int | None = None,
    system_prompt: str | None = None,
    template: str | None = None,
) -> ExportResult:
    r"""Export run ``run`` into ``out`` as ``format`` shards (see the module doc).

    >>> import curate, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n')
    >>> run = curate.Recipe("r", [curate.read(d / "p.jsonl")]).run(d / "run")
    >>> result = export_run(run, d / "out", format="verl")
    >>> result.rows, [p.name for p in result.files["train"]]
    ({'train': 1}, ['train-00000-of-00001.parquet'])
    """
    options = ExportOptions(
        format=format,
        test_fraction=test_fraction,
        seed=seed,
        shard_rows=shard_rows,
        shard_bytes=shard_bytes,
        row_group_rows=row_group_rows,
        system_prompt=system_prompt,
        template=template,
    )
    run = run if isinstance(run, Run) else Run(run)
    out = Path(out)
    _check_out(out)
    tables = build_splits(run, options)  # every row validated before anything is written
    return _write(run, out, options, tables)


def build_splits(run: Run, options: ExportOptions) -> dict[str, pa.Table]:
    """The rows of each split as Arrow tables of the format's schema, validated, in order."""
    problems = run.table("problems").collect()
    fields = fields_for(options.format, problems.columns)
    if options.format in ("sft", "trl"):
        base = _response_rows(run, problems, options)
        key = "problem_id"
    else:
        base = problems.sort("id")
        key = "id"
    base = base.with_columns(_split_column(base[key], options))
    tables = {}
    for split in options.splits:
        part = base.filter(pl.col("_split") == split).with_row_index("_index")
        shaped = select(part, fields, _expressions(options))
        tables[split] = to_arrow(shaped, options.format, fields)
    return tables


def _split_column(keys: pl.Series, options: ExportOptions) -> pl.Expr:
    """``train`` or ``test`` per row, drawn once per distinct key (a problem id)."""
    if options.test_fraction == 0:
        return pl.lit("train", pl.String).alias("_split")
    test = [
        k for k in keys.unique().to_list() if split_draw(options.seed, k) < options.test_fraction
    ]
    is_test = pl.col(keys.name).is_in(pl.Series(test, dtype=pl.String).implode())
    return pl.when(is_test).then(pl.lit("test")).otherwise(pl.lit("train")).alias("_split")


def _user_prompt(options: ExportOptions) -> pl.Expr:
    """[system?, user] built from the problem and the template."""
    parts = (options.template or DEFAULT_TEMPLATE).split("{problem}")
    pieces: list[pl.Expr] = [pl.lit(parts[0])]
    for rest in parts[1:]:
        pieces += [pl.col("problem"), pl.lit(rest)]
    messages = [_message("user", pl.concat_str(pieces))]
    if options.system_prompt is not None:
        messages.insert(0, _message("system", pl.lit(options.system_prompt)))
    return pl.concat_list(messages)


def _message(role: str, content: pl.Expr) -> pl.Expr:
    return pl.struct(
        pl.lit(role, pl.String).alias("role"), content.cast(pl.String).alias("content")
    )


def _expressions(options: ExportOptions) -> dict[str, pl.Expr]:
    """How each field of the format is computed from a split's base rows (fields not named
    here are the base column of the same name)."""
    fmt = options.format
    if fmt in ("rl", "verl"):
        prompt = _user_prompt(options)
        if fmt == "rl":
            return {"prompt": prompt}
        return {
            "data_source": pl.col("source"),
            "prompt": prompt,
            "ability": pl.lit("math"),
            "reward_model.style": pl.lit("rule"),
            "reward_model.ground_truth": pl.col("answer"),
            "extra_info.split": pl.col("_split"),
            "extra_info.index": pl.col("_index").cast(pl.Int64),
        }
    text = pl.col("text")
    head = text.str.strip_chars_start()
    reply = (
        pl.when(head.str.starts_with(THINK_START))
        .then(head)
        .when(text.str.contains(THINK_END, literal=True))
        .then(pl.lit(THINK_START + "\n") + text)
        .otherwise(text)
    )
    assistant = pl.concat_list([_message("assistant", reply)])
    prompt = _user_prompt(options) if options.template is not None else pl.col("_prompt")
    common = {
        "id": pl.concat_str(
            [pl.col("problem_id"), pl.col("model"), pl.col("sample").cast(pl.String)],
            separator="/",
        ),
        "sample": pl.col("sample").cast(pl.Int64),
        "n_tokens": pl.col("n_tokens").cast(pl.Int64),
    }
    if fmt == "sft":
        return {**common, "messages": pl.concat_list(prompt, assistant)}
    return {**common, "prompt": prompt, "completion": assistant}


def _response_rows(run: Run, problems: pl.DataFrame, options: ExportOptions) -> pl.DataFrame:
    """The selected responses with their problem's columns, ordered by problem, model, sample."""
    folder = run.path / RESPONSES_DIR
    parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not parts:
        raise RunError(
            f"{run.path} has no responses ({folder} is missing or empty), and an "
            f"{options.format} export is made of responses: run Distill first, or export "
            "rl/verl"
        )
    scan = pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed")
    scan = scan.with_columns(pl.col("sample", "n_tokens").cast(pl.Int64))
    keyed = [*_KEYS, "gen_key"]
    keys = (
        scan.select(*keyed, *_SAMPLE_MATCH, "correct")
        .unique(keyed, keep="first", maintain_order=True)  # as read_responses: first part wins
        .collect()
    )
    keys = _current(keys, problems)
    if "selected" in problems.columns:
        chosen = (
            problems.select(pl.col("id").alias("problem_id"), "selected")
            .explode("selected")
            .drop_nulls("selected")
            .unnest("selected")
            .with_columns(pl.col("sample").cast(pl.Int64))
        )
        missing = chosen.join(keys, on=_KEYS, how="anti")
        if missing.height:
            raise RunError(
                f"{run.path}: {missing.height} selected response(s) are not in the responses "
                f"table, e.g. {missing.row(0, named=True)}; the run is inconsistent: re-run "
                "the recipe to regenerate them"
            )
        keys = keys.join(chosen, on=_KEYS, how="semi")
    else:
        keys = keys.filter(pl.col("correct").fill_null(False), pl.col("finish_reason") == "stop")
    texts = (
        scan.select(*keyed, "text", "prompt", "n_tokens")
        .join(keys.lazy().select(keyed), on=keyed, how="semi")
        .unique(keyed, keep="first", maintain_order=True)
        .collect()
    )
    wanted = [c for c in _PROBLEM_COLUMNS if c in problems.columns]
    rows = texts.join(problems.select(wanted), left_on="problem_id", right_on="id", how="inner")
    if options.template is None:
        rows = rows.join(_parse_prompts(rows["prompt"], options.system_prompt), on="prompt")
    return rows.sort(_KEYS)


def _current(keys: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """One response per (problem, model, sample): the ones the run's ``samples`` describe.

    The responses cache outlives settings: a model re-run with other sampling settings has
    two responses per key under two ``gen_key``\\ s. Per model, the ``gen_key`` whose
    responses match the problems' ``samples`` (finish reason, tokens, answer, verdict) most
    often is the run's own.
    """
    if "samples" in problems.columns:
        described = (
            problems.select(pl.col("id").alias("problem_id"), "samples")
            .explode("samples")
            .drop_nulls("samples")
            .unnest("samples")
            .select(*_KEYS, *_SAMPLE_MATCH)
            .with_columns(pl.col("sample", "n_tokens").cast(pl.Int64))
        )
        keys = keys.join(described.select(_KEYS).unique(), on=_KEYS, how="semi")
        votes = (
            keys.join(described, on=[*_KEYS, *_SAMPLE_MATCH], how="semi", nulls_equal=True)
            .group_by("model", "gen_key")
            .len()
            .sort(["model", "len", "gen_key"], descending=[False, True, False])
            .unique("model", keep="first", maintain_order=True)
        )
        keys = keys.join(votes.select("model", "gen_key"), on=["model", "gen_key"], how="semi")
    return keys.sort([*_KEYS, "gen_key"]).unique(_KEYS, keep="first", maintain_order=True)


def _parse_prompts(prompts: pl.Series, system: str | None) -> pl.DataFrame:
    """Each distinct stored prompt (JSON of chat messages, or a string) as messages."""
    rows = []
    for stored in prompts.unique().sort().to_list():
        try:
            value = json.loads(stored)
        except json.JSONDecodeError:
            value = stored  # a raw completion prompt stored as text
        if isinstance(value, str):
            messages = [{"role": "user", "content": value}]
        elif isinstance(value, list) and all(
            isinstance(m, dict)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in value
        ):
            messages = [{"role": m["role"], "content": m["content"]} for m in value]
        else:
            raise InputError(
                f"a response's prompt is {stored[:120]!r}: expected JSON of chat messages "
                '([{"role": ..., "content": ...}]) or a string; pass template= to build the '
                "prompts from the problems instead",
                field="prompt",
            )
        if system is not None:
            messages = [{"role": "system", "content": system}] + [
                m for m in messages if m["role"] != "system"
            ]
        rows.append({"prompt": stored, "_prompt": messages})
    return pl.DataFrame(rows, schema={"prompt": pl.String, "_prompt": pl.List(_MSG)})


# --- writing ---------------------------------------------------------------------------------


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that holds something other than a previous export."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"export folder {out} is a file; give a new or empty folder")
    if previous_export(out) is not None:
        return
    entries = [p.name for p in out.iterdir() if not _ours_stale(p.name)]
    if entries:
        raise ConfigError(
            f"export folder {out} is not empty ({', '.join(sorted(entries)[:5])}) and holds no "
            f"curate export ({EXPORT_MANIFEST}); export into a new or empty folder, or into a "
            "previous export to replace it"
        )


def _ours_stale(name: str) -> bool:
    return name.startswith((f".{DATA_DIR}.tmp-", f".{DATA_DIR}.old-"))


def previous_export(out: str | Path) -> dict[str, Any] | None:
    """The manifest of the export in ``out``, or None if it holds none."""
    path = Path(out) / EXPORT_MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
        return None
    return manifest


def _write(
    run: Run, out: Path, options: ExportOptions, tables: dict[str, pa.Table]
) -> ExportResult:
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():  # left by an export that was killed
        if _ours_stale(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = out / f".{DATA_DIR}.tmp-{os.getpid()}"
    tmp.mkdir()
    total = sum(t.num_rows for t in tables.values())
    splits: dict[str, dict[str, Any]] = {}
    files: dict[str, list[Path]] = {}
    try:
        for split, table in tables.items():
            names = []
            if table.num_rows or not total:
                shards, row_group = _plan(table, options)
                for i, (offset, length) in enumerate(shards):
                    name = f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
                    _write_shard(table.slice(offset, length), tmp / name, row_group)
                    names.append(name)
            splits[split] = {
                "rows": table.num_rows,
                "bytes": sum((tmp / n).stat().st_size for n in names),
                "files": [f"{DATA_DIR}/{n}" for n in names],
            }
            files[split] = [out / DATA_DIR / n for n in names]
        old = out / f".{DATA_DIR}.old-{os.getpid()}"
        if (out / DATA_DIR).exists():
            os.replace(out / DATA_DIR, old)
        os.replace(tmp, out / DATA_DIR)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    schema = next(iter(tables.values())).schema
    manifest = {
        "export_version": EXPORT_VERSION,
        "format": options.format,
        "curate_version": __version__,
        "rows": total,
        "splits": splits,
        "features": hub_features(schema),
        "run": {
            "path": str(run.path.resolve()),
            "recipe": run.name,
            "stages": [
                {"name": s["name"], "fingerprint": s["fingerprint"]} for s in run.manifest["stages"]
            ],
        },
        "options": {k: v for k, v in asdict(options).items() if k != "format"},
    }
    write_json(manifest, out / EXPORT_MANIFEST)
    return ExportResult(out, options.format, {s: t.num_rows for s, t in tables.items()}, files)


def _plan(table: pa.Table, options: ExportOptions) -> tuple[list[tuple[int, int]], int]:
    """(offset, rows) of each shard, and the rows per row group."""
    n = table.num_rows
    per_row = max(1.0, table.nbytes / n) if n else 1.0
    per_shard = options.shard_rows or max(1, int(options.shard_bytes // per_row))
    count = max(1, math.ceil(n / per_shard))
    row_group = options.row_group_rows or max(1, int(ROW_GROUP_BYTES // per_row))
    return [(i * per_shard, min(per_shard, n - i * per_shard)) for i in range(count)], row_group


def _write_shard(table: pa.Table, path: Path, row_group: int) -> None:
    """One shard: zstd, statistics, no schema metadata (plain for every reader); a table
    with no rows gets no row group at all (`datasets` cannot read an empty one)."""
    import pyarrow.parquet as pq

    with open(path, "wb") as f:
        with pq.ParquetWriter(
            f, table.schema, compression="zstd", compression_level=3, store_schema=False
        ) as writer:
            if table.num_rows:
                writer.write_table(table, row_group_size=min(row_group, table.num_rows))
        f.flush()
        os.fsync(f.fileno())
