"""Pick a checkpoint of another run (the second side of a comparison): every checkpoint of the runs
beside the viewer's, read in a thread worker. ``enter`` picks, ``escape`` cancels (dismisses None)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from cockpit.checkpoint_view import CheckpointSource, Side
from cockpit.client import iter_runs


class SidesRead(Message):
    def __init__(self, sides: list[Side]) -> None:
        super().__init__()
        self.sides = sides


class CheckpointPickScreen(ModalScreen[Side | None]):
    BINDINGS = [
        Binding("enter", "pick", "Pick", show=False),
        Binding("escape", "cancel", "Cancel", show=False),
    ]
    AUTO_FOCUS = "#pick-table"

    def __init__(self, runs_dir: Path, exclude: Path | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.exclude = Path(exclude).resolve() if exclude is not None else None
        self.sides: list[Side] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Compare with a checkpoint of another run", id="question")
            yield DataTable(id="pick-table", cursor_type="row")
            yield Label("[b]enter[/b] pick · [b]esc[/b] cancel", id="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("run", key="run")
        table.add_column(Text("step", justify="right"), key="step")
        table.add_column(Text("eval", justify="right"), key="eval")
        self._read()

    @work(thread=True, exit_on_error=False)
    def _read(self) -> None:
        sides = []
        for run in iter_runs(self.runs_dir):
            if self.exclude is not None and run.resolve() == self.exclude:
                continue
            source = CheckpointSource(run)
            try:
                records = source.read().records
            finally:
                source.close()
            sides.extend(Side(run, r) for r in reversed(records) if r.complete)
        self.post_message(SidesRead(sides))

    def on_sides_read(self, message: SidesRead) -> None:
        from engine import units

        self.sides = message.sides
        table = self.query_one(DataTable)
        for i, s in enumerate(self.sides):
            table.add_row(
                s.run_dir.name,
                Text(f"{s.record.step:,}", justify="right"),
                Text(units.loss(s.record.eval_loss), justify="right"),
                key=str(i),
            )
        if not self.sides:
            self.query_one("#question", Label).update(f"No other run in {self.runs_dir} has a checkpoint.")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_pick()

    def action_pick(self) -> None:
        row = self.query_one(DataTable).cursor_row
        self.dismiss(self.sides[row] if 0 <= row < len(self.sides) else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
