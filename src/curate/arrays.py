"""Rows of ``.npy`` files read with plain file reads: how a global step and its tasks read
the `curate.Stage.arrays` columns (MinHash signatures, embeddings) they need. `Stacked` is
such a column: the rows of several arrays (one ``.npy`` file per batch, or arrays in
memory) one after another.

Why not a memory map: reading scattered rows through one maps their neighbours too (the
kernel's fault-around maps up to 64 KB around each page it faults in), so gathering 16,384
random rows of a 512 MB file made all 512 MB resident in the process (measured: RssFile
516 MB). Those pages are the page cache's, but they count in the process's memory, and
the bound the runner promises is on that. `take` reads each run of consecutive rows with
one ``pread`` (about 3.5 us per scattered row), into memory the caller owns; when at
least one row in 16 is wanted it reads the file in 64 MB blocks instead.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
>>> np.save(path, np.arange(12, dtype=np.int64).reshape(6, 2))
>>> take(path, np.array([5, 0, 1, 5])).tolist()
[[10, 11], [0, 1], [2, 3], [10, 11]]
>>> big = os.path.join(tempfile.mkdtemp(), "big.npy")
>>> np.save(big, np.arange(1000, dtype=np.int64))
>>> take(big, np.array([999, 3])).tolist(), take(big, np.arange(0, 1000, 2))[-2:].tolist()
([999, 3], [996, 998])
>>> shape(path), take(path).shape
((6, 2), (6, 2))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate.errors import RunError

_DENSE = 16  # at least one row in 16 wanted: read the whole file, a block at a time
_BLOCK = 64 << 20  # bytes per block


def _header(f: Any) -> tuple[tuple[int, ...], np.dtype[Any], int]:
    version = np.lib.format.read_magic(f)  # type: ignore[no-untyped-call]
    read = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read is None:
        raise ValueError(f"{f.name}: .npy format version {version} is not supported")
    dims, fortran, dtype = read(f)  # type: ignore[no-untyped-call]
    if fortran or dtype.hasobject:
        raise ValueError(f"{f.name}: expected a C-ordered array of numbers")
    return tuple(dims), dtype, f.tell()


def shape(path: str) -> tuple[int, ...]:
    """The array's shape, from its header."""
    with open(path, "rb") as f:
        return _header(f)[0]


def take(path: str, positions: np.ndarray | None = None) -> np.ndarray:
    """Rows ``positions`` of the ``.npy`` file ``path``, in that order (every row when
    None), read without mapping the file."""
    with open(path, "rb") as f:
        dims, dtype, offset = _header(f)
        width = int(np.prod(dims[1:], dtype=np.int64)) * dtype.itemsize
        if positions is None:
            return np.fromfile(f, dtype=dtype, count=int(np.prod(dims))).reshape(dims)
        positions = np.asarray(positions, np.int64)
        if len(positions) and (positions.min() < 0 or positions.max() >= dims[0]):
            raise IndexError(f"{path}: rows outside 0..{dims[0] - 1}")
        if len(positions) * _DENSE > dims[0] and dims[0] * width <= _BLOCK:  # read it all
            whole = np.fromfile(f, dtype=dtype, count=int(np.prod(dims))).reshape(dims)
            picked: np.ndarray = whole[positions]
            return picked
        wanted, inverse = np.unique(positions, return_inverse=True)
        rows = np.empty((len(wanted), *dims[1:]), dtype)
        if rows.size == 0:
            return rows[inverse.ravel()]
        if len(wanted) * _DENSE > dims[0]:  # many rows: read the file in blocks, keep those
            step = max(1, _BLOCK // max(width, 1))
            for lo in range(0, dims[0], step):
                block = np.fromfile(
                    f, dtype=dtype, count=min(step, dims[0] - lo) * (width // dtype.itemsize)
                )
                block = block.reshape(-1, *dims[1:])
                first, last = np.searchsorted(wanted, [lo, lo + len(block)]).tolist()
                rows[first:last] = block[wanted[first:last] - lo]
            return rows[inverse.ravel()]
        buffer = memoryview(rows.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        starts = np.flatnonzero(np.diff(wanted, prepend=-2) != 1)  # runs of consecutive rows
        ends = np.append(starts[1:], len(wanted))
        fd = f.fileno()
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            at, size = offset + int(wanted[lo]) * width, (hi - lo) * width
            got = os.preadv(fd, [buffer[lo * width : hi * width]], at)
            if got != size:
                raise OSError(f"{path}: short read at byte {at} ({got} of {size})")
        return rows[inverse.ravel()]


@dataclass(frozen=True)
class Stacked:
    """Rows of several arrays one after another, each in memory or the path of a ``.npy``
    file whose rows are read when taken (`take`: plain reads, nothing stays resident).
    Plain data: a task on another machine reads it there (the paths must be visible there:
    one machine, or shared storage). Every piece has the same width (checked).

    >>> s = Stacked((np.array([10, 11]), np.array([12, 13, 14])))
    >>> len(s), s.take(np.array([4, 0, 2])).tolist(), s.take().tolist()
    (5, [14, 10, 12], [10, 11, 12, 13, 14])
    """

    pieces: tuple[Any, ...]
    sizes: tuple[int, ...] = ()
    """Rows per piece (read from the pieces when not given)."""

    def __post_init__(self) -> None:
        if len(self.sizes) != len(self.pieces):
            shapes = [shape(p) if isinstance(p, str) else np.shape(p) for p in self.pieces]
            for piece, dims in zip(self.pieces, shapes, strict=True):
                if dims[1:] != shapes[0][1:]:
                    name = piece if isinstance(piece, str) else "an array"
                    raise ValueError(f"{name}: rows of shape {dims[1:]}, expected {shapes[0][1:]}")
            object.__setattr__(self, "sizes", tuple(int(d[0]) for d in shapes))

    def __len__(self) -> int:
        return sum(self.sizes)

    def take(self, positions: np.ndarray | None = None) -> np.ndarray:
        """The rows at ``positions`` (all rows when None), in that order."""
        if positions is None:
            parts = [_take(p, None) for p in self.pieces]
            return np.concatenate(parts) if len(parts) > 1 else parts[0]
        positions = np.asarray(positions, np.int64)
        starts = np.cumsum(self.sizes) - np.asarray(self.sizes, np.int64)
        piece = np.searchsorted(starts, positions, side="right") - 1
        if len(self.pieces) < 1 << 15:  # a 16-bit key: numpy's stable sort is a radix sort
            piece = piece.astype(np.int16)
        order = np.argsort(piece, kind="stable")  # the positions of each piece together
        bounds = np.searchsorted(piece[order], np.arange(len(self.pieces) + 1))
        out: np.ndarray | None = None
        for k in np.flatnonzero(np.diff(bounds)).tolist():  # only the pieces wanted
            mine = order[bounds[k] : bounds[k + 1]]
            rows = _take(self.pieces[k], positions[mine] - starts[k])
            if out is None:
                out = np.empty((len(positions), *rows.shape[1:]), rows.dtype)
            out[mine] = rows
        if out is None:  # no positions
            first = _take(self.pieces[0], np.zeros(0, np.int64)) if self.pieces else np.zeros(0)
            return first[:0]
        return out


def column_rows(frame: pl.DataFrame, column: str, where: str) -> np.ndarray:
    """A `curate.Stage.arrays` column of ``frame`` as a NumPy array, one row per row (lists
    of one length, or fixed-size arrays: rows x width); ``where`` names the batch in errors."""
    if column not in frame.columns:
        raise RunError(f"{where}: the stage declares array {column} but did not return it")
    series = frame[column]
    if series.dtype == pl.List:  # lists: one width for the batch
        widths = series.list.len().unique()
        if len(widths) > 1:
            raise RunError(f"{where}: column {column} has lists of lengths {widths.to_list()}")
        series = series.list.to_array(int(widths[0]) if len(widths) else 0)
    if series.null_count():
        raise RunError(f"{where}: column {column} has nulls; an array column needs a value per row")
    return series.to_numpy()


def stacked(ref: Any) -> Stacked:
    """``ref`` as a `Stacked`: itself, or one piece (a ``.npy`` path or an array)."""
    return ref if isinstance(ref, Stacked) else Stacked((ref,))


def _take(piece: Any, positions: np.ndarray | None) -> np.ndarray:
    if isinstance(piece, str):
        return take(piece, positions)
    return np.asarray(piece if positions is None else piece[positions])
