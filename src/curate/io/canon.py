"""Record-level canonicalization shared by every format: column mapping,
value conversion, instruction stripping, meta."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
import reprlib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson
import polars as pl

from curate.errors import InputError
from curate.schema import DOCUMENT_COLUMNS, PROBLEM_COLUMNS, PROBLEM_DTYPES
from curate.text import text_hash
from curate.verification import SOLUTION_RULES, extract_answer

if TYPE_CHECKING:
    from curate.io.source import Source

_MAPPED = ("problem", "answer", "solution", "subject", "level")
_DOC_MAPPED = ("text", "url", "title")  # a documents source (kind="documents")
# Where an unmapped canonical column is looked for, first match wins.
_CANDIDATES: dict[str, tuple[str, ...]] = {
    "problem": ("problem", "question", "prompt", "query", "input", "Problem", "Question"),
    "answer": ("answer", "final_answer", "ground_truth", "gt", "target", "Answer"),
    "solution": ("solution", "response", "output", "rationale", "Solution"),
    "subject": ("subject", "type", "category", "subfield", "domain"),
    "level": ("level", "difficulty"),
    "text": ("text", "content", "raw_content", "body", "document", "page", "markdown"),
    "url": ("url", "URL", "link", "uri", "source_url"),
    "title": ("title", "Title", "name"),
}


# Answer-format instructions that chat/RL datasets add after (or before) the problem. Only
# these whole sentences at the very end (or start) are removed; the original is kept in meta.
INSTRUCTION_SUFFIXES: tuple[str, ...] = (
    # DeepScaleR and other verl math recipes
    "Let's think step by step and output the final answer within \\boxed{}.",
    # Qwen2.5-Math CoT prompt; QwQ and DeepSeek-R1 evaluation
    "Please reason step by step, and put your final answer within \\boxed{}.",
    # Qwen2.5-Math tool-integrated prompt
    "Please integrate natural language reasoning with programs to solve the problem above, "
    "and put your final answer within \\boxed{}.",
    "Please put your final answer within \\boxed{}.",
    "Put your final answer within \\boxed{}.",
    # NuminaMath / PrimeIntellect verifiable-math-problems
    "Return your final response as 'Final Answer: \\boxed{<answer>}', where <answer> is the "
    "number or mathematical expression of the solution.",
    # DAPO-Math-17k, English and Chinese wrappers
    'Remember to put your answer on its own line after "Answer:".',
    "让我们一步一步地思考。请以“Answer: \\boxed{<final_answer>}”的格式输出最终答案。如果是选择题，"
    "请按顺序输出正确的选项，不带任何标点或空格。对于其他类型的问题，请只输出最终答案的数值。",
)
INSTRUCTION_PREFIXES: tuple[str, ...] = (
    "Solve the following math problem step by step. The last line of your response should be "
    "of the form Answer: $Answer (without quotes) where $Answer is the answer to the problem.",
)


def _loose(phrase: str) -> str:
    """A regex for ``phrase``: any whitespace run, either apostrophe, any case of the first
    letter, optional final period. (Not re.I: it would make the search several times slower.)"""
    rx = r"\s+".join(re.escape(w) for w in phrase.rstrip(".").split()).replace("'", "['’]")
    first = phrase[0]
    rx = f"[{first.upper()}{first.lower()}]{rx[1:]}" if first.isascii() and first.isalpha() else rx
    return rx + (r"\.?" if phrase.endswith(".") else "")


_SUFFIX_RES = [re.compile(_loose(p) + r"\s*\Z") for p in INSTRUCTION_SUFFIXES]
_PREFIX_RES = [re.compile(r"\s*" + _loose(p) + r"\s*") for p in INSTRUCTION_PREFIXES]
_SUFFIX_ENDS = tuple({p.rstrip(".")[-8:].lower() for p in INSTRUCTION_SUFFIXES})
_SUFFIX_WINDOW = 600  # instructions are short: only the tail is searched, for speed


def strip_instructions(text: str) -> str:
    r"""Remove known answer-format instructions from the start and end of a problem.

    The text is returned unchanged when nothing is left after removal.

    >>> strip_instructions("Find $x$. Let's think step by step and output the final "
    ...                    "answer within \\boxed{}.")
    'Find $x$.'
    >>> strip_instructions("What is 1+1?\nPlease reason step by step, and put your final "
    ...                    "answer within \\boxed{}.")
    'What is 1+1?'
    """
    out = text
    for rx in _PREFIX_RES:
        m = rx.match(out)
        out = out[m.end() :] if m else out
    found = True
    while found and out.rstrip().rstrip(".")[-8:].lower().endswith(_SUFFIX_ENDS):
        ms = (rx.search(out, max(0, len(out) - _SUFFIX_WINDOW)) for rx in _SUFFIX_RES)
        m = next((m for m in ms if m), None)
        found = m is not None
        out = out[: m.start()].rstrip() if m else out
    out = out.strip()
    return out if out else text


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_LEVEL_PREFIX = re.compile(r"level\s*(\S.*)", re.I | re.S)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_INT = re.compile(r"-?\d+")
# GSM8K's answer column: the worked solution, then a last line ``#### <final answer>``.
_HASH_FINAL = re.compile(r"\n\s*####\s*(\S[^\n]*?)\s*\Z")
_HASH_SHARE = 0.9  # of the first batch's non-null answers, to take the column as solutions


class _Bad(Exception):
    """A bad value in one record; `_Canon.batch` adds the file and the row to it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {_SHORT.repr(value)}"


def _scalar(value: Any, field: str) -> str | None:
    """A number or text as a string; None for null, empty or NaN."""
    if value is None or isinstance(value, str):
        return value.strip() or None if value else None
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise _Bad(field, f"expected text or a number, got {_describe(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return str(int(value)) if value == value.to_integral_value() else str(value)


def _clean_text(raw: str) -> str:
    """A problem's or a document's text: NFC, Unix line ends, no surrounding space."""
    return unicodedata.normalize("NFC", raw.replace("\r\n", "\n")).strip()


def _clean_answer(text: str | None) -> str | None:
    """Strip whitespace and one surrounding pair of single ``$`` delimiters."""
    if text is None:
        return None
    text = text.strip()
    if len(text) > 1 and text[0] == "$" and text[-1] == "$" and "$" not in text[1:-1]:
        text = text[1:-1].strip()
    return text or None


def _answer(value: Any, field: str) -> str | None:
    return _clean_answer(_scalar(value, field))


def _level(value: Any, field: str) -> float | None:
    """A difficulty level as a number: 5, 'Level 5', '5' and 5.0 give 5.0, '2.125' 2.125;
    None for null and for text that is not a number (the caller keeps the original in meta).

    >>> _level("Level 3", "level"), _level("2.125", "level"), _level("Level ?", "level")
    (3.0, 2.125, None)
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        if value is None:
            return None
        raise _Bad(field, f"expected text or a number, got {_describe(value)}")
    if isinstance(value, str):
        text = value.strip()
        m = _LEVEL_PREFIX.fullmatch(text)
        text = m.group(1).strip() if m else text
        if not _NUMBER.fullmatch(text):
            return None
        value = text
    number = float(value)
    return number if math.isfinite(number) else None


def _json_default(value: Any) -> Any:
    """Make values that JSON cannot hold into ones it can (bytes -> base64, ...)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars orjson does not take
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_META_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _dumps_meta(meta: dict[str, Any]) -> str:
    if not meta:
        return "{}"
    try:
        return orjson.dumps(meta, default=_json_default, option=_META_OPTS).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits
        return json.dumps(meta, default=_json_default, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class _Field:
    """Where canonical column ``canon`` comes from: an input column and a path inside it."""

    canon: str
    column: str
    path: tuple[str | int, ...] = ()

    def get(self, record: dict[str, Any], strict: bool = False) -> Any:
        """The value at the path; None where a key or index is missing (an error if strict)."""
        value = record.get(self.column)
        for i, step in enumerate(self.path):
            if isinstance(value, dict):
                if strict and str(step) not in value:
                    raise _Bad(
                        self.canon,
                        f"{self._where(i)} has no key {str(step)!r}; its keys are {list(value)}",
                    )
                value = value.get(str(step))
            elif isinstance(value, list) and isinstance(step, int):
                value = value[step] if -len(value) <= step < len(value) else None
            elif value is not None:
                kind = "a list" if isinstance(value, list) else _describe(value)
                raise _Bad(self.canon, f"{self._where(i)} is {kind}, so it has no key {step!r}")
            if value is None:
                return None
        return value

    def past_the_end(self, record: dict[str, Any]) -> str | None:
        """Why the path falls off the end of a list in ``record``, or None if it does not."""
        value = record.get(self.column)
        for i, step in enumerate(self.path):
            if isinstance(value, list) and isinstance(step, int):
                if not -len(value) <= step < len(value):
                    return f"{self._where(i)} has {len(value)} item(s), so it has no index {step}"
                value = value[step]
            elif isinstance(value, dict):
                value = value.get(str(step))
            else:
                return None
        return None

    def _where(self, depth: int) -> str:
        return ".".join(str(s) for s in (self.column, *self.path[:depth]))


_GONE = object()  # what is left of a value once the part a mapping used is taken out


def _without(value: Any, path: tuple[str | int, ...]) -> Any:
    """``value`` without the part at ``path`` (copied, not changed); containers left empty,
    and chat messages left with only their ``role``, go too (`_GONE` when nothing is left).

    >>> _without({"ground_truth": "4", "style": "rule"}, ("ground_truth",))
    {'style': 'rule'}
    >>> _without([{"role": "user", "content": "1+1?"}], (0, "content")) is _GONE
    True
    """
    step, rest = path[0], path[1:]
    if isinstance(value, dict) and str(step) in value:
        key = str(step)
        child = _without(value[key], rest) if rest else _GONE
        out = {k: (child if k == key else v) for k, v in value.items()}
        if child is _GONE:
            del out[key]
        return _GONE if not out or set(out) == {"role"} else out
    if isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
        i = step % len(value)
        child = _without(value[i], rest) if rest else _GONE
        items = [child if j == i else v for j, v in enumerate(value)]
        if child is _GONE:
            del items[i]
        return items if items else _GONE
    return value


def _first_value(records: list[dict[str, Any]], column: str) -> tuple[int, Any]:
    """(position, value) of the first record with a non-null ``column``; (0, None) if none."""
    return next(
        ((i, r[column]) for i, r in enumerate(records) if r.get(column) is not None), (0, None)
    )


Where = Literal["line", "row"]


class _Canon:
    """The column mapping, resolved against the columns of one input; canonicalizes batches.

    Built from the input's first batch (``records``, at 1-based lines or 0-based rows
    ``locs`` of the file ``path``), which also decides the conventions that need data:
    GSM8K's ``#### answer`` in an unmapped answer column, and whether a dotted path's index
    is past the end of its list in every row (a mapping error, not a column of nulls).
    """

    def __init__(
        self,
        src: Source,
        records: list[dict[str, Any]],
        path: Path | str | None = None,
        locs: Sequence[int] | None = None,
        where: Where = "row",
    ) -> None:
        self.src = src
        self.path = path if path is not None else src.path
        self.locs = locs if locs is not None else range(len(records))
        self.where = where
        columns = list(dict.fromkeys(k for r in records for k in r))
        self.fields: dict[str, _Field] = {}
        claimed: set[str] = set()
        self.dropped: set[str] = set()  # input columns wholly carried by a canonical column
        self.documents = src.kind == "documents"
        self.hash_answer = False  # the answer column is GSM8K-style: take what follows ####
        mapped = src.mapped
        for canon in mapped:
            spec = getattr(src, canon)
            if spec is not None:
                f = self._resolve(canon, spec, columns, records)
                self.fields[canon] = f
                claimed.add(f.column)
                if not f.path:
                    self.dropped.add(f.column)
        for canon in mapped:
            names = _CANDIDATES[canon]
            if canon not in self.fields:
                name = next((n for n in names if n in columns and n not in claimed), None)
                if name is not None:
                    self.fields[canon] = _Field(canon, name)
                    claimed.add(name)
                    self.dropped.add(name)
        rm = _first_value(records, "reward_model")[1] if "reward_model" not in claimed else None
        if (
            not self.documents
            and "answer" not in self.fields
            and isinstance(rm, dict)
            and "ground_truth" in rm
        ):
            self.fields["answer"] = _Field("answer", "reward_model", ("ground_truth",))
        main = "text" if self.documents else "problem"
        if main not in self.fields:
            raise InputError(
                f"no {main} column found among the columns {columns}; looked for "
                f"{list(_CANDIDATES[main])}. Pass {main}=COLUMN (a dotted path such as "
                f"{'page.body' if self.documents else 'prompt.0.content'} reaches into "
                "nested data)",
                path=self.path,
                field=main,
            )
        if not self.documents and src.answer is None:
            self._gsm8k_answers(records)
        self.nested = [f for f in self.fields.values() if f.path]

    def _gsm8k_answers(self, records: list[dict[str, Any]]) -> None:
        """An unmapped answer column whose values end in ``#### <answer>`` (GSM8K) holds
        solutions: it becomes the solution (the answer is read from it), or, when there is a
        solution column, only what follows ``####`` is taken as the answer."""
        f = self.fields.get("answer")
        if f is None or f.path:
            return
        values = [r[f.column] for r in records if r.get(f.column) is not None]
        hits = sum(isinstance(v, str) and _HASH_FINAL.search(v) is not None for v in values)
        if not values or hits < _HASH_SHARE * len(values):
            return
        if "solution" in self.fields:
            self.hash_answer = True
        else:
            self.fields["solution"] = _Field("solution", f.column)
            del self.fields["answer"]

    def _error(self, message: str, canon: str, index: int) -> InputError:
        loc = self.locs[index] if index < len(self.locs) else None
        return InputError(message, path=self.path, field=canon, **{self.where: loc})

    def _resolve(
        self, canon: str, spec: str, columns: list[str], records: list[dict[str, Any]]
    ) -> _Field:
        if spec in columns:
            return _Field(canon, spec)
        head, *rest = spec.split(".")
        if head not in columns:
            raise InputError(
                f"{canon}={spec!r} names a column the file does not have; available columns: "
                f"{columns}. Pass one of these, or a dotted path into one (e.g. "
                "reward_model.ground_truth)",
                path=self.path,
                field=canon,
            )
        f = _Field(canon, head, tuple(int(s) if _INT.fullmatch(s) else s for s in rest))
        index, sample = _first_value(records, head)
        try:  # check the path against a sample value
            f.get({head: sample}, strict=True)
        except _Bad as e:
            raise self._error(f"{canon}={spec!r}: {e.message}", canon, index) from None
        ends = [f.past_the_end(r) for r in records if r.get(head) is not None]
        if ends and all(ends):  # in every row: the path is wrong, not the data
            raise self._error(
                f"{canon}={spec!r}: {ends[0]} (and so in every row of the first batch); pass "
                "an index that exists",
                canon,
                index,
            )
        return f

    def batch(
        self,
        records: list[dict[str, Any]],
        rows: Sequence[int],
        locs: Sequence[int] | None = None,
        path: Path | str | None = None,
        where: Where | None = None,
    ) -> pl.DataFrame:
        """The canonical rows of ``records`` (the problems table, or the documents table for
        a documents source), whose ids use the input's row positions ``rows``; a bad value
        raises an error naming the file ``path``, its line or row (``locs``) and the field."""
        out: list[tuple[Any, ...]] = []
        name = self.src.name
        locs = rows if locs is None else locs
        where = where or self.where
        for i, record in enumerate(records):
            try:
                main, *rest, meta = self._doc(record) if self.documents else self._row(record)
            except _Bad as e:
                raise InputError(
                    e.message,
                    path=path if path is not None else self.path,
                    field=e.field,
                    **{where: locs[i]},
                ) from None
            h = text_hash(main)
            out.append((f"{name}:{rows[i]}:{h[:8]}", h, main, *rest, name, meta))
        if not out:
            return pl.DataFrame(schema=_DOC_SCHEMA if self.documents else _SCHEMA)
        if self.documents:
            columns = dict(zip(_DOC_ROW, zip(*out, strict=True), strict=True))
            return pl.DataFrame({c: columns[c] for c in DOCUMENT_COLUMNS}, schema=_DOC_SCHEMA)
        columns = dict(zip(_ROW, zip(*out, strict=True), strict=True))
        return pl.DataFrame({c: columns[c] for c in PROBLEM_COLUMNS}, schema=_SCHEMA)

    def _doc(self, record: dict[str, Any]) -> tuple[str, str | None, str | None, str]:
        """(text, url, title, meta) of one document record."""
        fields = self.fields
        raw = fields["text"].get(record)
        if raw is None:
            text = ""
        elif isinstance(raw, str):
            text = _clean_text(raw)
        else:
            raise _Bad(
                "text",
                f"expected text, got {_describe(raw)}; map text= to the column that holds "
                "the document's text",
            )
        keep: list[str] = []
        url = self._text(record, "url", _scalar, keep)
        title = self._text(record, "title", _scalar, keep)
        return text, url, title, _dumps_meta(self._meta(record, keep))

    def _meta(self, record: dict[str, Any], keep: list[str]) -> dict[str, Any]:
        """The record's fields that no canonical column wholly carries (``keep``: mapped
        columns that stay in meta because not all of them was used); of a column a dotted
        path reads, only what the path did not take."""
        dropped = self.dropped.difference(keep) if keep else self.dropped
        meta = {k: v for k, v in record.items() if k not in dropped}
        for f in self.nested:
            if f.column in meta and f.column not in keep:
                rest = _without(meta[f.column], f.path)
                if rest is _GONE:
                    del meta[f.column]
                else:
                    meta[f.column] = rest
        return meta

    def _row(
        self, record: dict[str, Any]
    ) -> tuple[str, str | None, str | None, str | None, float | None, str]:
        fields = self.fields
        keep: list[str] = []  # mapped columns that must stay in meta: not all of them was used
        extra: dict[str, Any] = {}
        pf = fields["problem"]
        raw = pf.get(record)
        if isinstance(raw, list):  # chat layout: the last user message is the problem
            if not all(isinstance(m, dict) and "content" in m for m in raw):
                raise _Bad(
                    "problem",
                    "expected text or a list of chat messages "
                    f"({{role, content}}), got {_describe(raw)}",
                )
            user = [m for m in raw if m.get("role") == "user"]
            if not (len(raw) == 1 and user and set(raw[0]) <= {"role", "content"}):
                keep.append(pf.column)  # a system prompt or several turns: keep them all
            raw = user[-1]["content"] if user else None
        if raw is None:
            problem = ""
        elif isinstance(raw, str):
            problem = _clean_text(raw)
            if self.src.instructions == "strip":
                stripped = strip_instructions(problem)
                if stripped != problem:
                    problem, extra["original_problem"] = stripped, raw
        else:
            raise _Bad(
                "problem",
                f"expected text, got {_describe(raw)}; map problem= to the "
                "column that holds the problem statement",
            )
        solution = None
        if "solution" in fields:
            value = fields["solution"].get(record)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                if len(value) > 1:
                    keep.append(fields["solution"].column)  # several: the first is used
                value = value[0] if value else None
            if value is not None and not isinstance(value, str):
                raise _Bad("solution", f"expected text, got {_describe(value)}")
            solution = value if value and not value.isspace() else None
        answer = self._text(record, "answer", self._answer, keep)
        if answer is None and solution is not None:
            answer = _clean_answer(extract_answer(solution, rules=SOLUTION_RULES))
        subject = self._text(record, "subject", _scalar, keep)
        level = self._level(record, keep)
        meta = self._meta(record, keep)
        for key, value in extra.items():
            while key in meta:
                key = "_" + key
            meta[key] = value
        return problem, answer, solution, subject, level, _dumps_meta(meta)

    def _answer(self, value: Any, field: str) -> str | None:
        if self.hash_answer and isinstance(value, str):
            m = _HASH_FINAL.search(value)
            value = m.group(1) if m else value
        return _answer(value, field)

    def _level(self, record: dict[str, Any], keep: list[str]) -> float | None:
        """The level as a number; a level that is not one (or several) stays in meta."""
        f = self.fields.get("level")
        if f is None:
            return None
        value = f.get(record)
        items = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
        levels = [_level(v, "level") for v in items]
        if len(levels) == 1 and levels[0] is not None:
            return levels[0]
        if items:
            keep.append(f.column)
        return None

    def _text(
        self,
        record: dict[str, Any],
        canon: str,
        convert: Callable[[Any, str], str | None],
        keep: list[str],
    ) -> str | None:
        """A converted scalar; a list becomes its converted items joined with ', '."""
        f = self.fields.get(canon)
        if f is None:
            return None
        value = f.get(record)
        if not isinstance(value, list):
            return convert(value, canon)
        if len(value) > 1:
            keep.append(f.column)
        return ", ".join(filter(None, (convert(v, canon) for v in value))) or None


_SCHEMA = PROBLEM_DTYPES
_ROW = ("id", "text_hash", "problem", "answer", "solution", "subject", "level", "source", "meta")
_DOC_SCHEMA = {c: pl.String for c in DOCUMENT_COLUMNS}
_DOC_ROW = ("id", "text_hash", "text", "url", "title", "source", "meta")
