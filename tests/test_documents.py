"""Document corpora read by `curate.read(kind="documents")` into the documents table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

import curate
from curate.errors import ConfigError, InputError
from curate.schema import DOCUMENT_COLUMNS, documents_schema
from curate.stage import Filter, StageContext


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PAGES = [
    {"text": "Euclid proved there are infinitely many primes.", "url": "https://a.org/1",
     "title": "Primes", "lang": "en"},
    {"text": "  The harmonic series diverges.\r\n", "url": None, "title": "Series", "lang": "en"},
    {"text": "", "url": "https://a.org/3", "title": "Empty", "lang": "en"},
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["jsonl", "json", "parquet", "csv"])
def test_every_file_kind_reads_into_the_documents_table(tmp_path: Path, fmt: str) -> None:
    frame = pl.DataFrame(PAGES)
    path = tmp_path / f"pages.{fmt}"
    if fmt == "jsonl":
        _jsonl(path, PAGES)
    elif fmt == "json":
        path.write_text(json.dumps(PAGES))
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    docs = curate.read(path, kind="documents").frame()
    assert tuple(docs.columns) == DOCUMENT_COLUMNS
    assert [f.name for f in documents_schema()] == list(DOCUMENT_COLUMNS)
    assert docs["text"].to_list() == [
        "Euclid proved there are infinitely many primes.",
        "The harmonic series diverges.",
        "",
    ]
    assert docs["url"].to_list()[0] == "https://a.org/1"
    assert docs["title"].to_list() == ["Primes", "Series", "Empty"]
    assert docs["id"].str.starts_with("pages:0:").to_list()[0]
    assert json.loads(docs["meta"][0]) == {"lang": "en"}
    assert docs["source"].unique().to_list() == ["pages"]


def test_mapped_columns_and_dotted_paths(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "crawl.jsonl", [
        {"page": {"body": "Let $x^2 = 4$.", "link": "https://b.org"}, "headline": "Squares"},
    ])  # fmt: skip
    docs = curate.read(
        path, kind="documents", text="page.body", url="page.link", title="headline"
    ).frame()
    row = docs.select("text", "url", "title").row(0)
    assert row == ("Let $x^2 = 4$.", "https://b.org", "Squares")
    assert json.loads(docs["meta"][0]) == {}  # what the dotted paths took is not kept twice


def test_errors_name_the_file_row_and_field(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [{"text": "ok"}, {"text": 3.5}])
    with pytest.raises(InputError) as err:
        curate.read(path, kind="documents").frame()
    assert "bad.jsonl" in str(err.value) and "line 2" in str(err.value) and "text" in str(err.value)
    nocol = _jsonl(tmp_path / "nocol.jsonl", [{"words": "hello"}])
    with pytest.raises(InputError, match=r"no text column found.*text=COLUMN"):
        curate.read(nocol, kind="documents").frame()


def test_options_of_the_other_kind_are_refused(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", PAGES)
    with pytest.raises(ConfigError, match="kind='documents'"):
        curate.read(path, text="text")
    with pytest.raises(ConfigError, match="problem="):
        curate.read(path, kind="documents", problem="text")
    with pytest.raises(ConfigError, match="kind="):
        curate.read(path, kind="pages")  # type: ignore[arg-type]


def test_fingerprint_differs_by_kind_and_problems_keep_theirs(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?", "text": "1+1?"}])
    as_problems = curate.read(path)
    as_docs = curate.read(path, kind="documents")
    assert as_problems.fingerprint() != as_docs.fingerprint()
    assert "kind='documents'" in repr(as_docs) and "kind" not in repr(as_problems)


@dataclass(frozen=True)
class ShortTexts(Filter):
    min_words: int = 4

    def reads(self) -> tuple[str, ...]:
        return ("text",)

    def adds(self) -> tuple[str, ...]:
        return ("words",)

    def map_batch(self, batch: pl.DataFrame, ctx: StageContext) -> pl.LazyFrame:
        words = batch.with_columns(words=pl.col("text").str.split(" ").list.len())
        return self.mark(words, pl.col("words") < self.min_words, "short")


def test_a_recipe_over_documents_runs_stages_and_records_empty_texts(tmp_path: Path) -> None:
    rows = [*PAGES, {"text": "Too short.", "url": "u"}]
    path = _jsonl(tmp_path / "pages.jsonl", rows)
    run = curate.Recipe("docs", [curate.read(path, kind="documents")], [ShortTexts()]).run(
        tmp_path / "run"
    )
    reasons = run.sql("SELECT stage, reason FROM rejects ORDER BY id").rows()
    assert sorted(reasons) == [("ingest", "empty_text"), ("short_texts", "short")]
    assert run.kind == "documents"
    kept = run.sql("SELECT text, url FROM documents ORDER BY id").rows()
    assert kept == [
        ("Euclid proved there are infinitely many primes.", "https://a.org/1"),
        ("The harmonic series diverges.", None),
    ]


def test_a_recipe_does_not_mix_kinds(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", [{"problem": "1+1?", "text": "1+1?"}])
    recipe = curate.Recipe(
        "mixed", [curate.read(path, source="a"), curate.read(path, source="b", kind="documents")]
    )
    with pytest.raises(ConfigError, match="mixes problems and documents"):
        recipe.run(tmp_path / "run")


def test_cli_ingest_reads_documents(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    path = _jsonl(tmp_path / "crawl.jsonl", [{"body": "A page about primes.", "link": "u"}])
    out = tmp_path / "run"
    args = ["ingest", str(path), "--out", str(out), "--kind", "documents", "-q"]
    result = CliRunner().invoke(app, [*args, "-m", "text=body", "-m", "url=link"])
    assert result.exit_code == 0, result.output
    assert curate.Run(out).sql("SELECT text, url FROM problems").rows() == [
        ("A page about primes.", "u")
    ]
    bad = CliRunner().invoke(app, [*args, "-m", "problem=body"])
    assert bad.exit_code == 2 and "--kind documents" in bad.output


def test_exact_dedup_runs_on_documents_without_answers(tmp_path: Path) -> None:
    rows = [*PAGES[:2], {"text": "Euclid  proved there are infinitely many primes.", "url": "u"}]
    docs = curate.read(_jsonl(tmp_path / "d.jsonl", rows), kind="documents")
    run = curate.Recipe("docs", [docs], [curate.ExactDedup()]).run(tmp_path / "run")
    reason, detail = run.sql("SELECT reason, detail FROM rejects").row(0)
    assert reason == "duplicate" and detail.startswith("d:0:")
    assert run.sql("SELECT count(*) FROM documents WHERE answer_conflict").item() == 0


def test_wet_files_read_as_documents(tmp_path: Path) -> None:
    pytest.importorskip("warcio")
    from io import BytesIO

    from warcio.warcwriter import WARCWriter

    path = tmp_path / "crawl.warc.wet.gz"
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(writer.create_warcinfo_record("crawl.wet.gz", {"software": "t"}))
        pages = [("https://a.org/p", "Let $p$ be a prime.\nThen p > 1."), ("https://b.org/", "Hi")]
        for url, text in pages:
            writer.write_record(
                writer.create_warc_record(
                    url, "conversion", payload=BytesIO(text.encode()),
                    warc_headers_dict={"Content-Type": "text/plain"},
                )
            )  # fmt: skip
        bad = "caf\xe9".encode("latin-1")  # not UTF-8: decoded with a replacement character
        writer.write_record(
            writer.create_warc_record("https://c.org/", "conversion", payload=BytesIO(bad))
        )
    docs = curate.read(path, kind="documents").frame()
    assert docs.select("url", "text").rows() == [
        ("https://a.org/p", "Let $p$ be a prime.\nThen p > 1."),
        ("https://b.org/", "Hi"),
        ("https://c.org/", "caf\ufffd"),
    ]
    meta = json.loads(docs["meta"][0])
    assert meta["record_id"].startswith("<urn:uuid:") and meta["date"]
    junk = tmp_path / "junk.wet"
    junk.write_bytes(b"\x00\x01 not an archive")
    with pytest.raises(InputError, match=r"junk\.wet"):
        curate.read(junk, kind="documents").frame()
