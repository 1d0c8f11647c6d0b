r"""Remote inputs through fsspec: ``hf://datasets/org/name[/path]``, ``s3://``, ``gs://`` and
any other protocol fsspec knows, read with the same code as local files (`curate.io.files`).

A bare Hub id (``org/name``) with ``format="hf"`` means ``hf://datasets/org/name``. fsspec
and each protocol's package are optional: a missing one is a `MissingExtraError` naming it.
A remote file's fingerprint uses what the filesystem reports (size and the ETag, content
hash or modification time), not its bytes.

>>> is_url("hf://datasets/openai/gsm8k"), is_url("data/train.jsonl")
(True, False)
>>> hub_url("openai/gsm8k")
'hf://datasets/openai/gsm8k'
"""

from __future__ import annotations

import re
from typing import Any

from curate.errors import ConfigError, InputError, MissingExtraError

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# The package (and curate extra) behind each protocol fsspec does not implement itself.
_PACKAGES: dict[str, tuple[str, str]] = {
    "hf": ("huggingface_hub", "remote"),
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "abfss": ("adlfs", "azure"),
}
# Keys of fsspec's info() that change when a file's content does, most specific first.
_STAMP_KEYS = (
    "ETag",
    "etag",
    "sha256",
    "blob_id",
    "md5Hash",
    "crc32c",
    "LastModified",
    "last_modified",
    "updated",
    "mtime",
    "created",
)


def is_url(path: str) -> bool:
    """Whether ``path`` names a protocol (``s3://...``), so fsspec reads it."""
    return _URL.match(path) is not None and not path.startswith("file://")


def is_hub_id(path: str) -> bool:
    """Whether ``path`` looks like a Hub dataset id, ``org/name``."""
    return _HUB_ID.fullmatch(path) is not None


def hub_url(repo_id: str) -> str:
    """The fsspec URL of a Hub dataset repository."""
    return f"hf://datasets/{repo_id}"


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it."""
    protocol = url.split("://", 1)[0].lower()
    try:
        import fsspec  # type: ignore[import-untyped]
    except ImportError:
        raise MissingExtraError("fsspec", "remote") from None
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError:
        package, extra = _PACKAGES.get(
            protocol, (f"the fsspec implementation of {protocol}://", "remote")
        )
        raise MissingExtraError(package, extra) from None
    except ValueError as e:
        if "not known" in str(e).lower():
            raise ConfigError(
                f"{url}: fsspec knows no protocol {protocol!r}; expected a local path or a URL "
                "such as hf://datasets/org/name, s3://bucket/key, gs://bucket/key"
            ) from None
        raise InputError(f"cannot open: {e}", path=url) from None
    return fs, path


def labeller(fs: Any) -> Any:
    """A function naming a path of ``fs`` as a URL, for errors and manifests."""
    return lambda p: fs.unstrip_protocol(p)


def stamp(fs: Any, path: str) -> tuple[int, str]:
    """(size, a value that changes with the content) of a remote file, from fsspec's info."""
    info = fs.info(path)
    lfs = info.get("lfs") if isinstance(info.get("lfs"), dict) else {}
    found = lfs.get("sha256") or next((info[k] for k in _STAMP_KEYS if info.get(k)), "")
    return int(info.get("size") or 0), str(found)
