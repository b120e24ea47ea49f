"""`cockpit ckpt status RUN`: where each checkpoint of a run has copies. The local one (present with its
manifest, incomplete, pruned; ``--verify`` hashes it against the manifest) and one per upload target, in
the state the run's ``upload`` events leave it (queued, uploading, done and verified, failed with the
reason), with its bytes. Checkpoints pruned locally still show while an upload event names them: their
remote copy may be the only one. A report: exit 0 (``ckpt verify`` is the check that exits 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cockpit.cli.ckpt import JSON_OPTION
from cockpit.cli.runs import RUNS_DIR_OPTION, find_run_or_exit

if TYPE_CHECKING:  # `cockpit --help` loads no pydantic: the protocol is imported when the command runs
    from engine.upload_status import UploadCopy

#: The local copy's state: on disk with its manifest, on disk without one (never finished), deleted
#: by retention, gone for another reason; with ``--verify``: matches its manifest or not.
PRESENT, INCOMPLETE, PRUNED, MISSING, VERIFIED, FAILED = (
    "present",
    "incomplete",
    "pruned",
    "missing",
    "verified",
    "FAILED",
)


@dataclass(frozen=True)
class CheckpointCopies:
    """One checkpoint's copies: the local one and one per upload target."""

    step: int
    directory: str
    """Relative to the run directory (``checkpoints/checkpoint-<step>``)."""
    local: str
    """present | incomplete | pruned | missing; with ``--verify``: verified | FAILED."""
    problems: tuple[str, ...]
    """What ``--verify`` found wrong (empty otherwise)."""
    uploads: tuple[UploadCopy, ...]


def checkpoint_copies(run_dir: Path, verify: bool = False) -> list[CheckpointCopies]:
    """Every checkpoint of the run on disk or named by an upload event, oldest first."""
    from cockpit.client import read_events
    from engine.checkpoint_index import list_checkpoints, verify_checkpoint
    from engine.protocol import Checkpoint
    from engine.rundir import RunPaths, checkpoint_step
    from engine.upload_status import UploadFold

    events = list(read_events(RunPaths(run_dir).events))
    fold = UploadFold()
    rows = []
    for r in list_checkpoints(run_dir, events, stored=[], uploads=fold):
        local, problems = (PRESENT if r.complete else INCOMPLETE), ()
        if verify and r.complete:
            problems = tuple(verify_checkpoint(run_dir / r.directory))
            local = FAILED if problems else VERIFIED
        rows.append(CheckpointCopies(r.step, r.directory, local, problems, r.uploads))
    on_disk = {r.directory for r in rows}
    pruned = {e.path for e in events if isinstance(e, Checkpoint) and e.action == "pruned"}
    for path in fold.paths():
        step = checkpoint_step(Path(path).name)
        if path not in on_disk and step is not None:
            rows.append(CheckpointCopies(step, path, PRUNED if path in pruned else MISSING, (), fold.copies(path)))
    return sorted(rows, key=lambda c: c.step)


def _upload_state(copy: UploadCopy) -> str:
    from engine import units
    from engine.upload_status import UPLOADING

    if copy.state == UPLOADING and copy.fraction is not None:
        return f"uploading {units.percent(100 * copy.fraction)}"
    return copy.state


def status_cmd(
    run: str | None = typer.Argument(None, help="Run directory or name (default: the newest run)."),
    runs_dir: Path = RUNS_DIR_OPTION,
    verify: bool = typer.Option(False, "--verify", help="Hash each local checkpoint against its manifest (slower)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show each checkpoint's copies: the local one (present, pruned, verified with --verify) and each upload
    target's (queued, uploading, done, failed with the reason), with bytes."""
    import json

    run_dir = find_run_or_exit(run, runs_dir)
    rows = checkpoint_copies(run_dir, verify=verify)
    if as_json:
        typer.echo(json.dumps({"run": str(run_dir), "checkpoints": [asdict(r) for r in rows]}, indent=2))
        return
    if not rows:
        typer.echo(f"no checkpoints in {run_dir} yet")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from engine import units

    colors = {VERIFIED: "green", FAILED: "bold red", PRUNED: "dim", MISSING: "red", INCOMPLETE: "yellow"}
    states = {"done": "green", "failed": "bold red", "uploading": "yellow", "queued": "dim"}
    table = Table(title=f"copies of the checkpoints of {run_dir}", title_justify="left", box=None, pad_edge=False)
    for col, justify in (("step", "right"), ("local", "left"), ("target", "left"), ("upload", "left")):
        table.add_column(col, justify=justify, no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold")
    for r in rows:
        local = f"[{colors.get(r.local, '')}]{r.local}[/]" if r.local in colors else r.local
        if r.problems:
            local += f" ({len(r.problems)} problem{'s' if len(r.problems) != 1 else ''})"
        for i, c in enumerate(r.uploads or (None,)):
            head = (str(r.step), local) if i == 0 else ("", "")
            if c is None:
                table.add_row(*head, "--", "--", "", "")
                continue
            table.add_row(
                *head,
                escape(c.target),
                f"[{states.get(c.state, '')}]{_upload_state(c)}[/]",
                units.bytes_pair(c.bytes_done, c.bytes_total) if c.bytes_done is not None else "--",
                escape(c.error or ""),
            )
    console = Console()
    console.print(table)
    for r in rows:
        for problem in r.problems:
            console.print(f"FAILED {r.directory}: {problem}", markup=False)
    if not any(r.uploads for r in rows):
        console.print(
            "no uploads: the run has no upload targets (upload.targets), or none has started "
            "(`cockpit ckpt upload RUN` sends them)",
            markup=False,
        )
