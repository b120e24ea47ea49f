"""What every command group shares: the one way to report a user's mistake."""

from __future__ import annotations

from typing import NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit (2: the user's input is wrong)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
