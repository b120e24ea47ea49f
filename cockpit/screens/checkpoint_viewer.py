"""The checkpoint viewer of one run: its checkpoints in a table, and what to do with them.

``enter`` opens a checkpoint's detail, ``space`` marks up to two and ``c`` compares them (``o``
picks the second side from another run), ``p`` plots the run's loss with its checkpoints, ``v``
verifies the one under the cursor against its manifest (in a child process; the integrity column
says how it went), ``r`` starts a new run that continues from it (after a confirmation; the run it
came from is left as it is). The list is read in a thread worker, again every few seconds when the run changed (:class:`~cockpit.checkpoint_view.CheckpointSource`),
so a live run's new checkpoints appear.

Work on a checkpoint is a :class:`~cockpit.ckpt_actions.CheckpointAction` run by
``action_checkpoint_action(name)``: it runs in a worker, posts :class:`ActionProgress` and
:class:`ActionFinished` up, and its outcome lands in the status line and a notification.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cockpit.checkpoint_view import CHECKING, FAILED, VERIFIED, CheckpointSource, Side, ViewerSnapshot
from cockpit.ckpt_actions import ACTIONS, ActionOutcome, CheckpointAction, progress_text, run_action
from cockpit.screens.ask_text import AskTextScreen
from cockpit.screens.confirm import ConfirmScreen
from cockpit.widgets.checkpoint_list import CheckpointList, ListView
from cockpit.widgets.key_bar import KeyBar
from engine.checkpoint_index import CheckpointRecord

#: Seconds between looks at the run for new checkpoints (a look that finds nothing new is three stats).
REFRESH_S = 2.0
#: Seconds after which the table is drawn again for its ages even when nothing changed.
AGES_EVERY_S = 30.0


class SnapshotRead(Message):
    def __init__(self, snapshot: ViewerSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ActionProgress(Message):
    """News from an action still running on the checkpoint of ``step``."""

    def __init__(self, action: CheckpointAction, step: int, value: Any) -> None:
        super().__init__()
        self.action, self.step, self.value = action, step, value


class ActionFinished(Message):
    """An action on the checkpoint of ``step`` ended with ``outcome``."""

    def __init__(self, action: CheckpointAction, step: int, outcome: ActionOutcome) -> None:
        super().__init__()
        self.action, self.step, self.outcome = action, step, outcome


class RunResumed(Message):
    """The engine was started again on ``run_dir`` from a checkpoint (``pid``), or could not be (``error``)."""

    def __init__(self, run_dir: Path, pid: int | None, error: str | None) -> None:
        super().__init__()
        self.run_dir, self.pid, self.error = run_dir, pid, error


class CheckpointViewerScreen(Screen):
    BINDINGS = [
        # the labels are short so that every key fits one line at 80 columns
        Binding("enter", "detail", "Open", priority=True),  # over the table's own (hidden) enter
        Binding("space", "mark", "Mark", key_display="␣"),
        Binding("c", "compare", "Diff"),
        Binding("o", "other_run", "Other run", show=False),
        Binding("p", "plot", "Plot"),
        Binding("v", "checkpoint_action('verify')", "Verify"),
        Binding("e", "checkpoint_action('evaluate')", "Eval"),
        Binding("x", "checkpoint_action('export')", "Export"),
        Binding("s", "checkpoint_action('sample')", "Sample"),
        Binding("u", "checkpoint_action('upload')", "Upload"),
        Binding("r", "resume", "Resume"),
        Binding("escape", "back", "Back"),
    ]
    AUTO_FOCUS = "#ckpt-list"

    def __init__(
        self, run_dir: Path, *, clock: Callable[[], float] = time.time, refresh_s: float | None = None
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.clock = clock
        self.refresh_s = REFRESH_S if refresh_s is None else refresh_s
        self.source = CheckpointSource(self.run_dir)
        self.snapshot = ViewerSnapshot()
        #: The marked checkpoints, in the order marked (at most two).
        self.marked: list[Side] = []
        #: step -> integrity (see cockpit.checkpoint_view); absent: not verified.
        self.integrity: dict[int, str] = {}
        #: step -> the ``written`` time of the checkpoint its integrity was found for.
        self._checked_written: dict[int, float] = {}
        self._integrity_rev = 0
        #: The last outcome of each action, by (action name, step): for tests and the status line.
        self.outcomes: dict[tuple[str, int], ActionOutcome] = {}
        self._cancel = threading.Event()
        self._shown_at = float("-inf")
        #: True once the first read of the run is shown.
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(f"Checkpoints of [b]{self.run_dir.name}[/b]", id="viewer-title")
        table = CheckpointList(id="ckpt-list")
        table.border_title = "Checkpoints"
        yield table
        yield Static("", id="viewer-status")
        yield KeyBar()

    def on_mount(self) -> None:
        self.action_refresh()
        self.set_interval(self.refresh_s, self.action_refresh)

    def on_unmount(self) -> None:
        self._cancel.set()
        self.source.close()

    # --- reading the run ----------------------------------------------------------------------

    def action_refresh(self) -> None:
        self._read()
        if self.clock() - self._shown_at >= AGES_EVERY_S:  # nothing new for a while: the ages still move
            self._show()

    @work(thread=True, exclusive=True, group="read-checkpoints", exit_on_error=False)
    def _read(self) -> None:
        snapshot = self.source.read()
        if snapshot is not None:
            self.post_message(SnapshotRead(snapshot))

    def on_snapshot_read(self, message: SnapshotRead) -> None:
        message.stop()
        self.snapshot = message.snapshot
        # A marked checkpoint of this run is described afresh (latest, best); one pruned is no longer marked.
        marked = []
        for side in self.marked:
            if side.run_dir != self.run_dir:
                marked.append(side)
            elif (record := self.snapshot.record(side.record.step)) is not None:
                marked.append(Side(self.run_dir, record))
        self.marked = marked
        # A verdict holds for the files it checked: a checkpoint written again (or pruned) is not verified.
        for step, written in list(self._checked_written.items()):
            record = self.snapshot.record(step)
            if record is None or record.written != written:
                del self._checked_written[step]
                self.integrity.pop(step, None)
        self._show()
        if not self.loaded:
            self.loaded = True
            if not self.snapshot.records:
                self._status("No checkpoints yet: they appear here as the run writes them.")

    def _show(self) -> None:
        self._shown_at = self.clock()
        own = tuple(s.record.step for s in self.marked if s.run_dir == self.run_dir)
        self.query_one(CheckpointList).view = ListView(
            records=self.snapshot.records,
            marked=own,
            integrity=dict(self.integrity),
            integrity_rev=self._integrity_rev,
            now=self._shown_at,
        )

    def _status(self, text: str) -> None:
        self.query_one("#viewer-status", Static).update(text)

    def selected(self) -> CheckpointRecord | None:
        step = self.query_one(CheckpointList).selected_step
        return None if step is None else self.snapshot.record(step)

    def _set_integrity(self, step: int, state: str) -> None:
        self.integrity[step] = state
        if (record := self.snapshot.record(step)) is not None:
            self._checked_written[step] = record.written
        self._integrity_rev += 1
        self._show()

    # --- keys ---------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_detail()

    def action_detail(self) -> None:
        from cockpit.screens.checkpoint_detail import CheckpointDetailScreen

        record = self.selected()
        if record is not None:
            self.app.push_screen(CheckpointDetailScreen(self.run_dir, record, self.integrity.get(record.step)))

    def action_mark(self) -> None:
        record = self.selected()
        if record is None:
            return
        side = Side(self.run_dir, record)
        same = [m for m in self.marked if (m.run_dir, m.record.step) == (self.run_dir, record.step)]
        if same:
            self.marked.remove(same[0])
        else:
            if len(self.marked) == 2:
                self.marked.pop(0)  # the oldest mark makes room: at most two
            self.marked.append(side)
        self._show()
        self._status(self._marks_text())

    def _marks_text(self) -> str:
        if not self.marked:
            return "No checkpoint marked: [b]space[/b] marks up to two, [b]c[/b] compares them."
        names = "  ".join(f"[b]{'AB'[i]}[/b] {s.label}" for i, s in enumerate(self.marked))
        hint = "[b]c[/b] compares them" if len(self.marked) == 2 else "mark one more to compare ([b]o[/b]: another run)"
        return f"Marked: {names} · {hint}"

    def add_side(self, side: Side) -> None:
        """Mark ``side`` (a checkpoint of any run) as the second side of a comparison."""
        if len(self.marked) == 2:
            self.marked.pop()
        if side not in self.marked:
            self.marked.append(side)
        self._show()
        self._status(self._marks_text())

    def action_compare(self) -> None:
        from cockpit.screens.checkpoint_compare import CheckpointCompareScreen

        if len(self.marked) != 2:
            self.notify("Mark two checkpoints with space first.", title="Compare", severity="warning")
            return
        self.app.push_screen(CheckpointCompareScreen(*self.marked))

    def action_other_run(self) -> None:
        from cockpit.screens.checkpoint_pick import CheckpointPickScreen

        def picked(side: Side | None) -> None:
            if side is not None:
                self.add_side(side)

        self.app.push_screen(CheckpointPickScreen(self.run_dir.parent, exclude=self.run_dir), picked)

    def action_plot(self) -> None:
        from cockpit.screens.checkpoint_plot import CheckpointPlotScreen

        selected = self.selected()
        self.app.push_screen(
            CheckpointPlotScreen(self.run_dir, self.snapshot.records, selected.step if selected else None)
        )

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit(None)

    # --- actions on a checkpoint (child process) ----------------------------------------------

    def action_checkpoint_action(self, name: str) -> None:
        record = self.selected()
        action = ACTIONS.get(name)
        if record is None or action is None:
            return
        if self.integrity.get(record.step) == CHECKING and name == "verify":
            return
        question = action.question
        if question is None:
            self._start_action(action, record)
            return

        def answered(answer: str | None) -> None:
            if answer is None or (question.required and not answer):
                return
            self._start_action(replace(action, kwargs={**action.kwargs, **question.argument(answer)}), record)

        default = question.default(self.run_dir, record.step) if question.default else ""
        self.app.push_screen(
            AskTextScreen(f"{action.title} step {record.step:,}: {question.text}", default, question.note), answered
        )

    def _start_action(self, action: CheckpointAction, record: CheckpointRecord) -> None:
        name = action.name
        if name == "verify":
            self._set_integrity(record.step, CHECKING)
        self._status(f"{action.title} step {record.step:,}: running…")
        self.run_worker(
            partial(self._run_action, action, record.step, self.run_dir / record.directory),
            thread=True,
            group=f"action-{name}",
            name=f"{name}-{record.step}",
            exit_on_error=False,
        )

    def _run_action(self, action: CheckpointAction, step: int, ckpt_dir: Path) -> None:
        from cockpit.offload import Cancelled

        def progress(value: Any) -> None:
            self.post_message(ActionProgress(action, step, value))

        try:
            outcome = run_action(action, ckpt_dir, progress, self._cancel)
        except Cancelled:
            return
        self.post_message(ActionFinished(action, step, outcome))

    def on_action_progress(self, message: ActionProgress) -> None:
        message.stop()
        self._status(f"{message.action.title} step {message.step:,}: {escape(progress_text(message.value))}")

    def on_action_finished(self, message: ActionFinished) -> None:
        message.stop()
        action, step, outcome = message.action, message.step, message.outcome
        self.outcomes[(action.name, step)] = outcome
        if action.name == "verify":
            self._set_integrity(step, VERIFIED if outcome.ok else FAILED)
        word = "ok" if outcome.ok else "FAILED"
        details = "".join(f"\n  {line}" for line in outcome.details[: 12 if action.name == "sample" else 3])
        summary = escape(outcome.summary)  # paths, messages and model text are not markup
        self._status(f"{action.title} step {step:,}: [{'green' if outcome.ok else 'red'}]{word}[/]: {summary}")
        self.notify(
            f"{summary}{escape(details)}",
            title=f"{action.title} step {step:,}: {word}",
            severity="information" if outcome.ok else "error",
            timeout=(20 if action.name == "sample" else 6) if outcome.ok else 12,
        )

    # --- resume -------------------------------------------------------------------------------

    def action_resume(self) -> None:
        record = self.selected()
        if record is None:
            return
        ckpt = self.run_dir / record.directory

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self._status(f"Starting a new run from step {record.step:,}…")
                self._resume(ckpt)

        self.app.push_screen(
            ConfirmScreen(
                f"New run from step {record.step:,} of {self.run_dir.name}?",
                f"A new run {self.run_dir.name}-from-{record.step} continues training from\n{record.directory}"
                f"\n(weights, optimizer, schedule, data position); {self.run_dir.name} stays as it is.",
                confirm_label="Start",
                cancel_label="Cancel",
                danger=False,
            ),
            answered,
        )

    @work(thread=True, exclusive=True, group="resume", exit_on_error=False)
    def _resume(self, ckpt: Path) -> None:
        from cockpit.launch import branch_from_checkpoint, wait_until_started
        from engine.config import ConfigError
        from engine.rundir import RunPaths

        try:
            launched = branch_from_checkpoint(ckpt)
        except ConfigError as exc:
            self.post_message(RunResumed(self.run_dir, None, str(exc)))
            return
        code = wait_until_started(launched, 0)
        if code is not None:  # the engine refused the checkpoint: its last line says why
            lines = RunPaths(launched.run_dir).engine_log.read_text(errors="replace").strip().splitlines()
            why = lines[-1].removeprefix("engine: ") if lines else f"the engine exited with {code}"
            shutil.rmtree(launched.run_dir, ignore_errors=True)  # the new run never began: nothing to keep
            self.post_message(RunResumed(self.run_dir, None, why))
            return
        self.post_message(RunResumed(launched.run_dir, launched.pid, None))

    def on_run_resumed(self, message: RunResumed) -> None:
        message.stop()
        if message.error is not None:
            self._status(f"[red]Resume failed[/]: {message.error}")
            self.notify(message.error, title="Resume failed", severity="error", timeout=10)
            return
        self.app.open_run(message.run_dir, message.pid)
