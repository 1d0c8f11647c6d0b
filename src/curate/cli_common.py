"""What every command module of the CLI shares: how a curate error ends a command, how
progress reaches a log, and ``--version``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from curate._progress import progress_mode
from curate.errors import ConfigError

# Libraries below curate that draw their own tqdm bars (transformers, huggingface_hub,
# datasets, TRL, vLLM): in a log these are the switches that stop their carriage returns.
_BAR_SWITCHES = (
    "TQDM_DISABLE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
)


def fail(error: Exception) -> typer.Exit:
    """Print ``error`` as ``error: ...`` on stderr; the exit (status 2) to raise."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)


def setup_output() -> None:
    """Before any command runs: where stderr is not a terminal (a log file, a pipe), switch
    off the tqdm bars of the libraries below curate (curate's own progress is then whole
    lines); unless progress is off (``CURATE_PROGRESS=0``), show curate's log messages at
    INFO (training a toy model, an upload) as plain lines on stderr.

    A variable the user set stays as it is.
    """
    mode = progress_mode(None)
    if mode != "bars":
        for name in _BAR_SWITCHES:
            os.environ.setdefault(name, "1")
    logger = logging.getLogger("curate")
    if mode != "off" and not logger.handlers:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def quiet_logs(quiet: bool) -> None:
    """``--quiet``: curate's INFO messages (see `setup_output`) stay unshown."""
    if quiet:
        logging.getLogger("curate").setLevel(logging.WARNING)


def show_version(value: bool) -> None:
    """The ``--version`` option's callback: print ``curate VERSION`` and stop."""
    if value:
        from curate._version import __version__

        typer.echo(f"curate {__version__}")
        raise typer.Exit()


def require_path(path: Path, what: str) -> None:
    """A `ConfigError` saying that ``path`` does not exist (and what was expected there).

    >>> require_path(Path("/no/such/run"), "a run directory")
    Traceback (most recent call last):
    ...
    curate.errors.ConfigError: /no/such/run does not exist: expected a run directory
    """
    if not path.exists():
        raise ConfigError(f"{path} does not exist: expected {what}")
