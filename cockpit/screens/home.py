"""The home: the runs under ``./runs``, live ones first; Enter opens one, ``v`` its checkpoints,
``n`` starts a new run.

The list is read in a thread worker (each run summarised by ``summarize_run``, as ``cockpit runs``
does, its events folded once and then only what was appended: ``RunFolds``) and re-read every few
seconds, so a run launched elsewhere shows up and a live one's step and loss move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cockpit.client import RunFolds, iter_runs, summarize_run
from cockpit.screens.dashboard import OpenCheckpoints
from cockpit.widgets.key_bar import KeyBar
from engine import units
from engine.upload_status import UploadCount

#: The columns of the list of runs ("uploads" only while some run has uploaded: see ``cockpit runs``).
COLUMNS = ("run", "state", "step", "loss", "last checkpoint", "updated")
#: Seconds between re-reads of the runs.
REFRESH_S = 3.0

_STATE_STYLE = {
    "running": "green",
    "paused": "yellow",
    "finished": "cyan",
    "stopped": "yellow",
    "failed": "red",
    "dead": "red",
}


class RunsRead(Message):
    """The runs' summaries (``cockpit.client.summarize_run``), live first, then newest first."""

    def __init__(self, summaries: list[dict]) -> None:
        super().__init__()
        self.summaries = summaries


class OpenRun(Message):
    """Open the dashboard of the run in ``run_dir``."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class NewRun(Message):
    """Start the new-run wizard."""


class HomeScreen(Screen):
    BINDINGS = [
        Binding("n", "new_run", "New run"),
        Binding("enter", "open_run", "Open", priority=True),  # over the table's own (hidden) enter, so it shows
        Binding("v", "checkpoints", "View checkpoints"),
        Binding("r", "refresh", "Refresh"),
    ]
    AUTO_FOCUS = "#runs"

    def __init__(self, runs_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.clock = clock
        #: Each run's events folded once, then only what is appended (read again every few seconds).
        self.folds = RunFolds()
        #: The runs as last read, in the order shown; None until the first read.
        self.summaries: list[dict] | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"Runs in {self.runs_dir}  [dim]enter open · n new run · r refresh[/dim]", id="home-title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="home-empty")
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(REFRESH_S, self.action_refresh)

    def on_unmount(self) -> None:
        self.folds.close()

    def action_refresh(self) -> None:
        self._read_runs()

    @work(thread=True, exclusive=True, group="read-runs", exit_on_error=False)
    def _read_runs(self) -> None:
        summaries = [summarize_run(run, self.folds.state(run)) for run in iter_runs(self.runs_dir)]
        summaries.sort(key=lambda s: (not s["alive"], -(s["updated"] or 0)))
        self.post_message(RunsRead(summaries))

    def on_runs_read(self, message: RunsRead) -> None:
        self.summaries = message.summaries
        table = self.query_one("#runs", DataTable)
        keep = table.cursor_row
        table.clear(columns=True)  # the columns fit what is shown now, not the widest value ever shown
        uploads = any(s["uploads"]["copies"] for s in self.summaries)
        table.add_columns(*COLUMNS, *(["uploads"] if uploads else []))
        now = self.clock()
        for s in self.summaries:
            step = (
                "--" if s["step"] is None else (f"{s['step']}/{s['max_steps']}" if s["max_steps"] else str(s["step"]))
            )
            style = _STATE_STYLE.get(s["state"], "")
            state = f"[{style}]{s['state']}[/]" if style else s["state"]
            checkpoint = Path(s["last_checkpoint"]).name if s["last_checkpoint"] else "--"
            age = f"{units.duration(now - s['updated'])} ago" if s["updated"] else "--"
            count = UploadCount(**s["uploads"])
            copies = [f"[red]{count.text()}[/]" if count.failed else count.text()] if uploads else []
            table.add_row(s["name"], state, step, units.loss(s["loss"]), checkpoint, age, *copies, key=s["path"])
        if self.summaries:
            table.move_cursor(row=min(keep, len(self.summaries) - 1))
        self.query_one("#home-empty", Static).update(
            "" if self.summaries else f"No runs in {self.runs_dir} yet. Press [b]n[/b] to set up a new run."
        )

    def _selected(self) -> Path | None:
        table = self.query_one("#runs", DataTable)
        if not self.summaries or table.cursor_row < 0:
            return None
        return Path(self.summaries[table.cursor_row]["path"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_run()

    def action_open_run(self) -> None:
        run = self._selected()
        if run is not None:
            self.post_message(OpenRun(run))

    def action_checkpoints(self) -> None:
        run = self._selected()
        if run is not None:
            self.post_message(OpenCheckpoints(run))

    def action_new_run(self) -> None:
        self.post_message(NewRun())
