"""`curate.responses.routed`: a table read once, a piece at a time, routed to bucket files by
a hash of the problem id, then read back one bucket at a time (what `Distill`'s samples and
the export's wanted responses are gathered with); `ResponsesTable.frames`, its pieces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from curate import responses
from curate.responses import ResponsesTable, bucket_of, routed

SCHEMA = {"id": pl.String, "n": pl.Int64}


def _pieces(rows: int = 600, size: int = 37) -> list[pl.DataFrame]:
    """``rows`` rows of 50 ids, in pieces of ``size``: ``n`` is a row's place overall."""
    frame = pl.DataFrame(
        {"id": [f"p{i % 50}" for i in range(rows)], "n": range(rows)}, schema=SCHEMA
    )
    return [frame.slice(at, size) for at in range(0, rows, size)]


@pytest.mark.parametrize(("route_bytes", "open_buckets"), [(2**26, 64), (1, 1), (500, 3)])
def test_rows_land_in_their_bucket_in_order(
    route_bytes: int, open_buckets: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row is in the bucket `bucket_of` gives, once, rows in the order they came, however
    often the rows held are written out and however few files may be open (a bucket then
    goes on in further files); the folder is in ``under`` and gone afterwards."""
    monkeypatch.setattr(responses, "ROUTE_BYTES", route_bytes)
    monkeypatch.setattr(responses, "OPEN_BUCKETS", open_buckets)
    pieces = _pieces()
    whole = pl.concat(pieces).with_columns(bucket_of("id", 7).alias("_bucket"))
    with routed(pieces, key="id", count=7, schema=SCHEMA, under=tmp_path) as buckets:
        (folder,) = tmp_path.iterdir()
        assert folder.name.startswith(responses.BUCKETS_PREFIX)
        if route_bytes == 1:  # every piece written at once: a bucket in many files
            assert max(buckets.files) > 1
        for bucket in range(7):
            frame = buckets.read(bucket)
            assert frame.schema == pl.Schema(SCHEMA)
            expected = whole.filter(pl.col("_bucket") == bucket).drop("_bucket")
            assert frame.equals(expected)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_bucket_and_the_schema(tmp_path: Path) -> None:
    """Rows are cast to the schema; a bucket no row fell in is empty, with the schema."""
    pieces = [pl.DataFrame({"id": ["a", "a"], "n": [1, 2]}, schema={"id": pl.String, "n": pl.Int8})]
    with routed(pieces, key="id", count=3, schema=SCHEMA, under=tmp_path) as buckets:
        frames = [buckets.read(b) for b in range(3)]
    assert sorted(f.height for f in frames) == [0, 0, 2]
    assert all(f.schema == pl.Schema(SCHEMA) for f in frames)


def test_the_folder_is_removed_on_an_error(tmp_path: Path) -> None:
    def failing() -> Iterator[pl.DataFrame]:
        yield from _pieces()[:2]
        raise RuntimeError("a part could not be read")

    with (
        pytest.raises(RuntimeError, match="could not be read"),
        routed(failing(), key="id", count=2, schema=SCHEMA, under=tmp_path),
    ):
        pass
    with (
        pytest.raises(KeyError),
        routed(_pieces(), key="id", count=2, schema=SCHEMA, under=tmp_path) as buckets,
    ):
        buckets.read(0)
        raise KeyError("while the buckets are read")
    assert list(tmp_path.iterdir()) == []


def test_frames_are_the_parts_in_order_with_their_place(tmp_path: Path) -> None:
    """`ResponsesTable.frames`: a part at a time, the rows ``where`` selects, typed as the
    table's schema (a column a part lacks is null), with their part and row when located."""
    table = ResponsesTable(tmp_path / "responses")
    base = {"model": "m", "gen_key": "k", "prompt": "", "text": "", "finish_reason": "stop"}
    rows = [
        [{**base, "problem_id": p, "sample": s} for p in ("a", "b") for s in (0, 1)],
        [{**base, "problem_id": "c", "sample": 0, "gen_key": "other"}],
    ]
    for index, part in enumerate(rows):
        table.write(part, table.part("k", f"{index:016d}"))
    columns = ["problem_id", "sample", "verdict"]
    frames = list(table.frames(columns, pl.col("sample") == 0, located=True))
    assert [f.schema for f in frames] == [table.frames_schema(columns, located=True)] * 2
    assert frames[0].rows() == [("a", 0, None, 0, 0), ("b", 0, None, 0, 2)]
    assert frames[1].rows() == [("c", 0, None, 1, 0)]
    plain = list(table.frames(["problem_id"], pl.col("gen_key") == "k"))
    assert [f.columns for f in plain] == [["problem_id"]] * 2
    assert [f.height for f in plain] == [4, 0]
    # a killed run's bucket folder goes with the temporary files
    (table.path / f"{responses.BUCKETS_PREFIX}x").mkdir()
    table.clean()
    assert len(table.parts()) == 2 and len(list(table.path.iterdir())) == 2
