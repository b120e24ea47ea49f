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
    from engine.rundir import RunPaths
    from engine.upload_now import UploadRefused, upload_now

    run_dir = find_run_or_exit(run, runs_dir)
    paths = RunPaths(run_dir)
    if checkpoint is not None and all_:
        fail("give one checkpoint or --all, not both")
    step = None if checkpoint is None else _step_of(checkpoint)
    try:
        results = upload_now(
            run_dir,
            step=step,
            again=all_ or checkpoint is not None,
            targets=to,
            retries=retries,
            on_event=_print_event,
        )
    except UploadRefused as exc:
        fail(str(exc))
    if not results:
        typer.echo("nothing to upload: every complete checkpoint has a verified copy")
        return
    failed = {k: v for k, v in results.items() if v is not None}
    typer.echo(f"{len(results) - len(failed)} upload(s) verified, {len(failed)} failed")
    if failed:
        for (failed_step, target), error in sorted(failed.items()):
            typer.echo(f"failed: {paths.checkpoint_rel(failed_step)} -> {target}: {error}", err=True)
        raise typer.Exit(1)


def _step_of(ref: str) -> int:
    from engine.rundir import checkpoint_step

    step = int(ref) if ref.isdigit() else checkpoint_step(Path(ref).name)
    if step is None:
        fail(f"{ref}: not a checkpoint; give its step (20) or name (checkpoint-20)")
    return step


def _print_event(type_: str, payload: dict) -> None:
    """A line for each ``log`` and ``upload`` event the upload appends."""
    from engine import units

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
