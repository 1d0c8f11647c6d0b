"""Publishing an export folder to the Hugging Face Hub as a dataset repository.

`publish` sends what `curate export` wrote (``README.md``, ``data/``, ``plots/``,
``export.json``) to a dataset repository with the real `huggingface_hub` client:

1. ``create_repo(repo_type="dataset", exist_ok=True)``, then ``repo_info`` to learn the
   repository's actual visibility (an existing public repository is never made to hold a
   ``private=True`` upload: that is refused, see below);
2. ``create_branch`` when a ``revision`` other than ``main`` is asked for and does not exist;
3. the upload, by one of two paths:

   - ``"commit"`` (ordinary exports): one ``create_commit`` with every file, so a reader
     never sees half an export and the Hub's viewer indexes it once;
   - ``"large"`` (big exports): ``upload_folder``, which in `huggingface_hub` 2.x streams the
     files through Xet storage and commits them in batches; an interrupted upload resumes by
     running the same command again (committed files are skipped, uploaded chunks are
     deduplicated). Older clients upload the folder in one commit on this path.

   `large=None` picks ``"large"`` when the folder holds more than `LARGE_FILES` files or
   more than `LARGE_BYTES` bytes: beyond that a single commit risks timing out and cannot
   resume.

The repository mirrors the export: files under ``data/`` and ``plots/`` on the Hub that the
export no longer has (a shard from an earlier, bigger export) are deleted in the same
upload, because the card's ``data_files`` globs would otherwise load them. Files elsewhere
in the repository (``.gitattributes``, hand-written notes) are left alone.

Hidden files and folders (``.*``) and temporary files (``*.tmp``) are never uploaded.

What is uploaded names no local path: the copies of ``README.md`` and ``export.json`` sent
have every absolute local path (the run directory, source files, local models) made
relative (`curate.export.published`); the files in the folder stay as they are. And it is
still its run's export: when the run that ``export.json`` names has changed since (a stage
re-run with other settings), `publish` refuses unless ``force=True`` (``--force``); when
that run is not on this machine it says it could not check, and goes on.

The token comes from the `token` argument, else from the usual places
(`huggingface_hub.get_token`: the ``HF_TOKEN`` environment variable, then the
``hf auth login`` cache). It is handed to the client and nowhere else: it is not part of
the result, not logged, and an error whose text would contain it (a server that echoes
credentials) has it replaced by ``***`` and is raised without the original chained.

``dry_run=True`` needs no token, no network and not even `huggingface_hub`: it lists what
would be sent.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> _ = (d / "README.md").write_text("---\\nlicense: mit\\n---\\n# Toy\\n")
>>> (d / "data").mkdir()
>>> _ = (d / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1")
>>> r = publish(d, "me/toy", dry_run=True, endpoint="http://127.0.0.1:1")
>>> [f.path for f in r.files], r.total_bytes, r.method
(['README.md', 'data/train-00000-of-00001.parquet'], 31, 'commit')
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from curate._version import __version__
from curate.errors import ConfigError, CurateError, MissingExtraError
from curate.export.published import published_text, stale_export

__all__ = [
    "DEFAULT_ENDPOINT",
    "LARGE_BYTES",
    "LARGE_FILES",
    "PublishError",
    "PublishResult",
    "UploadFile",
    "export_files",
    "publish",
]

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
# Above either limit the resumable, multi-commit path is used (see the module docstring).
LARGE_FILES = 100
LARGE_BYTES = 5 * 1024**3
# Folders the export owns: the Hub copy is made to match them exactly.
SYNCED_DIRS = ("data", "plots")
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

T = TypeVar("T")


class PublishError(CurateError):
    """The Hub refused or failed an upload; the message says which step and why."""


@dataclass(frozen=True)
class UploadFile:
    """One file of an export: its path in the repository (``/``-separated) and its size."""

    path: str
    size: int


@dataclass(frozen=True)
class PublishResult:
    """What `publish` sent (or, for a dry run, would send) and where it landed.

    `private` is the repository's visibility as the Hub reports it after the upload (for a
    dry run: as asked). `deleted` lists the stale files under ``data/`` and ``plots/`` that
    the upload removed. `redacted` names the files sent with local paths made relative
    (``README.md``, ``export.json``); `warnings` what could not be checked, or the run's
    change that ``force=True`` published anyway. There is deliberately no token here.

    >>> r = PublishResult(repo_id="me/toy", revision="main", private=False,
    ...                   endpoint="https://huggingface.co", method="commit", dry_run=True,
    ...                   files=(UploadFile("README.md", 10), UploadFile("data/a.parquet", 2048)))
    >>> r.total_bytes, r.url
    (2058, 'https://huggingface.co/datasets/me/toy')
    >>> print(r.summary())
    dry run: would upload 2 files (2.0 KiB) to dataset me/toy (public), revision main, at https://huggingface.co
      README.md  10 B
      data/a.parquet  2.0 KiB
      total  2058 bytes
    """

    repo_id: str
    revision: str
    private: bool
    endpoint: str
    files: tuple[UploadFile, ...]
    method: Literal["commit", "large"]
    dry_run: bool
    deleted: tuple[str, ...] = ()
    commit_url: str | None = None
    commit_oid: str | None = None
    redacted: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """The summed size of the files."""
        return sum(f.size for f in self.files)

    @property
    def url(self) -> str:
        """The dataset's page on the Hub (at the revision when it is not ``main``)."""
        base = f"{self.endpoint}/datasets/{self.repo_id}"
        return base if self.revision == "main" else f"{base}/tree/{self.revision}"

    def summary(self) -> str:
        """A few lines for people: the files with their sizes, the total, where they go."""
        verb = "dry run: would upload" if self.dry_run else "uploaded"
        visibility = "private" if self.private else "public"
        lines = [
            f"{verb} {len(self.files)} files ({_human(self.total_bytes)}) to dataset "
            f"{self.repo_id} ({visibility}), revision {self.revision}, at {self.endpoint}"
        ]
        lines += [f"  {f.path}  {_human(f.size)}" for f in self.files]
        lines.append(f"  total  {self.total_bytes} bytes")
        if self.redacted:
            lines.append(f"local paths made relative in the uploaded {', '.join(self.redacted)}")
        if self.deleted:
            lines.append(f"deleted {len(self.deleted)} stale files: {', '.join(self.deleted)}")
        if self.commit_url:
            lines.append(f"commit: {self.commit_url}")
        return "\n".join(lines)


def export_files(folder: str | Path) -> tuple[UploadFile, ...]:
    """The files of an export folder that `publish` uploads, sorted by path.

    Hidden files and folders (``.*``) and temporary files (``*.tmp``) are skipped. A folder
    without ``README.md`` or without files under ``data/`` is refused, since it is not an
    export.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> export_files(d)
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: ... has no README.md; ... `curate export RUN_DIR OUT_DIR` first ...
    >>> _ = (d / "README.md").write_text("# x\\n")
    >>> (d / "data").mkdir()
    >>> _ = (d / "data" / "t.parquet").write_bytes(b"1234")
    >>> _ = (d / "data" / "t.parquet.tmp").write_bytes(b"partial")
    >>> _ = (d / ".cache").mkdir(), (d / ".cache" / "x").write_text("")
    >>> [(f.path, f.size) for f in export_files(d)]
    [('README.md', 4), ('data/t.parquet', 4)]
    """
    root = Path(folder)
    hint = "run `curate export RUN_DIR OUT_DIR` first and publish OUT_DIR"
    if not root.is_dir():
        raise ConfigError(f"export folder {str(root)!r} does not exist or is not a folder; {hint}")
    if not (root / "README.md").is_file():
        raise ConfigError(
            f"export folder {str(root)!r} has no README.md; expected the folder `curate export` "
            f"writes (README.md, data/, plots/, export.json): {hint}"
        )
    files: list[UploadFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Pruning here keeps .git/, .cache/ and the like out without walking them.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or name.endswith(".tmp"):
                continue
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            files.append(UploadFile(rel, path.stat().st_size))
    files.sort(key=lambda f: f.path)
    if not any(f.path.startswith("data/") for f in files):
        raise ConfigError(
            f"export folder {str(root)!r} has no files under data/; expected the Parquet shards "
            f"`curate export` writes there: {hint}"
        )
    return tuple(files)


def publish(
    folder: str | Path,
    repo: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    large: bool | None = None,
    commit_message: str | None = None,
    force: bool = False,
) -> PublishResult:
    """Upload an export folder to the dataset repository `repo` on the Hub.

    `repo` is ``namespace/name`` or just ``name`` (the token's own namespace). `revision`
    is a branch (created from ``main`` when missing) or a ``refs/pr/N`` ref; default
    ``main``. `endpoint` defaults to ``HF_ENDPOINT`` or the public Hub. `large` forces the
    upload path (see the module docstring); `None` picks it by size. `force` publishes an
    export whose run has changed since it was written (see the module docstring). Returns a
    `PublishResult`; its `summary()` is what the command line prints.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "README.md").write_text("# Toy\\n")
    >>> (d / "data").mkdir()
    >>> _ = (d / "data" / "train.parquet").write_bytes(b"PAR1")
    >>> r = publish(d, "me/toy", private=True, revision="v1", dry_run=True, large=True)
    >>> r.repo_id, r.private, r.revision, r.method, r.dry_run
    ('me/toy', True, 'v1', 'large', True)
    """
    files = export_files(folder)
    root = Path(folder)
    _check_repo(repo)
    notes = _check_run(root, force)
    payload = {f.path: data for f in files if (data := published_text(root, f.path)) is not None}
    files = tuple(UploadFile(f.path, len(payload[f.path])) if f.path in payload else f
                  for f in files)  # fmt: skip
    rev = revision or "main"
    base = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    total = sum(f.size for f in files)
    if large is None:
        method: Literal["commit", "large"] = (
            "large" if len(files) > LARGE_FILES or total > LARGE_BYTES else "commit"
        )
    else:
        method = "large" if large else "commit"
    if dry_run:
        # Nothing below this line runs: no token lookup (it can reach the network for OIDC or
        # token refresh), no client, no request.
        return PublishResult(
            repo_id=repo,
            revision=rev,
            private=private,
            endpoint=base,
            files=files,
            method=method,
            dry_run=True,
            redacted=tuple(payload),
            warnings=notes,
        )

    try:
        from huggingface_hub import (
            CommitOperationAdd,
            CommitOperationDelete,
            HfApi,
            constants,
            get_token,
        )
    except ImportError as e:
        raise MissingExtraError("huggingface_hub", "export") from e

    if constants.HF_HUB_OFFLINE:
        raise ConfigError(
            "HF_HUB_OFFLINE is set, so the Hugging Face client refuses every request; "
            "unset HF_HUB_OFFLINE to publish, or pass dry_run=True (--dry-run) to list the files"
        )
    secret = token or _call("", repo, "read the token", get_token)
    if not secret:
        raise ConfigError(
            "no Hugging Face token found: set the HF_TOKEN environment variable, run "
            "`hf auth login`, or pass token=...; the token needs write access to "
            f"{repo.split('/')[0] if '/' in repo else 'your namespace'} "
            "(use --dry-run to list the files without one)"
        )
    api = HfApi(endpoint=base, token=secret, library_name="curate", library_version=__version__)

    # `private=None` on creation lets the Hub (or the organization's policy) choose when the
    # user did not ask for privacy; an organization that defaults to private stays private.
    url = _call(
        secret,
        repo,
        "create the repository",
        api.create_repo,
        repo,
        repo_type="dataset",
        private=True if private else None,
        exist_ok=True,
    )
    repo_id = url.repo_id or repo
    info = _call(
        secret, repo_id, "read the repository", api.repo_info, repo_id, repo_type="dataset"
    )
    if private and not info.private:
        raise PublishError(
            f"dataset {repo_id} already exists and is public, but a private upload was asked "
            "for; nothing was uploaded. Make it private first (its settings page on the Hub, or "
            f"HfApi().update_repo_settings({repo_id!r}, private=True, repo_type='dataset')), "
            "or publish without --private"
        )
    if rev != "main" and not rev.startswith("refs/"):
        _call(
            secret,
            repo_id,
            f"create the branch {rev!r}",
            api.create_branch,
            repo_id,
            branch=rev,
            repo_type="dataset",
            exist_ok=True,
        )
    remote = _call(
        secret,
        repo_id,
        "list the files already there",
        api.list_repo_files,
        repo_id,
        repo_type="dataset",
        revision=rev,
    )
    ours = {f.path for f in files}
    stale = tuple(sorted(p for p in remote if p.split("/")[0] in SYNCED_DIRS and p not in ours))
    message = commit_message or f"Upload {len(files)} files with curate {__version__}"
    log.info(
        "publishing %d files (%s) to dataset %s, revision %s, by %s",
        len(files),
        _human(total),
        repo_id,
        rev,
        "one commit" if method == "commit" else "the resumable large-folder upload",
    )
    if method == "commit":
        ops: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationDelete(path_in_repo=p) for p in stale
        ]
        ops += [
            CommitOperationAdd(
                path_in_repo=f.path, path_or_fileobj=payload.get(f.path, root / f.path)
            )
            for f in files
        ]
        commit = _call(
            secret,
            repo_id,
            "upload and commit the files",
            api.create_commit,
            repo_id,
            operations=ops,
            commit_message=message,
            repo_type="dataset",
            revision=rev,
        )
    else:
        commit = _call(
            secret,
            repo_id,
            "upload the folder",
            api.upload_folder,
            repo_id=repo_id,
            folder_path=root,
            repo_type="dataset",
            revision=rev,
            commit_message=message,
            # The same selection as `export_files`: fnmatch's `*` crosses `/`, so `*/.*` is
            # any hidden file or folder below the top.
            ignore_patterns=[".*", "*/.*", "*.tmp", *payload],  # the redacted ones follow
            delete_patterns=[_fnmatch_escape(p) for p in stale] or None,
        )
        if payload:  # the card and export.json without local paths, in a commit of their own
            commit = _call(
                secret,
                repo_id,
                "upload the card and export.json",
                api.create_commit,
                repo_id,
                operations=[CommitOperationAdd(path_in_repo=p, path_or_fileobj=data)
                            for p, data in payload.items()],
                commit_message=message,
                repo_type="dataset",
                revision=rev,
            )  # fmt: skip
    return PublishResult(
        repo_id=repo_id,
        revision=rev,
        private=bool(info.private),
        endpoint=base,
        files=files,
        method=method,
        dry_run=False,
        deleted=stale,
        commit_url=commit.commit_url,
        commit_oid=commit.oid,
        redacted=tuple(payload),
        warnings=notes,
    )


def _check_run(root: Path, force: bool) -> tuple[str, ...]:
    """Refuse an export whose run changed since it was written (unless ``force``); the
    warnings to show (logged here too)."""
    mismatch, notice = stale_export(root)
    if mismatch is not None and not force:
        raise ConfigError(
            f"export {root} no longer matches its run: {mismatch}. Export the run again "
            f"(curate export RUN_DIR {root}) to publish what the run holds now, or pass "
            "force=True (--force) to publish the export as it is"
        )
    notes = tuple(f"export {root}: {text}" for text in (mismatch, notice) if text is not None)
    for text in notes:
        log.warning("warning: %s", text)
    return notes


def _call(
    secret: str, repo: str, what: str, fn: Callable[..., T], *args: object, **kw: object
) -> T:
    """Run one client call; turn its failure into a `PublishError` that never holds the token."""
    try:
        return fn(*args, **kw)
    except CurateError:
        raise
    except Exception as e:  # the client raises many types; all get the same treatment
        error = e
    # Raised outside the `except` block so the original is not attached as context; it is
    # chained as the cause only when no part of its traceback text holds the token.
    leaked = bool(secret) and secret in "".join(traceback.format_exception(error))
    text = str(error).replace(secret, "***") if secret else str(error)
    status = getattr(getattr(error, "response", None), "status_code", None)
    hint = ""
    if status == 401:
        hint = (
            "\nThe Hub rejected the token: check HF_TOKEN or `hf auth login`, or pass another "
            "token; it needs write access."
        )
    elif status == 403:
        hint = f"\nThe token may not write to {repo.split('/')[0]}: use one with write access."
    raise PublishError(
        f"publishing to dataset {repo} failed while trying to {what}: "
        f"{type(error).__name__}: {text}{hint}"
    ) from (None if leaked else error)


def _check_repo(repo: str) -> None:
    parts = repo.split("/")
    if not 1 <= len(parts) <= 2 or not all(_REPO_PART.fullmatch(p) for p in parts):
        raise ConfigError(
            f"repository name {repo!r} is not valid: expected 'namespace/name' or 'name', "
            "each made of letters, digits, '-', '_' and '.', starting with a letter or digit "
            "(for example 'my-org/math-sft')"
        )


def _fnmatch_escape(path: str) -> str:
    # `upload_folder` matches delete patterns with fnmatch; brackets make each special
    # character literal so that only this exact path matches.
    return re.sub(r"([*?\[])", r"[\1]", path)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
