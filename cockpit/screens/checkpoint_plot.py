"""The run's loss curve with its eval markers and its checkpoints marked on the step axis
(``cockpit.plot_data.read_plot_data``, the numbers ``cockpit ckpt plot`` draws), and a line naming the
checkpoints, the one selected in the viewer highlighted. ``escape`` goes back to the viewer."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from cockpit.plot_data import PlotData, read_plot_data
from cockpit.widgets.key_bar import KeyBar
from cockpit.widgets.loss_chart import ChartData, LossChart
from engine import units
from engine.checkpoint_index import CheckpointRecord


class PlotRead(Message):
    def __init__(self, data: PlotData) -> None:
        super().__init__()
        self.data = data


def checkpoints_line(records: tuple[CheckpointRecord, ...], selected: int | None) -> str:
    """``◆ checkpoints: 5 · 10 · 12   best eval: step 10 (2.314)``, the selected step highlighted."""
    if not records:
        return "No checkpoints yet."
    steps = " · ".join(f"[reverse]{r.step:,}[/]" if r.step == selected else f"{r.step:,}" for r in records)
    best = next((r for r in records if r.best), None)
    tail = f"   best eval: step {best.step:,} ({units.loss(best.eval_loss)})" if best else ""
    return f"[$warning]◆[/] checkpoints: {steps}{tail}"


class CheckpointPlotScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, run_dir: Path, records: tuple[CheckpointRecord, ...], selected: int | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.records = records
        self.selected = selected
        #: The series drawn; None until read.
        self.data: PlotData | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"Loss of [b]{self.run_dir.name}[/b] and its checkpoints", id="viewer-title")
        chart = LossChart(id="ckpt-chart")
        chart.border_title = "Loss [$primary-lighten-3]⣿ train[/] [$accent]● eval[/] [$warning]◆ checkpoint[/]"
        yield chart
        yield Static(checkpoints_line(self.records, self.selected), id="ckpt-marks")
        yield KeyBar()

    def on_mount(self) -> None:
        self._read()

    @work(thread=True, exit_on_error=False)
    def _read(self) -> None:
        self.post_message(PlotRead(read_plot_data(self.run_dir)))

    def on_plot_read(self, message: PlotRead) -> None:
        d = self.data = message.data
        self.query_one(LossChart).data = ChartData(
            1, d.steps, d.values, d.eval_steps, d.eval_losses, d.checkpoint_steps
        )
