"""Format-level readers: each reads one data file (`curate.io.files.DataFile`, local or
remote, decompressed as a stream) and yields batches of records (with line numbers for text
formats), turning encoding and syntax faults into InputErrors that name the file."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Literal

import ijson
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
    lists, or (despite the suffix) JSON Lines.

    A file of at most `JSON_WHOLE_BYTES` (decompressed) is parsed whole by orjson, the
    fastest way. A bigger one is streamed: an array, or the ``data`` list of an object whose
    first element is an object (or that is empty), is read element by element with ijson
    (`_json_items`), and JSON Lines line by line, so memory stays bounded and ``limit``
    stops the reading. The rest is read whole as before: an object of column lists (it is
    one document of columns), an object whose ``data`` list starts with something else,
    one that breaks off before its ``data`` key, and a file that starts with neither ``[``
    nor ``{`` (an error). Streamed, a non-object element is an error when it is reached
    (after the batches before it), and a string's lone surrogate escape (``"\\ud800"``),
    which orjson rejects, reads as ``?``."""
    path = file.local or file.label
    with file.open() as f:
        head = _read_up_to(f, max(JSON_WHOLE_BYTES + 1, _CHUNK))
        if len(head) <= JSON_WHOLE_BYTES:
            yield from _json_whole(path, head.removeprefix(_BOM), limit)
            return
        head = head.removeprefix(_BOM)
        shape = _json_shape(file, path, head)
        if shape is None:
            yield from _json_whole(path, head + f.read(), limit)
            return
        stream = _Chained.stream(head, f)
        del head  # (the stream drops it once read)
        if shape == "lines":
            yield from _jsonl_lines(path, stream, limit)
        else:
            yield from _json_items(file, path, stream, shape, limit)


JSON_WHOLE_BYTES = 32 << 20  # a .json file up to this size is parsed whole (orjson)
_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16
_Shape = Literal["item", "data.item", "lines"]  # ijson's prefix of the rows, or JSON Lines


def _read_up_to(f: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes of ``f`` (fewer only at its end: some streams return short reads)."""
    parts: list[bytes] = []
    while n > 0 and (part := f.read(n)):
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


class _Chained(io.RawIOBase):
    """The bytes ``head`` and then the rest of ``rest``, as one readable stream."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head: bytes | memoryview = memoryview(head)
        self._rest = rest
        self.served = 0  # bytes read so far

    @classmethod
    def stream(cls, head: bytes, rest: IO[bytes]) -> io.BufferedReader:
        return io.BufferedReader(cls(head, rest), _CHUNK)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:] if n < len(self._head) else b""
        else:
            data = self._rest.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.served += n
        return n


@contextlib.contextmanager
def _reopened(file: DataFile) -> Iterator[io.BufferedReader]:
    """The file from its start again, without its byte order mark."""
    with file.open() as f:
        yield _Chained.stream(_read_up_to(f, 3).removeprefix(_BOM), f)


def _json_shape(file: DataFile, path: Path | str, head: bytes) -> _Shape | None:
    """Where the rows of a big .json file are (its first bytes are ``head``), or None to
    read it whole: its first line is an object followed by more (JSON Lines), it is an
    array, or an object whose ``data`` list is empty or starts with an object."""
    first = head.lstrip()[:1]
    if first == b"[":
        return "item"
    if not first:
        return None
    if first != b"{":  # not rows whatever follows: the error, from the first bytes
        try:
            obj = orjson.loads(head)
        except orjson.JSONDecodeError:
            raise _utf8_error(head[:-4], path) or _json_error(head, path) from None
        raise _not_rows(obj, path)
    line, _, more = head.partition(b"\n")
    with contextlib.suppress(orjson.JSONDecodeError):
        if isinstance(orjson.loads(line), dict) and more.strip():
            return "lines"
    with _reopened(file) as f:
        events = ijson.parse(f)
        try:
            for prefix, event, value in events:
                if prefix == "" and event == "end_map":
                    return None
                if prefix == "" and event == "map_key" and value == "data":
                    if next(events)[1] != "start_array":
                        return None
                    return "data.item" if next(events)[1] in ("start_map", "end_array") else None
        except (ijson.JSONError, StopIteration):
            return None
    return None


def _json_items(
    file: DataFile,
    path: Path | str,
    stream: io.BufferedReader,
    prefix: str,
    limit: int | None,
    *,
    exact: bool = False,
    skip: int = 0,
) -> Iterator[_Batch]:
    """The objects at ijson's ``prefix`` in ``stream``, in batches, from the ``skip``-th.

    Numbers read as orjson reads them: an integer as an int, other numbers as floats. The
    fast path (floats parsed in C) cannot hold an integer beyond 64 bits; at the first one
    the file is read again from the start with ijson's Decimals and big ints, converted
    (`_as_orjson_numbers`), skipping the rows already given."""
    items = ijson.items(stream, prefix, use_float=not exact)
    records: list[dict[str, Any]] = []
    row = done = skip
    try:
        for rec in itertools.islice(items, skip, None):
            if not isinstance(rec, dict):
                raise InputError(
                    f"expected a JSON object, got {_describe(rec)}", path=path, row=row
                )
            records.append(_as_orjson_numbers(rec, path, row) if exact else rec)
            row += 1
            if len(records) == BATCH_SIZE or len(records) == limit:
                yield records, None
                done = row
                if limit is not None and (limit := limit - len(records)) == 0:
                    return
                records = []
    except ijson.JSONError as e:
        if "integer overflow" in str(e) and not exact:
            with _reopened(file) as again:
                yield from _json_items(file, path, again, prefix, limit, exact=True, skip=done)
                return
        read = stream.raw.served if isinstance(stream.raw, _Chained) else None
        raise _utf8_fault(file, path, read) or _stream_error(e, path, row) from None
    if records:
        yield records, None


def _as_orjson_numbers(value: Any, path: Path | str, row: int) -> Any:
    """``value`` with ijson's Decimals as floats and integers beyond orjson's range
    (-2**63 to 2**64 - 1) as floats, as orjson reads them.

    >>> from decimal import Decimal
    >>> _as_orjson_numbers({"a": [Decimal("0.5"), 2**64, 7], "b": True}, "x.json", 0)
    {'a': [0.5, 1.8446744073709552e+19, 7], 'b': True}
    """
    if isinstance(value, dict):
        return {k: _as_orjson_numbers(v, path, row) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_orjson_numbers(v, path, row) for v in value]
    if isinstance(value, Decimal) or (type(value) is int and not -(2**63) <= value < 2**64):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isinf(number):
            raise InputError(
                "not valid JSON: number is infinity when parsed as double", path=path, row=row
            )
        return number
    return value


def _stream_error(e: Exception, path: Path | str, row: int) -> InputError:
    """ijson's (yajl's) complaint, with the text around the fault, naming the array row."""
    message, _, context = str(e).partition("\n")
    near = context.partition("\n")[0].strip()
    return InputError(
        f"not valid JSON: {message.strip()}" + (f" near {near!r}" if near else ""),
        path=path,
        row=row,
    )


def _utf8_fault(file: DataFile, path: Path | str, upto: int | None) -> InputError | None:
    """An error naming the first byte of the file (after its byte order mark) that is not
    UTF-8, with its line; None if all of its first ``upto`` bytes are (all: None). Read in
    chunks, for a file too big to hold."""
    base, line, carry = 0, 1, b""
    with _reopened(file) as f:
        while upto is None or base < upto:
            chunk = f.read(1 << 20)
            data, carry = carry + chunk, b""
            if not data:
                break
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as e:
                if chunk and e.end == len(data) and e.reason == "unexpected end of data":
                    data, carry = data[: e.start], data[e.start :]  # a character cut in two
                elif upto is None or base + e.start < upto:
                    line += data.count(b"\n", 0, e.start)
                    return _utf8_error(data, path, line, base)
                else:
                    break
            base, line = base + len(data), line + data.count(b"\n")
    return None


def _not_rows(obj: Any, path: Path | str) -> InputError:
    return InputError(
        f'expected a JSON array of objects, {{"data": [...]}}, or an object of '
        f"column lists; got {_describe(obj)}. For one object per line use .jsonl",
        path=path,
    )


def _json_whole(path: Path | str, data: bytes, limit: int | None = None) -> Iterator[_Batch]:
    """`_json` of a file held whole (``data``, without a byte order mark), parsed by orjson."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        if "after document" in e.msg and data.lstrip()[:1] == b"{":
            yield from _jsonl_lines(path, data.splitlines(keepends=True), limit)  # JSONL as .json
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
        raise _not_rows(obj, path)
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
