"""The order of an export's rows, and its completions sorted a range of that order at a time.

Rows are ordered by problem id (or, with ``order="shuffle"``, by `order_draw`), each row's
split drawn once per problem (`split_draw`). Sorting every completion at once held all
their text (DuckDB's ``ORDER BY`` needed 1 GB at 2M responses): instead the keys are sorted
and cut into ranges of about `RANGE_BYTES` of text, each responses part is read once and
every wanted row written to its range's file, then each range is read back, sorted and
joined with its problems (`_Ranges`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from curate.export.formats import REFERENCE
from curate.responses import Buckets

if TYPE_CHECKING:
    from curate.export.shards import ExportOptions

_KEYS = ["problem_id", "model", "sample"]


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


RANGE_BYTES = 64 * 2**20
"""About this much completion text (and prompt) is sorted in memory at a time: an export's
completions are cut into ranges of their order, each spilled to its own file first."""


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
        self.buckets: Buckets | None = None  # the ranges' files, once distributed
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
        files in ``spill`` (text, prompt and tokens, under their rank): `Buckets` numbered
        by range, at most `curate.responses.OPEN_BUCKETS` files open at once."""
        import pyarrow.parquet as pq

        spill.mkdir(parents=True, exist_ok=True)
        count = 1 + max((r for ranges in self.ranges.values() for r in ranges), default=0)
        self.buckets = Buckets(spill, count, _SPILLED, key="_range", numbered=True)
        try:
            parts = self.where["_part"].to_numpy()
            for lo, hi in _runs(parts):
                rows = self.where.slice(lo, hi - lo)
                for table in _taken(pq.ParquetFile(self.parts[parts[lo]]), rows):
                    frame = pl.from_arrow(table)
                    assert isinstance(frame, pl.DataFrame)
                    self.buckets.add(frame)
        finally:
            self.buckets.close()
        self.where = self.where.clear()

    def read(self, split: str) -> Iterator[pl.DataFrame]:
        """``split``'s completions, in order: one range at a time, sorted by rank."""
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
            if self.buckets is not None:
                frames.append(self.buckets.read(index).with_columns(_solution=pl.lit(False)))
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
_SPILLED = {
    **dict(
        zip(_TAKEN, (pl.String, pl.String, pl.Int64, pl.String, pl.String, pl.Int64), strict=True)
    ),
    "_rank": pl.Int64,
    "_range": pl.Int32,
}
"""The columns of a range's files (`_taken`'s)."""


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


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """The (start, end) of each run of equal ``values``.

    >>> _runs(np.array([3, 3, 5, 7, 7])), _runs(np.array([]))
    ([(0, 2), (2, 3), (3, 5)], [])
    """
    bounds = [0, *(np.flatnonzero(np.diff(values)) + 1).tolist(), len(values)]
    return [(lo, hi) for lo, hi in pairwise(bounds) if hi > lo]
