"""Commands about existing runs: `runs` lists them, `attach` opens one, `stop` ends one."""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.common import fail

RUNS_DIR_OPTION = typer.Option(Path("runs"), "--runs-dir", help="Where runs live.")


def find_run_or_exit(ref: str | None, runs_dir: Path) -> Path:
    """The run directory ``ref`` names (a path or a run name; None: the newest run), or exit 2 saying why."""
    from cockpit.launch import find_run
    from engine.config import ConfigError

    try:
        return find_run(ref, runs_dir)
    except ConfigError as exc:
        fail(str(exc))


def open_dashboard(run_dir: Path, pid: int | None = None) -> None:
    from cockpit.app import make_app
    from engine.protocol import UNKNOWN
    from engine.rundir import read_status

    make_app(run_dir, pid=pid).run()
    status = read_status(run_dir)
    if status.get("alive") or (pid is not None and status.get("state") in (UNKNOWN, "starting", "running")):
        typer.echo(
            f"detached; the engine keeps training (pid {status.get('pid') or pid}).\n"
            f"  re-attach: cockpit attach {run_dir}"
        )


def attach(
    run: str | None = typer.Argument(None, help="Run directory or name (default: the newest run)."),
    runs_dir: Path = RUNS_DIR_OPTION,
) -> None:
    """Open the dashboard of a live or finished run, history included."""
    open_dashboard(find_run_or_exit(run, runs_dir))


def runs(
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List runs with state, step, last loss, last checkpoint and, where a run uploads, its copies' state."""
    import json

    from cockpit.client import iter_runs, summarize_run
    from engine import units
    from engine.protocol import DEAD
    from engine.upload_status import UploadCount

    summaries = [summarize_run(r) for r in iter_runs(runs_dir)]
    if as_json:
        typer.echo(json.dumps(summaries, indent=2))
        return
    if not summaries:
        typer.echo(f"no runs in {runs_dir} (start one with `cockpit run demo`)")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {runs_dir}", title_justify="left")
    for col, justify in (
        ("run", "left"),
        ("state", "left"),
        ("step", "right"),
        ("loss", "right"),
        ("last checkpoint", "left"),
        *([("uploads", "left")] if any(s["uploads"]["copies"] for s in summaries) else []),
    ):
        table.add_column(col, justify=justify)
    colors = {"running": "green", "finished": "cyan", "stopped": "yellow", "failed": "red", DEAD: "red"}
    for s in summaries:
        step = "--" if s["step"] is None else (f"{s['step']}/{s['max_steps']}" if s["max_steps"] else str(s["step"]))
        state = s["state"]
        uploads = UploadCount(**s["uploads"])
        table.add_row(
            s["name"],
            f"[{colors.get(state, 'white')}]{state}[/]",
            step,
            units.loss(s["loss"]),
            s["last_checkpoint"] or "--",
            *([_uploads_text(uploads)] if len(table.columns) > 5 else []),
        )
    Console().print(table)


def _uploads_text(uploads) -> str:
    """The uploads cell of ``cockpit runs``: ``3/3 uploaded``, ``1 failed · 2/3 uploaded`` in red, ``--`` without."""
    if not uploads.copies:
        return "--"
    return f"[red]{uploads.text()}[/]" if uploads.failed else uploads.text()


def stop(
    run: str | None = typer.Argument(None, help="Run directory or name (default: the newest run)."),
    runs_dir: Path = RUNS_DIR_OPTION,
) -> None:
    """Ask a live run to stop gracefully: finish the step, save a checkpoint, exit."""
    from cockpit.client import CommandRefused, EngineUnavailable, RunClient

    run_dir = find_run_or_exit(run, runs_dir)
    try:
        RunClient(run_dir).send("stop")
    except (EngineUnavailable, CommandRefused) as exc:
        fail(str(exc))
    typer.echo(f"stop requested: {run_dir} will save a checkpoint and exit")


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("attach")(attach)
    app.command("stop")(stop)
