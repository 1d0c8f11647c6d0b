"""Write one split's rows, arriving in order a chunk at a time, as Parquet shards.

Memory stays bounded by one chunk and one row group, however big the split: shards are
filled as rows arrive and named ``<split>-<i>-of-<n>`` once ``n`` is known. Where the rows
are cut (shards, row groups) depends only on the rows and the chunks they arrive in, so the
same rows in the same chunks give the same bytes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_BYTES = 100 * 2**20
CHUNK_BYTES = 64 * 2**20
"""Rows are shaped, validated and written about this much text at a time (see `rechunk`)."""


def swap_in(folder: Path, target: Path) -> None:
    """Put ``folder`` in the place of ``target`` (a folder, or nothing yet): a reader sees
    the old folder or the new one whole, never a mix."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(folder, target)
    shutil.rmtree(old, ignore_errors=True)


def rechunk(frames: Iterable[pl.DataFrame], sizes: pl.Expr) -> Iterator[pl.DataFrame]:
    """The rows of ``frames``, in order, in chunks cut where the running total of ``sizes``
    (an expression of each row's bytes) passes `CHUNK_BYTES`: the cuts depend on the rows
    alone, not on how ``frames`` happened to be batched.

    >>> frames = [pl.DataFrame({"n": [1, 2]}), pl.DataFrame({"n": [3]})]
    >>> [f.height for f in rechunk(frames, pl.lit(CHUNK_BYTES))]
    [1, 1, 1]
    """
    pending: list[pl.DataFrame] = []
    filled = 0  # bytes of the rows in ``pending``
    for frame in frames:
        total = np.cumsum(frame.select(sizes.cast(pl.Int64)).to_series().to_numpy())
        start = 0
        while start < frame.height:
            before = int(total[start - 1]) if start else 0
            # the first row at which the chunk holds CHUNK_BYTES
            end = int(np.searchsorted(total, CHUNK_BYTES - filled + before, side="left"))
            if end >= frame.height:
                pending.append(frame.slice(start))
                filled += int(total[-1]) - before
                break
            pending.append(frame.slice(start, end + 1 - start))
            yield pl.concat(pending, how="vertical_relaxed")
            pending, filled, start = [], 0, end + 1
    if pending:
        yield pl.concat(pending, how="vertical_relaxed")


class ShardWriter:
    """Writes one split's Arrow chunks as shards of ``shard_rows`` rows, or of about
    ``shard_bytes`` of uncompressed Arrow data (estimated per chunk), with row groups of
    ``row_group_rows`` rows (default: about `ROW_GROUP_BYTES`)."""

    def __init__(
        self,
        folder: Path,
        split: str,
        schema: pa.Schema,
        *,
        shard_rows: int | None,
        shard_bytes: int,
        row_group_rows: int | None,
    ) -> None:
        self.folder, self.split, self.schema = folder, split, schema
        self.shard_rows, self.shard_bytes, self.row_group_rows = (
            shard_rows,
            shard_bytes,
            row_group_rows,
        )
        self.rows = 0
        self._paths: list[Path] = []
        self._writer: Any = None
        self._file: Any = None
        self._shard_rows = 0
        self._shard_bytes = 0.0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def add(self, table: pa.Table) -> None:
        """Append ``table``'s rows (of ``schema``) after the rows already added."""
        per_row = max(1.0, table.nbytes / table.num_rows) if table.num_rows else 1.0
        offset = 0
        while offset < table.num_rows:
            if self.shard_rows is not None:
                room = self.shard_rows - self._shard_rows
            else:
                room = int((self.shard_bytes - self._shard_bytes) // per_row)
                if room < 1 and self._shard_rows:
                    self._close_shard()
                    continue
                room = max(room, 1)
            piece = table.slice(offset, min(room, table.num_rows - offset))
            self._append(piece, per_row)
            offset += piece.num_rows
            if self.shard_rows is not None:  # rows decide alone: exactly shard_rows each
                full = self._shard_rows >= self.shard_rows
            else:
                full = self._shard_bytes + per_row > self.shard_bytes
            if full:
                self._close_shard()

    def finish(self, *, empty_shard: bool = False) -> list[Path]:
        """Close the last shard and name them all ``<split>-<i>-of-<n>.parquet``; a split
        with no rows gets no file, or one zero-row shard with ``empty_shard``."""
        self._close_shard()
        if not self._paths and empty_shard:
            self._open()
            self._close_shard()
        count = len(self._paths)
        final = []
        for i, path in enumerate(self._paths):
            name = self.folder / f"{self.split}-{i:05d}-of-{count:05d}.parquet"
            os.replace(path, name)
            final.append(name)
        return final

    def abort(self) -> None:
        """Close an open shard without finishing it (its file is left for the caller)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._file.close()
            self._writer = self._file = None

    def _open(self) -> None:
        """Start the next shard: a hidden ``.part`` file, renamed by `finish`."""
        path = self.folder / f".{self.split}-{len(self._paths):05d}.part"
        self._file = open(path, "wb")  # noqa: SIM115 (closed in _close_shard)
        self._writer = pq.ParquetWriter(self._file, self.schema, **_PARQUET)
        self._paths.append(path)

    def _append(self, piece: pa.Table, per_row: float) -> None:
        if self._writer is None:
            self._open()
        self.rows += piece.num_rows
        self._shard_rows += piece.num_rows
        self._shard_bytes += piece.num_rows * per_row
        self._pending.append(piece)
        self._pending_rows += piece.num_rows
        group = self._group_rows(per_row)
        while self._pending_rows >= group:
            self._flush(group)

    def _group_rows(self, per_row: float) -> int:
        return self.row_group_rows or max(1, int(ROW_GROUP_BYTES // per_row))

    def _flush(self, rows: int | None = None) -> None:
        """Write the first ``rows`` pending rows (all by default) as one row group."""
        if not self._pending_rows:
            return
        table = pa.concat_tables(self._pending).combine_chunks()
        rows = min(rows or table.num_rows, table.num_rows)
        self._writer.write_table(table.slice(0, rows), row_group_size=rows)
        rest = table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _close_shard(self) -> None:
        if self._writer is None:
            return
        self._flush()
        self._writer.close()
        _sync(self._file)
        self._file.close()
        self._writer = self._file = None
        self._shard_rows, self._shard_bytes = 0, 0.0


# zstd, statistics, no schema metadata: plain Arrow types for every reader (no pandas or
# `datasets` metadata); a shard with no rows has no row group (`datasets` cannot read one)
_PARQUET: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "store_schema": False}


def _sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())
