"""The run's checkpoints, newest first: step, why it was written, size on disk, path; once the run
uploads, each checkpoint's copies too (``↑ 45% 18.6 MiB``, ``2/2 ✓``, ``✗ failed``: the latest of its
``upload`` events, ``engine.upload_status.upload_cell``), the size dropped where the panel is narrow."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable

from cockpit.run_state import Checkpoint
from engine import units
from engine.rundir import CHECKPOINTS
from engine.upload_status import upload_cell

#: (key, header, width, right-aligned) of each column, in order; "upload" only once the run uploads.
COLUMNS = (
    ("step", "Step", 7, True),
    ("reason", "Reason", 8, False),
    ("upload", "Upload", 14, False),
    ("size", "Size", 8, True),
    ("path", "Path", 18, False),
)
#: Cells below which the upload column is narrow (no bytes) and the size is left out: 80 columns.
WIDE = 45


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
        self._keys: tuple[str, ...] = ()
        self._wide = True

    def on_mount(self) -> None:
        self._layout()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> bool:
        """The columns for the width and the run (see :data:`COLUMNS`), then the rows; False when
        they were already those."""
        uploads = any(c.uploads for c in self.checkpoints)
        wide = self.size.width >= WIDE
        if not uploads:
            keys = ("step", "reason", "size", "path")
        else:
            keys = ("step", "reason", "upload", "size", "path") if wide else ("step", "reason", "upload", "path")
        if keys == self._keys and wide == self._wide:
            return False
        self._keys, self._wide = keys, wide
        self.clear(columns=True)
        for key, header, width, right in COLUMNS:
            if key in keys:
                width = width if key != "upload" or wide else 8
                self.add_column(Text(header, justify="right" if right else "left"), key=key, width=width)
        self._rebuild()
        return True

    def watch_checkpoints(self) -> None:
        if self.is_mounted and self._keys and not self._layout():
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
            cells = {
                "step": Text(f"{c.step:,}", style=style or "", justify="right"),
                "reason": Text(
                    reason, style="red" if c.action == "failed" else ("dim" if c.action == "pruned" else "")
                ),
                "upload": Text(*upload_cell(c.uploads, wide=self._wide)),
                "size": Text(
                    units.nbytes(c.size_bytes) if c.size_bytes is not None else units.DASH,
                    style=style or "",
                    justify="right",
                ),
                "path": Text(
                    _short(c.path) if c.action != "failed" else (c.error or _short(c.path)), style=style or ""
                ),
            }
            self.add_row(*(cells[k] for k in self._keys), key=key)
        if self.row_count:
            self.move_cursor(row=min(max(cursor, 0), self.row_count - 1), animate=False)
        saved = [c for c in self.checkpoints if c.action == "saved"]
        self.border_subtitle = f"{len(saved)} saved · latest step {saved[0].step:,}" if saved else "none yet"

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        ckpt = self._by_key.get(event.row_key.value or "")
        if ckpt is not None:
            self.post_message(self.Chosen(ckpt))
