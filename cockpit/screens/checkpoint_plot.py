"""The run's loss curve with its eval markers and its checkpoints marked on the step axis (the one
selected in the viewer highlighted), and a line naming them. ``escape`` goes back to the viewer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from cockpit.checkpoint_view import ViewerSnapshot
from cockpit.widgets.checkpoint_chart import CheckpointChart
from cockpit.widgets.key_bar import KeyBar
from cockpit.widgets.loss_chart import ChartData
from engine import units


def checkpoints_line(snapshot: ViewerSnapshot, selected: int | None) -> str:
    """``◆ checkpoints: 5 · [10] · 12   best eval 10 (2.314)``: the steps marked on the axis."""
    if not snapshot.records:
        return "No checkpoints yet."
    steps = " · ".join(f"[reverse]{r.step:,}[/]" if r.step == selected else f"{r.step:,}" for r in snapshot.records)
    best = next((r for r in snapshot.records if r.best), None)
    tail = f"   best eval: step {best.step:,} ({units.loss(best.eval_loss)})" if best else ""
    return f"[$accent]◆[/] checkpoints: {steps}{tail}"


class CheckpointPlotScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, run: str, snapshot: ViewerSnapshot, selected: int | None = None) -> None:
        super().__init__()
        self.run = run
        self.snapshot = snapshot
        self.selected = selected

    def compose(self) -> ComposeResult:
        yield Static(f"Loss of [b]{self.run}[/b] and its checkpoints", id="viewer-title")
        chart = CheckpointChart(id="ckpt-chart")
        chart.border_title = "Loss [$primary-lighten-3]⣿ train[/] [$accent]● eval  ◆ checkpoint[/]"
        yield chart
        yield Static(checkpoints_line(self.snapshot, self.selected), id="ckpt-marks")
        yield KeyBar()

    def on_mount(self) -> None:
        s = self.snapshot
        chart = self.query_one(CheckpointChart)
        chart.marks = tuple(r.step for r in s.records)
        chart.selected = self.selected
        chart.data = ChartData(s.revision, s.loss_steps, s.loss_values, s.eval_steps, s.eval_values)
