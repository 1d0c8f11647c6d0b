"""What every command module of the CLI shares: how a curate error ends a command."""

from __future__ import annotations

import typer


def fail(error: Exception) -> typer.Exit:
    """Print ``error`` as ``error: ...`` on stderr; the exit (status 2) to raise."""
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(2)
