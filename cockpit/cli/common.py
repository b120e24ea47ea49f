"""What every command group shares: the one way to report a user's mistake, and file arguments."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import NoReturn

import typer


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit (2: the user's input is wrong)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def expand_files(patterns: list[str], option: str = "--files") -> list[Path]:
    """Files named by ``patterns`` (globs, ``**`` included, expanded here so quoting works), in order,
    each once; a pattern that names nothing is a usage error."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            if glob.has_magic(pattern):
                fail(f"{option} {pattern}: matches no file")
            fail(f"{option} {pattern}: {'is a directory, not a file' if Path(pattern).is_dir() else 'not found'}")
        found.extend(f for f in files if f not in found)
    return found
