"""A run's plot as a picture file for reports (`cockpit ckpt plot RUN --out FILE`), drawn with
matplotlib's Agg backend (no display needed): the metric over steps, the held-out losses, the
checkpoints as labelled vertical lines, a title naming the run, and a log y axis when the values span
enough for one (the terminal chart's rule, ``loss_chart.uses_log_scale``).

matplotlib is imported inside :func:`write_plot` only: the cockpit does not pay for it at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from cockpit.plot_data import PlotData

#: The picture formats ``--out`` writes, by file extension.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: Colours of the series (the train curve's is what a reader of the picture looks for).
TRAIN_COLOUR = "#1f77b4"
EVAL_COLOUR = "#d62728"
CHECKPOINT_COLOUR = "#7f7f7f"
#: Above this many checkpoints the vertical lines stay but only every n-th carries a label.
MAX_LABELS = 12


def picture_format(path: str | os.PathLike) -> str:
    """The format of ``path`` by its extension; ValueError naming it and the known ones otherwise."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(
            f"{path}: unknown picture format {ext or '(no extension)'!r}; use one of: {', '.join(FORMATS)}"
        )
    return FORMATS[ext]


def write_plot(data: PlotData, out: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Draw ``data`` into ``out`` (png, svg or pdf by its extension), atomically; returns ``out``."""
    fmt = picture_format(out)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from cockpit.widgets.loss_chart import uses_log_scale
    from engine.atomic import atomic_open

    label = data.metric.replace("_", " ")
    fig = Figure(figsize=(10, 5.5), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    if data.steps:
        ax.plot(data.steps, data.values, color=TRAIN_COLOUR, linewidth=1.6, label=f"train {label}")
    if data.eval_steps:
        ax.plot(
            data.eval_steps,
            data.eval_losses,
            color=EVAL_COLOUR,
            marker="o",
            markersize=5,
            linewidth=1.2,
            label="eval loss",
        )
    if uses_log_scale(list(data.values) + list(data.eval_losses)):
        ax.set_yscale("log")
    every = max(1, -(-len(data.checkpoint_steps) // MAX_LABELS))
    transform = ax.get_xaxis_transform()  # x in data, y in axes fractions: labels sit at the bottom
    for i, step in enumerate(data.checkpoint_steps):
        ax.axvline(step, color=CHECKPOINT_COLOUR, linestyle=":", linewidth=1, label="checkpoint" if i == 0 else None)
        if i % every == 0 or i == len(data.checkpoint_steps) - 1:
            ax.text(
                step,
                0.02,
                f"ckpt {step:,}",
                transform=transform,
                rotation=90,
                va="bottom",
                ha="right",
                fontsize=8,
                color=CHECKPOINT_COLOUR,
            )
    if data.empty:
        ax.text(0.5, 0.5, "no metrics yet", transform=ax.transAxes, ha="center", va="center", color="grey")
    progress = f" (step {data.steps[-1]:,} of {data.max_steps:,})" if data.steps and data.max_steps else ""
    ax.set_title(f"{data.run}: {label}{progress}")
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    ax.grid(True, which="major", alpha=0.3)
    if data.steps or data.eval_steps or data.checkpoint_steps:
        ax.legend(loc="upper right")
    out = Path(out)
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format=fmt)
    return out
