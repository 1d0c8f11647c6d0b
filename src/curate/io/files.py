r"""Where an input's rows are: one file, a glob, a folder of shards, or the same on a remote
filesystem, resolved to a sorted list of data files, each opened with its compression.

- **Compression** comes from the last suffix (``.gz``, ``.bz2``, ``.zst``/``.zstd``, ``.xz``)
  and the format from the suffix before it (``train.jsonl.gz`` is gzip-compressed JSONL).
  Files are decompressed as a stream (gzip, bz2, xz by the standard library, zstd by
  pyarrow's codec), never whole into memory (a ``.json`` file over 32 MiB is parsed as a
  stream too; only an object of column lists is read whole).
- **Folders of shards** (Hub-style ``data/train-00000-of-00002.parquet``, curate's own exports)
  and globs (``data/train-*.parquet``, ``**/*.jsonl``) read as one input, in sorted order of
  the files' paths. Hidden files and folders (``.x``, ``_x``) and metadata files
  (``export.json``, ``dataset_info.json``, ...) are not data. A folder's splits come from its
  README's ``configs`` (the Hub's dataset card YAML) or else from file and folder names
  (``train``, ``test``, ``validation`` and their usual variants, as ``datasets`` finds them;
  as there, files that name no split are then not read). A folder that names no split is
  read whole.

>>> split_suffix("data/train-00000-of-00001.jsonl.gz")
('jsonl', 'gzip')
>>> split_suffix("shard.parquet")
('parquet', None)
>>> split_of("data/validation-00000-of-00001.parquet"), split_of("dev/part-0.jsonl")
('validation', 'validation')
"""

from __future__ import annotations

import bz2
import fnmatch
import glob
import gzip
import io
import lzma
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, cast

from curate.errors import ConfigError, InputError

DATA_SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".csv": "csv",
    ".warc": "warc",
    ".wet": "warc",
}
COMPRESSIONS: dict[str, str] = {
    ".gz": "gzip",
    ".bz2": "bz2",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".xz": "xz",
}
# Files beside the data in save_to_disk folders, Hub repositories and curate's exports.
METADATA_NAMES = frozenset(
    {
        "export.json",
        "dataset_info.json",
        "dataset_infos.json",
        "state.json",
        "dataset_dict.json",
        "manifest.json",
    }
)
_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}
_GLOB_CHARS = re.compile(r"[*?\[]")
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz"}


def split_suffix(name: str) -> tuple[str | None, str | None]:
    """(format, compression) of a file name: the data suffix, then the compression suffix.

    A gzip-compressed web archive (``.warc.gz``) is read by warcio itself: no compression.
    """
    lower = name.lower()
    compression = next((c for s, c in COMPRESSIONS.items() if lower.endswith(s)), None)
    if compression:
        lower = lower[: lower.rfind(".")]
    fmt = next((f for s, f in DATA_SUFFIXES.items() if lower.endswith(s)), None)
    if fmt == "warc" and compression == "gzip":
        compression = None
    return fmt, compression


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic bytes start ``head``, if any (for a helpful error)."""
    return next((c for magic, c in _MAGIC.items() if head.startswith(magic)), None)


def has_magic(path: str) -> bool:
    """Whether ``path`` is a glob pattern."""
    return _GLOB_CHARS.search(path) is not None


def split_of(rel: str) -> str | None:
    """The split a data file belongs to by its folder or file name (first that names one)."""
    for part in rel.split("/"):
        word = re.split(r"[-._ 0-9]", part, maxsplit=1)[0].lower()
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return None


class FileSystem(Protocol):
    """What is used of a filesystem: fsspec's method names; `LocalFS` for local files."""

    def glob(self, path: str) -> Any: ...
    def isdir(self, path: str) -> bool: ...
    def isfile(self, path: str) -> bool: ...
    def find(self, path: str) -> Any: ...
    def open(self, path: str, mode: str = "rb") -> Any: ...
    def info(self, path: str) -> dict[str, Any]: ...


class LocalFS:
    """Local files behind the few fsspec methods used here (fsspec itself is optional)."""

    def glob(self, path: str) -> list[str]:
        return [p for p in glob.glob(path, recursive=True) if os.path.isfile(p)]

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def find(self, path: str) -> list[str]:
        return [str(p) for p in Path(path).rglob("*") if p.is_file()]

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        return open(path, "rb")

    def info(self, path: str) -> dict[str, Any]:
        return {"size": os.stat(path).st_size}


@dataclass(frozen=True)
class DataFile:
    """One data file of an input: where it is, its place in the input, its compression."""

    path: str  # the local path, or the path inside ``fs``
    rel: str  # relative to the input's root, '/'-separated; '' for an input of one file
    label: str  # how errors name it: the local path or the URL
    compression: str | None = None
    fs: Any = field(default=None, compare=False, repr=False)  # None: a local file

    @property
    def local(self) -> Path | None:
        """The local path of an uncompressed local file (readers that want a path use it)."""
        return Path(self.path) if self.fs is None and self.compression is None else None

    def open(self) -> IO[bytes]:
        """A buffered binary stream of the file's decompressed bytes."""
        raw: IO[bytes] = open(self.path, "rb") if self.fs is None else self.fs.open(self.path)  # noqa: SIM115
        if self.compression == "gzip":
            return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
        if self.compression == "bz2":
            return cast(IO[bytes], bz2.BZ2File(raw))
        if self.compression == "xz":
            return cast(IO[bytes], lzma.LZMAFile(raw))
        if self.compression == "zstd":
            import pyarrow as pa

            return io.BufferedReader(pa.CompressedInputStream(raw, "zstd"))
        return raw

    def read_bytes(self) -> bytes:
        with self.open() as f:
            return f.read()


def _posix_rel(path: str, root: str) -> str:
    """``path`` relative to ``root`` (string prefixes: paths of one listing share theirs)."""
    root = root.rstrip("/")
    return path[len(root) + 1 :] if root and path.startswith(root + "/") else path


def _data_files(
    fs: FileSystem, paths: Sequence[str], root: str, label: Any, fmt: str | None, where: str
) -> tuple[str, list[DataFile]]:
    """The data files among ``paths`` (sorted by path relative to ``root``) and their format."""
    found: dict[str, list[DataFile]] = {}
    for p in paths:
        rel = _posix_rel(p, root)
        if any(part[:1] in (".", "_") for part in rel.split("/")):
            continue
        if rel.rsplit("/", 1)[-1] in METADATA_NAMES:
            continue
        f, compression = split_suffix(rel)
        if f is None or (fmt is not None and f != fmt):
            continue
        found.setdefault(f, []).append(DataFile(p, rel, label(p), compression, _fs_or_none(fs)))
    if not found:
        wanted = f"{fmt} files" if fmt else f"data files ({', '.join(sorted(DATA_SUFFIXES))})"
        raise InputError(f"{where} holds no {wanted}", path=where)
    if len(found) > 1:
        counts = {f: len(v) for f, v in sorted(found.items())}
        raise ConfigError(
            f"{where} holds data files of several formats {counts}; pass format= to read one "
            "kind, or a glob that matches only the files to read"
        )
    ((f, files),) = found.items()
    if f == "parquet" and any(d.compression for d in files):
        raise ConfigError(f"{where}: Parquet files are compressed inside; do not gzip them")
    return f, sorted(files, key=lambda d: d.rel)


def _readme_splits(fs: FileSystem, root: str) -> dict[str, list[str]] | None:
    """Split -> file patterns from the ``configs`` of a Hub dataset card, or None."""
    readme = f"{root.rstrip('/')}/README.md"
    if not fs.isfile(readme):
        return None
    with fs.open(readme, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    m = re.match(r"---\s*\n(.*?)\n---", text, re.S)
    if not m:
        return None
    try:
        import yaml
    except ImportError:  # the file names still say the splits
        return None
    try:
        card = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return None
    configs = card.get("configs") if isinstance(card, dict) else None
    if not isinstance(configs, list) or not configs:
        return None
    chosen = [c for c in configs if isinstance(c, dict) and c.get("default")]
    chosen = chosen or [c for c in configs if c.get("config_name") == "default"]
    if not chosen and len(configs) > 1:
        names = [c.get("config_name") for c in configs]
        raise ConfigError(
            f"{root} has several configs {names} and none is the default; read one config's "
            "files with a glob, such as FOLDER/data/train-*.parquet"
        )
    data_files = (chosen or configs)[0].get("data_files")
    if isinstance(data_files, str):
        return {"train": [data_files]}
    out: dict[str, list[str]] = {}
    for entry in data_files if isinstance(data_files, list) else []:
        if isinstance(entry, str):
            out.setdefault("train", []).append(entry)
        elif isinstance(entry, dict) and "split" in entry:
            paths = entry.get("path", [])
            out.setdefault(str(entry["split"]), []).extend(
                [paths] if isinstance(paths, str) else paths
            )
    return out or None


def _pick_split(
    by_split: dict[str, list[DataFile]], split: str | None, where: str
) -> tuple[str | None, list[DataFile]]:
    names = sorted(by_split)
    if split is not None:
        if split not in by_split:
            raise ConfigError(f"split={split!r} is not in {where}; its splits are {names}")
        return split, by_split[split]
    if len(names) > 1:
        raise ConfigError(f"{where} has the splits {names}; pass split= one of them")
    return names[0], by_split[names[0]]


@dataclass(frozen=True)
class Located:
    """An input resolved: its format, data files, split, and whether it has several splits."""

    format: str
    files: tuple[DataFile, ...]
    split: str | None = None
    several_splits: bool = False


def locate(
    fs: FileSystem, path: str, fmt: str | None, split: str | None, label: Any = str
) -> Located:
    """The data files of ``path`` on ``fs``: a file, a glob or a folder of shards.

    ``label(path)`` names a file in errors (the URL of a remote one).
    """
    if has_magic(path):
        paths = sorted(fs.glob(path))
        if not paths:
            raise InputError("no file matches this pattern", path=label(path))
        root = path[: _GLOB_CHARS.search(path).start()]  # type: ignore[union-attr]
        root = root.rsplit("/", 1)[0] if "/" in root else ""
        _no_split(split, path)
        f, files = _data_files(fs, paths, root, label, fmt, label(path))
        return Located(f, tuple(files))
    if fs.isdir(path):
        f, files = _data_files(fs, sorted(fs.find(path)), path, label, fmt, label(path))
        patterns = _readme_splits(fs, path)
        by_split: dict[str, list[DataFile]] = {}
        for d in files:
            if patterns is not None:
                name = next(
                    (s for s, ps in patterns.items() if any(fnmatch.fnmatch(d.rel, p) for p in ps)),
                    None,
                )
            else:
                name = split_of(d.rel)
            if name is not None:
                by_split.setdefault(name, []).append(d)
        if not by_split:  # no split named anywhere: all of it is the one split
            if split not in (None, "train"):
                raise ConfigError(
                    f"split={split!r}: {label(path)} names no splits (no README configs, no "
                    "train/test/validation in its file names); omit split="
                )
            return Located(f, tuple(files), split)
        chosen, picked = _pick_split(by_split, split, label(path))
        return Located(f, tuple(picked), chosen, len(by_split) > 1)
    if not fs.isfile(path):
        raise InputError("no such file or folder", path=label(path))
    found, compression = split_suffix(path)
    if fmt is None and found is None:
        raise ConfigError(
            f"cannot tell the format of {label(path)} from its suffix; expected one of "
            f"{sorted(DATA_SUFFIXES)} (optionally with {', '.join(sorted(COMPRESSIONS))}), "
            "or pass format="
        )
    one = DataFile(path, "", label(path), compression, _fs_or_none(fs))
    return Located(fmt or str(found), (one,))


def _fs_or_none(fs: FileSystem) -> FileSystem | None:
    return None if isinstance(fs, LocalFS) else fs


def _no_split(split: str | None, path: str) -> None:
    if split is not None:
        raise ConfigError(
            f"split={split!r} applies to a folder of splits; {path} is a glob: it names the "
            "files itself"
        )
