"""DuckDB views over a run's Parquet tables, and SQL queries returning Polars frames.

Every table of a run is a view: ``problems``, ``rejects``, each stage by its
name (``exact_dedup``) with its rejects (``exact_dedup_rejects``), and
``responses`` once a run has generations. Nothing is copied: views read the
Parquet files in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import polars as pl

from curate.errors import CurateError


def sql_string(value: str | Path) -> str:
    """``value`` as a SQL string literal: quoted, with any quote inside doubled.

    >>> sql_string("it's")
    "'it''s'"
    """
    return "'" + str(value).replace("'", "''") + "'"


def folder_tables(folder: str | Path) -> dict[str, list[Path]]:
    """The Parquet tables of a folder that is not a run (a training run's ``metrics``, an
    evaluation's ``samples``): each ``NAME.parquet`` is the view ``NAME``, and each
    sub-folder of Parquet parts one view by the folder's name.

    >>> import tempfile, polars as pl
    >>> d = Path(tempfile.mkdtemp())
    >>> pl.DataFrame({"step": [1, 2]}).write_parquet(d / "metrics.parquet")
    >>> query(folder_tables(d), "SELECT max(step) AS last FROM metrics").item()
    2
    """
    folder = Path(folder)
    tables: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.parquet")):
        tables[path.stem] = [path]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        parts = sorted(sub.glob("*.parquet"))
        if parts and sub.name not in tables:
            tables[sub.name] = parts
    if not tables:
        raise CurateError(
            f"{folder} is not a run directory and holds no Parquet table; expected a run, "
            "or a folder written by curate train or curate eval"
        )
    return tables


def connect(tables: Mapping[str, Sequence[Path]]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table."""
    con = duckdb.connect(":memory:")
    for name, paths in tables.items():
        files = "[" + ", ".join(sql_string(p) for p in paths) + "]"
        quoted = '"' + name.replace('"', '""') + '"'
        if not paths:
            continue
        con.execute(
            f"CREATE VIEW {quoted} AS SELECT * FROM read_parquet({files}, union_by_name=true)"
        )
    return con


def query(tables: Mapping[str, Sequence[Path]], sql: str) -> pl.DataFrame:
    """Run ``sql`` over the tables; errors name the tables that exist."""
    con = connect(tables)
    try:
        relation = con.sql(sql)
        frame: pl.DataFrame = relation.pl() if relation is not None else pl.DataFrame()
        return frame
    except duckdb.Error as e:
        raise CurateError(f"SQL error: {e}\ntables: {', '.join(sorted(tables))}") from None
    finally:
        con.close()
