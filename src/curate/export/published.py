"""What a published export holds beyond its shards: no local paths, and still its run's.

`curate export` writes ``README.md`` (the card) and ``export.json`` for the machine they are
made on: both can name local absolute paths (the run directory, the source files, a local
model in a stage's configuration). `published_text` is the copy `curate.export.hub.publish`
uploads instead, with every absolute local path made relative (`redact_paths`); the local
files stay as they are.

`stale_export` compares the run stages recorded in ``export.json`` (names and fingerprints)
with the run's manifest as it is now: a run re-run with other settings after the export was
written no longer matches the shards, and `publish` refuses it unless forced.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["REDACTED_FILES", "published_text", "redact_paths", "stale_export"]

REDACTED_FILES = ("README.md", "export.json")
"""The files of an export whose published copies have local paths made relative."""

# An absolute POSIX path: "/" not preceded by a word character, a dot, a slash, a colon or a
# tilde (so no URL, no relative path, no fraction like 1/2), then characters a path holds
# until a space, a quote, a backtick or the punctuation around it in Markdown, JSON and YAML.
# A Markdown escape (``\_``, as the card writes a path in a table) is part of the path.
_ABSOLUTE = re.compile(r"(?<![\w.:/~\\-])/(?:\\.|[^\s'\"`|<>()\[\]{},;*?\\])+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()|#~!${}])")  # what the card escapes (`md_escape`)


def redact_paths(text: str, folder: str | Path, *, home: str | Path | None = None) -> str:
    r"""``text`` with each absolute local path made relative, for publishing ``folder``.

    A path counts when its first part exists on this machine (``/home``, ``/tmp``,
    ``/work``, ...), so a ``/`` in a problem's text is left alone. It becomes, in order:
    relative to ``folder`` when the two share more than their first part (``../run``), else
    ``~/...`` under the home directory, else ``…/NAME`` (its last part only).

    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp()).resolve()
    >>> out = tmp / "runs" / "demo" / "export"
    >>> text = f'{{"path": "{tmp}/runs/demo", "url": "https://x.org/a/b", "q": "1/2"}}'
    >>> redact_paths(text, out, home="/nowhere")
    '{"path": "..", "url": "https://x.org/a/b", "q": "1/2"}'
    >>> redact_paths("model /usr/lib/model-7b, cache ~/.cache", out, home="/nowhere")
    'model …/model-7b, cache ~/.cache'
    >>> redact_paths(f"| {tmp}/runs/my\\_pool.jsonl |", out, home="/nowhere")  # Markdown
    '| ../../my\\_pool.jsonl |'
    """
    root = Path(os.path.abspath(folder))
    home_dir = Path(home if home is not None else Path.home())

    def local(match: re.Match[str]) -> str:
        raw = match.group(0)
        trail = re.search(r"[.:]+$", raw)  # the end of a sentence is not part of the path
        path_text = raw[: trail.start()] if trail else raw
        end = raw[len(path_text) :]
        plain = re.sub(r"\\(.)", r"\1", path_text)
        parts = Path(plain).parts
        if len(parts) < 2 or not Path("/", parts[1]).exists():
            return raw
        path = Path(os.path.normpath(plain))
        common = Path(os.path.commonpath([path, root]))
        if len(common.parts) > 2:
            short = Path(os.path.relpath(path, root)).as_posix()
        elif path == home_dir or home_dir in path.parents:
            short = ("~/" + path.relative_to(home_dir).as_posix()).rstrip("/.")
        else:
            short = f"…/{path.name}"
        return (short if plain == path_text else _MD_SPECIAL.sub(r"\\\1", short)) + end

    return _ABSOLUTE.sub(local, text)


def published_text(folder: str | Path, name: str) -> bytes | None:
    """The bytes `publish` uploads for ``folder/name`` when that file is one of
    `REDACTED_FILES` and holds a local path; ``None`` when the file goes as it is."""
    if name not in REDACTED_FILES:
        return None
    path = Path(folder) / name
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    redacted = redact_paths(text, folder)
    return None if redacted == text else redacted.encode("utf-8")


def stale_export(folder: str | Path) -> tuple[str | None, str | None]:
    """``(mismatch, notice)`` for the export in ``folder`` against its run, as it is now.

    ``mismatch`` says how the run changed since the export was written (a stage re-run with
    other settings, added or removed, the run unfinished); ``notice`` says why no comparison
    was possible (the run is not on this machine, the export records no stages). Both
    ``None``: the export matches its run.
    """
    try:
        manifest = json.loads((Path(folder) / "export.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, "no readable export.json: the export could not be checked against its run"
    run = manifest.get("run") if isinstance(manifest, dict) else None
    if not isinstance(run, dict) or not isinstance(run.get("stages"), list):
        return None, None  # an export that records no run stages (pre-training pages)
    run_dir = Path(str(run.get("path", "")))
    if not run_dir.is_absolute():  # a path relative to the export folder
        run_dir = Path(folder) / run_dir
    try:
        current = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, (
            f"its run {run_dir} is not on this machine (or has no manifest.json), so the "
            "export could not be checked against it"
        )
    return _compare(run["stages"], current, run_dir), None


def _compare(recorded: list[Any], current: dict[str, Any], run_dir: Path) -> str | None:
    def pairs(stages: Any) -> list[tuple[str, str]]:
        good = [s for s in stages or [] if isinstance(s, dict)]
        return [(str(s.get("name")), str(s.get("fingerprint"))) for s in good]

    then, now = pairs(recorded), pairs(current.get("stages"))
    if current.get("status") not in (None, "complete"):
        return f"its run {run_dir} is {current.get('status')} (re-run since the export?)"
    if then == now:
        return None
    changed = [
        name
        for (name, fp), (other, fp2) in zip(then, now, strict=False)
        if (name, fp) != (other, fp2)
    ]
    what = []
    if changed:
        what.append(f"stage {changed[0]} ran again with other settings or inputs")
    if len(now) != len(then):
        what.append(f"the run has {len(now)} stages where the export recorded {len(then)}")
    return f"its run {run_dir} changed since the export was written: " + "; ".join(what)
