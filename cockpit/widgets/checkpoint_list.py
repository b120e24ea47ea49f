"""The checkpoint viewer's table: one row per checkpoint of a run, newest first.

Set ``view`` (a :class:`ListView`: the records, which are marked, each one's integrity, and the
time the ages are counted from) to redraw; the row keys are the steps (``str(step)``). The upload
column (``2/2 ✓``, ``↑ 45%``, ``queued``, ``✗ failed``: ``engine.upload_status.upload_cell``) shows
once the run has uploaded anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import DataTable

from cockpit.checkpoint_view import CHECKING, FAILED, NOT_VERIFIED, VERIFIED
from engine import units
from engine.checkpoint_index import CheckpointRecord
from engine.upload_status import upload_cell

#: (key, header, width, right-aligned) of each column.
COLUMNS = (
    ("mark", "", 1, False),
    ("step", "step", 6, True),
    ("reason", "reason", 8, False),
    ("loss", "loss", 6, True),
    ("eval", "eval", 6, True),
    ("ppl", "ppl", 6, True),
    ("age", "written", 11, True),
    ("size", "size", 8, True),
    ("integrity", "integrity", 12, False),
    ("upload", "upload", 8, False),
    ("flags", "", 11, False),
)

#: Columns left out below :data:`WIDE` cells (the detail pane shows them): the table fits 80 columns.
NARROW_DROPS = frozenset({"ppl", "age", "size"})
#: Columns shown only when some checkpoint of the run has an upload.
UPLOAD_COLUMNS = frozenset({"upload"})
WIDE = 96

_INTEGRITY_STYLE = {VERIFIED: "green", FAILED: "bold red", CHECKING: "yellow", NOT_VERIFIED: "dim"}


@dataclass(frozen=True)
class ListView:
    records: tuple[CheckpointRecord, ...] = ()
    #: The marked steps, in the order marked (A, then B).
    marked: tuple[int, ...] = ()
    #: step -> NOT_VERIFIED | CHECKING | VERIFIED | FAILED (absent: not verified).
    integrity: dict[int, str] = field(default_factory=dict, compare=False, hash=False)
    #: Integrity revision: changes whenever ``integrity`` does (it alone is compared).
    integrity_rev: int = 0
    now: float = 0.0


def perplexity(value: float | None) -> str:
    return units.DASH if value is None else f"{value:.2f}"


def _eval_cell(from_run: str, stored: str, no_run_eval: bool) -> Text:
    """The run's own eval at the step; without one, the newest stored eval (``ckpt eval``, a gate)
    marked ``*`` (the detail says what data it scored)."""
    if no_run_eval and stored != units.DASH:
        return Text(stored + "*", style="italic", justify="right")
    return Text(from_run + " ", justify="right")


def age(now: float, written: float) -> str:
    return f"{units.duration(now - written)} ago" if now >= written else units.DASH


class CheckpointList(DataTable):
    view: reactive[ListView] = reactive(ListView, always_update=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._keys: tuple[str, ...] = ()

    def on_mount(self) -> None:
        self._layout()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> bool:
        """The columns that fit the width (see :data:`NARROW_DROPS`) and the run (see
        :data:`UPLOAD_COLUMNS`), then the rows; False when the columns were already those."""
        narrow = self.size.width < WIDE
        uploads = any(r.uploads for r in self.view.records)
        keys = tuple(
            c[0] for c in COLUMNS if not (narrow and c[0] in NARROW_DROPS) and (uploads or c[0] not in UPLOAD_COLUMNS)
        )
        if keys == self._keys:
            return False
        self._keys = keys
        keep = self.selected_step
        self.clear(columns=True)
        for key, header, width, right in COLUMNS:
            if key in keys:
                self.add_column(Text(header, justify="right" if right else "left"), key=key, width=width)
        self._rebuild(keep)
        return True

    def watch_view(self) -> None:
        if self.is_mounted and self._keys and not self._layout():
            self._rebuild()

    @property
    def selected_step(self) -> int | None:
        """The step of the row under the cursor; None when there are no rows."""
        if not self.row_count or not self.columns:
            return None
        key, _ = self.coordinate_to_cell_key((self.cursor_row, 0))
        return int(key.value)

    def _rebuild(self, keep: int | None = None) -> None:
        keep = self.selected_step if keep is None else keep
        view = self.view
        self.clear()
        for r in reversed(view.records):
            mark = "AB"[view.marked.index(r.step)] if r.step in view.marked else ""
            state = view.integrity.get(r.step, NOT_VERIFIED)
            flags = " ".join(f for f, on in (("best", r.best), ("latest", r.latest), ("partial", not r.complete)) if on)
            style = "bold green" if r.latest else ""
            cells = {
                "mark": Text(mark, style="bold reverse"),
                "step": Text(f"{r.step:,}", style=style, justify="right"),
                "reason": Text(r.reason or units.DASH),
                "loss": Text(units.loss(r.train_loss), justify="right"),
                "eval": _eval_cell(units.loss(r.eval_loss), units.loss(r.stored_eval_loss), r.eval_loss is None),
                "ppl": _eval_cell(perplexity(r.perplexity), perplexity(r.stored_perplexity), r.eval_loss is None),
                "age": Text(age(view.now, r.written), justify="right"),
                "size": Text(units.nbytes(r.size_bytes), justify="right"),
                "integrity": Text(state, style=_INTEGRITY_STYLE.get(state, "")),
                "upload": Text(*upload_cell(r.uploads)),
                "flags": Text(flags, style="bold yellow" if r.best else ("red" if not r.complete else "")),
            }
            self.add_row(*(cells[k] for k in self._keys), key=str(r.step))
        if keep is not None:
            rows = [r.step for r in reversed(view.records)]
            if keep in rows:
                self.move_cursor(row=rows.index(keep), animate=False)
        self.border_subtitle = (
            f"{len(view.records)} checkpoint{'s' if len(view.records) != 1 else ''}" if view.records else "none yet"
        )
