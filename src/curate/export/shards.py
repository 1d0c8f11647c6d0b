r"""Export a run as training-ready Parquet shards: rows, split, shards, manifest.

`export_run` reads the run's final problems (and, for ``sft``/``trl``, its responses or
the problems' reference solutions: ``completions=``), shapes them into one of the formats of
`curate.export.formats` and validates every row, a chunk of about 64 MB of text at a time
(the responses are sorted a range of the export order at a time, each range spilled to
disk first: memory holds one range's texts however many responses), into a hidden folder
that becomes ``OUT/data`` only once every row passed::

    OUT/data/train-00000-of-00002.parquet   the Hub's shard naming: load_dataset finds the
    OUT/data/train-00001-of-00002.parquet   splits by file name
    OUT/data/test-00000-of-00001.parquet    (only when test_fraction > 0)
    OUT/export.json                         format, splits (rows, bytes, files), features,
                                            the run's path and stage fingerprints, options;
                                            sft/trl: where the completions came from, the
                                            problems without a solution, the duplicates;
                                            verl/rl: how to score it (``reward``)

- **Split**: a row goes to ``test`` when `split_draw` (BLAKE2b of the seed and the problem
  id) falls below ``test_fraction``; the responses of one problem share its split, so no
  problem is in both. The same ids and seed give the same split on every machine.
- **Order**: by problem id, then model and sample; the same run gives the same rows in the
  same order, and the same bytes (zstd level 3, no pandas or `datasets` metadata in the
  file: any Parquet reader gets the plain Arrow types). Ids begin with their source, so the
  sources come in blocks: ``order="shuffle"`` orders the rows of each split by `order_draw`
  (BLAKE2b of the seed and the exported row's id) instead, the same on every machine; a
  response is placed on its own, not beside the other responses of its problem. The split
  does not depend on the order; of two duplicate pairs (below), the one kept does.
- **Completions** (``sft``/``trl``): ``completions="responses"`` takes the run's selected
  responses; ``"solutions"`` the problems' reference solutions (``model`` ``"reference"``,
  ``sample`` 0; a problem whose solution is null or blank is left out and counted);
  ``"both"`` the two; ``"auto"`` (the default) responses when the run has a responses table,
  else solutions. A choice the run cannot satisfy is an error that says what to do.
- **Duplicates** (``sft``/``trl``): a (prompt, completion) pair is exported once, the first
  in export order (train before test, then the order above): two samples with the same text,
  or one problem under two ids. A 16-byte digest per exported row is kept to find them.
- **Shards**: ``shard_rows`` rows each, or as many rows as fit in about ``shard_bytes`` of
  uncompressed Arrow data (so files on disk come out smaller; `curate.export.writer`); row
  groups of ``row_group_rows``, by default about 100 MB of uncompressed data, the bound
  `datasets` and the Hub's viewer use.
- **Replace**: shards are written into a hidden folder and swapped in for ``OUT/data`` in
  one rename, so a re-export never leaves a stale shard of a bigger earlier export; the
  manifest is replaced last. ``OUT`` must be new, empty, or a previous export.
- **Empty**: a split with no rows has no file (`datasets` cannot load a file-less or
  zero-row split beside others), except that an export with no rows at all writes one
  zero-row shard per split, so its schema is still on disk.

>>> from curate.export.ranges import split_draw
>>> split_draw(0, "math:0:1a2b3c4d") == split_draw(0, "math:0:1a2b3c4d")
True
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa

from curate._version import __version__
from curate.distill import DEFAULT_TEMPLATE
from curate.errors import ConfigError, InputError, RunError
from curate.export.formats import (
    FORMATS,
    THINK_END,
    THINK_START,
    Format,
    arrow_schema,
    fields_for,
    hub_features,
    reward_entry,
    select,
    to_arrow,
)
from curate.export.ranges import (
    _ORDER,
    _order_column,
    _problem_index,
    _Ranges,
    _split_column,
)
from curate.export.wanted import _no_reference_model, _wanted_responses
from curate.export.writer import ShardWriter, rechunk, swap_in
from curate.io import write_json
from curate.responses import ResponsesTable
from curate.run import Run

EXPORT_MANIFEST = "export.json"
EXPORT_VERSION = 1
DATA_DIR = "data"
_MSG = pl.Struct({"role": pl.String, "content": pl.String})
# the problem columns a response row carries (the last three only when graded)
_PROBLEM_COLUMNS: tuple[str, ...] = ("id", "problem", "answer", "source", "level", "subject")
_PROBLEM_COLUMNS += ("pass_rate", "cv", "difficulty")
Completions = Literal["auto", "responses", "solutions", "both"]
COMPLETIONS: tuple[Completions, ...] = get_args(Completions)
Order = Literal["id", "shuffle"]
ORDERS: tuple[Order, ...] = get_args(Order)
_PAIRS: tuple[Format, ...] = ("sft", "trl")  # formats of (prompt, completion) rows


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
    completions: Completions = "auto"
    order: Order = "id"

    def after_run(self, run: Run, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
        """Export the finished ``run`` into ``out/export/<format>/`` with its dataset card
        (what `curate.Recipe`'s ``exports`` do after the last stage)."""
        from curate.export.card import write_card

        target = out / "export" / self.format
        log(f"export {self.format} -> {target}")
        result = export_run(run, target, **asdict(self))
        write_card(run, target, export=target)
        log(f"export {self.format}: {result.rows} rows, card {target / 'README.md'}")
        return {"format": self.format, "dir": f"export/{self.format}", "rows": result.rows}

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"export format {self.format!r}: expected one of {list(FORMATS)}")
        if self.completions not in COMPLETIONS:
            raise ConfigError(
                f"completions={self.completions!r}: expected one of {list(COMPLETIONS)}"
            )
        if self.order not in ORDERS:
            raise ConfigError(f"order={self.order!r}: expected one of {list(ORDERS)}")
        if self.completions != "auto" and self.format not in _PAIRS:
            raise ConfigError(
                f"completions={self.completions!r} with format {self.format!r}: completions "
                f"are for the sft and trl formats ({self.format} rows are one per problem, "
                "with no assistant message); leave completions out"
            )
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
    """What `export_run` wrote: rows and files per split (paths absolute), the manifest;
    for ``sft``/``trl`` also where the completions came from (``"responses"``,
    ``"solutions"`` or ``"both"``), the problems left out for want of a solution (None when
    solutions were not used) and the duplicate (prompt, completion) pairs dropped."""

    out: Path
    format: Format
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)
    completions: str | None = None
    without_solution: int | None = None
    duplicates: int = 0

    @property
    def manifest(self) -> Path:
        return self.out / EXPORT_MANIFEST


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
    completions: Completions = "auto",
    order: Order = "id",
) -> ExportResult:
    r"""Export run ``run`` into ``out`` as ``format`` shards (see the module doc).

    ``completions`` (``sft``/``trl`` only): the assistant messages are the run's
    ``"responses"``, the problems' reference ``"solutions"``, ``"both"``, or ``"auto"``:
    responses when the run has them, else solutions. ``order``: ``"id"`` (the default) or
    ``"shuffle"`` (seeded by ``seed``).

    >>> import curate, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "p.jsonl").write_text('{"problem": "1+1?", "answer": "2"}\n')
    >>> run = curate.Recipe("r", [curate.read(d / "p.jsonl")]).run(d / "run")
    >>> result = export_run(run, d / "out", format="verl")
    >>> result.rows, [p.name for p in result.files["train"]]
    ({'train': 1}, ['train-00000-of-00001.parquet'])
    >>> _ = (d / "s.jsonl").write_text('{"problem": "2+2?", "answer": "4", "solution": "2+2=4"}\n')
    >>> run = curate.Recipe("s", [curate.read(d / "s.jsonl")]).run(d / "run-s")
    >>> export_run(run, d / "sft", format="sft", completions="solutions").rows
    {'train': 1}
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
        completions=completions,
        order=order,
    )
    run = run if isinstance(run, Run) else Run(run)
    out = Path(out)
    _check_out(out)
    return _write(run, out, options)


def build_splits(run: Run, options: ExportOptions) -> dict[str, pa.Table]:
    """The rows of each split as one Arrow table of the format's schema, validated, in order
    (all in memory: `export_run` streams them to disk a chunk at a time instead)."""
    rows = _Rows(run, options)
    return {
        split: pa.concat_tables([rows.schema.empty_table(), *rows.chunks(split)])
        for split in options.splits
    }


class _Rows:
    """The rows of an export, shaped and validated a chunk at a time, split by split.

    Problems (``rl``/``verl``) are read whole (one row per problem); responses (``sft``/
    ``trl``, often long) are located by their keys first (`_wanted_responses`, in buckets),
    then, with the reference solutions as ``completions=`` says, sorted one range of the
    order at a time (`_Ranges`: spilled to ``spill`` first) and joined with their problem's
    columns (the only ones read), rather than hold every text in memory at once.
    """

    def __init__(self, run: Run, options: ExportOptions, spill: Path | None = None) -> None:
        self.options, self.spill = options, spill
        table = run.table("problems")
        columns = table.collect_schema().names()
        self.fields = fields_for(options.format, columns)
        self.schema = arrow_schema(self.fields)
        self.expressions = _expressions(options)
        self.pairs = options.format in _PAIRS  # else one row per problem
        self.problems = pl.DataFrame()
        if not self.pairs:
            self.problems = table.collect()
        self.source: str | None = None  # where the completions come from
        self.without_solution: int | None = None  # problems left out for want of one
        self.duplicates = 0  # (prompt, completion) pairs dropped as seen before
        self.counts = {"responses": 0, "solutions": 0}  # rows written, by completion
        self._seen = np.empty(0, dtype=_DIGEST)  # digests of the pairs written, sorted
        self.parts: list[Path] = []  # the responses table's files
        self.wanted: pl.DataFrame | None = None  # the responses to export: part, row, key
        self.solutions: pl.DataFrame | None = None  # the solutions to export: id, text
        self._ranges: _Ranges | None = None  # the completions in order, once sorted
        self.index = pl.DataFrame()  # the problems' ids, sorted, and split (`_problem_index`)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.pairs:
            self.source, self.parts = _completion_source(run, table, options)
            # the columns a completion's row carries (samples are read by bucket); the
            # problem's text only where a prompt is built from it (solutions, template=)
            texts = ["problem", "solution"] if self.source != "responses" else []
            texts = texts or (["problem"] if options.template is not None else [])
            read = [c for c in _PROBLEM_COLUMNS if c != "problem"] + texts
            self.problems = table.select(c for c in read if c in columns).collect()
            self.index = _problem_index(table, options)  # a completion's problem, by place
            if self.source in ("responses", "both"):
                problems = run.table("problems")
                # the bucket files (a large table) go in the export's temporary folder
                under = None if spill is None else spill.parent
                self.wanted = _wanted_responses(
                    run, self.parts, problems, options, index=self.index, under=under
                )
            if self.source in ("solutions", "both"):
                self.solutions = _solutions(self.problems, options)
                self.without_solution = self.problems.height - self.solutions.height
            if self.source == "both" and self.wanted is not None:
                _no_reference_model(self.wanted)
            self.problems = self.problems.drop("solution", strict=False)  # in solutions
        else:
            self.problems = self.problems.sort("id")
            if options.order == "shuffle":
                draws = _order_column(self.problems["id"], options.seed)
                self.problems = self.problems.with_columns(draws).sort(_ORDER, "id").drop(_ORDER)
            self.problems = self.problems.with_columns(_split_column(self.problems["id"], options))

    def chunks(self, split: str) -> Iterator[pa.Table]:
        """``split``'s rows as Arrow tables of `schema`, in export order."""
        if self.pairs:
            frames = self._pairs(split)
            # a solution's prompt is built from the problem
            prompt = pl.col("prompt").str.len_bytes().fill_null(pl.col("problem").str.len_bytes())
            size = pl.col("text").str.len_bytes() + prompt
        else:
            frames = iter([self.problems.filter(pl.col("_split") == split)])
            size = pl.col("problem").str.len_bytes()
        size = size.fill_null(0) + 64  # and the other fields, about
        index = 0
        for chunk in rechunk(frames, size):
            chunk = chunk.with_columns(pl.lit(split).alias("_split"))
            chunk = chunk.with_row_index("_index", offset=index)
            index += chunk.height
            if self.pairs and self.options.template is None:
                parsed = _parse_prompts(chunk["prompt"].drop_nulls(), self.options.system_prompt)
                chunk = chunk.join(parsed, on="prompt", how="left", maintain_order="left")
            shaped = select(chunk, self.fields, self.expressions)
            if self.pairs:
                first = self._first_seen(shaped)
                shaped = shaped.filter(first)
                solution = chunk["_solution"].filter(first)
                self.counts["solutions"] += int(solution.sum())
                self.counts["responses"] += solution.len() - int(solution.sum())
            yield to_arrow(shaped, self.options.format, self.fields)

    def _first_seen(self, shaped: pl.DataFrame) -> pl.Series:
        """True for each row whose (prompt, completion) pair no earlier row had."""
        messages = (
            pl.col("messages")
            if self.options.format == "sft"
            else pl.concat_list("prompt", "completion")
        )
        role = pl.element().struct.field("role").fill_null("")
        content = pl.element().struct.field("content").fill_null("")
        # role, length, content: no two different conversations give the same key
        each = pl.concat_str(
            role, pl.lit("\x00"), content.str.len_bytes().cast(pl.String), pl.lit("\x00"), content
        )
        keys = shaped.select(messages.list.eval(each).list.join("")).to_series()
        digests = np.array(
            [hashlib.blake2b(k.encode(), digest_size=16).digest() for k in keys.to_list()],
            dtype=_DIGEST,
        )
        first, self._seen = _first_seen(digests, self._seen)
        self.duplicates += int((~first).sum())
        return pl.Series(first, dtype=pl.Boolean)

    def _pairs(self, split: str) -> Iterator[pl.DataFrame]:
        """The completions of ``split`` (selected responses, reference solutions) with their
        problem's columns, ordered by problem, model, sample (or by their draws, shuffled):
        one range of that order at a time (`_Ranges`)."""
        if self._ranges is None:
            self._ranges = _Ranges(
                self.wanted, self.solutions, self.parts, self.index, self.options
            )
            if self.spill is None:  # `build_splits`: a folder of its own, gone with it
                self._tmp = tempfile.TemporaryDirectory(prefix="curate-export-")
                self.spill = Path(self._tmp.name)
            self._ranges.distribute(self.spill)
            self.wanted = self.solutions = None  # they are in the ranges now
            self.index = pl.DataFrame()
        columns = [c for c in _PROBLEM_COLUMNS if c in self.problems.columns]
        problems = self.problems.select(columns)
        for frame in self._ranges.read(split):
            # inner, as a SQL join: every completion's problem is in the table
            frame = frame.join(problems, left_on="problem_id", right_on="id", maintain_order="left")
            if "problem" not in frame.columns:  # not read: no prompt is built from it
                frame = frame.with_columns(problem=pl.lit(None, pl.String))
            yield frame


def _first_seen(digests: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which ``digests`` are neither in the sorted array ``seen`` nor earlier in
    ``digests``, and ``seen`` with them merged in (still sorted): 16 bytes per pair kept.

    >>> seen = np.array([b"b"], dtype=_DIGEST)
    >>> first, seen = _first_seen(np.array([b"a", b"b", b"a", b"c"], dtype=_DIGEST), seen)
    >>> first.tolist(), seen.tolist()
    ([True, False, False, True], [b'a', b'b', b'c'])
    """
    first = np.zeros(digests.shape, dtype=bool)
    first[np.unique(digests, return_index=True)[1]] = True
    at = np.searchsorted(seen, digests)
    known = seen[np.minimum(at, seen.size - 1)] == digests if seen.size else first & False
    first &= ~known
    new = np.sort(digests[first])
    return first, np.insert(seen, np.searchsorted(seen, new), new)


_DIGEST = np.dtype("S16")  # a (prompt, completion) pair's BLAKE2b digest, as 16 raw bytes


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
        .when(  # a template that opened <think> in the prompt: the reply only closes it
            text.str.contains(THINK_END, literal=True)
            & ~text.str.contains(THINK_START, literal=True)
        )
        .then(pl.lit(THINK_START + "\n") + text)
        .otherwise(text)
    )
    assistant = pl.concat_list([_message("assistant", reply)])
    prompt = _user_prompt(options)  # the template's, and always a reference solution's
    if options.template is None:  # a response's own prompt
        prompt = pl.when(pl.col("_solution")).then(prompt).otherwise(pl.col("_prompt"))
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


def _completion_source(
    run: Run, problems: pl.LazyFrame, options: ExportOptions
) -> tuple[str, list[Path]]:
    """Where the completions come from (``options.completions``, ``auto`` resolved), and the
    responses parts; an error when the run cannot give what was asked for."""
    table = ResponsesTable.of_run(run.path)
    folder, parts = table.path, table.parts()
    fmt, asked = options.format, options.completions
    auto = "responses" if parts else "solutions"  # a run with a responses table: its responses
    source = auto if asked == "auto" else asked
    if source in ("responses", "both") and not parts:
        raise RunError(
            f"{run.path} has no responses ({folder} is missing or empty), and {fmt} rows "
            f"with completions={asked!r} are made of them: run Distill first, export with "
            "completions='solutions' (curate export --completions solutions) to train on the "
            "problems' reference solutions, or export rl/verl"
        )
    count = any_solution = 0
    if source in ("solutions", "both"):  # without holding the solutions
        has = _solution_given(problems.collect_schema().names())
        count, any_solution = problems.select(pl.len(), has.any()).collect().row(0)
    if source in ("solutions", "both") and count and not any_solution:
        if asked == "auto":
            raise RunError(
                f"{run.path} has neither responses ({folder} is missing or empty) nor "
                f"reference solutions (none of its {count:,} problems has one), and "
                f"{fmt} rows are made of one or the other: run Distill first, read the "
                "problems with their solutions (curate.read(..., solution=COLUMN)), or export "
                "rl/verl"
            )
        raise RunError(
            f"none of the {count:,} problems of {run.path} has a reference solution "
            f"(the solution column is null or blank), and completions={asked!r} asks for "
            "them: read the problems with their solutions (curate.read(..., solution=COLUMN)), "
            "or export completions='responses' after Distill"
        )
    return source, parts


def _solution_given(columns: list[str]) -> pl.Expr:
    """True for a problem whose reference solution is neither null nor blank."""
    if "solution" not in columns:
        return pl.lit(False)
    solution = pl.col("solution")
    return (solution.is_not_null() & (solution.str.strip_chars() != "")).fill_null(False)


def _solutions(problems: pl.DataFrame, options: ExportOptions) -> pl.DataFrame:
    """The problems' non-blank reference solutions: problem id, text, split."""
    frame = problems.filter(_solution_given(problems.columns)).select(
        pl.col("id").alias("problem_id"), pl.col("solution").cast(pl.String).alias("text")
    )
    return frame.with_columns(_split_column(frame["problem_id"], options))


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


def _write(run: Run, out: Path, options: ExportOptions) -> ExportResult:
    """Rows are validated as they are written into a hidden folder, which replaces
    ``out/data`` only once every row passed: a bad row leaves ``out`` as it was (a new
    ``out`` is removed again)."""
    created = [d for d in (out, *out.parents) if not d.exists()]  # deepest first
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _write_into(run, out, options)
    except BaseException:
        for folder in created:  # empty again: the hidden folder is gone
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _write_into(run: Run, out: Path, options: ExportOptions) -> ExportResult:
    for stale in out.iterdir():  # left by an export that was killed
        if _ours_stale(stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    tmp = out / f".{DATA_DIR}.tmp-{os.getpid()}"
    tmp.mkdir()
    splits: dict[str, dict[str, Any]] = {}
    files: dict[str, list[Path]] = {}
    writers: dict[str, ShardWriter] = {}
    try:
        spill = tmp / ".spill"
        rows = _Rows(run, options, spill)
        for split in options.splits:  # rows are validated chunk by chunk, into ``tmp``
            writers[split] = writer = ShardWriter(
                tmp,
                split,
                rows.schema,
                shard_rows=options.shard_rows,
                shard_bytes=options.shard_bytes,
                row_group_rows=options.row_group_rows,
            )
            for table in rows.chunks(split):
                writer.add(table)
        shutil.rmtree(spill, ignore_errors=True)
        total = sum(w.rows for w in writers.values())
        for split, writer in writers.items():
            paths = writer.finish(empty_shard=not total)  # no rows at all: keep the schema
            splits[split] = {
                "rows": writer.rows,
                "bytes": sum(p.stat().st_size for p in paths),
                "files": [f"{DATA_DIR}/{p.name}" for p in paths],
            }
            files[split] = [out / DATA_DIR / p.name for p in paths]
        swap_in(tmp, out / DATA_DIR)
    finally:
        for writer in writers.values():
            writer.abort()  # a shard still open after an error
        shutil.rmtree(tmp, ignore_errors=True)
    manifest = {
        "export_version": EXPORT_VERSION,
        "format": options.format,
        "curate_version": __version__,
        "rows": total,
        "splits": splits,
        "features": hub_features(rows.schema),
        "run": {
            "path": str(run.path.resolve()),
            "recipe": run.name,
            "stages": [
                {"name": s["name"], "fingerprint": s["fingerprint"]} for s in run.manifest["stages"]
            ],
        },
        # the default order is left out: an export by id keeps the manifest of before
        "options": {
            k: v
            for k, v in asdict(options).items()
            if k != "format" and not (k == "order" and v == "id")
        },
    }
    if rows.pairs:
        manifest["completions"] = {
            "source": rows.source,
            "rows": rows.counts,
            "without_solution": rows.without_solution,
            "duplicates": rows.duplicates,
        }
    reward = reward_entry(options.format)
    if reward is not None:
        manifest["reward"] = reward
    write_json(manifest, out / EXPORT_MANIFEST)
    return ExportResult(
        out,
        options.format,
        {s: w.rows for s, w in writers.items()},
        files,
        completions=rows.source,
        without_solution=rows.without_solution,
        duplicates=rows.duplicates,
    )
