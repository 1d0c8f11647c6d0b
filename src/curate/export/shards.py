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
from itertools import pairwise
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
    REFERENCE,
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
from curate.export.writer import ShardWriter, rechunk, swap_in
from curate.io import write_json
from curate.responses import RESPONSE_KEYS, ResponsesTable, one_per_key, routed
from curate.run import Run

EXPORT_MANIFEST = "export.json"
EXPORT_VERSION = 1
DATA_DIR = "data"
_MSG = pl.Struct({"role": pl.String, "content": pl.String})
_KEYS = ["problem_id", "model", "sample"]
# the problem columns a response row carries (the last three only when graded)
_PROBLEM_COLUMNS: tuple[str, ...] = ("id", "problem", "answer", "source", "level", "subject")
_PROBLEM_COLUMNS += ("pass_rate", "cv", "difficulty")
_SAMPLE_MATCH = ["finish_reason", "n_tokens", "extracted_answer", "verdict"]
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


def split_draw(seed: int, key: str) -> float:
    """A number in [0, 1) from ``seed`` and ``key``: a row is ``test`` when it is below the
    test fraction (BLAKE2b, so the same on every machine and Python)."""
    digest = hashlib.blake2b(f"curate-split\x00{seed}\x00{key}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / 2**64


def order_draw(seed: int, key: str) -> float:
    """A number in [0, 1) from ``seed`` and ``key`` (an exported row's id): the rows of a
    ``order="shuffle"`` export are sorted by it (BLAKE2b, the same on every machine).

    >>> order_draw(0, "math:0:1a2b3c4d") == order_draw(0, "math:0:1a2b3c4d")
    True
    """
    digest = hashlib.blake2b(f"curate-order\x00{seed}\x00{key}".encode(), digest_size=8)
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


RANGE_BYTES = 64 * 2**20
"""About this much completion text (and prompt) is sorted in memory at a time: an export's
completions are cut into ranges of their order, each spilled to its own file first."""

OPEN_RANGES = 64
"""At most this many range files are open at once while the parts are read (a range whose
file was closed goes on in another)."""


class _Ranges:
    """An export's completions, in export order, one range of it at a time.

    The keys of the completions (`_wanted_responses`; the solutions) are sorted and cut
    into consecutive ranges of about `RANGE_BYTES` (a response's size estimated from its
    part's Parquet metadata); `distribute` reads each responses part once and appends its
    wanted rows, each with its rank in the order, to its range's Arrow file; `read` sorts
    one range (its file and its solutions) by rank at a time. Per response, memory holds
    its part, row, rank and range (20 bytes) until the parts are read, not its key or text.
    """

    def __init__(
        self,
        wanted: pl.DataFrame | None,
        solutions: pl.DataFrame | None,
        parts: list[Path],
        index: pl.DataFrame,
        options: ExportOptions,
    ) -> None:
        self.parts = parts
        self.folder: Path | None = None
        self.files: dict[int, int] = {}  # per range, its files in the folder
        self.ranges: dict[str, list[int]] = {s: [] for s in options.splits}
        if solutions is not None:  # named by their problem's place, as the responses
            solutions = solutions.join(_positions(index), on="problem_id")
        keys = _completion_keys(wanted, solutions, parts, index, options)
        if not keys.height:
            keys = keys.with_columns(_range=pl.lit(0, pl.Int32), _rank=pl.lit(0, pl.Int64))
        else:
            keys = self._ranked(keys, options)
        solution = pl.col("_part").is_null()
        self.solutions = pl.DataFrame()
        if solutions is not None:
            self.solutions = (
                keys.filter(solution)
                .select("_problem", "model", "sample", "_rank", "_range")
                .join(solutions.select("_problem", "problem_id", "text"), on="_problem")
            )
        self.where = (
            keys.filter(~solution)
            .select(  # sorted by part and row: read in turn
                pl.col("_part", "_row").cast(pl.Int32), "_rank", pl.col("_range").cast(pl.Int32)
            )
            .sort("_part", "_row")
        )

    def _ranked(self, keys: pl.DataFrame, options: ExportOptions) -> pl.DataFrame:
        """``keys`` in export order (the splits in turn) with their ``_rank`` in it and the
        ``_range`` each falls in (numbered over every split)."""
        by = ["_problem", "model", "sample"]  # _problem sorts as the problem id
        by = [_ORDER, *by] if options.order == "shuffle" else by
        ordered, first = [], 0
        for split in options.splits:
            mine = keys.filter(pl.col("_split") == split).sort(by)
            size = mine["_size"]
            cut = ((size.cum_sum() - size) // RANGE_BYTES + first).alias("_range")
            self.ranges[split] = cut.unique(maintain_order=True).to_list()
            first = self.ranges[split][-1] + 1 if self.ranges[split] else first
            ordered.append(mine.select("_problem", "model", "sample", "_part", "_row", cut))
        ranked = pl.concat(ordered, how="vertical").with_row_index("_rank")
        return ranked.with_columns(pl.col("_rank").cast(pl.Int64))

    def distribute(self, spill: Path) -> None:
        """Read every part with wanted responses once, and append them to their ranges'
        files in ``spill`` (text, prompt and tokens, under their rank)."""
        import pyarrow.parquet as pq

        self.folder = spill
        spill.mkdir(parents=True, exist_ok=True)
        writers: dict[int, Any] = {}  # the open files, least recently written first
        try:
            parts = self.where["_part"].to_numpy()
            for lo, hi in _runs(parts):
                rows = self.where.slice(lo, hi - lo)
                for table in _taken(pq.ParquetFile(self.parts[parts[lo]]), rows):
                    for index, piece in _by_range(table):
                        writer = writers.pop(index, None) or self._open(index, piece, writers)
                        writers[index] = writer  # now the most recently written
                        writer.write_table(piece)
        finally:
            for writer in writers.values():
                writer.close()
        self.where = self.where.clear()

    def _open(self, index: int, piece: pa.Table, writers: dict[int, Any]) -> Any:
        """A new file for range ``index`` (its next), closing the least recently written
        of ``writers`` if `OPEN_RANGES` are open (its range goes on in a new file)."""
        import pyarrow.ipc as ipc

        if len(writers) >= OPEN_RANGES:
            writers.pop(next(iter(writers))).close()
        count = self.files.get(index, 0)
        self.files[index] = count + 1
        return ipc.new_stream(pa.OSFile(str(self._file(index, count)), "wb"), piece.schema)

    def _file(self, index: int, piece: int) -> Path:
        assert self.folder is not None
        return self.folder / f"range-{index}-{piece}.arrow"

    def read(self, split: str) -> Iterator[pl.DataFrame]:
        """``split``'s completions, in order: one range at a time, sorted by rank."""
        import pyarrow.ipc as ipc

        for index in self.ranges[split]:
            frames = []
            if self.solutions.height:
                solutions = self.solutions.filter(pl.col("_range") == index)
                frames.append(
                    solutions.select(
                        "problem_id",
                        "model",
                        "sample",
                        "text",
                        "_rank",
                        prompt=pl.lit(None, pl.String),
                        n_tokens=pl.lit(None, pl.Int64),
                        _solution=pl.lit(True),
                    )
                )
            for piece in range(self.files.get(index, 0)):
                path = self._file(index, piece)
                with pa.OSFile(str(path), "rb") as source:
                    table = ipc.open_stream(source).read_all()
                path.unlink()
                frame = pl.from_arrow(table)
                assert isinstance(frame, pl.DataFrame)
                del table
                frames.append(frame.with_columns(_solution=pl.lit(False)))
            frame = pl.concat(frames, how="diagonal_relaxed").sort("_rank")
            del frames
            yield frame.select(_COMPLETION)


_COMPLETION = ["problem_id", "model", "sample", "text", "prompt", "n_tokens", "_solution"]
"""The columns of a completion, in `_Ranges.read`'s frames (before its problem's)."""


def _completion_keys(
    wanted: pl.DataFrame | None,
    solutions: pl.DataFrame | None,
    parts: list[Path],
    index: pl.DataFrame,
    options: ExportOptions,
) -> pl.DataFrame:
    """The keys of an export's completions (``_problem``, model, sample; ``_order`` when
    shuffled), each with its split and an estimate of its bytes: the wanted responses
    (with their part and row), then the solutions."""
    frames = []
    split = index["_split"]
    if wanted is not None and wanted.height:
        sizes = pl.Series(_row_bytes(parts), dtype=pl.Int64)
        frames.append(
            wanted.select(
                "_problem",
                "model",
                pl.col("sample").cast(pl.Int64),
                pl.col("_part", "_row").cast(pl.Int64),
                *([_ORDER] if options.order == "shuffle" else []),
                _split=split.gather(wanted["_problem"]),
                _size=sizes.gather(wanted["_part"]),
            )
        )
    if solutions is not None and solutions.height:
        ids = solutions["problem_id"] + f"/{REFERENCE}/0"  # the rows' ids
        order = [_order_column(ids, options.seed)] if options.order == "shuffle" else []
        frames.append(
            solutions.select(
                "_problem",
                *order,
                model=pl.lit(REFERENCE, pl.String),
                sample=pl.lit(0, pl.Int64),
                _split=split.gather(solutions["_problem"]),
                _size=pl.col("text").str.len_bytes().cast(pl.Int64) + 64,
            )
        )
    schema = {"_problem": pl.UInt32, "model": pl.String, "sample": pl.Int64}
    schema |= {"_part": pl.Int64, "_row": pl.Int64, _ORDER: pl.Float64}
    empty = pl.DataFrame(schema=schema | {"_split": pl.String, "_size": pl.Int64})
    return pl.concat([empty, *frames], how="diagonal_relaxed")


def _problem_index(problems: pl.LazyFrame, options: ExportOptions) -> pl.DataFrame:
    """The problems' ids, sorted, with their ``_split``: a completion names its problem by
    its place here (``_problem``), which sorts as the id does, in 4 bytes."""
    ids = problems.select("id").collect().sort("id")
    return ids.with_columns(_split_column(ids["id"], options))


def _positions(index: pl.DataFrame) -> pl.DataFrame:
    """``problem_id`` -> ``_problem`` (its place in `_problem_index`)."""
    return index.select(
        pl.col("id").alias("problem_id"), pl.int_range(pl.len(), dtype=pl.UInt32).alias("_problem")
    )


def _row_bytes(parts: list[Path]) -> list[int]:
    """Per responses part, the bytes of a row's text and prompt, about (from the Parquet
    metadata: uncompressed, at least 64): sizes the ranges of `_Ranges`."""
    import pyarrow.parquet as pq

    sizes = []
    for path in parts:
        meta = pq.read_metadata(path)
        total = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                if column.path_in_schema in ("text", "prompt"):
                    total += column.total_uncompressed_size
        sizes.append(max(64, total // max(1, meta.num_rows)) + 64)
    return sizes


_TAKEN = ("problem_id", "model", "sample", "text", "prompt", "n_tokens")
_TAKEN_TYPES = (pa.string(), pa.string(), pa.int64(), pa.string(), pa.string(), pa.int64())


def _taken(part: Any, rows: pl.DataFrame) -> Iterator[pa.Table]:
    """The rows of Parquet file ``part`` that ``rows`` names (``_row``, sorted), a batch at
    a time, as `_TAKEN` with their ``_rank`` and ``_range``."""
    names = set(part.schema_arrow.names)
    wanted, ranks, ranges = (rows[c].to_numpy() for c in ("_row", "_rank", "_range"))
    start = 0
    for batch in part.iter_batches(batch_size=8192, columns=[c for c in _TAKEN if c in names]):
        lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
        if hi > lo:
            taken = batch.take(pa.array(wanted[lo:hi] - start))
            columns = [
                taken.column(c).cast(t) if c in names else pa.nulls(hi - lo, t)
                for c, t in zip(_TAKEN, _TAKEN_TYPES, strict=True)
            ]
            columns += [pa.array(ranks[lo:hi]), pa.array(ranges[lo:hi])]
            yield pa.table(columns, names=[*_TAKEN, "_rank", "_range"])
        start += batch.num_rows


def _by_range(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """``table``'s rows grouped by ``_range`` (without it), in the order of the ranges."""
    ranges = table.column("_range").to_numpy()
    order = np.argsort(ranges, kind="stable")
    ranges = ranges[order]
    table = table.take(pa.array(order)).drop_columns(["_range"])
    for lo, hi in _runs(ranges):
        yield int(ranges[lo]), table.slice(lo, hi - lo)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """The (start, end) of each run of equal ``values``.

    >>> _runs(np.array([3, 3, 5, 7, 7])), _runs(np.array([]))
    ([(0, 2), (2, 3), (3, 5)], [])
    """
    bounds = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist(), len(values)]
    return [(lo, hi) for lo, hi in pairwise(bounds) if hi > lo]


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


_ORDER = "_order"


def _order_column(keys: pl.Series, seed: int) -> pl.Series:
    """`order_draw` of each key, as the ``_order`` column a shuffled export is sorted by."""
    return pl.Series(_ORDER, [order_draw(seed, k) for k in keys.to_list()], dtype=pl.Float64)


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


def _has_solution(problems: pl.DataFrame) -> pl.Series:
    """Which ``problems`` have a reference solution (`_solution_given`)."""
    return problems.with_columns(_solution_given(problems.columns).alias("_given"))["_given"]


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
        rows = pl.scan_parquet(parts).select(pl.len()).collect().item() if parts else 0
        buckets = max(1, -(-rows // EXPORT_BUCKET))
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
