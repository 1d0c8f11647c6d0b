"""SQL over a run: views for every table, from Python and as a stage."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import curate


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> curate.Run:
    tmp = tmp_path_factory.mktemp("sql")
    rows = [
        {"problem": "What is 2+2?", "answer": "4", "subject": "arith"},
        {"problem": "what is 2 + 2 ?", "answer": "4", "subject": "arith"},
        {"problem": "Integrate x.", "answer": "x^2/2 + C", "subject": "calc"},
        {"problem": "Say hi.", "answer": None, "subject": "misc"},
    ]
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return curate.Recipe(
        "sql",
        [curate.read(tmp / "p.jsonl", source="p")],
        [curate.SQLFilter("answer IS NOT NULL", reason="no_answer"), curate.ExactDedup()],
    ).run(tmp / "run", progress=False)


def test_views(run: curate.Run) -> None:
    assert run.sql("SELECT count(*) AS n FROM problems").item() == 2
    assert run.sql("SELECT count(*) FROM ingest").item() == 4
    assert run.sql("SELECT count(*) FROM sql_filter").item() == 3
    assert run.sql("SELECT reason FROM sql_filter_rejects").item() == "no_answer"
    by_stage = run.sql("SELECT stage, reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY 1")
    assert by_stage.rows() == [("exact_dedup", "duplicate", 1), ("sql_filter", "no_answer", 1)]
    # rejects of different stages have different columns: union by name, nulls where absent
    assert "dup_count" in run.sql("SELECT * FROM rejects").columns


def test_sql_returns_polars_and_json_meta_is_queryable(run: curate.Run) -> None:
    out = run.sql("SELECT subject, meta FROM problems ORDER BY subject")
    assert isinstance(out, pl.DataFrame)
    assert out["subject"].to_list() == ["arith", "calc"]


def test_sql_errors_name_the_tables(run: curate.Run) -> None:
    with pytest.raises(curate.CurateError, match=r"tables: .*problems"):
        run.sql("SELECT * FROM nope")


def test_table_names(run: curate.Run) -> None:
    assert set(run.tables()) == {
        "problems",
        "rejects",
        "ingest",
        "ingest_rejects",
        "sql_filter",
        "sql_filter_rejects",
        "exact_dedup",
        "exact_dedup_rejects",
    }
    with pytest.raises(curate.RunError, match="no table"):
        run.table("nope")
    assert run.table("rejects").collect().height == 2
    assert isinstance(curate.open_run(Path(run.path)).table(), pl.LazyFrame)
