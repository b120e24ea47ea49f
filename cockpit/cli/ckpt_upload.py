"""`cockpit ckpt upload RUN [CKPT|--all] [--to URL]`: copy a run's checkpoints to its upload targets (or
``--to``), verified, in the foreground: the engine's uploader (engine.uploads), its queue
(``uploads/queue.json``) and its ``upload`` events, appended to the run's ``events.jsonl``.

A live run is refused: its engine uploads its own checkpoints (config ``upload``), and one process at a
time writes the queue and the events; this command holds the run's lock while it works, so no engine
starts meanwhile. Exit 0 when every copy verified, 1 when some failed (each named), 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION, find_run_or_exit


def upload(
    run: str = typer.Argument(..., help="The run: a run directory or name."),
    checkpoint: str | None = typer.Argument(
        None,
        help="One checkpoint: its step or name (checkpoint-<step>). Default: every complete checkpoint "
        "whose copy is not verified yet.",
    ),
    all_: bool = typer.Option(
        False, "--all", help="Every complete checkpoint; verified copies are checked again and repaired if changed."
    ),
    to: list[str] = typer.Option(
        [], "--to", metavar="URL", help="Upload to this fsspec URL instead of the run's upload.targets (repeatable)."
    ),
    retries: int | None = typer.Option(
        None, "--retries", min=0, help="Tries after a failed file (default: upload.retries)."
    ),
    runs_dir: Path = RUNS_DIR_OPTION,
) -> None:
    """Upload a run's checkpoints to its targets (or --to URL), verified, with progress lines."""
    from engine.config import ConfigError, read_run_config
    from engine.eventlog import EventLog
    from engine.rundir import RunLock, RunLocked, RunPaths
    from engine.transfer import check_target
    from engine.uploads import Uploader

    run_dir = find_run_or_exit(run, runs_dir)
    paths = RunPaths(run_dir)
    if checkpoint is not None and all_:
        fail("give one checkpoint or --all, not both")
    try:
        cfg = read_run_config(run_dir)
    except ConfigError as exc:
        fail(str(exc))
    for url in to:
        try:
            check_target(url)
        except ValueError as exc:
            fail(f"--to {exc}")
    targets = list(to) or cfg.upload.targets
    if not targets:
        fail(f"{paths.run_yaml}: the run has no upload.targets; give one with --to URL")
    try:
        lock = RunLock(run_dir)
    except RunLocked as exc:
        who = f"engine pid {exc.pid}" if exc.pid else "an engine"
        fail(
            f"{run_dir}: the run is live ({who}): its engine uploads its own checkpoints (upload.targets); "
            "run this once it has ended"
        )
    try:
        try:
            events = EventLog(paths.events, paths.run_id)
        except (OSError, RuntimeError) as exc:
            fail(f"{paths.events}: cannot append the upload events: {exc}")
        uploader = Uploader(paths, targets, cfg.upload.retries if retries is None else retries, _Printer(events.append))
        steps = uploader.local_steps()
        if checkpoint is not None:
            step = _step_of(checkpoint)
            if step not in steps:
                fail(
                    f"{checkpoint}: no complete checkpoint of step {step} in {paths.checkpoints} "
                    f"(`cockpit ckpt list {run}` lists them)"
                )
            steps = [step]
        uploader.start(steps, background=False, again=all_ or checkpoint is not None)
        if not uploader.pending():
            typer.echo("nothing to upload: every complete checkpoint has a verified copy at " + ", ".join(targets))
            return
        uploader.run_all()
    finally:
        lock.release()
    failed = {k: v for k, v in uploader.results.items() if v is not None}
    done = len(uploader.results) - len(failed)
    typer.echo(f"{done} upload(s) verified, {len(failed)} failed")
    if failed:
        for (step, target), error in sorted(failed.items()):
            typer.echo(f"failed: {paths.checkpoint_rel(step)} -> {target}: {error}", err=True)
        raise typer.Exit(1)


def _step_of(ref: str) -> int:
    from engine.rundir import checkpoint_step

    step = int(ref) if ref.isdigit() else checkpoint_step(Path(ref).name)
    if step is None:
        fail(f"{ref}: not a checkpoint; give its step (20) or name (checkpoint-20)")
    return step


class _Printer:
    """The uploader's ``emit``: appends to the run's events and prints a line per upload event."""

    def __init__(self, append):
        self.append = append

    def __call__(self, type_: str, **payload) -> None:
        from engine import units

        self.append(type_, **payload)
        if type_ == "log":
            typer.echo(f"[{payload['level']}] {payload['message']}", err=payload["level"] != "info")
            return
        if type_ != "upload":
            return
        head = f"{payload['path']} -> {payload['target']}: {payload['action']}"
        if payload["action"] == "failed":
            typer.echo(f"{head}: {payload.get('error')}", err=True)
        else:
            typer.echo(f"{head} {units.bytes_pair(payload.get('bytes_done'), payload.get('bytes_total'))}")
