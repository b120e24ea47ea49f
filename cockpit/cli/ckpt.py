"""`cockpit ckpt`: a run's checkpoints: `view` them full-screen (cockpit/cli/ckpt_view.py), `list` them, `show` one,
`verify` one against its manifest, `compare` two, `status`: each one's local and uploaded copies
(cockpit/cli/ckpt_status.py); `export` one (cockpit/cli/ckpt_export.py), `plot` the run
(cockpit/cli/ckpt_plot.py), `eval` one and `gate` it (cockpit/cli/ckpt_eval.py), `sample` one
(cockpit/cli/ckpt_sample.py), `upload` them (cockpit/cli/ckpt_upload.py), `sync` a remote run's checkpoints
here (cockpit/cli/ckpt_sync.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION, find_run_or_exit

ckpt_app = typer.Typer(
    help="A run's checkpoints: view them full-screen, list them, show one, verify, compare, export, evaluate and gate "
    "one, sample from one, plot the run, see each one's copies (status), sync a remote run's checkpoints here.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

CKPT_ARGUMENT = typer.Argument(
    ..., help="A checkpoint directory, RUN:STEP, or RUN (a run directory or name) for its latest checkpoint."
)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def resolve_checkpoint(ref: str, runs_dir: Path) -> tuple[Path | None, Path]:
    """The run directory (None when the checkpoint is outside one) and the checkpoint directory
    ``ref`` names; a bad reference ends the command with ``error: ...``."""
    from engine.checkpoint_index import MANIFEST
    from engine.rundir import RunPaths, checkpoint_step, latest_checkpoint

    path = Path(ref)
    if path.is_dir() and not RunPaths(path).is_run_dir():
        if checkpoint_step(path.name) is None and not (path / MANIFEST).is_file():
            fail(f"{ref}: not a checkpoint directory (no {MANIFEST}); give a checkpoint directory, RUN:STEP or RUN")
        run_dir = path.resolve().parent.parent
        return (run_dir if RunPaths(run_dir).is_run_dir() else None), path
    run_ref, sep, step = ref.rpartition(":")
    if sep and step.isdigit() and not path.exists():
        run_dir = find_run_or_exit(run_ref, runs_dir)
        ckpt = RunPaths(run_dir).checkpoint_dir(int(step))
        if not ckpt.is_dir():
            fail(f"{ref}: no checkpoint of step {step} in {ckpt.parent} (`cockpit ckpt list {run_ref}` lists them)")
        return run_dir, ckpt
    if path.exists() and not path.is_dir():
        fail(f"{ref}: not a checkpoint directory (a file)")
    if not path.exists() and len(path.parts) > 1:
        fail(f"{ref}: no such checkpoint directory or run")
    run_dir = find_run_or_exit(ref, runs_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        fail(f"{ref}: the run {run_dir} has no complete checkpoint yet")
    return run_dir, ckpt


def run_records(run_dir: Path, warn: bool = False):
    """The run's checkpoint index (with its stored evals); ``warn``: name each unreadable eval file on stderr."""
    from cockpit.client import read_events
    from engine.checkpoint_index import list_checkpoints
    from engine.eval_store import read_evals
    from engine.rundir import RunPaths

    stored, problems = read_evals(run_dir)
    if warn:
        for problem in problems:
            typer.echo(f"warning: {problem}", err=True)
    return list_checkpoints(run_dir, read_events(RunPaths(run_dir).events), stored)


def list_cmd(
    run: str | None = typer.Argument(None, help="Run directory or name (default: the newest run)."),
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List a run's checkpoints: step, reason, losses, size, and which is latest and best."""
    import dataclasses
    import json

    run_dir = find_run_or_exit(run, runs_dir)
    records = run_records(run_dir, warn=True)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in records], indent=2))
        return
    if not records:
        typer.echo(f"no checkpoints in {run_dir} yet")
        return
    import time

    from rich.console import Console
    from rich.table import Table

    from engine import units

    table = Table(
        title=f"checkpoints of {run_dir}", title_justify="left", box=None, pad_edge=False, header_style="bold"
    )
    from engine.upload_status import upload_cell

    stored = any(r.stored_evals for r in records)
    uploaded = any(r.uploads for r in records)  # `ckpt status` has each target's copy
    numeric = ("step", "loss", "eval", "ppl", "stored", "size")
    for col in (
        "step",
        "reason",
        "loss",
        "eval",
        "ppl",
        *(["stored"] if stored else []),
        "size",
        "written",
        *(["upload"] if uploaded else []),
        "",
    ):
        table.add_column(col, justify="right" if col in numeric else "left", no_wrap=True)
    for r in records:
        flags = [f for f, on in (("latest", r.latest), ("best", r.best), ("incomplete", not r.complete)) if on]
        table.add_row(
            str(r.step),
            r.reason or "--",
            units.loss(r.train_loss),
            units.loss(r.eval_loss),
            "--" if r.perplexity is None else f"{r.perplexity:.2f}",
            *([units.loss(r.stored_eval_loss) if r.stored_evals else "--"] if stored else []),
            units.nbytes(r.size_bytes),
            time.strftime("%m-%d %H:%M", time.localtime(r.written)),
            *([upload_cell(r.uploads)[0] if r.uploads else "--"] if uploaded else []),
            " ".join(flags),
        )
    Console().print(table)


def read_checkpoint(run_dir: Path | None, ckpt: Path):
    """The manifest, step and index record (None outside a run) of ``ckpt``; an incomplete
    checkpoint ends the command with ``error: ...``."""
    from engine.checkpoint_index import read_manifest
    from engine.rundir import checkpoint_step

    try:
        manifest = read_manifest(ckpt)
    except ValueError as exc:
        fail(f"{exc}; the checkpoint is incomplete")
    step = manifest.get("step", checkpoint_step(ckpt.name))
    record = None
    if run_dir is not None:
        record = next((r for r in run_records(run_dir) if r.step == step), None)
    return manifest, step, record


def show(ckpt_ref: str = CKPT_ARGUMENT, runs_dir: Path = RUNS_DIR_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show one checkpoint: config summary, metrics at its step, and its files with sizes and sha256."""
    import dataclasses
    import json

    from engine.checkpoint_index import config_summary

    run_dir, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    manifest, step, record = read_checkpoint(run_dir, ckpt)
    files = [
        {"path": rel, "size": meta.get("size"), "sha256": meta.get("sha256")} for rel, meta in manifest["files"].items()
    ]
    info = {
        "path": str(ckpt),
        "step": step,
        "config": config_summary(run_dir, ckpt),
        "checkpoint": dataclasses.asdict(record) if record else None,
        "files": files,
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from engine import units

    console = Console()
    console.print(f"[bold]{ckpt}[/]  step {step}")
    console.print("  " + ", ".join(f"{k} {v}" for k, v in info["config"].items()))
    if record:
        ppl = "--" if record.perplexity is None else f"{record.perplexity:.2f}"
        console.print(
            f"  loss {units.loss(record.train_loss)}  eval loss {units.loss(record.eval_loss)}  ppl {ppl}"
            f"  reason {record.reason or '--'}"
        )
        if record.stored_evals:
            ppl = "--" if record.stored_perplexity is None else f"{record.stored_perplexity:.2f}"
            console.print(
                f"  stored evals {record.stored_evals}, newest: eval loss {units.loss(record.stored_eval_loss)}"
                f"  ppl {ppl}  on {record.stored_eval_data}"
            )
    table = Table(title_justify="left")
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    for f in files:
        table.add_row(f["path"], units.nbytes(f["size"]), f["sha256"])
    console.print(table)


def verify(ckpt_ref: str = CKPT_ARGUMENT, runs_dir: Path = RUNS_DIR_OPTION) -> None:
    """Check every file of a checkpoint against the sha256 and size in its manifest (exit 1 if any differs)."""
    from engine.checkpoint_index import read_manifest, verify_checkpoint

    _, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    from engine.safe_path import UnsafePath

    try:
        read_manifest(ckpt)  # a manifest naming a file outside the checkpoint is refused, not checked
    except UnsafePath as exc:
        fail(str(exc))
    except ValueError:
        pass  # missing or unreadable: the verification's own first problem (exit 1)
    problems = verify_checkpoint(ckpt)
    if problems:
        for problem in problems:
            typer.echo(f"FAILED {ckpt}: {problem}")
        raise typer.Exit(1)
    typer.echo(f"ok: {len(read_manifest(ckpt)['files'])} files match ({ckpt})")


def compare(
    a_ref: str = typer.Argument(..., help="The first checkpoint: a directory, RUN:STEP, or RUN for its latest."),
    b_ref: str = typer.Argument(..., help="The second checkpoint, compared with the first (B - A)."),
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Compare two checkpoints (of one run or two): config keys that differ, metric deltas, steps and sizes."""
    import json

    from engine.checkpoint_compare import ComparedCheckpoint, compare_checkpoints

    sides = []
    for ref in (a_ref, b_ref):
        run_dir, ckpt = resolve_checkpoint(ref, runs_dir)
        _, step, record = read_checkpoint(run_dir, ckpt)
        sides.append(ComparedCheckpoint(path=ckpt, step=step, run_dir=run_dir, record=record))
    info = compare_checkpoints(*sides)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from engine import units

    console = Console()
    for side in ("a", "b"):
        console.print(f"[bold]{side.upper()}[/] {info[side]['path']}  step {info[side]['step']}")
    table = Table(title_justify="left")
    for col in ("", "A", "B", "B-A"):
        table.add_column(col, justify="left" if not col else "right")
    for name, m in info["metrics"].items():
        delta = "--" if m["delta"] is None else f"{m['delta']:+.4f}"
        fmt = units.loss if name != "perplexity" else (lambda v: "--" if v is None else f"{v:.2f}")
        table.add_row(name.replace("_", " "), fmt(m["a"]), fmt(m["b"]), delta)
    size = info["size"]
    sign = "+" if size["delta"] >= 0 else ""
    table.add_row("size", units.nbytes(size["a"]), units.nbytes(size["b"]), sign + units.nbytes(size["delta"]))
    console.print(table)
    for title, diff in (("run.yaml", info["config"]), ("config.json", info["model_config"])):
        if not diff:
            console.print(f"{title}: no differences")
            continue
        console.print(f"{title}: {len(diff)} " + ("key differs" if len(diff) == 1 else "keys differ"))
        for key, (va, vb) in diff.items():
            console.print(f"  {key}: {va!r} -> {vb!r}", markup=False)


def register(app: typer.Typer) -> None:
    from cockpit.cli import ckpt_view

    ckpt_view.register(ckpt_app)
    ckpt_app.command("list")(list_cmd)
    ckpt_app.command("show")(show)
    ckpt_app.command("verify")(verify)
    ckpt_app.command("compare")(compare)
    from cockpit.cli.ckpt_status import status_cmd

    ckpt_app.command("status")(status_cmd)
    from cockpit.cli.ckpt_eval import eval_cmd, gate_cmd
    from cockpit.cli.ckpt_export import export
    from cockpit.cli.ckpt_plot import plot

    ckpt_app.command("export")(export)
    ckpt_app.command("plot")(plot)
    ckpt_app.command("eval")(eval_cmd)
    ckpt_app.command("gate")(gate_cmd)
    from cockpit.cli.ckpt_sample import sample

    ckpt_app.command("sample")(sample)
    from cockpit.cli.ckpt_sync import sync

    ckpt_app.command("sync")(sync)

    from cockpit.cli.ckpt_upload import upload

    ckpt_app.command("upload")(upload)
    app.add_typer(ckpt_app, name="ckpt")
