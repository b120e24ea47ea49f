"""`cockpit ckpt plot RUN`: a run's curve (train loss by default, eval losses, checkpoints marked) as a
terminal chart (the dashboard's ``render_chart``) or, with ``--out``, a picture file for reports."""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION, find_run_or_exit


def plot(
    run: str | None = typer.Argument(None, help="Run directory or name (default: the newest run)."),
    out: Path | None = typer.Option(None, "--out", help="Write a picture instead: FILE.png, FILE.svg or FILE.pdf."),
    metric: str = typer.Option("loss", "--metric", help="The metrics field to plot: loss, lr, grad_norm, ..."),
    height: int = typer.Option(0, "--height", help="Terminal chart rows (default: fit the terminal)."),
    runs_dir: Path = RUNS_DIR_OPTION,
) -> None:
    """Plot a run's training loss (or another --metric) over steps, with eval losses and its checkpoints
    marked; a live run is plotted as far as it has got."""
    from cockpit.plot_data import METRICS, read_plot_data

    if metric not in METRICS:
        fail(f"--metric {metric}: unknown; one of: {', '.join(METRICS)}")
    if out is not None:
        from cockpit.plot_file import picture_format

        try:
            picture_format(out)
        except ValueError as exc:
            fail(f"--out {exc}")
        if out.is_dir():
            fail(f"--out {out}: is a directory; give a file name such as {out / 'loss.png'}")
        if not out.parent.is_dir():
            fail(f"--out {out}: the directory {out.parent} does not exist")
    run_dir = find_run_or_exit(run, runs_dir)
    data = read_plot_data(run_dir, metric)
    if out is not None:
        from cockpit.plot_file import write_plot

        write_plot(data, out)
        n = len(data.checkpoint_steps)
        typer.echo(f"wrote {out}: {len(data.steps)} points, {n} checkpoint{'' if n == 1 else 's'}")
        return
    _print_chart(data, height)


def _print_chart(data, height: int) -> None:
    import shutil

    from rich.console import Console
    from rich.text import Text

    from cockpit.widgets.loss_chart import ChartData, render_chart, uses_log_scale

    console = Console()
    size = shutil.get_terminal_size((100, 30))
    width = max(30, min(console.width, size.columns))
    rows = height if height > 0 else max(8, min(size.lines - 4, 30))
    chart = ChartData(
        revision=1,
        steps=data.steps,
        values=data.values,
        eval_steps=data.eval_steps,
        eval_values=data.eval_losses,
        marks=data.checkpoint_steps,
    )
    label = data.metric.replace("_", " ")
    scale = ", log scale" if uses_log_scale(list(data.values) + list(data.eval_losses)) else ""
    span = f"steps {data.steps[0]:,}-{data.steps[-1]:,}" if data.steps else "no steps yet"
    console.print(Text(f"{data.run}: {label} ({span}{scale})", style="bold"))
    for line in render_chart(width, rows, chart, empty_text="no metrics yet"):
        console.print(line, soft_wrap=True)
    legend = Text("  ")
    legend.append("⣿ train", style="cyan")
    if data.eval_steps:
        legend.append("  ● eval loss", style="magenta")
    if data.checkpoint_steps:
        steps = ", ".join(f"{s:,}" for s in data.checkpoint_steps[-8:])
        more = "…, " if len(data.checkpoint_steps) > 8 else ""
        legend.append(f"  ◆ checkpoints ({more}{steps})", style="yellow")
    console.print(legend)
