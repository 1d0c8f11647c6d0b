r"""Readers and atomic writers: every input format becomes the canonical problems table.

`read` describes an input without reading it: a JSONL, JSON, Parquet or CSV file (also
compressed: ``.gz``, ``.bz2``, ``.zst``, ``.xz``), a glob or a folder of shards (Hub-style,
or curate's own exports) read as one input, a folder written by ``datasets``'
``save_to_disk``, or any of these behind a URL fsspec reads (``hf://``, ``s3://``, ``gs://``;
`curate.io.files`, `curate.io.remote`). `Source.frame` reads it into the problems table
(`curate.schema.PROBLEM_COLUMNS`: strings, and ``level`` a number). One record-level
function canonicalizes the rows of every format, so behaviour and error messages
are the same whatever the file type. `write_parquet`, `write_json` and `write_jsonl` replace
a file atomically: a reader sees the old file or the new one, never half of one.

Rules where formats differ:

- JSON files may hold an array of objects, ``{"data": [...]}`` (other top-level keys
  are file metadata and are ignored), an object of equal-length column lists, or JSON
  Lines despite the ``.json`` suffix. Errors name the 0-based ``row``.
- JSONL errors name the 1-based ``line`` (blank lines count); every other format names
  the 0-based ``row``, both within the file (the shard) that holds it. A row's ``id`` always
  uses its 0-based position among the input's records (across shards, in sorted order).
- The input's columns are taken from its first batch (`BATCH_SIZE` records): a mapped
  column must appear there; a field first seen later still goes to ``meta``.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "toy.jsonl").write_text('{"question": "1+1?", "answer": "So 2.\\n#### 2"}\n')
>>> src = read(d / "toy.jsonl", problem="question", solution="answer")
>>> src.frame().select("id", "problem", "answer").row(0)  # doctest: +ELLIPSIS
('toy:0:...', '1+1?', '2')
"""

from curate.io.atomic import ParquetSink, write_json, write_jsonl, write_npy, write_parquet
from curate.io.canon import INSTRUCTION_PREFIXES, INSTRUCTION_SUFFIXES, strip_instructions
from curate.io.formats import BATCH_SIZE
from curate.io.source import READER_VERSION, Format, Source, read

__all__ = [
    "BATCH_SIZE",
    "INSTRUCTION_PREFIXES",
    "INSTRUCTION_SUFFIXES",
    "READER_VERSION",
    "Format",
    "ParquetSink",
    "Source",
    "read",
    "strip_instructions",
    "write_json",
    "write_jsonl",
    "write_npy",
    "write_parquet",
]
