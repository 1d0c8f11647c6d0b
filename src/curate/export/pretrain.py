"""Pre-training shards of a documents run: text and metadata as Parquet, with token counts.

One row per kept page: ``id``, ``text`` (the page's ``clean_text`` when the run has one,
after `curate.mine.decontam.SegmentDecontaminate`; ``text=`` chooses), ``url``, ``title``,
``source``, ``math_score`` (when the run scored pages), ``n_chars``, ``n_tokens`` (counted
with ``tokenizer``, a local tokenizer folder or Hub name, when given; else null) and
``meta``. Shards are written as ``OUT/data/train-<i>-of-<n>.parquet`` a batch at a time
(memory holds one batch), into a hidden folder that replaces ``OUT/data`` only when every
shard is written; ``OUT/export.json`` gives the rows, characters, tokens and tokenizer.
Read them with ``datasets.load_dataset("parquet", data_files=...)`` or any Parquet reader.

>>> import curate, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "pages.jsonl").write_text('{"text": "A prime has two divisors.", "url": "u"}\\n')
>>> run = curate.Recipe("docs", [curate.read(d / "pages.jsonl", kind="documents")]).run(d / "r")
>>> export_pretrain(run, d / "out").rows
1
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ConfigError
from curate.export.writer import ShardWriter, swap_in
from curate.io import write_json

PRETRAIN_FORMAT = "pretrain"
BATCH_ROWS = 8192
SCHEMA = pa.schema(
    [
        ("id", pa.string()), ("text", pa.string()), ("url", pa.string()),
        ("title", pa.string()), ("source", pa.string()), ("math_score", pa.float64()),
        ("n_chars", pa.int64()), ("n_tokens", pa.int64()), ("meta", pa.string()),
    ]
)  # fmt: skip


@dataclass(frozen=True)
class PretrainResult:
    """What `export_pretrain` wrote."""

    out: Path
    files: list[Path]
    rows: int
    chars: int
    tokens: int | None


def export_pretrain(
    run: Any,
    out: str | Path,
    *,
    tokenizer: str | None = None,
    text: Literal["auto", "text", "clean_text"] = "auto",
    shard_rows: int | None = None,
    shard_bytes: int = 256 * 2**20,
) -> PretrainResult:
    """Write the run's kept pages as pre-training shards into ``out`` (see the module)."""
    from curate.run import Run

    run = run if isinstance(run, Run) else Run(run)
    if run.kind != "documents":
        raise ConfigError(f"{run.path} is a run over problems; pre-training shards are of pages")
    source = Path(run.tables()["problems"][0])
    columns = pq.ParquetFile(source).schema_arrow.names
    if text == "auto":
        text = "clean_text" if "clean_text" in columns else "text"
    if text not in columns:
        raise ConfigError(f"text={text!r}: the run's pages have no such column ({columns})")
    count = _counter(tokenizer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".data.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    writer = ShardWriter(
        tmp, "train", SCHEMA, shard_rows=shard_rows, shard_bytes=shard_bytes, row_group_rows=None
    )
    rows = chars = tokens = 0
    wanted = [
        c for c in ("id", text, "url", "title", "source", "math_score", "meta") if c in columns
    ]
    try:
        for batch in pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS, columns=wanted):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            frame = frame.rename({text: "text"}) if text != "text" else frame
            frame = frame.filter(pl.col("text").fill_null("").str.strip_chars() != "")
            n_tokens = count(frame["text"].to_list()) if count else None
            shaped = frame.select(
                "id", "text", *(c if c in frame.columns else pl.lit(None, pl.String).alias(c)
                                for c in ("url", "title", "source")),
                (pl.col("math_score") if "math_score" in frame.columns
                 else pl.lit(None, pl.Float64)).alias("math_score"),
                pl.col("text").str.len_chars().cast(pl.Int64).alias("n_chars"),
                pl.Series("n_tokens", n_tokens, pl.Int64) if n_tokens is not None
                else pl.lit(None, pl.Int64).alias("n_tokens"),
                "meta",
            )  # fmt: skip
            writer.add(shaped.to_arrow().cast(SCHEMA))
            rows += shaped.height
            chars += int(shaped["n_chars"].sum())
            tokens += sum(n_tokens) if n_tokens else 0
        files = writer.finish(empty_shard=True)
    except BaseException:
        writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    data = out / "data"
    swap_in(tmp, data)
    final = [data / f.name for f in files]
    manifest = {
        "format": PRETRAIN_FORMAT, "run": str(run.path), "text_column": text,
        "rows": rows, "chars": chars, "tokens": tokens if count else None,
        "tokenizer": tokenizer, "files": [f"data/{f.name}" for f in final],
    }  # fmt: skip
    write_json(manifest, out / "export.json")
    return PretrainResult(out, final, rows, chars, tokens if count else None)


@dataclass(frozen=True)
class PretrainExport:
    """Pre-training shards at the end of a run (``Recipe(exports=[PretrainExport(...)])``),
    into ``RUN/export/pretrain/``."""

    tokenizer: str | None = None
    text: Literal["auto", "text", "clean_text"] = "auto"
    shard_rows: int | None = None
    shard_bytes: int = 256 * 2**20
    format: str = PRETRAIN_FORMAT

    def after_run(self, run: Any, out: Path, log: Any) -> dict[str, Any]:
        target = Path(out) / "export" / PRETRAIN_FORMAT
        done = export_pretrain(
            run, target, tokenizer=self.tokenizer, text=self.text, shard_rows=self.shard_rows,
            shard_bytes=self.shard_bytes,
        )  # fmt: skip
        log(f"export pretrain: {done.rows} pages, {done.tokens} tokens, in {target}")
        return {"format": PRETRAIN_FORMAT, "dir": f"export/{PRETRAIN_FORMAT}", "rows": done.rows,
                "chars": done.chars, "tokens": done.tokens}  # fmt: skip


def _counter(tokenizer: str | None) -> Any:
    """A function from texts to token counts, or None without a tokenizer."""
    if tokenizer is None:
        return None
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ConfigError("tokenizer= needs transformers: pip install 'curate[hf]'") from None
    tok = AutoTokenizer.from_pretrained(tokenizer)
    tok.model_max_length = 1 << 62  # counting, not feeding a model: no length warning

    def count(texts: list[str]) -> list[int]:
        encoded = tok(texts, add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    return count


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The ``export.json`` of a pre-training export."""
    manifest = json.loads((Path(out) / "export.json").read_text())
    if manifest.get("format") != PRETRAIN_FORMAT:
        raise ConfigError(f"{out} is not a pre-training export")
    return dict(manifest)
