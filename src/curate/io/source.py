"""`read` and `Source`: an input described, fingerprinted and read into the
problems table."""

from __future__ import annotations

import functools
import hashlib
import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import orjson
import polars as pl

from curate.errors import ConfigError, InputError
from curate.io.canon import _DOC_MAPPED, _MAPPED, Where, _Canon
from curate.io.files import (
    DATA_SUFFIXES,
    DataFile,
    LocalFS,
    Located,
    has_magic,
    locate,
    split_suffix,
)
from curate.io.formats import _READERS
from curate.io.remote import filesystem, hub_url, is_hub_id, is_url, labeller, stamp

#: Bump when a change to this module changes the rows it produces (part of every fingerprint).
#: 2: ``level`` is a number; GSM8K answers; meta without what a dotted path took.
READER_VERSION = "2"

Format = Literal["jsonl", "json", "parquet", "csv", "hf", "warc"]
Kind = Literal["problems", "documents"]
_HF_MARKERS = ("dataset_info.json", "state.json")
_NAME_OK = re.compile(r"[A-Za-z0-9_.\-/]+")


@dataclass(frozen=True, repr=False)
class Source:
    """An input, described but not yet read: where it is and how to map its columns.

    Made by `read`; `frame` reads it, `fingerprint` identifies its content and options.
    ``kind`` says which table it reads into: problems, or documents (texts). ``path`` is a
    file, a folder or a glob; ``uri`` the URL of a remote input (then ``path`` only shows
    it). ``limit``, ``sample`` and ``seed`` read a slice (see `read`).
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
    limit: int | None = None
    sample: int | float | None = None
    seed: int = 0
    uri: str | None = None

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
        _check_slice(self.limit, self.sample, self.seed)
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

    @property
    def location(self) -> str:
        """Where the input is, as the user named it: a path, a glob or a URL."""
        return self.uri if self.uri is not None else str(self.path)

    @functools.cached_property
    def files(self) -> tuple[DataFile, ...]:
        """The data files read, in order (a ``save_to_disk`` folder: the folder itself)."""
        if self.format == "hf":
            folder = self.path / self.split if self.split else self.path
            return (DataFile(str(folder), "", str(folder)),)
        return self._located().files

    def _located(self) -> Located:
        if self.uri is not None:
            fs, inner = filesystem(self.uri)
            return locate(fs, inner, self.format, self.split, labeller(fs))
        return locate(LocalFS(), str(self.path), self.format, self.split)

    def _records(self) -> Iterator[tuple[DataFile, list[dict[str, Any]], list[int], Where]]:
        """Each file's batches of records with their 1-based lines (text formats) or 0-based
        rows in the file, which errors name."""
        taken = 0
        for file in self.files:
            at = 0
            left = self.limit - taken if self.limit is not None else None
            if left is not None and left <= 0:
                return
            for records, lines in _READERS[self.format](file, left):
                taken += len(records)
                if lines is not None:
                    yield file, records, lines, "line"
                else:
                    yield file, records, list(range(at, at + len(records))), "row"
                at += len(records)

    def batches(self) -> Iterator[pl.DataFrame]:
        """The problems (or documents) table in batches of about `BATCH_SIZE` rows, in file
        order (files in sorted order); ``limit`` and ``sample`` keep a slice of it."""
        canon: _Canon | None = None
        start = 0
        picked: list[_Picked] = []  # a heap of the rows_wanted smallest draws, negated
        rows_wanted = self.sample if isinstance(self.sample, int) else None
        yielded = False
        for file, records, locs, where in self._records():
            if self.limit is not None:
                records, locs = records[: self.limit - start], locs[: self.limit - start]
            if not records:
                continue
            path = file.local or file.label
            canon = canon or _Canon(self, records, path, locs, where)
            rows = range(start, start + len(records))
            start += len(records)
            if self.sample is None:
                yielded = True
                yield canon.batch(records, rows, locs, path, where)
            elif rows_wanted is None:
                keep = [i for i, r in enumerate(rows) if _draw(self.seed, r) < self.sample]
                if keep:
                    yielded = True
                    yield canon.batch(
                        [records[i] for i in keep],
                        [rows[i] for i in keep],
                        [locs[i] for i in keep],
                        path,
                        where,
                    )
            else:
                for i, r in enumerate(rows):
                    item = (-_draw(self.seed, r), r, records[i], locs[i], where, file)
                    if len(picked) < rows_wanted:
                        heapq.heappush(picked, item)
                    elif item[0] > picked[0][0]:
                        heapq.heapreplace(picked, item)
            if self.limit is not None and start >= self.limit:
                break
        if canon is None:
            raise InputError("has no rows; expected at least one record", path=self.location)
        if rows_wanted is not None:
            yield from _in_order(canon, sorted(picked, key=lambda item: item[1]))
        elif not yielded:
            yield canon.batch([], [])

    def frame(self) -> pl.DataFrame:
        """Read the input into the canonical problems table (`PROBLEM_COLUMNS`: strings, and
        ``level`` a float), or for a documents source the documents table (`DOCUMENT_COLUMNS`)."""
        return pl.concat(list(self.batches()), rechunk=True)

    def fingerprint(self) -> str:
        """Hex digest of the input's bytes, the reader options and `READER_VERSION`.

        For a folder or a glob, every data file's relative path and bytes, in sorted order
        (a ``save_to_disk`` folder: every file in it); for a remote file, its size and what
        the filesystem reports of its content (ETag, hash or modification time), not its bytes.
        """
        h = hashlib.blake2b(digest_size=20)
        options: dict[str, Any] = {
            "reader": READER_VERSION,
            "name": self.name,
            "format": self.format,
            **self.mapping,
            "split": self.split,
            "instructions": self.instructions,
        }
        if self.kind != "problems":  # (so that a problems source keeps its fingerprint)
            options["kind"] = self.kind
        if self.limit is not None:
            options["limit"] = self.limit
        if self.sample is not None:
            options["sample"], options["seed"] = self.sample, self.seed
        h.update(orjson.dumps(options, option=orjson.OPT_SORT_KEYS))
        if self.format == "hf":
            root = self.path
            entries = [
                (p.relative_to(root).as_posix(), str(p), None)
                for p in sorted(p for p in root.rglob("*") if p.is_file())
            ]
        else:
            entries = [(d.rel, d.path, d.fs) for d in self.files]
        for rel, path, fs in entries:
            h.update(len(rel.encode()).to_bytes(8, "little") + rel.encode())
            if fs is not None:
                size, tag = stamp(fs, path)
                h.update(size.to_bytes(8, "little") + b"remote:" + tag.encode())
                continue
            h.update(Path(path).stat().st_size.to_bytes(8, "little"))
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        return h.hexdigest()

    def __repr__(self) -> str:
        opts = [f"{k}={v!r}" for k, v in self.mapping.items()]
        opts += [f"split={self.split!r}"] if self.split else []
        opts += [f"instructions={self.instructions!r}"] if self.instructions != "strip" else []
        opts += [f"limit={self.limit!r}"] if self.limit is not None else []
        opts += [f"sample={self.sample!r}, seed={self.seed!r}"] if self.sample is not None else []
        opts = ([f"kind={self.kind!r}"] if self.kind != "problems" else []) + opts
        return (
            f"Source({self.name!r}, {self.location!r}, format={self.format!r}"
            + "".join(", " + o for o in opts)
            + ")"
        )


def _draw(seed: int, row: int) -> float:
    """A uniform draw in [0, 1) for one row: the same on every machine and every run."""
    digest = hashlib.blake2b(f"{seed}:{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


_Picked = tuple[float, int, dict[str, Any], int, "Where", DataFile]


def _in_order(canon: _Canon, picked: list[_Picked]) -> Iterator[pl.DataFrame]:
    """The sampled rows, canonicalized in input order, a file (and a batch) at a time."""
    from curate.io.formats import BATCH_SIZE

    if not picked:
        yield canon.batch([], [])
    i = 0
    while i < len(picked):
        file = picked[i][5]
        j = i
        while j < len(picked) and picked[j][5] is file and j - i < BATCH_SIZE:
            j += 1
        chunk = picked[i:j]
        yield canon.batch(
            [c[2] for c in chunk],
            [c[1] for c in chunk],
            [c[3] for c in chunk],
            file.local or file.label,
            chunk[0][4],
        )
        i = j


def _check_slice(limit: Any, sample: Any, seed: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit={limit!r}; expected a number of rows, 1 or more")
    if sample is not None:
        fraction = isinstance(sample, float) and 0 < sample <= 1
        rows = isinstance(sample, int) and not isinstance(sample, bool) and sample >= 1
        if not (fraction or rows):
            raise ConfigError(
                f"sample={sample!r}; expected a fraction of the rows (a float in (0, 1]) or a "
                "number of rows (an int, 1 or more)"
            )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r}; expected an integer")


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


def _pattern_name(pattern: str) -> str:
    """A source name for a glob: its file part without the wildcards (``train-*.parquet``:
    ``train``), else the last folder without wildcards."""
    parts = pattern.rstrip("/").split("/")
    stem = re.split(r"[*?\[]", parts[-1], maxsplit=1)[0].split(".")[0].strip("-_.")
    if stem:
        return stem
    plain = [p for p in parts[:-1] if p and not has_magic(p) and p not in (".", "..")]
    return plain[-1] if plain else ""


def _file_stem(path: str) -> str:
    """``x.jsonl.gz`` -> ``x`` (``x.wet.gz``, read by warcio as it is, keeps ``x.wet``)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    _, compression = split_suffix(name)
    return stem.rsplit(".", 1)[0] if compression and "." in stem else stem


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
    limit: int | None = None,
    sample: int | float | None = None,
    seed: int = 0,
) -> Source:
    r"""Describe an input as a `Source` (nothing is read yet): a file, a glob, a folder of
    shards, a ``save_to_disk`` folder, or any of these on the Hub or in a bucket.

    ``path`` is a data file (.jsonl/.ndjson, .json, .parquet, .csv; .warc, .wet, .warc.gz,
    .wet.gz: web archives, for documents), optionally compressed (``.gz``, ``.bz2``, ``.zst``,
    ``.xz``: ``train.jsonl.gz``); a glob (``data/train-*.parquet``, ``pool/**/*.jsonl``);
    a folder of shards (Hub-style ``data/train-00000-of-00002.parquet``, curate's exports), read
    as one input in sorted order, its split chosen by ``split=`` (from the README's
    ``configs`` or the file names; needed when there are several); a folder written by
    ``datasets``' ``save_to_disk``; or a URL fsspec reads (``hf://datasets/org/name``,
    ``s3://bucket/pool/*.parquet``, ``gs://...``; a bare Hub id ``org/name`` with
    ``format="hf"``). The format comes from the suffixes or the folder's files; ``format=``
    overrides it (a file with an odd name, or one kind of file in a mixed folder).

    ``source`` names it (default: the file stem, the folder name, ``folder-split`` for a
    folder of several splits, or the glob's fixed part). Each of ``problem``, ``answer``,
    ``solution``, ``subject`` and ``level`` names an input column or a dotted path
    (``reward_model.ground_truth``, ``prompt.0.content``); unnamed ones are found by
    their usual names (an unmapped answer column in GSM8K's form, ``... #### 72``, is taken as
    the solution and 72 as the answer). ``level`` becomes a number ('Level 5' -> 5.0).
    ``instructions="strip"`` removes known answer-format instructions from problems (see
    `strip_instructions`). ``license`` (an SPDX id such as ``"MIT"``) is recorded in the run's
    manifest and shown on the dataset card; it does not change the data.

    ``limit=N`` reads only the first N rows (reading stops there). ``sample`` keeps a
    deterministic random subset of them: a float is a fraction of the rows, an int a number of
    rows, drawn by ``seed``; rows keep their input order and their ids. Both change the
    fingerprint.

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
    >>> read(p).frame().select("problem", "answer", "solution").row(0)
    ('2+2?', '4', '2+2=4\n#### 4')
    >>> pages = p.with_name("pages.jsonl")
    >>> _ = pages.write_text('{"content": "A prime has two divisors.", "url": "https://x.org/p"}\n')
    >>> read(pages, kind="documents", text="content").frame().select("text", "url").row(0)
    ('A prime has two divisors.', 'https://x.org/p')
    """
    opts = {
        "source": source, "problem": problem, "answer": answer, "solution": solution,
        "subject": subject, "level": level, "instructions": instructions, "license": license,
        "kind": kind, "text": text, "url": url, "title": title, "limit": limit,
        "sample": sample, "seed": seed,
    }  # fmt: skip
    given = str(path)
    uri = None
    if is_url(given):
        uri = given
    elif format == "hf" and not Path(given).exists() and is_hub_id(given):
        uri = hub_url(given)
    if uri is not None:
        fs, inner = filesystem(uri)
        located = locate(fs, inner, None if format == "hf" else format, split, labeller(fs))
        if has_magic(inner):
            name = _pattern_name(inner)
        elif located.files[0].rel == "":  # one file
            name = _file_stem(inner)
        else:
            name = inner.rstrip("/").rsplit("/", 1)[-1]
            name += f"-{located.split}" if located.several_splits else ""
        return _source(Path(uri), uri, name, located, opts)
    p = Path(given)
    if has_magic(given):
        located = locate(LocalFS(), given, format, split)
        return _source(p, None, _pattern_name(given), located, opts)
    if not p.exists():
        hint = (
            f"; for the Hub dataset {given} pass format='hf' or {hub_url(given)}"
            if is_hub_id(given)
            else ""
        )
        raise InputError("no such file or folder" + hint, path=p)
    if p.is_dir():
        hf_dict = (p / "dataset_dict.json").is_file()
        if hf_dict or any((p / m).is_file() for m in _HF_MARKERS):
            if format not in (None, "hf"):
                raise ConfigError(
                    f"format={format!r} does not fit {p}: it is a folder written by datasets' "
                    "save_to_disk; omit format="
                )
            if hf_dict:
                split = _hf_split(p, split)
            else:
                _no_split(split, p)
            name = p.resolve().name + (f"-{split}" if split else "")
            hf = Located("hf", (), split)
            return _source(p, None, name, hf, opts)
        located = locate(LocalFS(), str(p), None if format == "hf" else format, split)
        name = p.resolve().name + (f"-{located.split}" if located.several_splits else "")
        return _source(p, None, name, located, opts)
    if format == "hf":
        raise ConfigError(
            f"format={format!r} does not fit {p}: 'hf' is for save_to_disk folders, Hub "
            "folders and Hub ids (org/name); the other formats for files"
        )
    if split is not None:
        raise ConfigError(
            f"split={split!r} applies only to a folder of splits (a DatasetDict, or shards "
            f"named by split); {p} is a file"
        )
    fmt, _ = split_suffix(p.name)
    if format is None and fmt is None:
        raise ConfigError(
            f"cannot tell the format of {p} from its suffix {p.suffix!r}; "
            f"expected one of {sorted(DATA_SUFFIXES)}, optionally compressed (.gz, .bz2, .zst, "
            ".xz), or pass format="
        )
    located = locate(LocalFS(), str(p), format, None)
    return _source(p, None, _file_stem(str(p)), located, opts)


def _no_split(split: str | None, folder: Path) -> None:
    if split is not None:
        raise ConfigError(
            f"split={split!r} applies only to a DatasetDict folder (one with "
            f"dataset_dict.json) or a folder of shards named by split; {folder} is neither"
        )


def _source(
    path: Path, uri: str | None, stem: str, located: Located, args: dict[str, Any]
) -> Source:
    """The Source `read` describes: where it is, what it holds, and ``args``, read's options."""
    name = args["source"]
    if name is None:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "source"
    src = Source(
        path,
        name,
        located.format,  # type: ignore[arg-type]
        **{k: args[k] for k in (*_MAPPED, "instructions", "license", "kind", *_DOC_MAPPED)},
        split=located.split,
        limit=args["limit"],
        sample=args["sample"],
        seed=args["seed"],
        uri=uri,
    )
    if located.files:
        src.__dict__["files"] = located.files  # resolved once: the cached property's value
    return src
