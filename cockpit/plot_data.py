"""What a run's plot shows, folded from its events: one metric over steps, the held-out losses, and
the steps of its checkpoints. Torch-free and pure apart from reading the events file, so `cockpit ckpt
plot` (terminal chart or picture file) and the checkpoint viewer draw the same numbers.

A live run is read as far as it has written (complete lines only); a resumed run that logged a step
twice keeps the later value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cockpit.client import read_events
from engine.protocol import Checkpoint, Eval, Hello, Metrics
from engine.rundir import RunPaths

#: The ``metrics`` event fields that are not a plottable per-step number.
_NOT_PLOTTED = {"v", "type", "run", "seq", "ts", "step", "data_position"}
#: Every metric ``--metric`` accepts: the numeric fields of a ``metrics`` event, in protocol order.
METRICS: tuple[str, ...] = tuple(
    name
    for name, info in Metrics.model_fields.items()
    if name not in _NOT_PLOTTED and ("float" in str(info.annotation) or "int" in str(info.annotation))
)


@dataclass(frozen=True)
class PlotData:
    """One run's series, ready to draw."""

    run: str
    """The run's name (its directory's name)."""
    metric: str
    """The metric of ``steps``/``values`` (one of :data:`METRICS`)."""
    steps: tuple[int, ...]
    """Steps of the ``metrics`` events that carry the metric, ascending."""
    values: tuple[float, ...]
    """The metric at each of ``steps``."""
    eval_steps: tuple[int, ...]
    """Steps of the held-out evaluations, ascending (drawn with the loss only)."""
    eval_losses: tuple[float, ...]
    """The held-out loss at each of ``eval_steps``."""
    checkpoint_steps: tuple[int, ...]
    """Steps of the checkpoints saved and not pruned since, ascending."""
    max_steps: int | None
    """The steps the run was set to take (its ``hello``), None before it said."""

    @property
    def empty(self) -> bool:
        return not self.steps and not self.eval_steps


def read_plot_data(run_dir: str | os.PathLike, metric: str = "loss") -> PlotData:
    """The series of ``run_dir``'s events for ``metric`` (ValueError naming the metrics when unknown)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of: {', '.join(METRICS)}")
    paths = RunPaths(Path(run_dir))
    values: dict[int, float] = {}
    evals: dict[int, float] = {}
    checkpoints: set[int] = set()
    max_steps = None
    events = read_events(paths.events) if paths.events.is_file() else ()
    for event in events:
        if isinstance(event, Metrics):
            value = getattr(event, metric)
            if value is not None:
                values[event.step] = float(value)
            else:
                values.pop(event.step, None)
        elif isinstance(event, Eval) and event.loss is not None:
            evals[event.step] = event.loss
        elif isinstance(event, Checkpoint):
            if event.action == "saved":
                checkpoints.add(event.step)
            elif event.action == "pruned":
                checkpoints.discard(event.step)
        elif isinstance(event, Hello):
            max_steps = event.max_steps
    steps = sorted(values)
    eval_steps = sorted(evals) if metric == "loss" else []
    return PlotData(
        run=paths.run_id,
        metric=metric,
        steps=tuple(steps),
        values=tuple(values[s] for s in steps),
        eval_steps=tuple(eval_steps),
        eval_losses=tuple(evals[s] for s in eval_steps),
        checkpoint_steps=tuple(sorted(checkpoints)),
        max_steps=max_steps,
    )
