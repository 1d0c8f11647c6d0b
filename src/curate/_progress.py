"""One progress bar for every long loop of the library (verification, signatures, embedding).

`progress_bar` returns a `ProgressBar`: a tqdm bar when enabled, else an object that does
nothing, so callers never test whether a bar exists. tqdm is imported only when a bar is
shown, which keeps ``import curate`` light.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class ProgressBar:
    """``update(n)`` and ``close()`` on a tqdm bar, or on nothing; a context manager that closes.

    >>> with progress_bar(3, "demo", enabled=False) as bar:
    ...     bar.update(3)
    >>> bar.shown
    False
    """

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar
        self.shown = bar is not None

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None  # closing twice (a ``with`` block that also closed) is harmless

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def progress_bar(
    total: int, desc: str, *, enabled: bool = True, unit: str = "it", min_total: int = 0
) -> ProgressBar:
    """A progress bar over ``total`` steps, shown only when ``enabled`` and ``total >= min_total``.

    The bar is transient (``leave=False``): it is gone when the work is done, and the run's
    manifest keeps the summary. ``min_total`` spares short loops the flicker of a bar.

    >>> bar = progress_bar(10, "verify", enabled=True, unit="check", min_total=200)
    >>> bar.shown  # 10 < 200: no bar
    False
    >>> bar.update(10); bar.close()
    """
    if not enabled or total < min_total:
        return ProgressBar()
    from tqdm.auto import tqdm  # only here: importing tqdm costs time nobody asked for

    return ProgressBar(tqdm(total=total, desc=desc, unit=unit, leave=False))
