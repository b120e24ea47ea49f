"""`cockpit ckpt eval` and `cockpit ckpt gate`: score a checkpoint on data; GO / NO-GO against a baseline.

The work is the engine's (``engine.checkpoint_eval.evaluate_checkpoint``, imported when a command
runs: the torch stack loads then, not with the CLI); the decision rule is ``engine.gate``. Each
evaluation of a checkpoint inside a run is stored in the run's ``evals/`` (``engine.eval_store``)
and shows in ``cockpit ckpt list|show``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.ckpt import CKPT_ARGUMENT, JSON_OPTION, resolve_checkpoint
from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION

DATA_OPTION = typer.Option(
    None,
    "--data",
    help="What to score: a .txt or .jsonl file (chat records get the training loss mask), a prepared shard "
    "directory, or a run directory (its held-out split). Default: the checkpoint's run's held-out split.",
)
BATCHES_OPTION = typer.Option(
    None,
    "--batches",
    min=1,
    help="Score only the first N batches (default: the run's train.eval_batches on a held-out split, all of a file).",
)


def _evaluate(ckpt: Path, data: str | Path | None, batches: int | None, made_by: str, quiet: bool):
    """``evaluate_checkpoint`` with a progress line on stderr; a user's mistake ends the command (exit 2)."""
    from engine.checkpoint_eval import evaluate_checkpoint, user_errors

    def progress(windows: tuple[int, int]) -> None:
        done, total = windows
        if not quiet:
            typer.echo(f"\r  scoring {ckpt.name}: {done}/{total} windows", err=True, nl=done >= total)

    try:
        return evaluate_checkpoint(ckpt, data, batches=batches, progress=progress, made_by=made_by)
    except user_errors() as exc:
        fail(str(exc))


def _record_line(label: str, record) -> str:
    from engine import units

    ppl = "--" if record.perplexity is None else f"{record.perplexity:.2f}"
    return (
        f"{label}step {record.step}: eval loss {units.loss(record.loss)}  ppl {ppl}  on {record.data.describe()}, "
        f"{record.tokens:,} tokens in {record.data.windows} windows of {record.data.seq_len} "
        f"({units.duration(record.elapsed_s)})"
    )


def eval_cmd(
    ckpt_ref: str = CKPT_ARGUMENT,
    data: Path | None = DATA_OPTION,
    batches: int | None = BATCHES_OPTION,
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a checkpoint: loss and perplexity (exp(loss)) on the run's held-out split or on --data; stored in the run's evals/."""
    import json

    _, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    record = _evaluate(ckpt, data, batches, "ckpt eval", quiet=as_json)
    if as_json:
        typer.echo(json.dumps({**record.to_json(), "eval_loss": record.loss}, indent=2))
        return
    typer.echo(_record_line("", record))


def _baseline(ref: str, runs_dir: Path) -> tuple[Path | None, dict | None]:
    """(checkpoint, None) or (None, metrics) of a --baseline: a checkpoint reference or a METRICS.json file."""
    from engine.gate import read_metrics_file

    path = Path(ref)
    if path.is_file():
        try:
            return None, read_metrics_file(path)
        except ValueError as exc:
            fail(f"--baseline {exc}")
    _, ckpt = resolve_checkpoint(ref, runs_dir)
    return ckpt, None


def gate_cmd(
    ckpt_ref: str = CKPT_ARGUMENT,
    baseline: str = typer.Option(
        ...,
        "--baseline",
        help="What to beat: a checkpoint (directory, RUN:STEP or RUN), scored on the same data, or a METRICS.json "
        "file with eval_loss and/or perplexity (saved `cockpit ckpt eval --json` output, or a stored evals/*.json).",
    ),
    metric: str = typer.Option("eval_loss", "--metric", help="eval_loss or perplexity (both lower-is-better)."),
    min_improvement: str = typer.Option(
        "5%",
        "--min-improvement",
        help="Relative improvement needed, (baseline - candidate) / baseline: '5%' or 0.05 (the same); "
        "negative tolerates a regression.",
    ),
    data: Path | None = DATA_OPTION,
    batches: int | None = BATCHES_OPTION,
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """GO (exit 0) or NO-GO (exit 1): is the checkpoint better than the baseline by --min-improvement on the same data?"""
    import json

    from engine.gate import METRICS, decide, metric_value, parse_improvement
    from engine.rundir import run_dir_of

    if metric not in METRICS:
        fail(f"--metric {metric!r}: one of {', '.join(METRICS)}")
    try:
        margin = parse_improvement(min_improvement)
    except ValueError as exc:
        fail(f"--min-improvement {exc}")
    _, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    base_ckpt, base_metrics = _baseline(baseline, runs_dir)
    if data is None:  # both on the candidate's held-out split
        data = run_dir_of(ckpt)
        if data is None:
            fail(f"{ckpt}: not inside a run directory, so there is no held-out split; give --data FILE")
    candidate = _evaluate(ckpt, data, batches, "ckpt gate", quiet=as_json)
    base_record = None
    if base_ckpt is not None:
        base_record = _evaluate(base_ckpt, data, batches, "ckpt gate", quiet=as_json)
        base_value, base_name = metric_value(metric, base_record.loss), f"baseline step {base_record.step}"
    else:
        base_value, base_name = base_metrics[metric], f"baseline {Path(baseline).name}"
    if candidate.loss is None:
        fail(f"{ckpt}: nothing was scored (every window is prompt only); give other --data")
    decision = decide(metric, metric_value(metric, candidate.loss), base_value, margin, base_name)
    if as_json:
        out = {
            **decision.to_json(),
            "candidate_eval": candidate.to_json(),
            "baseline_eval": base_record.to_json() if base_record else None,
            "baseline_metrics": base_metrics,
        }
        typer.echo(json.dumps(out, indent=2))
    else:
        typer.echo(_record_line("candidate ", candidate))
        if base_record is not None:
            typer.echo(_record_line("baseline  ", base_record))
        typer.echo(decision.line())
    raise typer.Exit(0 if decision.go else 1)
