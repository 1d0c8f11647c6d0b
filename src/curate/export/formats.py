r"""Training-ready row formats: what one row of each export format holds, and its checks.

Four formats; every message is ``{"role", "content"}`` (roles ``system``, ``user``,
``assistant``), every list of messages a Parquet ``list<struct<role: string, content:
string>>``, which `datasets` loads as ``List({'role': Value('string'), 'content':
Value('string')})``. Columns marked *when graded* (``pass_rate``, ``cv``, ``difficulty``)
are there only when the run has them (after `curate.Grade`); ``level`` and ``subject`` may
be null. The user message is the problem with DeepScaleR's instruction appended
(`curate.distill.DEFAULT_TEMPLATE`; ``template=`` changes it), after an optional system
message (``system_prompt=``).

``verl`` (RL, one row per problem; what ``verl.utils.dataset.rl_dataset.RLHFDataset`` and
its reward manager read, as in verl's ``examples/data_preprocess/math_dataset.py``)::

    {"data_source": "math",
     "prompt": [{"role": "user", "content": "What is $1+1$? Let's think step by step
                 and output the final answer within \\boxed{}."}],
     "ability": "math",
     "reward_model": {"style": "rule", "ground_truth": "2"},
     "extra_info": {"split": "train", "index": 0, "id": "math:0:1a2b3c4d", "answer": "2",
                    "level": "1", "subject": "Algebra", "pass_rate": 0.75, "cv": 0.577,
                    "difficulty": "medium"}}

``rl`` (curate's generic RL format, one row per problem; TRL's ``GRPOTrainer`` reads
``prompt`` and hands the other columns, ``answer`` among them, to the reward functions)::

    {"id": "math:0:1a2b3c4d", "prompt": [{"role": "user", "content": "What is ...?"}],
     "answer": "2", "problem": "What is $1+1$?", "source": "math", "level": "1",
     "subject": "Algebra", "pass_rate": 0.75, "cv": 0.577, "difficulty": "medium"}

``sft`` (one row per completion; ``completions=`` of `curate.export_run` says where the
assistant message comes from: ``"responses"``, one row per selected response (the
``selected`` keys of the DeepDistill stages when the run has them, else every correct
response that ended on its own; the thinking is kept as ``<think>...</think>`` at the start
of the assistant message, as DeepSeek-R1 distilled SFT data stores it); ``"solutions"``, one
row per problem with its reference solution (``solution``) as the assistant message, with
``model`` `REFERENCE` and ``sample`` 0; ``"both"``; or ``"auto"``, the default: responses
when the run has them, else solutions. A (prompt, completion) pair is exported once)::

    {"messages": [{"role": "user", "content": "What is ...?"},
                  {"role": "assistant", "content": "<think>\n1 plus 1 ...</think>\n\\boxed{2}"}],
     "id": "math:0:1a2b3c4d/r1-distill/3", "problem_id": "math:0:1a2b3c4d",
     "model": "r1-distill", "sample": 3, "source": "math", "answer": "2", "n_tokens": 412,
     "level": "1", "subject": "Algebra", "pass_rate": 0.75, "cv": 0.577,
     "difficulty": "medium"}

``trl`` (TRL's conversational prompt/completion format for ``SFTTrainer``; the same rows
as ``sft``)::

    {"prompt": [{"role": "user", "content": "What is ...?"}],
     "completion": [{"role": "assistant", "content": "<think>\n...</think>\n\\boxed{2}"}],
     "id": ..., "problem_id": ..., "model": ..., "sample": 3, ...as in sft}

The user message of ``sft``/``trl`` is the prompt the response was generated from (the
responses table's ``prompt``; ``system_prompt=`` replaces its system message) unless
``template=`` is given; a reference solution's is built from the problem as for ``rl``.
verl's built-in ``default_compute_score`` knows only a few ``data_source`` names
(``lighteval/MATH``, ``openai/gsm8k``, ...): for curate's source names point verl's
``custom_reward_function`` at curate's scorer, ``compute_score`` of `VERL_REWARD_MODULE`
(`reward_entry` says how; TRL's ``GRPOTrainer`` takes `TRL_REWARD` for ``rl`` rows).

A required field must be non-null, and a required string must hold more than whitespace;
`validate` checks every row before it is published (`export_run` writes into a hidden
folder that replaces the export only once every row passed). JSON Schemas of the four
formats are generated from `FIELDS` into ``schemas/`` (``python -m curate.export.formats schemas``).

>>> [f.name for f in FIELDS["verl"]]
['data_source', 'prompt', 'ability', 'reward_model', 'extra_info']
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa

from curate.errors import InputError

Format = Literal["sft", "rl", "verl", "trl"]
FORMATS: tuple[Format, ...] = ("sft", "rl", "verl", "trl")
ROLES = ("system", "user", "assistant")
THINK_START, THINK_END = "<think>", "</think>"
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)
REFERENCE = "reference"
"""``model`` of an ``sft``/``trl`` row whose completion is the problem's reference solution."""

# How the exports are scored. Names only: export comes before curate.reward (data flows one
# way), so it never imports it; these strings are the one place that names it.
VERL_REWARD_MODULE = "curate.reward.verl"
VERL_REWARD_FUNCTION = "compute_score"
TRL_REWARD = "curate.reward.accuracy_reward"


@dataclass(frozen=True)
class Field:
    """One column (or struct member) of a format.

    ``required``: never null (a string: never blank). ``when``: present only when the run's
    problems have that column. ``roles``/``last``: a list of messages, the roles it may hold
    and the role its last message must have. ``fix``: how to repair a row that fails.
    """

    name: str
    type: pa.DataType | None
    doc: str
    required: bool = True
    when: str | None = None
    roles: tuple[str, ...] = ()
    last: str | None = None
    fields: tuple[Field, ...] = ()
    fix: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        if self.fields:
            return pa.struct([pa.field(f.name, f.arrow_type) for f in self.fields])
        assert self.type is not None
        return self.type


_S, _I, _F = pa.string(), pa.int64(), pa.float64()
_GOLD = (
    "every problem needs a gold answer for a rule-based reward: add curate.RequireGradable() "
    "to the recipe, or filter the problems without one out of the run"
)
_GOLD_ROW = (
    "every row carries its problem's gold answer: add curate.RequireGradable() to the recipe, "
    "or filter the problems without one out of the run"
)
_PROMPT = (
    "prompt",
    MESSAGES,
    "The chat to answer: an optional system message, then the user message (the problem "
    "and the instruction).",
)
_ID = ("id", _S, "The problem's curate id: '<source>:<row>:<text_hash[:8]>'.")
_ANSWER = ("answer", _S, "Gold final answer, exactly as the source gives it.")
_DESCRIBE = (
    Field("level", _S, "Difficulty level as the source gives it.", required=False),
    Field("subject", _S, "Subject or category as the source gives it.", required=False),
    Field(
        "pass_rate",
        _F,
        "Share of the counted responses that were correct (curate.Grade); when graded.",
        required=False,
        when="pass_rate",
    ),
    Field(
        "cv",
        _F,
        "Coefficient of variation of the response scores (curate.Grade); when graded.",
        required=False,
        when="cv",
    ),
    Field(
        "difficulty",
        _S,
        "Pass-rate bucket: unsolved, hard, medium, easy or solved; when graded.",
        required=False,
        when="difficulty",
    ),
)
_RESPONSE = (
    Field(
        "id",
        _S,
        "Unique id of the row: '<problem_id>/<model>/<sample>'.",
    ),
    Field("problem_id", _S, "The problem's curate id."),
    Field(
        "model",
        _S,
        f"Label of the model that wrote the response; '{REFERENCE}' for the problem's "
        "reference solution.",
    ),
    Field(
        "sample",
        _I,
        "Sample index of the response for this problem and model; 0 for a reference solution.",
    ),
    Field("source", _S, "Name of the source the problem came from."),
    Field(*_ANSWER, fix=_GOLD_ROW),
    Field(
        "n_tokens",
        _I,
        "Generated tokens of the response; null for a reference solution.",
        required=False,
    ),
    *_DESCRIBE,
)

FIELDS: dict[Format, tuple[Field, ...]] = {
    "verl": (
        Field(
            "data_source",
            _S,
            "Name of the source the problem came from; verl picks the reward function by it.",
        ),
        Field(*_PROMPT, roles=("system", "user"), last="user"),
        Field("ability", _S, "Task category: 'math'."),
        Field(
            "reward_model",
            None,
            "How the reward is computed: a rule-based check against the ground truth.",
            fields=(
                Field("style", _S, "'rule': the response's answer is checked by a rule."),
                Field("ground_truth", _S, "Gold final answer.", fix=_GOLD),
            ),
        ),
        Field(
            "extra_info",
            None,
            "Everything else about the problem; verl passes it to the reward function.",
            fields=(
                Field("split", _S, "'train' or 'test'."),
                Field("index", _I, "Position of the row in its split."),
                Field(*_ID),
                Field(*_ANSWER, fix=_GOLD),
                *_DESCRIBE,
            ),
        ),
    ),
    "rl": (
        Field(*_ID),
        Field(*_PROMPT, roles=("system", "user"), last="user"),
        Field(*_ANSWER, fix=_GOLD),
        Field("problem", _S, "The problem statement, without instruction."),
        Field("source", _S, "Name of the source the problem came from."),
        *_DESCRIBE,
    ),
    "sft": (
        Field(
            "messages",
            MESSAGES,
            "The conversation: optional system message, the user message, then the "
            "assistant's completion: a response with its thinking as <think>...</think> at "
            "the start, or the problem's reference solution.",
            roles=ROLES,
            last="assistant",
        ),
        *_RESPONSE,
    ),
    "trl": (
        Field(*_PROMPT, roles=("system", "user"), last="user"),
        Field(
            "completion",
            MESSAGES,
            "The assistant's completion: a response, thinking as <think>...</think> at the "
            "start, or the problem's reference solution.",
            roles=("assistant",),
            last="assistant",
        ),
        *_RESPONSE,
    ),
}
ROW_ID: dict[Format, tuple[str, ...]] = {
    "verl": ("extra_info", "id"),
    "rl": ("id",),
    "sft": ("id",),
    "trl": ("id",),
}
"""Where each format keeps the row's id (named in validation errors)."""


def reward_entry(format: Format) -> dict[str, Any] | None:
    """How to score rows of ``format`` with curate's reward (``export.json``'s ``reward``):
    for ``verl``, the ``custom_reward_function`` to point verl at and the Hydra overrides that
    do it; for ``rl`` and ``trl``, TRL's reward function; None for ``sft``.

    >>> reward_entry("verl")["custom_reward_function"]["name"]
    'compute_score'
    >>> reward_entry("rl")
    {'trl': 'curate.reward.accuracy_reward'}
    """
    if format == "verl":
        # verl wants the scorer's file: the shell finds it where curate is installed
        path = f'"$(python -m {VERL_REWARD_MODULE})"'
        return {
            "module": VERL_REWARD_MODULE,
            "custom_reward_function": {"path": path, "name": VERL_REWARD_FUNCTION},
            "overrides": [
                f"custom_reward_function.path={path}",
                f"custom_reward_function.name={VERL_REWARD_FUNCTION}",
            ],
        }
    if format in ("rl", "trl"):  # trl rows also feed GRPOTrainer (prompt, answer)
        return {"trl": TRL_REWARD}
    return None


def fields_for(format: Format, columns: Collection[str]) -> tuple[Field, ...]:
    """The fields of ``format`` for a run whose problems have ``columns`` (the *when graded*
    ones only if present).

    >>> [f.name for f in fields_for("rl", ["id"])][-2:]
    ['level', 'subject']
    """

    def keep(fields: tuple[Field, ...]) -> tuple[Field, ...]:
        out = []
        for f in fields:
            if f.when is None or f.when in columns:
                out.append(replace(f, fields=keep(f.fields)) if f.fields else f)
        return tuple(out)

    return keep(FIELDS[format])


def arrow_schema(fields: Sequence[Field]) -> pa.Schema:
    """The Arrow schema of the shards (every column nullable: Parquet stays plain)."""
    return pa.schema([pa.field(f.name, f.arrow_type) for f in fields])


def select(
    frame: pl.DataFrame, fields: Sequence[Field], exprs: Mapping[str, pl.Expr]
) -> pl.DataFrame:
    """``frame`` shaped into ``fields``: each leaf from ``exprs[dotted.path]`` or, if absent,
    the column of its name; structs assembled from their members, in field order."""

    def build(f: Field, prefix: str) -> pl.Expr:
        path = f"{prefix}{f.name}"
        if f.fields:
            return pl.struct([build(s, f"{path}.") for s in f.fields]).alias(f.name)
        return exprs.get(path, pl.col(f.name)).alias(f.name)

    return frame.select([build(f, "") for f in fields])


def to_arrow(frame: pl.DataFrame, format: Format, fields: Sequence[Field]) -> pa.Table:
    """``frame`` as an Arrow table of the format's exact schema (plain ``string``/``list``
    types, not Polars' large ones), after `validate`."""
    validate(frame, format)
    schema = arrow_schema(fields)
    table = frame.to_arrow()
    if table.schema.names != schema.names:
        raise InputError(f"{format} export: columns {table.schema.names}, expected {schema.names}")
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        have = {f.name: str(f.type) for f in table.schema}
        raise InputError(
            f"{format} export: the columns {have} do not convert to the format's types "
            f"{ {f.name: str(f.type) for f in schema} } ({e})"
        ) from None


def validate(frame: pl.DataFrame, format: Format) -> None:
    """Check every row of ``frame`` against ``format``: columns, required values, messages.

    Raises `curate.errors.InputError` naming the first bad row's id and the field.

    >>> validate(pl.DataFrame({"id": ["a"]}), "rl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    curate.errors.InputError: rl export: columns ['id'], expected ['id', 'prompt', ...
    """
    fields = fields_for(format, frame.columns)
    names = [f.name for f in fields]
    if frame.columns != names:
        raise InputError(f"{format} export: columns {frame.columns}, expected {names}")
    row_id: pl.Expr = pl.col(ROW_ID[format][0])
    for part in ROW_ID[format][1:]:
        row_id = row_id.struct.field(part)
    for path, col, field in _leaves(fields):
        for bad, what, expect in _checks(col, field):
            hit = frame.select(row_id.alias("_id"), bad.fill_null(True).alias("_bad"))
            hit = hit.filter(pl.col("_bad"))
            if hit.height:
                fix = f"; {field.fix}" if field.fix else ""
                raise InputError(
                    f"{format} export: row {hit['_id'][0]!r}: {path} {what}, expected "
                    f"{expect}{fix} ({hit.height} row(s) like this)",
                    field=path,
                )


def _leaves(
    fields: Sequence[Field], prefix: str = "", parent: pl.Expr | None = None
) -> list[tuple[str, pl.Expr, Field]]:
    out = []
    for f in fields:
        col = pl.col(f.name) if parent is None else parent.struct.field(f.name)
        out.append((f"{prefix}{f.name}", col, f))
        out.extend(_leaves(f.fields, f"{prefix}{f.name}.", col))
    return out


def _checks(col: pl.Expr, f: Field) -> list[tuple[pl.Expr, str, str]]:
    """(bad-row condition, what is wrong, what was expected) for one field."""
    out: list[tuple[pl.Expr, str, str]] = []
    if f.required:
        out.append((col.is_null(), "is null", "a value"))
    if f.required and f.type == _S:
        out.append((col.str.strip_chars() == "", "is blank", "a non-blank string"))
    if f.roles:
        role = pl.element().struct.field("role")
        content = pl.element().struct.field("content")
        out += [
            (col.list.len() == 0, "has no message", "at least one message"),
            (
                col.list.eval(~role.is_in(list(f.roles)).fill_null(False)).list.any(),
                "has a message whose role is not one of " + "/".join(f.roles),
                f"roles in {list(f.roles)}",
            ),
            (
                col.list.eval(content.fill_null("").str.strip_chars() == "").list.any(),
                "has a message with blank content",
                "text in every message",
            ),
        ]
        if f.last:
            last = col.list.last().struct.field("role")
            out.append((last != f.last, f"does not end with a {f.last} message", f.last))
    return out


# --- JSON Schema ----------------------------------------------------------------------------

_JSON = {_S: "string", _I: "integer", _F: "number", pa.bool_(): "boolean"}


def _json_field(f: Field) -> dict[str, Any]:
    out: dict[str, Any] = {"description": f.doc}
    if f.fields:
        out |= {
            "type": "object",
            "properties": {s.name: _json_field(s) for s in f.fields},
            "required": [s.name for s in f.fields if s.when is None],
            "additionalProperties": False,
        }
    elif f.roles:
        message = {
            "type": "object",
            "properties": {
                "role": {"enum": list(f.roles)},
                "content": {"type": "string", "pattern": r"\S"},
            },
            "required": ["role", "content"],
            "additionalProperties": False,
        }
        out |= {"type": "array", "minItems": 1, "items": message}
        if f.last:
            out["description"] += f" The last message is the {f.last}'s."
    else:
        kind = _JSON[f.type]
        out["type"] = kind if f.required else [kind, "null"]
        if f.required and kind == "string":
            out["pattern"] = r"\S"
    return out


def json_schema(format: Format) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of one row of ``format``.

    >>> json_schema("verl")["properties"]["reward_model"]["required"]
    ['style', 'ground_truth']
    """
    if format not in FIELDS:
        raise ValueError(f"unknown format {format!r}; expected one of {list(FORMATS)}")
    fields = FIELDS[format]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://github.com/curate/curate/schemas/{format}.schema.json",
        "title": f"curate {format} export row",
        "type": "object",
        "properties": {f.name: _json_field(f) for f in fields},
        "required": [f.name for f in fields if f.when is None],
        "additionalProperties": False,
    }


def write_json_schemas(directory: str | Path) -> list[Path]:
    """Write ``<format>.schema.json`` for every export format into ``directory``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FORMATS:
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(json_schema(name), indent=2) + "\n")
        paths.append(path)
    return paths


def hub_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The Hub's ``dataset_info.features`` YAML list for ``schema`` (what `datasets` writes
    in a card), so that a card can state the columns without importing `datasets`.

    >>> hub_features(pa.schema([("id", pa.string()), ("prompt", MESSAGES)]))[1]["list"][0]
    {'name': 'role', 'dtype': 'string'}
    """

    def feature(name: str, t: pa.DataType) -> dict[str, Any]:
        return {"name": name, **body(t)}

    def body(t: pa.DataType) -> dict[str, Any]:
        if pa.types.is_struct(t):
            return {
                "struct": [feature(t.field(i).name, t.field(i).type) for i in range(t.num_fields)]
            }
        if pa.types.is_list(t):
            inner = body(t.value_type)
            return {"list": inner["struct"] if "struct" in inner else inner.get("dtype", inner)}
        names = {_S: "string", _I: "int64", _F: "float64", pa.bool_(): "bool"}
        return {"dtype": names[t]}

    return [feature(f.name, f.type) for f in schema]


if __name__ == "__main__":  # pragma: no cover
    for p in write_json_schemas(sys.argv[1] if len(sys.argv) > 1 else "schemas"):
        print(p)
