"""Format-level readers: each yields batches of records (with line numbers for
text formats) and turns encoding and syntax faults into InputErrors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from curate.errors import InputError
from curate.io.canon import _describe

BATCH_SIZE = 10_000


_Batch = tuple[list[dict[str, Any]], list[int] | None]  # records, 1-based lines (text formats)


def _utf8_error(
    data: bytes, path: Path, line: int | None = None, base: int = 0
) -> InputError | None:
    """An error naming the first byte of ``data`` that is not UTF-8, or None if all are."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line if line is not None else data.count(b"\n", 0, e.start) + 1
        return InputError(
            f"byte 0x{data[e.start]:02x} at byte offset {base + e.start} of the "
            "file is not valid UTF-8; the file must be UTF-8 (re-encode it, e.g. "
            "with iconv -f latin1 -t utf-8)",
            path=path,
            line=line,
        )
    return None


def _json_error(data: bytes, path: Path, line: int | None = None) -> InputError:
    """The parser's own message for ``data``, which is known not to parse."""
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as e:
        return InputError(
            f"not valid JSON: {e.msg} at column {e.colno}", path=path, line=line or e.lineno
        )
    return InputError("not valid JSON", path=path, line=line)


def _jsonl(path: Path) -> Iterator[_Batch]:
    with open(path, "rb") as f:
        yield from _jsonl_lines(path, f)


def _jsonl_lines(path: Path, lines_in: Iterable[bytes]) -> Iterator[_Batch]:
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
        if len(records) == BATCH_SIZE:
            yield records, lines
            records, lines = [], []
    if records:
        yield records, lines


def _json(path: Path) -> Iterator[_Batch]:
    """A JSON array of objects, ``{"data": [...]}``, an object of equal-length column
    lists, or (despite the suffix) JSON Lines."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
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


def _arrow(batches: Iterator[Any]) -> Iterator[_Batch]:
    """Arrow record batches as lists of Python records, re-cut to about BATCH_SIZE rows."""
    records: list[dict[str, Any]] = []
    for batch in batches:
        records.extend(batch.to_pylist())
        if len(records) >= BATCH_SIZE:
            yield records, None
            records = []
    if records:
        yield records, None


def _parquet(path: Path) -> Iterator[_Batch]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"not a readable Parquet file: {e}", path=path) from None
    yield from _arrow(pf.iter_batches(batch_size=BATCH_SIZE))


def _csv(path: Path) -> Iterator[_Batch]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    parse = pcsv.ParseOptions(newlines_in_values=True)  # problems span lines
    try:
        names = pcsv.open_csv(path, parse_options=parse).schema.names
        types = pcsv.ConvertOptions(column_types={n: pa.string() for n in names})
        reader = pcsv.open_csv(path, parse_options=parse, convert_options=types)
        yield from _arrow(iter(reader))
    except pa.ArrowInvalid as e:
        if "Empty CSV" in str(e):
            return
        raise _utf8_error(path.read_bytes(), path) or InputError(
            f"not a readable CSV file: {e}", path=path
        ) from None


def _hf(folder: Path) -> Iterator[_Batch]:
    import pyarrow as pa

    state = orjson.loads((folder / "state.json").read_bytes())
    files = [folder / f["filename"] for f in state.get("_data_files", [])]

    def batches() -> Iterator[Any]:
        for file in files:
            with pa.memory_map(str(file)) as source:
                yield from pa.ipc.open_stream(source)

    yield from _arrow(batches())


_WET_TYPES = ("conversion", "resource")  # records whose payload is the page's text


def _warc(path: Path) -> Iterator[_Batch]:
    """Pages of a WET file (or the text records of a WARC): each ``conversion`` (or
    ``resource``) record's text with its ``WARC-Target-URI`` as ``url``, its date and record
    id; other records (request, response, metadata, warcinfo) are skipped. A record whose
    payload is not UTF-8 is decoded with replacement characters (web text is messy; the
    classifier's normalisation drops them). Read with ``warcio`` (the ``warc`` extra)."""
    try:
        from warcio.archiveiterator import ArchiveIterator
        from warcio.exceptions import ArchiveLoadFailed
    except ImportError:
        raise InputError(
            "reading WARC/WET files needs warcio: pip install 'curate[warc]'", path=path
        ) from None
    records: list[dict[str, Any]] = []
    try:
        with open(path, "rb") as stream:
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


_READERS: dict[str, Callable[[Path], Iterator[_Batch]]] = {
    "jsonl": _jsonl,
    "warc": _warc,
    "json": _json,
    "parquet": _parquet,
    "csv": _csv,
    "hf": _hf,
}
