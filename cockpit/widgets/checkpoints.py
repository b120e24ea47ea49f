"""The run's checkpoints, newest first: step, why it was written, size on disk, path."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from cockpit.run_state import Checkpoint
from engine import units
from engine.rundir import CHECKPOINTS


def _short(path: str) -> str:
    """``checkpoints/checkpoint-300`` -> ``checkpoint-300`` (they all live in checkpoints/)."""
    return path.removeprefix(f"{CHECKPOINTS}/")


class CheckpointTable(DataTable):
    """Set ``checkpoints`` to redraw; posts :class:`CheckpointTable.Chosen` when a row is picked."""

    DEFAULT_CSS = """
    CheckpointTable {
        height: 1fr;
    }
    """

    class Chosen(Message):
        """The user picked a checkpoint (enter or click on its row)."""

        def __init__(self, checkpoint: Checkpoint) -> None:
            super().__init__()
            self.checkpoint = checkpoint

    checkpoints: reactive[tuple[Checkpoint, ...]] = reactive((), always_update=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False, show_cursor=True)
        self._by_key: dict[str, Checkpoint] = {}

    def on_mount(self) -> None:
        self.add_column(Text("Step", justify="right"), key="step", width=7)
        self.add_column("Reason", key="reason", width=8)
        self.add_column(Text("Size", justify="right"), key="size", width=8)
        self.add_column("Path", key="path", width=18)
        self._rebuild()

    def watch_checkpoints(self) -> None:
        if self.is_mounted and self.columns:
            self._rebuild()

    def _rebuild(self) -> None:
        cursor = self.cursor_row
        self.clear()
        self._by_key.clear()
        latest = next((c.step for c in self.checkpoints if c.action == "saved"), None)
        for c in self.checkpoints:
            key = f"ckpt-{c.step}"
            self._by_key[key] = c
            if c.action == "saved":
                style, reason = ("bold green" if c.step == latest else ""), (c.reason or "")
            elif c.action == "pruned":
                style, reason = "dim strike", "pruned"
            else:
                style, reason = "red", "failed"
            self.add_row(
                Text(f"{c.step:,}", style=style or "", justify="right"),
                Text(reason, style="red" if c.action == "failed" else ("dim" if c.action == "pruned" else "")),
                Text(
                    units.nbytes(c.size_bytes) if c.size_bytes is not None else units.DASH,
                    style=style or "",
                    justify="right",
                ),
                Text(_short(c.path) if c.action != "failed" else (c.error or _short(c.path)), style=style or ""),
                key=key,
            )
        if self.row_count:
            self.move_cursor(row=min(max(cursor, 0), self.row_count - 1), animate=False)
        saved = [c for c in self.checkpoints if c.action == "saved"]
        self.border_subtitle = f"{len(saved)} saved · latest step {saved[0].step:,}" if saved else "none yet"

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        ckpt = self._by_key.get(event.row_key.value or "")
        if ckpt is not None:
            self.post_message(self.Chosen(ckpt))
