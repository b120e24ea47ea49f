"""`cockpit ckpt view [RUN]`: the full-screen checkpoint viewer of a run."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION, find_run_or_exit


def view(
    run: str | None = typer.Argument(None, help="Run directory or name (default: the newest run)."),
    runs_dir: Path = RUNS_DIR_OPTION,
) -> None:
    """Browse a run's checkpoints: detail, compare two, plot, verify, resume (needs a terminal)."""
    run_dir = find_run_or_exit(run, runs_dir)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        fail(f"`cockpit ckpt view` needs a terminal; without one use `cockpit ckpt list {run_dir}`")
    from cockpit.app import make_app

    make_app(run_dir, runs_dir=runs_dir, checkpoints=True).run()


def register(app: typer.Typer) -> None:
    app.command("view")(view)
