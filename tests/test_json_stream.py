"""Tests of streaming a big ``.json`` file (`curate.io.formats._json`): the rows, values and
types are those of the whole-file orjson path, errors name the file and the row (or byte and
line), ``limit`` stops the reading, and compressed and remote files stream too.

The ``stream`` fixture sets the size up to which a file is read whole to 0, so these tiny
files take the streaming path; ``whole`` reads the same file the old way to compare."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest

import curate.io.formats as formats
from curate.errors import InputError
from curate.io import read
from curate.io.files import DataFile

ROWS = [
    {"problem": f"What is {i}+{i}?", "answer": 2 * i, "level": i / 4, "tags": ["a", {"b": i}]}
    for i in range(23)
]


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "JSON_WHOLE_BYTES", 0)


def batches(path: Path | str, limit: int | None = None, **kw: Any) -> list[list[dict[str, Any]]]:
    file = DataFile(str(path), "", str(path), **kw)
    return [records for records, lines in formats._json(file, limit)]


def rows(path: Path | str, limit: int | None = None, **kw: Any) -> list[dict[str, Any]]:
    return [r for b in batches(path, limit, **kw) for r in b]


def whole(path: Path) -> list[dict[str, Any]]:
    return [r for b, _ in formats._json_whole(path, path.read_bytes().removeprefix(formats._BOM))
            for r in b]  # fmt: skip


def typed(value: Any) -> Any:
    """``value`` with each scalar paired with its type, so that 1 != 1.0 != True."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def same_as_whole(path: Path) -> list[dict[str, Any]]:
    streamed = rows(path)
    assert typed(streamed) == typed(whole(path))
    return streamed


# ------------------------------------------------------------------------- values and layouts


def test_values_and_types_match_orjson(tmp_path: Path, stream: None) -> None:
    rng = random.Random(7)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(200)] + [
        rng.random() * 10.0 ** rng.randint(-300, 300) for _ in range(200)
    ]
    body = b",".join(
        [
            b'{"i": 0, "neg": -0, "negf": -0.0, "e": 1E5, "e2": 2.5e-3, "tiny": 1e-400}',
            b'{"big": 9223372036854775807, "small": -9223372036854775808, "one": 1.0}',
            b'{"t": true, "f": false, "n": null, "nested": {"a": [1, [2.5, {"b": "c"}]]}}',
            '{"u": "café ∑ 😀 \\u00e9\\ud83d\\ude00", "esc": "a\\"b\\\\c\\n\\t\\u0000"}'.encode(),
            b'{"dup": 1, "x": 2, "dup": 3}',
            *(b'{"f": %s}' % repr(x).encode() for x in floats),
        ]
    )
    p = tmp_path / "v.json"
    p.write_bytes(b"[" + body + b"]")
    got = same_as_whole(p)
    assert len(got) == 5 + len(floats) and got[4] == {"dup": 3, "x": 2}
    assert [r["f"] for r in got[5:]] == floats
    p.write_bytes(b"\xef\xbb\xbf[" + body + b"]")  # a byte order mark
    assert typed(rows(p)) == typed(got)


def test_integers_beyond_64_bits_read_as_orjson_reads_them(
    tmp_path: Path, stream: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "BATCH_SIZE", 4)  # the big int comes after two batches
    records = [{"k": i, "x": 0.5} for i in range(9)]
    records.append({"k": 2**64, "y": [2**64 - 1, -(2**63), -(2**63) - 1, 10**30, 1.5]})
    records += [{"k": i} for i in range(3)]
    p = tmp_path / "big.json"
    p.write_text(json.dumps(records))  # (orjson cannot write them)
    assert str(2**64).encode() in p.read_bytes()
    got = same_as_whole(p)
    assert got[9]["k"] == float(2**64) and got[9]["y"][:3] == [
        2**64 - 1,
        -(2**63),
        float(-(2**63) - 1),
    ]
    assert [len(b) for b in batches(p)] == [4, 4, 4, 1]  # no row twice
    assert typed(rows(p, limit=10)) == typed(got[:10])
    p.write_bytes(b'[{"k": 1}, {"k": 100000000000000000000, "x": 1e400}]')
    with pytest.raises(InputError, match="infinity") as e:
        rows(p)
    assert e.value.row == 1


@pytest.mark.parametrize("layout", ["array", "data", "data_later", "data_empty", "lines"])
def test_layouts_stream_like_whole(tmp_path: Path, stream: None, layout: str) -> None:
    p = tmp_path / "m.json"
    if layout == "array":
        p.write_bytes(orjson.dumps(ROWS, option=orjson.OPT_INDENT_2))
    elif layout == "data":
        p.write_bytes(orjson.dumps({"data": ROWS, "version": 1}))
    elif layout == "data_later":  # after a list that is not rows
        p.write_bytes(orjson.dumps({"problem": ["x"] * 3, "meta": {"a": [1]}, "data": ROWS}))
    elif layout == "data_empty":
        p.write_bytes(b'{"data": [], "problem": ["q"]}')
    else:  # JSON Lines whose records hold a "data" list of objects
        p.write_bytes(b"".join(orjson.dumps({**r, "data": [{"x": 1}]}) + b"\n" for r in ROWS))
    assert same_as_whole(p) == {"data_empty": []}.get(layout, rows(p))
    assert len(rows(p)) == {"data_empty": 0}.get(layout, len(ROWS))


@pytest.mark.parametrize(
    "content",
    [
        b'{"problem": ["a", "b"], "data": ["x", "y"]}',  # columns with a "data" column
        b'{"data": [1, {"a": 2}]}',  # a data list that does not start with an object
        b'{"problem": ["a", "b"], "answer": ["1", "2"]}',
    ],
)
def test_other_objects_read_whole(tmp_path: Path, stream: None, content: bytes) -> None:
    p = tmp_path / "c.json"
    p.write_bytes(content)
    assert same_as_whole(p)


def test_a_big_file_crosses_the_first_chunk(tmp_path: Path, stream: None) -> None:
    records = [{**ROWS[i % len(ROWS)], "i": i, "text": "é" * (i % 97)} for i in range(3000)]
    p = tmp_path / "big.json"
    p.write_bytes(orjson.dumps({"data": records}, option=orjson.OPT_INDENT_2))
    assert p.stat().st_size > 4 * formats._CHUNK
    assert typed(same_as_whole(p)) == typed(records)
    q = tmp_path / "big_lines.json"
    q.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert typed(rows(q)) == typed(records)


def test_batches_and_limit(tmp_path: Path, stream: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "BATCH_SIZE", 10)
    p = tmp_path / "m.json"
    p.write_bytes(orjson.dumps(ROWS)[:-1] + b", {broken")  # a fault after the rows
    assert [len(b) for b in batches(p, limit=15)] == [10, 5]
    assert [len(b) for b in batches(p, limit=7)] == [7]
    with pytest.raises(InputError, match="not valid JSON"):
        rows(p)
    df = read(p, limit=12).frame()  # stops before the fault
    assert df["problem"].to_list() == [r["problem"] for r in ROWS[:12]]


def test_small_files_are_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_bytes(b'[{"problem": "a"},\n {"problem": ]')
    with pytest.raises(InputError, match="not valid JSON") as e:
        rows(p)
    assert e.value.line == 2  # orjson's own position: the file was parsed whole


# ---------------------------------------------------------------------------------- errors


def test_errors_name_the_file_and_row(tmp_path: Path, stream: None) -> None:
    p = tmp_path / "x.json"
    p.write_bytes(orjson.dumps([{"problem": "a"}, [1, 2]]))
    with pytest.raises(InputError, match="got list") as e:
        read(p).frame()
    assert e.value.row == 1 and str(p) in str(e.value)
    p.write_bytes(orjson.dumps({"data": [{"problem": "a"}, {"problem": "b"}, {"problem": 7}]}))
    with pytest.raises(InputError) as e:
        read(p).frame()
    assert (e.value.row, e.value.field) == (2, "problem")
    p.write_bytes(b'[{"problem": "a"},\n {"problem": "b"},\n {"problem": ]')
    with pytest.raises(InputError, match=r"not valid JSON: parse error: .* near '.*problem") as e:
        read(p).frame()
    assert e.value.row == 2 and str(p) in str(e.value)
    p.write_bytes(b'[{"problem": "a"}, {"problem": "b"')  # cut short
    with pytest.raises(InputError, match="premature EOF") as e:
        rows(p)
    assert e.value.row == 1
    p.write_bytes(b'[{"problem": "a"}] [')
    with pytest.raises(InputError, match="trailing garbage"):
        rows(p)


def test_non_utf8_names_byte_and_line(tmp_path: Path, stream: None) -> None:
    p = tmp_path / "latin1.json"
    p.write_bytes(b'[\n{"problem": "a"},\n{"problem": "caf\xe9"}]')
    with pytest.raises(InputError, match=r"byte 0xe9 at byte offset 36 .*not valid UTF-8") as e:
        rows(p)
    assert e.value.line == 3
    pad = b'[{"p": "' + b"x" * ((1 << 20) - 9) + b'\xc3\xa9"},\n'  # é across 1 MiB
    p.write_bytes(pad + b'{"p": "a"}, {"p": "\xff"}, [')  # a syntax fault after the bad byte
    with pytest.raises(InputError, match=f"byte 0xff at byte offset {len(pad) + 19} ") as e:
        rows(p)
    assert e.value.line == 2
    p.write_bytes(b'[{"p": "a"} {"p": "' + b"x" * (1 << 20) + b'\xff"}]')  # the syntax fault first
    with pytest.raises(InputError, match="parse error") as e:
        rows(p)
    assert e.value.row == 1


def test_big_files_that_are_not_rows(tmp_path: Path, stream: None) -> None:
    p = tmp_path / "s.json"
    p.write_bytes(b'"just a string"')
    with pytest.raises(InputError, match="expected a JSON array of objects"):
        rows(p)
    p.write_bytes(b"  \n")
    assert rows(p) == []
    p.write_bytes(gzip.compress(orjson.dumps(ROWS) * 100))  # compressed, named plain
    with pytest.raises(InputError, match=r"gzip-compressed but its name does not end in \.gz"):
        rows(p)
    p.write_bytes(b"nonsense" * 10_000)
    with pytest.raises(InputError, match="not valid JSON"):
        rows(p)


# ------------------------------------------------------------------ compressed and remote


def test_compressed_files_stream(tmp_path: Path, stream: None) -> None:
    data = orjson.dumps({"data": ROWS * 200})
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(data))
    (tmp_path / "a.json.zst").write_bytes(pa.Codec("zstd").compress(data, asbytes=True))
    expected = ROWS * 200
    assert typed(rows(tmp_path / "a.json.gz", compression="gzip")) == typed(expected)
    assert typed(rows(tmp_path / "a.json.zst", compression="zstd")) == typed(expected)
    assert read(tmp_path / "a.json.gz", limit=5).frame().height == 5


@pytest.fixture
def memfs() -> Iterator[Any]:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/jsonpool"):
        fs.rm("/jsonpool", recursive=True)


def test_remote_files_stream(memfs: Any, stream: None) -> None:
    with memfs.open("/jsonpool/m.json.gz", "wb") as f:
        f.write(gzip.compress(orjson.dumps(ROWS)))
    with memfs.open("/jsonpool/m.json", "wb") as f:
        f.write(orjson.dumps(ROWS))
    for name in ("m.json.gz", "m.json"):
        df = read(f"memory://jsonpool/{name}").frame()
        assert df["problem"].to_list() == [r["problem"] for r in ROWS]
