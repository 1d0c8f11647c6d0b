"""Format-level readers: each reads one data file (`curate.io.files.DataFile`, local or
remote, decompressed as a stream) and yields batches of records (with line numbers for text
formats), turning encoding and syntax faults into InputErrors that name the file."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from curate.errors import InputError
from curate.io.canon import _describe
from curate.io.files import COMPRESSIONS, DataFile, sniff_compression

BATCH_SIZE = 10_000


_Batch = tuple[list[dict[str, Any]], list[int] | None]  # records, 1-based lines (text formats)


def _utf8_error(
    data: bytes, path: Path | str, line: int | None = None, base: int = 0
) -> InputError | None:
    """An error naming the first byte of ``data`` that is not UTF-8, or None if all are.

    Compressed bytes in a file whose name does not say so get their own advice."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        compression = sniff_compression(data) if base == 0 else None
        if compression:
            suffix = next(s for s, c in COMPRESSIONS.items() if c == compression)
            return InputError(
                f"the file is {compression}-compressed but its name does not end in "
                f"{suffix}; rename it (e.g. data.jsonl{suffix}) so that it is decompressed",
                path=path,
            )
        line = line if line is not None else data.count(b"\n", 0, e.start) + 1
        return InputError(
            f"byte 0x{data[e.start]:02x} at byte offset {base + e.start} of the "
            "file is not valid UTF-8; the file must be UTF-8 (re-encode it, e.g. "
            "with iconv -f latin1 -t utf-8)",
            path=path,
            line=line,
        )
    return None


def _json_error(data: bytes, path: Path | str, line: int | None = None) -> InputError:
    """The parser's own message for ``data``, which is known not to parse."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as e:
        return InputError(
            f"not valid JSON: {e.msg} at column {e.colno}", path=path, line=line or e.lineno
        )
    return InputError("not valid JSON", path=path, line=line)


def _jsonl(file: DataFile, limit: int | None = None) -> Iterator[_Batch]:
    with file.open() as f:
        yield from _jsonl_lines(file.local or file.label, f, limit)


def _jsonl_lines(
    path: Path | str, lines_in: Iterable[bytes], limit: int | None = None
) -> Iterator[_Batch]:
    """Records of JSON Lines; with ``limit``, no line after the limit-th record is read."""
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    offset = 0
    for lineno, raw in enumerate(lines_in, 1):
        start, offset = offset, offset + len(raw)
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _utf8_error(raw, path, lineno, start) or _json_error(
                raw.rstrip(), path, lineno
            ) from None
        if not isinstance(obj, dict):
            raise InputError(
                f"expected a JSON object on each line, got {_describe(obj)}", path=path, line=lineno
            )
        records.append(obj)
        lines.append(lineno)
        if len(records) == BATCH_SIZE or len(records) == limit:
            yield records, lines
            if limit is not None and (limit := limit - len(records)) == 0:
                return
            records, lines = [], []
    if records:
        yield records, lines


def _json(file: DataFile, limit: int | None = None) -> Iterator[_Batch]:
    """A JSON array of objects, ``{"data": [...]}``, an object of equal-length column
    lists, or (despite the suffix) JSON Lines."""
    path = file.local or file.label
    data = file.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if "after document" in e.msg and data.lstrip()[:1] == b"{":
            yield from _jsonl_lines(path, data.splitlines(keepends=True))  # JSONL as .json
            return
        if not data.strip():
            return
        raise _utf8_error(data, path) or _json_error(data, path) from None
    data_list = obj.get("data") if isinstance(obj, dict) else None
    if isinstance(data_list, list) and all(isinstance(r, dict) for r in data_list):
        obj = data_list
    elif isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {k: len(v) for k, v in obj.items()}
        if len(set(lengths.values())) != 1:
            raise InputError(
                f"an object of column lists needs lists of one length, got {lengths}", path=path
            )
        obj = [dict(zip(obj, values, strict=True)) for values in zip(*obj.values(), strict=True)]
    if not isinstance(obj, list):
        raise InputError(
            f'expected a JSON array of objects, {{"data": [...]}}, or an object of '
            f"column lists; got {_describe(obj)}. For one object per line use .jsonl",
            path=path,
        )
    for row, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise InputError(f"expected a JSON object, got {_describe(rec)}", path=path, row=row)
    for start in range(0, len(obj), BATCH_SIZE):
        yield obj[start : start + BATCH_SIZE], None


def _arrow(batches: Iterator[Any], limit: int | None = None) -> Iterator[_Batch]:
    """Arrow record batches as lists of Python records, re-cut to about BATCH_SIZE rows;
    with ``limit``, no batch is pulled once that many rows are out."""
    records: list[dict[str, Any]] = []
    for batch in batches:
        records.extend(batch.to_pylist())
        if limit is not None and len(records) >= limit:
            yield records, None
            return
        if len(records) >= BATCH_SIZE:
            limit = limit - len(records) if limit is not None else None
            yield records, None
            records = []
    if records:
        yield records, None


def _parquet(file: DataFile, limit: int | None = None) -> Iterator[_Batch]:
    import pyarrow.parquet as pq

    path = file.local or file.label
    with contextlib.ExitStack() as stack:
        source = file.local or stack.enter_context(file.open())  # a remote file: seekable
        try:
            pf = pq.ParquetFile(source)
        except Exception as e:  # pyarrow raises several types for a file that is not Parquet
            raise InputError(f"not a readable Parquet file: {e}", path=path) from None
        yield from _arrow(pf.iter_batches(batch_size=min(BATCH_SIZE, limit or BATCH_SIZE)), limit)


def _csv(file: DataFile, limit: int | None = None) -> Iterator[_Batch]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    path = file.local or file.label
    parse = pcsv.ParseOptions(newlines_in_values=True)  # problems span lines
    try:
        with file.open() as f:
            names = pcsv.open_csv(f, parse_options=parse).schema.names
        types = pcsv.ConvertOptions(column_types={n: pa.string() for n in names})
        with file.open() as f:
            reader = pcsv.open_csv(f, parse_options=parse, convert_options=types)
            yield from _arrow(iter(reader), limit)
    except pa.ArrowInvalid as e:
        if "Empty CSV" in str(e):
            return
        raise _utf8_error(file.read_bytes(), path) or InputError(
            f"not a readable CSV file: {e}", path=path
        ) from None


def _hf(file: DataFile, limit: int | None = None) -> Iterator[_Batch]:
    import pyarrow as pa

    folder = Path(file.path)
    state = orjson.loads((folder / "state.json").read_bytes())
    files = [folder / f["filename"] for f in state.get("_data_files", [])]

    def batches() -> Iterator[Any]:
        for file in files:
            with pa.memory_map(str(file)) as source:
                yield from pa.ipc.open_stream(source)

    yield from _arrow(batches(), limit)


_WET_TYPES = ("conversion", "resource")  # records whose payload is the page's text


def _warc(file: DataFile, limit: int | None = None) -> Iterator[_Batch]:
    """Pages of a WET file (or the text records of a WARC): each ``conversion`` (or
    ``resource``) record's text with its ``WARC-Target-URI`` as ``url``, its date and record
    id; other records (request, response, metadata, warcinfo) are skipped. A record whose
    payload is not UTF-8 is decoded with replacement characters (web text is messy; the
    classifier's normalisation drops them). Read with ``warcio`` (the ``warc`` extra)."""
    path = file.local or file.label
    try:
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed
    except ImportError:
        raise InputError(
            "reading WARC/WET files needs warcio: pip install 'curate[warc]'", path=path
        ) from None
    records: list[dict[str, Any]] = []
    try:
        with file.open() as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type not in _WET_TYPES:
                    continue
                headers = record.rec_headers
                records.append(
                    {
                        "text": record.content_stream().read().decode("utf-8", "replace"),
                        "url": headers.get_header("WARC-Target-URI"),
                        "date": headers.get_header("WARC-Date"),
                        "record_id": headers.get_header("WARC-Record-ID"),
                    }
                )
                if len(records) >= BATCH_SIZE:
                    yield records, None
                    records = []
    except ArchiveLoadFailed as e:
        raise InputError(f"not a readable WARC/WET file: {e}", path=path) from None
    if records:
        yield records, None


# Each reads one file; ``limit`` (when given) lets it stop once that many records are out.
_READERS: dict[str, Callable[[DataFile, int | None], Iterator[_Batch]]] = {
    "jsonl": _jsonl,
    "warc": _warc,
    "json": _json,
    "parquet": _parquet,
    "csv": _csv,
    "hf": _hf,
}
