"""Which stored responses an export takes: the samples its problems selected (or, for a
run without selections, the current responses of each key), found a bucket of problems at
a time over one routing pass of the responses table (`_wanted_responses`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from curate.errors import ConfigError, RunError
from curate.export.formats import REFERENCE
from curate.responses import RESPONSE_KEYS, ResponsesTable, bucket_count, one_per_key, routed

if TYPE_CHECKING:
    from curate.export.shards import ExportOptions
    from curate.run import Run

from curate.export.ranges import _KEYS, _ORDER, _order_column, _positions, _problem_index

_SAMPLE_MATCH = ["finish_reason", "n_tokens", "extracted_answer", "verdict"]


def _no_reference_model(wanted: pl.DataFrame) -> None:
    if wanted.filter(pl.col("model") == REFERENCE).height:
        raise ConfigError(
            f"a model of the run is labelled {REFERENCE!r}, the label of the reference "
            "solutions in completions='both', so their rows would share ids: export "
            "completions='responses' and completions='solutions' separately"
        )


def _wanted_responses(
    run: Run,
    parts: list[Path],
    problems: pl.LazyFrame,
    options: ExportOptions,
    *,
    buckets: int | None = None,
    index: pl.DataFrame | None = None,
    under: Path | None = None,
) -> pl.DataFrame:
    """Where in the responses ``parts`` the responses to export are: ``_part``, ``_row``,
    and their key: ``_problem`` (the problem's place in ``index``, `_problem_index`),
    ``model``, ``sample``; and when shuffled, the ``_order`` they are sorted by: about 32
    bytes per response (a model name of up to 12 bytes is held in place), no problem id.

    Read from the key columns only (no text): per (problem, model, sample), the response
    of the run's own settings (`_current`; where a key was stored twice, the copy
    `curate.distill.read_responses` keeps), and of those the ``selected`` ones, or else the
    correct, finished ones. Found in ``buckets`` (by default one per `EXPORT_BUCKET`
    stored responses) of a hash of the problem id, one at a time: a key's copies, and the
    ``samples`` that describe it, share its problem, so each bucket decides alone. With
    more than one, the parts' key columns and the problems' ``samples`` are read once and
    routed to a temporary file per bucket (`curate.responses.routed`, in ``under``).
    """
    columns = problems.collect_schema().names()
    if buckets is None:
        buckets = bucket_count(parts, EXPORT_BUCKET)
    if "samples" in columns and "gen_key" not in _sample_fields(problems.collect_schema()):
        buckets = 1  # runs of before ``gen_key``: `_current` votes over every key at once
    positions = _positions(_problem_index(problems, options) if index is None else index)
    mine = problems.select(c for c in ("id", "samples", "selected") if c in columns)
    if buckets == 1:  # a small table: read directly
        keys, gone = _wanted_in(_keys_of(_scans(parts)), mine.collect())
        wanted = _compact(keys, positions, options)
    else:
        wanted, gone = _wanted_routed(run, parts, mine, options, buckets, positions, under)
    if gone.height:
        raise RunError(
            f"{run.path}: {gone.height} selected response(s) are not in the responses "
            f"table, e.g. {gone.row(0, named=True)}; the run is inconsistent: re-run "
            "the recipe to regenerate them"
        )
    return wanted


_READ = [*RESPONSE_KEYS, *_SAMPLE_MATCH, "correct"]
"""The responses' columns `_wanted_responses` reads (with each row's part and place)."""


def _scans(parts: list[Path]) -> pl.LazyFrame:
    """The `_READ` columns of every part, with their ``_part`` and ``_row``."""
    scans = [
        pl.scan_parquet(p)
        .select(_READ)
        .with_row_index("_row")
        .with_columns(pl.lit(i, pl.Int64).alias("_part"))
        for i, p in enumerate(parts)
    ]
    return pl.concat(scans, how="diagonal_relaxed")


def _keys_of(responses: pl.LazyFrame) -> pl.DataFrame:
    """``responses`` (`_READ`, part and row), one per key (`one_per_key`)."""
    casts = pl.col("sample", "n_tokens").cast(pl.Int64), pl.col("_row").cast(pl.Int64)
    return one_per_key(responses.with_columns(*casts)).collect()


def _wanted_routed(
    run: Run,
    parts: list[Path],
    mine: pl.LazyFrame,
    options: ExportOptions,
    buckets: int,
    positions: pl.DataFrame,
    under: Path | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`_wanted_responses` in ``buckets``: the responses' key columns and the problems
    (``mine``: id, samples, selected) each read once, routed to bucket files, and each
    bucket decided in turn; and the selected responses the table lacks."""
    table = ResponsesTable.of_run(run.path)
    schema = table.frames_schema(_READ, located=True)
    frames, missing = [], []
    with (
        routed(
            table.frames(_READ, parts=parts, located=True),
            key="problem_id",
            count=buckets,
            schema=schema,
            under=under,
        ) as responses,
        routed(
            mine.collect_batches(chunk_size=PROBLEM_BATCH),
            key="id",
            count=buckets,
            schema=mine.collect_schema(),
            under=under,
        ) as problems,
    ):
        for bucket in range(buckets):
            keys = _keys_of(responses.read(bucket).lazy())
            keys, absent = _wanted_in(keys, problems.read(bucket))
            frames.append(_compact(keys, positions, options))
            missing.append(absent)
    return pl.concat(frames), pl.concat(missing)


def _compact(keys: pl.DataFrame, positions: pl.DataFrame, options: ExportOptions) -> pl.DataFrame:
    """`_wanted_in`'s ``keys`` as `_wanted_responses` keeps them (the problem id as its
    place, the shuffle's draw computed while the id is at hand)."""
    if options.order == "shuffle":
        ids = keys.select(pl.concat_str(pl.col(*_KEYS).cast(pl.String), separator="/"))
        keys = keys.with_columns(_order_column(ids.to_series(), options.seed))
    return keys.join(positions, on="problem_id", maintain_order="left").select(
        pl.col("_part", "_row").cast(pl.Int32),
        "_problem",
        "model",
        pl.col("sample").cast(pl.Int32),
        *([_ORDER] if options.order == "shuffle" else []),
    )


EXPORT_BUCKET = 250_000
"""Stored responses per bucket in which `_wanted_responses` finds the responses to export
(the parts' key columns are read once and routed to bucket files: more buckets hold less
at once)."""

PROBLEM_BATCH = 65_536
"""Problems (id, samples, selected) read at a time while they are routed to buckets."""


def _wanted_in(keys: pl.DataFrame, mine: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`_wanted_responses` of the problems ``mine`` (id, samples, selected) among the
    responses ``keys`` (`_keys_of`: every stored key of those problems, and maybe more),
    and the ``selected`` responses of those that the responses table lacks."""
    keys = _current(keys, mine)
    missing = pl.DataFrame()
    if "selected" in mine.columns:
        chosen = _per_sample(mine, "selected")
        missing = chosen.join(keys, on=_KEYS, how="anti")
        keys = keys.join(chosen, on=_KEYS, how="semi")
    else:
        keys = keys.filter(pl.col("correct").fill_null(False), pl.col("finish_reason") == "stop")
    keys = keys.join(mine.select(pl.col("id").alias("problem_id")), on="problem_id", how="semi")
    return keys.select("_part", "_row", *_KEYS), missing


def _per_sample(problems: pl.DataFrame, column: str) -> pl.DataFrame:
    """One row per entry of the problems' list-of-structs ``column`` (``samples``,
    ``selected``): its fields, under the problem's id as ``problem_id``."""
    return (
        problems.select(pl.col("id").alias("problem_id"), column)
        .explode(column)
        .drop_nulls(column)
        .unnest(column)
        .with_columns(pl.col("sample").cast(pl.Int64))
    )


def _sample_fields(schema: pl.Schema) -> list[str]:
    dtype = schema["samples"]
    inner = dtype.inner if isinstance(dtype, pl.List) else None
    return [f.name for f in inner.fields] if isinstance(inner, pl.Struct) else []


def _current(keys: pl.DataFrame, problems: pl.DataFrame) -> pl.DataFrame:
    """One response per (problem, model, sample): the ones the run's ``samples`` describe.

    The responses cache outlives settings: a model re-run with other sampling settings has
    two responses per key under two ``gen_key``\\ s. Each entry of ``samples`` names its
    ``gen_key``: the response with that exact key is the run's own. (Runs of curate before
    that: per model, the ``gen_key`` whose responses match the problems' ``samples``
    (finish reason, tokens, answer, verdict) most often.)
    """
    exact = "samples" in problems.columns and "gen_key" in _sample_fields(problems.schema)
    if exact:
        described = _per_sample(problems, "samples").select(RESPONSE_KEYS)
        keys = keys.join(described, on=list(RESPONSE_KEYS), how="semi")
    elif "samples" in problems.columns:
        described = (
            _per_sample(problems, "samples")
            .select(*_KEYS, *_SAMPLE_MATCH)
            .with_columns(pl.col("n_tokens").cast(pl.Int64))
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
    return keys.sort(RESPONSE_KEYS).unique(_KEYS, keep="first", maintain_order=True)
