"""`read` and `Source`: an input described, fingerprinted and read into the
problems table."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import orjson
import polars as pl

from curate.errors import ConfigError, InputError
from curate.io.canon import _DOC_MAPPED, _MAPPED, _Canon
from curate.io.formats import _READERS

#: Bump when a change to this module changes the rows it produces (part of every fingerprint).
READER_VERSION = "1"

Format = Literal["jsonl", "json", "parquet", "csv", "hf", "warc"]
Kind = Literal["problems", "documents"]
_SUFFIXES: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".warc": "warc",
    ".wet": "warc",
    ".warc.gz": "warc",
    ".wet.gz": "warc",
}
_HF_MARKERS = ("dataset_info.json", "state.json")
_NAME_OK = re.compile(r"[A-Za-z0-9_.\-/]+")


@dataclass(frozen=True, repr=False)
class Source:
    """An input, described but not yet read: where it is and how to map its columns.

    Made by `read`; `frame` reads it, `fingerprint` identifies its content and options.
    ``kind`` says which table it reads into: problems, or documents (texts).
    """

    path: Path
    name: str
    format: Format
    problem: str | None = None
    answer: str | None = None
    solution: str | None = None
    subject: str | None = None
    level: str | None = None
    split: str | None = None
    instructions: Literal["strip", "keep"] = "strip"
    license: str | None = None
    kind: Kind = "problems"
    text: str | None = None
    url: str | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not _NAME_OK.fullmatch(self.name):
            raise ConfigError(
                f"source name {self.name!r} may only hold letters, digits and "
                "_ . - /; pass source= with such a name"
            )
        if self.format not in get_args(Format):
            raise ConfigError(f"format={self.format!r}; expected one of {get_args(Format)}")
        if self.instructions not in ("strip", "keep"):
            raise ConfigError(f"instructions={self.instructions!r}; expected 'strip' or 'keep'")
        if self.kind not in get_args(Kind):
            raise ConfigError(f"kind={self.kind!r}; expected one of {get_args(Kind)}")
        mine = self.mapped
        other = [c for c in (*_MAPPED, *_DOC_MAPPED) if c not in mine]
        wrong = [c for c in other if getattr(self, c) is not None]
        if wrong:
            raise ConfigError(
                f"{', '.join(f'{c}=' for c in wrong)} maps a column of the "
                f"{'problems' if self.kind == 'documents' else 'documents'} table, but this "
                f"source is read as {self.kind}; "
                + (
                    "pass kind='documents' to read texts"
                    if self.kind == "problems"
                    else f"a documents source maps {', '.join(f'{c}=' for c in mine)}"
                )
            )
        for canon in mine:
            spec = getattr(self, canon)
            if spec is not None and (not isinstance(spec, str) or "" in spec.split(".")):
                raise ConfigError(
                    f"{canon}={spec!r} is not a column name or a dotted path "
                    "such as reward_model.ground_truth"
                )

    @property
    def mapped(self) -> tuple[str, ...]:
        """The canonical columns a source of its kind maps (problem, answer, ... or text,
        url, title)."""
        return _DOC_MAPPED if self.kind == "documents" else _MAPPED

    @property
    def mapping(self) -> dict[str, str]:
        """The column mapping given to `read` (canonical column -> input column or path)."""
        return {c: getattr(self, c) for c in self.mapped if getattr(self, c) is not None}

    def _data_path(self) -> Path:
        return self.path / self.split if self.format == "hf" and self.split else self.path

    def batches(self) -> Iterator[pl.DataFrame]:
        """The problems (or documents) table in batches of about `BATCH_SIZE` rows, in file
        order."""
        canon: _Canon | None = None
        start = 0
        for records, lines in _READERS[self.format](self._data_path()):
            canon = canon or _Canon(self, records)
            yield canon.batch(records, start, lines)
            start += len(records)
        if canon is None:
            raise InputError("has no rows; expected at least one record", path=self.path)

    def frame(self) -> pl.DataFrame:
        """Read the input into the canonical problems table (`PROBLEM_COLUMNS`, all strings),
        or for a documents source the documents table (`DOCUMENT_COLUMNS`)."""
        return pl.concat(list(self.batches()), rechunk=True)

    def fingerprint(self) -> str:
        """Hex digest of the input's bytes, the reader options and `READER_VERSION`.

        For a folder, every file's relative path and bytes count, in sorted order.
        """
        h = hashlib.blake2b(digest_size=20)
        options = {
            "reader": READER_VERSION,
            "name": self.name,
            "format": self.format,
            **self.mapping,
            "split": self.split,
            "instructions": self.instructions,
        }
        if self.kind != "problems":  # (so that a problems source keeps its fingerprint)
            options["kind"] = self.kind
        h.update(orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
        files = (
            sorted(p for p in self.path.rglob("*") if p.is_file())
            if self.path.is_dir()
            else [self.path]
        )
        for file in files:
            rel = file.relative_to(self.path).as_posix().encode() if self.path.is_dir() else b""
            h.update(len(rel).to_bytes(8, "little") + rel)
            h.update(file.stat().st_size.to_bytes(8, "little"))
            with open(file, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        return h.hexdigest()

    def __repr__(self) -> str:
        opts = [f"{k}={v!r}" for k, v in self.mapping.items()]
        opts += [f"split={self.split!r}"] if self.split else []
        opts += [f"instructions={self.instructions!r}"] if self.instructions != "strip" else []
        opts = ([f"kind={self.kind!r}"] if self.kind != "problems" else []) + opts
        return (
            f"Source({self.name!r}, {str(self.path)!r}, format={self.format!r}"
            + "".join(", " + o for o in opts)
            + ")"
        )


def _hf_split(folder: Path, split: str | None) -> str | None:
    splits = orjson.loads((folder / "dataset_dict.json").read_bytes()).get("splits", [])
    if split is None:
        if "train" not in splits:
            raise ConfigError(
                f"{folder} is a DatasetDict without a 'train' split; pass split= one of {splits}"
            )
        return "train"
    if split not in splits:
        raise ConfigError(f"split={split!r} is not in {folder}; its splits are {splits}")
    return split


def read(
    path: str | Path,
    *,
    source: str | None = None,
    format: Format | None = None,
    problem: str | None = None,
    answer: str | None = None,
    solution: str | None = None,
    subject: str | None = None,
    level: str | None = None,
    split: str | None = None,
    instructions: Literal["strip", "keep"] = "strip",
    license: str | None = None,
    kind: Kind = "problems",
    text: str | None = None,
    url: str | None = None,
    title: str | None = None,
) -> Source:
    r"""Describe an input file or ``save_to_disk`` folder as a `Source` (nothing is read yet).

    ``source`` names it (default: the file stem, or the folder name; ``folder-split`` for
    a DatasetDict). The format comes from the suffix (.jsonl/.ndjson, .json, .parquet,
    .csv; .warc, .wet, .warc.gz, .wet.gz: web archives, for documents) or the folder's
    ``datasets`` files. Each of ``problem``, ``answer``,
    ``solution``, ``subject`` and ``level`` names an input column or a dotted path
    (``reward_model.ground_truth``, ``prompt.0.content``); unnamed ones are found by
    their usual names. ``instructions="strip"`` removes known answer-format instructions
    from problems (see `strip_instructions`). ``license`` (an SPDX id such as ``"MIT"``) is
    recorded in the run's manifest and shown on the dataset card; it does not change the data.

    ``kind="documents"`` reads a corpus of texts (web pages, books, wikis: the input of
    `curate.Synthesize` and of corpus mining) into the documents table (`id`, `text_hash`,
    `text`, `url`, `title`, `source`, `meta`); ``text``, ``url`` and ``title`` map its
    columns as above (found by their usual names when not given), and every other field goes
    to ``meta``. Errors and ids are the same as for problems.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "gsm8k.jsonl"
    >>> _ = p.write_text('{"question": "2+2?", "answer": "2+2=4\\n#### 4"}\n')
    >>> read(p, problem="question", solution="answer")  # doctest: +ELLIPSIS
    Source('gsm8k', '...gsm8k.jsonl', format='jsonl', problem='question', solution='answer')
    >>> pages = p.with_name("pages.jsonl")
    >>> _ = pages.write_text('{"content": "A prime has two divisors.", "url": "https://x.org/p"}\n')
    >>> read(pages, kind="documents", text="content").frame().select("text", "url").row(0)
    ('A prime has two divisors.', 'https://x.org/p')
    """
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", path=p)
    hf_dict = p.is_dir() and (p / "dataset_dict.json").is_file()
    if format is None:
        if p.is_dir():
            if not hf_dict and not any((p / m).is_file() for m in _HF_MARKERS):
                raise ConfigError(
                    f"{p} is a folder but not one written by datasets' "
                    "save_to_disk (no dataset_info.json, state.json or "
                    "dataset_dict.json); pass a data file instead"
                )
            format = "hf"
        elif "".join(p.suffixes[-2:]).lower() in _SUFFIXES:  # x.wet.gz
            format = _SUFFIXES["".join(p.suffixes[-2:]).lower()]
        elif p.suffix.lower() in _SUFFIXES:
            format = _SUFFIXES[p.suffix.lower()]
        else:
            raise ConfigError(
                f"cannot tell the format of {p} from its suffix {p.suffix!r}; "
                f"expected one of {sorted(_SUFFIXES)}, or pass format="
            )
    if (format == "hf") != p.is_dir():
        raise ConfigError(
            f"format={format!r} does not fit {p}: 'hf' is for save_to_disk "
            "folders, the other formats for files"
        )
    if hf_dict:
        split = _hf_split(p, split)
    elif split is not None:
        raise ConfigError(
            f"split={split!r} applies only to a DatasetDict folder (one with "
            f"dataset_dict.json); {p} is not one"
        )
    if source is None:
        stem = (p.resolve().name if p.is_dir() else p.stem) + (f"-{split}" if split else "")
        source = re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "source"
    return Source(
        p,
        source,
        format,
        problem,
        answer,
        solution,
        subject,
        level,
        split,
        instructions,
        license,
        kind,
        text,
        url,
        title,
    )
