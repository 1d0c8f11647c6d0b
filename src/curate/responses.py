"""The run's responses table: one owner for where it lives and how it is read and written.

Generated responses are a table of the run (``RUN/responses/*.parquet``, schema
`curate.schema.RESPONSE_FIELDS`), one row per key `RESPONSE_KEYS` = (``problem_id``,
``model``, ``sample``, ``gen_key``), where ``gen_key`` digests the settings that produced
the text (backend, sampling, template). It is written in parts, each atomically, and it is
the generation cache: a stage that generates asks it what is done. Stages reach it through
their context (``ctx.responses``); the run lists it among its tables, and the export reads
it; none of them builds its paths.

>>> import tempfile, pathlib
>>> table = ResponsesTable(pathlib.Path(tempfile.mkdtemp()) / "responses")
>>> table.read().height, table.parts()
(0, [])
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from curate.io import write_parquet
from curate.schema import RESPONSE_FIELDS

RESPONSES_DIR = "responses"
"""The folder of the responses table inside a run directory."""

RESPONSE_KEYS = ("problem_id", "model", "sample", "gen_key")
"""What names one stored response (the responses cache's key)."""

_POLARS_TYPES = {"string": pl.String, "int32": pl.Int32, "int64": pl.Int64}
_POLARS_TYPES |= {"double": pl.Float64, "bool": pl.Boolean}
RESPONSE_SCHEMA = {name: _POLARS_TYPES[str(t)] for name, t, _, _ in RESPONSE_FIELDS}
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


class ResponsesTable:
    """The responses table of the run directory whose folder is ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of_run(cls, run_dir: str | Path) -> ResponsesTable:
        return cls(Path(run_dir) / RESPONSES_DIR)

    def parts(self) -> list[Path]:
        """The finished part files, in name order (hidden temporary files are not parts)."""
        return sorted(self.path.glob("*.parquet")) if self.path.is_dir() else []

    def part(self, gen_key: str, digest: str) -> Path:
        """The file of a part of ``gen_key``'s responses named by ``digest`` (of its keys)."""
        return self.path / f"{gen_key}-{digest}.parquet"

    def part_of(self, gen_key: str, model: str, rows: list[dict[str, Any]]) -> Path:
        """The part file for ``model``'s response ``rows`` under ``gen_key``: named by a digest
        of their (problem_id, sample) keys, so the same chunk always lands in the same file."""
        keys = [model, [(r["problem_id"], r["sample"]) for r in rows]]
        digest = hashlib.blake2b(json.dumps(keys).encode(), digest_size=8).hexdigest()
        return self.part(gen_key, digest)

    @staticmethod
    def gen_key_of(part: Path) -> str:
        return part.name.split("-", 1)[0]

    def clean(self) -> None:
        """Remove the temporary files of parts being written, and the bucket folders of
        `routed`, when a run was killed."""
        for stale in self.path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        for folder in self.path.glob(f"{BUCKETS_PREFIX}*"):
            shutil.rmtree(folder, ignore_errors=True)

    def write(self, rows: list[dict[str, Any]], path: Path) -> None:
        """Write response rows as one part, atomically (extra keys, such as the ``gold``
        a row carries while it is judged, are left out)."""
        table = pl.DataFrame(rows, schema={**RESPONSE_SCHEMA, "gold": pl.String})
        write_parquet(table.drop("gold"), path)

    def read(self) -> pl.DataFrame:
        """Every stored response, one row per key (see `one_per_key`)."""
        return read_responses(self.path)

    def scan(self, *where: pl.Expr) -> pl.LazyFrame:
        """The stored responses that match ``where`` (filters on their columns, applied
        first), lazily, one row per key (see `one_per_key`): select the columns you need
        (leave the texts out) before collecting, and memory holds only those. Columns a
        part written by an older curate lacks are null."""
        parts = self.parts()
        if not parts:
            return pl.LazyFrame(schema=RESPONSE_SCHEMA)
        lazy = pl.scan_parquet(
            parts, schema=RESPONSE_SCHEMA, missing_columns="insert", extra_columns="ignore"
        )
        return one_per_key(lazy.filter(*where) if where else lazy)

    def frames(
        self,
        columns: Sequence[str],
        *where: pl.Expr,
        parts: Sequence[Path] | None = None,
        located: bool = False,
    ) -> Iterator[pl.DataFrame]:
        """The stored rows that match ``where``, one part at a time, in order: their
        ``columns`` (typed as `RESPONSE_SCHEMA`; null where a part lacks one) and, when
        ``located``, each row's ``_part`` (its part's place in ``parts``) and ``_row`` (its
        place in the part), both Int64. Every copy of a key is there (no `one_per_key`):
        one pass over the table that holds one part's columns at a time, for `routed`."""
        for index, path in enumerate(self.parts() if parts is None else parts):
            lazy = pl.scan_parquet(
                path, schema=RESPONSE_SCHEMA, missing_columns="insert", extra_columns="ignore"
            )
            kept = list(columns)
            if located:
                lazy = lazy.with_row_index("_row").with_columns(
                    pl.col("_row").cast(pl.Int64), _part=pl.lit(index, pl.Int64)
                )
                kept += ["_part", "_row"]
            yield (lazy.filter(*where) if where else lazy).select(kept).collect()

    def frames_schema(self, columns: Sequence[str], *, located: bool = False) -> pl.Schema:
        """The schema of `frames`' frames."""
        schema = {name: RESPONSE_SCHEMA[name] for name in columns}
        return pl.Schema(schema | ({"_part": pl.Int64, "_row": pl.Int64} if located else {}))


def read_responses(directory: str | Path) -> pl.DataFrame:
    """Every response stored under ``directory`` (the cache parts), one row per key.

    A key stored more than once (a failed generation tried again, or two runs that raced)
    keeps a row that did not fail if there is one, else the first; hidden temporary files
    of an interrupted write are ignored.
    """
    parts = ResponsesTable(directory).parts()
    if not parts:
        return pl.DataFrame(schema=RESPONSE_SCHEMA)
    table = pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")
    missing = [  # columns parts written by an older curate do not have (grader, ...)
        pl.lit(None, dtype).alias(name)
        for name, dtype in RESPONSE_SCHEMA.items()
        if name not in table.columns
    ]
    return one_per_key(table.with_columns(missing)).select(RESPONSE_SCHEMA.keys())


def one_per_key(responses: FrameT) -> FrameT:
    """The responses' rule for a key stored more than once (a failed generation tried again,
    or two runs that raced): the first row that did not fail if there is one, else the
    first; rows stay in their order. For `read_responses` and the export alike (which reads
    only the key columns, lazily).

    >>> rows = pl.DataFrame({"problem_id": ["a", "a"], "model": "m", "sample": 0,
    ...     "gen_key": "k", "finish_reason": ["error", "stop"]})
    >>> one_per_key(rows)["finish_reason"].to_list()
    ['stop']
    """
    failed = pl.col("finish_reason") == "error"
    return (
        responses.with_row_index("_at")
        .sort(failed, "_at")
        .unique(RESPONSE_KEYS, keep="first", maintain_order=True)
        .sort("_at")
        .drop("_at")
    )


BUCKETS_PREFIX = ".buckets-"
"""The name of `routed`'s temporary folders begins so (hidden: not a part)."""

ROUTE_BYTES = 64 * 2**20
"""About this much of the rows being routed is held in memory before it is appended to the
bucket files."""

OPEN_BUCKETS = 64
"""At most this many bucket files are open at once while rows are routed (a bucket whose file
was closed goes on in another)."""


def bucket_count(parts: Sequence[Path], rows_per_bucket: int) -> int:
    """How many buckets to route the rows of ``parts`` to: one per ``rows_per_bucket``
    stored rows (counted from the Parquet metadata), at least one."""
    rows = pl.scan_parquet(list(parts)).select(pl.len()).collect().item() if parts else 0
    return max(1, -(-rows // rows_per_bucket))


def bucket_of(column: str, count: int) -> pl.Expr:
    """Which of ``count`` buckets a row falls in, by a hash of its id ``column`` (as a
    string): a problem's rows share a bucket, in the responses (``problem_id``) and the
    problems (``id``) alike.

    >>> frame = pl.DataFrame({"problem_id": ["a", "b", "a"], "id": ["a", "b", "a"]})
    >>> buckets = frame.select(bucket_of("problem_id", 5), bucket_of("id", 5).alias("b"))
    >>> buckets["problem_id"].equals(buckets["b"]), buckets["b"][0] == buckets["b"][2]
    (True, True)
    """
    return pl.col(column).cast(pl.String).hash() % count


class Buckets:
    """Rows routed by `bucket_of` their ``key`` column (or, ``numbered``, by the bucket
    number the ``key`` column holds) to ``count`` buckets, each a series of Arrow IPC stream
    files in ``folder``, to be read back one bucket at a time (`routed`; the export's ranges).

    Rows are cast to ``schema`` and keep their order within a bucket. About `ROUTE_BYTES`
    of rows are held before they are appended to their buckets' files, and at most
    `OPEN_BUCKETS` files are open (the least recently written is closed first; its bucket
    goes on in a new file).
    """

    def __init__(
        self,
        folder: Path,
        count: int,
        schema: Mapping[str, Any],
        *,
        key: str,
        numbered: bool = False,
    ) -> None:
        self.folder, self.count, self.key = folder, count, key
        self._bucket = pl.col(key) if numbered else bucket_of(key, count)
        self.schema = pl.Schema(schema)
        self.files = [0] * count  # per bucket, its files so far
        self._held: list[pl.DataFrame] = []  # rows not written yet, with their ``_bucket``
        self._bytes = 0
        self._writers: dict[int, Any] = {}  # the open files, least recently written first

    def add(self, frame: pl.DataFrame) -> None:
        """Route ``frame``'s rows to their buckets."""
        frame = frame.select(pl.col(name).cast(dtype) for name, dtype in self.schema.items())
        if not frame.height:
            return
        self._held.append(frame.with_columns(self._bucket.alias("_bucket")))
        self._bytes += int(frame.estimated_size())
        if self._bytes >= ROUTE_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append the rows held to their buckets' files (one split of them all, in order)."""
        if not self._held:
            return
        held = pl.concat(self._held, rechunk=False)
        self._held, self._bytes = [], 0
        pieces = held.partition_by("_bucket", include_key=False, as_dict=True)
        del held
        for (bucket,), piece in sorted(pieces.items()):
            table = piece.rechunk().to_arrow()
            self._writer(int(bucket), table.schema).write_table(table)

    def _writer(self, bucket: int, schema: Any) -> Any:
        import pyarrow.ipc as ipc

        writer = self._writers.pop(bucket, None)
        if writer is None:
            if len(self._writers) >= OPEN_BUCKETS:
                self._writers.pop(next(iter(self._writers))).close()
            path = str(self._file(bucket, self.files[bucket]))
            options = ipc.IpcWriteOptions(compression="lz4")  # ids and labels: 10 times less
            writer = ipc.new_stream(path, schema, options=options)
            self.files[bucket] += 1
        self._writers[bucket] = writer  # now the most recently written
        return writer

    def close(self) -> None:
        """Append what is held and close the files (then `read` them)."""
        try:
            self.flush()
        finally:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()

    def read(self, bucket: int) -> pl.DataFrame:
        """``bucket``'s rows, in the order they were added (its files are removed)."""
        frames = [pl.DataFrame(schema=self.schema)]
        for piece in range(self.files[bucket]):
            path = self._file(bucket, piece)
            frames.append(pl.read_ipc_stream(path))
            path.unlink()
        self.files[bucket] = 0
        return pl.concat(frames)

    def _file(self, bucket: int, piece: int) -> Path:
        return self.folder / f"{bucket}-{piece}.arrow"


@contextmanager
def routed(
    frames: Iterable[pl.DataFrame],
    *,
    key: str,
    count: int,
    schema: Mapping[str, Any],
    under: Path | None = None,
) -> Iterator[Buckets]:
    """``frames`` (a table read once, a piece at a time: `ResponsesTable.frames`) routed to
    ``count`` `Buckets` by a hash of their ``key`` column, in a temporary folder in ``under``
    (the system's temporary folder if None) that is removed afterwards, also on an error:
    a step that works on one problem's rows at a time holds one bucket at a time, and the
    table is read once however many buckets (not once per bucket).

    >>> parts = [pl.DataFrame({"id": ["a", "b"], "n": [1, 2]}), pl.DataFrame({"id": "a", "n": [3]})]
    >>> schema = {"id": pl.String, "n": pl.Int64}
    >>> with routed(parts, key="id", count=2, schema=schema) as buckets:
    ...     frames = [buckets.read(b) for b in range(2)]
    >>> both = pl.concat(frames)
    >>> both.height, both.filter(pl.col("id") == "a")["n"].to_list()  # in order
    (3, [1, 3])
    """
    with tempfile.TemporaryDirectory(prefix=BUCKETS_PREFIX, dir=under) as folder:
        buckets = Buckets(Path(folder), count, schema, key=key)
        try:
            for frame in frames:
                buckets.add(frame)
        finally:
            buckets.close()
        yield buckets
