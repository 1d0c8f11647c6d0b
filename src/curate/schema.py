"""The canonical tables of `curate`, as Arrow schemas: the one place they are defined.

- ``problems``: one row per input row (the output of every stage has these columns
  first; stages add columns after them, never rename or drop these). Every column is a
  string except ``level``, a float (compare it as a number: ``level >= 4``).
- ``documents``: one row per input text (web pages, book and wiki texts, for synthesis and
  mining), read by the same readers with ``curate.read(..., kind="documents")``.
- ``rejects``: every row a stage removed, with why: ``id``, ``stage``, ``reason``,
  ``detail``, then the full row as it was when it was removed.
- ``responses``: one row per generated response, keyed by (problem_id, model, sample).

JSON Schema files for other tools are generated from these into ``schemas/``::

    python -m curate.schema schemas/

>>> [f.name for f in problems_schema()][:4]
['id', 'text_hash', 'problem', 'answer']
>>> str(problems_schema().field("level").type)
'double'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

PROBLEM_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    (
        "id",
        pa.string(),
        False,
        "Unique per input row, stable across re-runs: '<source>:<row>:<text_hash[:8]>'.",
    ),
    (
        "text_hash",
        pa.string(),
        False,
        "Hash of the normalized problem text; equal for the same problem from any source.",
    ),
    ("problem", pa.string(), False, "The problem statement."),
    ("answer", pa.string(), True, "Gold final answer as LaTeX-ish text; null when unknown."),
    ("solution", pa.string(), True, "Reference solution; null when unknown."),
    ("source", pa.string(), False, "Name of the source the row was read from."),
    ("subject", pa.string(), True, "Subject or category, as the source gives it."),
    (
        "level",
        pa.float64(),
        True,
        "Difficulty level as a number, on the source's own scale ('Level 3' -> 3.0, MATH 1-5, "
        "AIME 2.125 -> 2.125); null when unknown or not a number (then the original is in "
        "meta).",
    ),
    (
        "meta",
        pa.string(),
        False,
        "JSON object with every input field not mapped to a canonical column.",
    ),
]

DOCUMENT_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    (
        "id",
        pa.string(),
        False,
        "Unique per input row, stable across re-runs: '<source>:<row>:<text_hash[:8]>'.",
    ),
    ("text_hash", pa.string(), False, "Hash of the normalized text; equal for the same text."),
    ("text", pa.string(), False, "The document's text."),
    ("url", pa.string(), True, "Where the text was found; null when unknown."),
    ("title", pa.string(), True, "The document's title; null when unknown."),
    ("source", pa.string(), False, "Name of the source the row was read from."),
    (
        "meta",
        pa.string(),
        False,
        "JSON object with every input field not mapped to a canonical column.",
    ),
]

REJECT_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("id", pa.string(), False, "The id of the removed row."),
    ("stage", pa.string(), False, "Name of the stage that removed it."),
    ("reason", pa.string(), False, "Short machine-readable reason, e.g. 'duplicate'."),
    (
        "detail",
        pa.string(),
        True,
        "Human-readable detail: the id it duplicates, the parse error, the benchmark item.",
    ),
]

RESPONSE_FIELDS: list[tuple[str, pa.DataType, bool, str]] = [
    ("problem_id", pa.string(), False, "The `id` of the problem."),
    ("model", pa.string(), False, "Label of the model that generated the response."),
    ("sample", pa.int32(), False, "Sample index, 0..n-1, for this problem and model."),
    (
        "gen_key",
        pa.string(),
        False,
        "Digest of what decides the text: the backend's description, the sampling "
        "parameters and the prompt template; the cache key with (problem_id, model, sample).",
    ),
    ("prompt", pa.string(), False, "The prompt sent: JSON of the chat messages, or a string."),
    ("text", pa.string(), False, "The generated text ('' when generation failed)."),
    ("finish_reason", pa.string(), False, "'stop', 'length' (cut at max_tokens) or 'error'."),
    ("n_tokens", pa.int32(), True, "Number of generated tokens; null when not reported."),
    ("error", pa.string(), True, "Why generation failed, when finish_reason is 'error'."),
    (
        "extracted_answer",
        pa.string(),
        True,
        "The answer the grader read from the text (for a gold choice letter or words, the "
        "letter the response names or its last sentence).",
    ),
    (
        "verdict",
        pa.string(),
        False,
        "The grader's status ('equivalent', 'different', 'no_answer', 'gold_unparseable', "
        "'pred_unparseable', 'timeout', 'error'), or 'truncated', 'generation_error', "
        "'no_gold' for responses that were not graded.",
    ),
    (
        "verdict_detail",
        pa.string(),
        True,
        "How the grader decided ('numeric', 'symbolic', 'choice', ...) or why it could not.",
    ),
    (
        "grader",
        pa.string(),
        True,
        "Digest of the grading options and grader version that judged the response.",
    ),
    (
        "score",
        pa.float64(),
        True,
        "Verify score in 0..1; null when there is no gold answer or the grader could not "
        "check (timeout, error, gold unparseable).",
    ),
    (
        "correct",
        pa.bool_(),
        True,
        "Whether the answer matches the gold answer (never if cut); null when unchecked.",
    ),
    ("temperature", pa.float64(), False, "Sampling temperature."),
    ("top_p", pa.float64(), False, "Nucleus sampling p."),
    ("max_tokens", pa.int32(), False, "Generation limit."),
    ("seed", pa.int64(), True, "Sampling seed of the request this sample came from."),
]

PROBLEM_COLUMNS: tuple[str, ...] = tuple(f[0] for f in PROBLEM_FIELDS)
PROBLEM_DTYPES: dict[str, Any] = {
    name: pl.Float64 if kind == pa.float64() else pl.String for name, kind, _, _ in PROBLEM_FIELDS
}
"""The problems table as a Polars schema (every column a string, ``level`` a float)."""
DOCUMENT_COLUMNS: tuple[str, ...] = tuple(f[0] for f in DOCUMENT_FIELDS)
CANONICAL_COLUMNS: frozenset[str] = frozenset(PROBLEM_COLUMNS + DOCUMENT_COLUMNS)
"""The columns a stage may not add or replace, in either kind of table."""
REJECT_COLUMNS: tuple[str, ...] = tuple(f[0] for f in REJECT_FIELDS)


def _schema(fields: list[tuple[str, pa.DataType, bool, str]]) -> pa.Schema:
    return pa.schema(
        [
            pa.field(name, dtype, nullable=nullable, metadata={"description": doc})
            for name, dtype, nullable, doc in fields
        ]
    )


def problems_schema() -> pa.Schema:
    """Arrow schema of the problems table (the canonical columns)."""
    return _schema(PROBLEM_FIELDS)


def documents_schema() -> pa.Schema:
    """Arrow schema of the documents table (the canonical columns of a text corpus)."""
    return _schema(DOCUMENT_FIELDS)


def rejects_schema() -> pa.Schema:
    """Arrow schema of the leading columns of the rejects table.

    The full row that was removed follows these columns.
    """
    return _schema(REJECT_FIELDS + [f for f in PROBLEM_FIELDS if f[0] != "id"])


def responses_schema() -> pa.Schema:
    """Arrow schema of the responses table (the generation cache)."""
    return _schema(RESPONSE_FIELDS)


_JSON_TYPES = {
    pa.string(): "string",
    pa.int32(): "integer",
    pa.int64(): "integer",
    pa.float64(): "number",
    pa.bool_(): "boolean",
}


def json_schema(name: str) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of one row of table ``name``.

    >>> json_schema("problems")["required"][:2]
    ['id', 'text_hash']
    """
    schemas = {
        "problems": problems_schema,
        "documents": documents_schema,
        "rejects": rejects_schema,
        "responses": responses_schema,
    }
    if name not in schemas:
        raise ValueError(f"unknown table {name!r}; expected one of {sorted(schemas)}")
    schema = schemas[name]()
    props: dict[str, Any] = {}
    required = []
    for field in schema:
        jtype = _JSON_TYPES[field.type]
        desc = (field.metadata or {}).get(b"description", b"").decode()
        props[field.name] = {
            "type": jtype if not field.nullable else [jtype, "null"],
            "description": desc,
        }
        if not field.nullable:
            required.append(field.name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://github.com/curate/curate/schemas/{name}.schema.json",
        "title": f"curate {name} row",
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": True,
    }


def write_json_schemas(directory: str | Path) -> list[Path]:
    """Write ``<table>.schema.json`` for every table into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("problems", "documents", "rejects", "responses"):
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(json_schema(name), indent=2) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":  # pragma: no cover
    for p in write_json_schemas(sys.argv[1] if len(sys.argv) > 1 else "schemas"):
        print(p)
