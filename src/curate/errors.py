"""The few exceptions `curate` raises.

Every error says what was received, what was expected and, where it can, how
to fix it. Errors about input data name the file, the row (1-based line for
text formats, 0-based row for columnar ones) and the field.
"""

from __future__ import annotations

from pathlib import Path


class CurateError(Exception):
    """Base class of every error raised on purpose by `curate`."""


class InputError(CurateError):
    """Bad input data: a malformed line, a missing column, a wrong type, an empty file.

    Attributes name the place of the fault so that tools can point at it.

    >>> e = InputError("not valid JSON", path="a.jsonl", line=3, field=None)
    >>> str(e)
    'a.jsonl, line 3: not valid JSON'
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.row = row
        self.field = field
        self.message = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(CurateError):
    """A recipe, stage or option is configured wrongly."""


class RunError(CurateError):
    """A run directory is missing, incomplete or inconsistent."""


class MissingExtraError(CurateError, ImportError):
    """An optional dependency is not installed; the message has the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is needed for this feature but is not installed; "
            f"install it with: pip install 'curate[{extra}]'"
        )
