"""Atomic writers: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl

from curate.io.canon import _META_OPTS, _json_default

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through ``write`` into a hidden temporary file beside ``path``, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it 0600; give it a normal file's mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet(df: pl.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` atomically, with the same bytes for the same frame.

    zstd level 3, statistics on, row groups of 65,536 rows; parent folders are created.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out" / "t.parquet"
    >>> write_parquet(pl.DataFrame({"a": [1, 2]}), p)
    >>> pl.read_parquet(p)["a"].to_list()
    [1, 2]
    """
    _atomic_write(
        path,
        lambda f: df.write_parquet(
            f, compression="zstd", compression_level=3, statistics=True, row_group_size=65_536
        ),
    )


def write_json(obj: Any, path: str | Path) -> None:
    r"""Write ``obj`` as indented JSON (keys in their order, trailing newline), atomically.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.json"
    >>> write_json({"b": 1, "a": [1, 2]}, p)
    >>> p.read_text()
    '{\n  "b": 1,\n  "a": [\n    1,\n    2\n  ]\n}\n'
    """
    data = orjson.dumps(obj, default=_json_default, option=orjson.OPT_INDENT_2 | _META_OPTS)
    _atomic_write(path, lambda f: f.write(data + b"\n"))


def write_npy(values: Any, path: str | Path) -> None:
    """Write ``values`` (an array) as the ``.npy`` file ``path``, atomically.

    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.npy"
    >>> write_npy(np.arange(4).reshape(2, 2), p)
    >>> np.load(p).tolist()
    [[0, 1], [2, 3]]
    """
    import numpy as np

    _atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(values)))


def write_jsonl(rows: Iterable[Any], path: str | Path) -> Path:
    r"""Write ``rows`` as JSON Lines (one object per line), atomically; returns ``path``.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> p = write_jsonl([{"problem": "1+1?", "answer": "2"}], d / "p.jsonl")
    >>> p.read_text()
    '{"problem":"1+1?","answer":"2"}\n'
    """
    data = b"".join(orjson.dumps(r, default=_json_default) + b"\n" for r in rows)
    _atomic_write(path, lambda f: f.write(data))
    return Path(path)


class ParquetSink:
    """A Parquet file written frame by frame and renamed into place on `close`, with
    `write_parquet`'s settings; a sink left unclosed (an error, an interrupt) leaves no
    file behind. Every frame is cast to the first one's schema.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.parquet"
    >>> with ParquetSink(p) as sink:
    ...     sink.write(pl.DataFrame({"a": [1, 2]}))
    ...     sink.write(pl.DataFrame({"a": [3]}))
    >>> pl.read_parquet(p)["a"].to_list(), sink.rows
    ([1, 2, 3], 3)
    """

    ROW_GROUP = 65_536

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)
        self._tmp = Path(tmp)
        self._writer: Any = None
        self._pending: list[Any] = []  # Arrow tables not yet a whole row group
        self._pending_rows = 0
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        """Add rows. They are written in row groups of `ROW_GROUP` rows (the last one
        shorter), whatever the frames' sizes: the file depends on the rows only."""
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self._tmp,
                table.schema,
                compression="zstd",
                compression_level=3,
                write_statistics=True,
            )
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += frame.height
        if self._pending_rows >= self.ROW_GROUP:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        import pyarrow as pa

        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        whole = table.num_rows if final else table.num_rows // self.ROW_GROUP * self.ROW_GROUP
        if whole:
            self._writer.write_table(table.slice(0, whole), row_group_size=self.ROW_GROUP)
        rest = table.slice(whole)
        self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        """Finish the file and move it into place."""
        if self._writer is None:
            raise ValueError(f"{self.path}: nothing was written (write an empty frame first)")
        self._flush(final=True)
        self._writer.close()
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop what was written."""
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
