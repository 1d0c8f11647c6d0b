"""How the library reports progress: tqdm bars on a terminal, plain lines everywhere else.

Where progress goes depends on where stderr goes (`progress_mode`):

- ``"bars"``: stderr is a terminal, or the code runs in a notebook (Jupyter, Colab): a
  tqdm bar for every long loop, plus a line when a stage starts and ends;
- ``"lines"``: stderr is a file or a pipe (a script under a scheduler, ``2> log``): no
  carriage returns, only whole lines: a line when a stage starts and ends, one every
  `LINE_SECONDS` during a long loop and one when it ends;
- ``"off"``: nothing, when asked (``progress=False``, ``--quiet``) or when the environment
  variable ``CURATE_PROGRESS`` is ``0`` (also ``off``, ``false``, ``no``). ``CURATE_PROGRESS``
  set to ``bars`` or ``lines`` picks that form whatever stderr is.

`progress_bar` returns a `ProgressBar`: a tqdm bar, a line printer or an object that does
nothing, so callers never test which. tqdm is imported only when a bar is shown, which keeps
``import curate`` light.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any, Literal, TextIO

ProgressMode = Literal["bars", "lines", "off"]

ENV = "CURATE_PROGRESS"
"""The environment variable that silences progress (``0``) or picks its form."""

LINE_SECONDS = 30.0
"""In ``"lines"`` mode, a long loop prints a line at most this often (and one when done)."""

_OFF = ("0", "off", "false", "no")


def progress_mode(progress: bool | None = None, stream: TextIO | None = None) -> ProgressMode:
    """The form progress takes: ``"bars"``, ``"lines"`` or ``"off"`` (see the module docs).

    ``progress=False`` is always ``"off"``; ``True`` and ``None`` (the default: ask the
    environment) pick by ``stream`` (default ``sys.stderr``), and ``None`` also lets
    ``CURATE_PROGRESS=0`` silence it.

    >>> import io
    >>> progress_mode(False), progress_mode(True, io.StringIO())
    ('off', 'lines')
    """
    if progress is False:
        return "off"
    wanted = os.environ.get(ENV, "").strip().lower()
    if wanted in _OFF and progress is None:
        return "off"
    if wanted in ("bars", "lines"):
        return "bars" if wanted == "bars" else "lines"
    return "bars" if _interactive(stream if stream is not None else sys.stderr) else "lines"


def _interactive(stream: TextIO) -> bool:
    """Whether ``stream`` shows a live bar: a terminal, or any output of a notebook."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # a closed or odd stream
        return False
    return _in_notebook()


def _in_notebook() -> bool:
    """A Jupyter (or VS Code, Colab) kernel runs this code; IPython is never imported here."""
    if "google.colab" in sys.modules:
        return True
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def note(message: str, *, progress: bool | None = None) -> None:
    """Print one progress line on stderr unless progress is off (see `progress_mode`).

    For what takes a while outside a stage (training a toy model, loading an engine), so a
    log says what the process is doing.
    """
    if progress_mode(progress) != "off":
        print(message, file=sys.stderr, flush=True)


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


class LineProgress:
    """A progress bar as whole lines on a stream: one every ``every`` seconds (default
    `LINE_SECONDS`), one at the end.

    >>> import io
    >>> out = io.StringIO()
    >>> bar = LineProgress(4, "verify", unit="check", every=0.0, stream=out)
    >>> bar.update(1); bar.update(2); bar.update(1); bar.close(); bar.close()
    >>> [line.split(" in ")[0] for line in out.getvalue().splitlines()]
    ['  verify: 1/4 checks (25%)', '  verify: 3/4 checks (75%)', '  verify: 4/4 checks done']
    """

    def __init__(
        self, total: int, desc: str, *, unit: str = "it", every: float | None = None,
        stream: TextIO | None = None,
    ) -> None:  # fmt: skip
        self.total, self.desc, self.unit = total, desc, unit
        self.every = LINE_SECONDS if every is None else every
        self.stream = stream
        self.n = 0
        self.started = self.last = time.monotonic()
        self.closed = False

    def _line(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)

    def _count(self) -> str:
        unit = self.unit
        if self.total != 1 and not unit.endswith("s"):
            unit += "es" if unit.endswith(("ch", "sh", "x")) else "s"
        return f"{self.n:,}/{self.total:,} {unit}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every and self.n < self.total:  # the end has its own line
            self.last = now
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            self._line(f"  {self.desc}: {self._count()}{share} in {now - self.started:.1f}s")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            seconds = time.monotonic() - self.started
            self._line(f"  {self.desc}: {self._count()} done in {seconds:.1f}s")


def progress_bar(
    total: int, desc: str, *, enabled: bool = True, unit: str = "it", min_total: int = 0
) -> ProgressBar:
    """A progress bar over ``total`` steps, shown only when ``enabled`` and ``total >= min_total``.

    On a terminal or in a notebook it is a tqdm bar, transient (``leave=False``): it is gone
    when the work is done, and the run's manifest keeps the summary. Elsewhere (a log file)
    it is a `LineProgress`; ``CURATE_PROGRESS=0`` turns both off. ``min_total`` spares short
    loops the flicker of a bar.

    >>> bar = progress_bar(10, "verify", enabled=True, unit="check", min_total=200)
    >>> bar.shown  # 10 < 200: no bar
    False
    >>> bar.update(10); bar.close()
    """
    if not enabled or total < min_total:
        return ProgressBar()
    mode = progress_mode(None)
    if mode == "off":
        return ProgressBar()
    if mode == "lines":
        return ProgressBar(LineProgress(total, desc, unit=unit))
    from tqdm.auto import tqdm  # only here: importing tqdm costs time nobody asked for

    return ProgressBar(tqdm(total=total, desc=desc, unit=unit, leave=False))
