"""`cockpit run CONFIG`: start a run and watch it (dashboard, --headless lines, or --detach)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from cockpit.cli.common import fail


def run(
    config: str = typer.Argument(..., help="Config file, or the name of a shipped config (demo)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default: <runs_dir>/<name>-<time>)."),
    headless: bool = typer.Option(False, "--headless", help="Print progress lines instead of the dashboard; exit with the run's result."),
    detach: bool = typer.Option(False, "--detach", help="Start the run, print its directory, and return."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key: --set train.lr=1e-3 (repeatable)."),
) -> None:
    """Start a training run. The engine runs in its own session and keeps training when the
    cockpit closes; `cockpit attach` re-opens it."""
    from engine.config import ConfigError
    from cockpit.launch import new_run_dir, prepare_config, spawn_engine

    if headless and detach:
        fail("--headless and --detach exclude each other")
    try:
        config_path, cfg = prepare_config(config, set_)
        directory = new_run_dir(cfg, config_path, run_dir)
    except ConfigError as exc:
        fail(str(exc))
    launched = spawn_engine(directory)
    if detach:
        typer.echo(str(directory))
        return
    if headless:
        _headless(launched)
        return
    from cockpit.cli.runs import open_dashboard

    open_dashboard(directory, pid=launched.pid)


def _headless(launched) -> None:
    from cockpit import headless

    typer.echo(f"run {launched.run_dir} (engine pid {launched.pid}); log: {launched.run_dir / 'logs' / 'engine.log'}")
    try:
        code = headless.follow(launched.run_dir, pid=launched.pid)
    except KeyboardInterrupt:
        typer.echo(f"\ndetached; the engine keeps training (pid {launched.pid}).\n"
                   f"  watch: cockpit attach {launched.run_dir}\n  stop:  cockpit stop {launched.run_dir}")
        raise typer.Exit(130)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run)
