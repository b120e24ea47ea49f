"""The dashboard of one run: live loss chart, progress, telemetry, checkpoints and log.

The screen owns the run's state (a :class:`~cockpit.run_state.RunState`) and hands snapshots of it
down to the widgets' reactives. Events come from a thread worker that follows the run with
:class:`~cockpit.client.RunClient` and posts them up in batches (one :class:`EventsReceived` per
~100 ms), so catching up on a long history costs a handful of redraws, not one per event.
Commands (checkpoint, stop, pause/resume) go out from thread workers; whatever goes wrong with them
is a notification, never a crash.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen

from cockpit.client import CommandRefused, EngineUnavailable, RunClient
from cockpit.run_state import RunState
from cockpit.screens.confirm import ConfirmScreen
from cockpit.widgets.checkpoints import CheckpointTable
from cockpit.widgets.key_bar import KeyBar
from cockpit.widgets.log_tail import LogFeed, LogTail
from cockpit.widgets.loss_chart import ChartData, LossChart
from cockpit.widgets.run_header import RunHeader
from cockpit.widgets.stat_panel import StatPanel
from cockpit.widgets.telemetry import TelemetryPanel
from engine.protocol import CONNECTING, DEAD, TERMINAL_STATES, Event, Reply
from engine.rundir import read_status

#: Events gathered for at most this long are posted to the screen as one message.
BATCH_SECONDS = 0.1
#: ... or up to this long while catching up on a backlog (history of a long run).
MAX_BATCH_SECONDS = 0.8

#: A terminal state reached this recently (seconds) is announced with a notification; an older one
#: is history (attaching to a finished run) and is only shown.
_ANNOUNCE_WITHIN_S = 30.0

_COMMAND_WORDS = {
    "checkpoint_now": ("Checkpoint", "Checkpoint requested: the engine saves after the current step."),
    "stop": ("Stop", "Stop requested: the run stops after the current step."),
    "pause": ("Pause", "Pause requested."),
    "resume": ("Resume", "Resume requested."),
}


class EventsReceived(Message):
    """A batch of events, in seq order. ``caught_up``: no more were waiting when it was sent."""

    def __init__(self, events: list[Event], caught_up: bool = True) -> None:
        super().__init__()
        self.events = events
        self.caught_up = caught_up


class IntakeEnded(Message):
    """The event stream ended: the run is over (or following it failed, see ``error``)."""

    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.error = error


class CommandDone(Message):
    """The engine answered a command (``reply``), or it could not be sent (``error``)."""

    def __init__(self, cmd: str, reply: Reply | None, error: BaseException | None) -> None:
        super().__init__()
        self.cmd = cmd
        self.reply = reply
        self.error = error


class OpenCheckpoints(Message):
    """Open the checkpoint viewer of the run in ``run_dir`` (the home and the dashboard post it)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("c", "checkpoint", "Checkpoint"),
        Binding("s", "stop_run", "Stop"),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("v", "checkpoints", "View checkpoints"),
        Binding("q", "app.quit_app", "Detach"),
    ]
    AUTO_FOCUS = "#log"

    def __init__(self, run_dir: Path, pid: int | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.client = RunClient(self.run_dir, pid=pid)
        self.state = RunState(run=self.run_dir.name)
        self.clock = clock
        self._stop_following = threading.Event()
        #: Batches applied so far, and when the last one came (monotonic); for tests and screenshots.
        self.batches = 0
        self.last_batch_at: float | None = None
        #: True once the event stream has ended (run over, or following failed).
        self.intake_done = False
        #: True once the history has been read and the dashboard shows the run as it is now.
        self.caught_up = False
        self._announced_state = self.state.state

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        def titled(widget, title: str):
            widget.border_title = title
            return widget

        yield RunHeader(id="header")
        with Horizontal(id="top"):
            yield titled(LossChart(id="chart"), "Loss")
            with Vertical(id="side"):
                yield titled(StatPanel(id="stats"), "Progress")
                yield titled(TelemetryPanel(id="telemetry"), "Machine")
        with Horizontal(id="bottom"):
            yield titled(CheckpointTable(id="checkpoints"), "Checkpoints")
            yield titled(LogTail(id="log"), "Log")
        yield KeyBar()

    def on_mount(self) -> None:
        self.refresh_view()
        self._start_intake()
        self.set_interval(1.0, self._tick)

    def _start_intake(self) -> None:
        self.run_worker(
            partial(self._intake, self.state.last_seq + 1),
            thread=True,
            name="event-intake",
            group="intake",
            exit_on_error=False,
        )

    def on_unmount(self) -> None:
        self.stop_following()

    def stop_following(self) -> None:
        self._stop_following.set()

    # --- event intake (thread) --------------------------------------------------------------

    def _intake(self, from_seq: int = 0) -> None:
        """Follow the run in a helper thread; post what arrives in ~100 ms batches."""
        q: queue.SimpleQueue = queue.SimpleQueue()
        stop = self._stop_following

        def pump() -> None:
            try:
                for event in self.client.follow(from_seq=from_seq, stop=stop):
                    q.put(event)
            except BaseException as exc:
                q.put(_Failed(exc))
            finally:
                q.put(_END)

        threading.Thread(target=pump, name="cockpit-follow", daemon=True).start()
        error: BaseException | None = None
        ended = False
        window = BATCH_SECONDS
        while not ended and not stop.is_set():
            try:
                item = q.get(timeout=0.25)
            except queue.Empty:
                continue
            batch: list[Event] = []
            deadline = time.monotonic() + window
            drained = False
            while True:
                if item is _END:
                    ended = True
                    break
                if isinstance(item, _Failed):
                    error = item.error
                else:
                    batch.append(item)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = q.get(timeout=remaining)
                except queue.Empty:
                    drained = True
                    break
            if batch:
                self.post_message(EventsReceived(batch, caught_up=drained or ended))
            # Catching up on a long history, events never stop coming within the window: take
            # longer windows (fewer redraws) until the stream is live again.
            window = BATCH_SECONDS if drained else min(MAX_BATCH_SECONDS, window * 2)
        if ended and not stop.is_set():  # the stream ended by itself, not because we left
            self.post_message(IntakeEnded(error))

    def on_events_received(self, message: EventsReceived) -> None:
        message.stop()
        self.state.apply_all(message.events)
        self.batches += 1
        self.last_batch_at = time.monotonic()
        self.caught_up = self.caught_up or message.caught_up
        self.refresh_view()
        self._announce_state()

    def on_intake_ended(self, message: IntakeEnded) -> None:
        message.stop()
        status = read_status(self.run_dir)
        if message.error is not None:
            text = str(message.error) or type(message.error).__name__
            if status.get("alive") and not self.state.terminal:
                # The engine is there but the stream broke: pick it up again where it stopped.
                self.notify(f"{text}\nReconnecting…", title="Event stream interrupted", severity="warning", timeout=5)
                self.set_timer(1.0, self._start_intake)
                return
            self.notify(text, title="Cannot follow the run", severity="error", timeout=10)
        self.intake_done = True
        self.caught_up = True
        if not self.state.terminal and not status.get("alive"):
            final = status.get("state")
            self.state.mark_gone(final if final in TERMINAL_STATES else DEAD)
            self.refresh_view()
            self._announce_state()

    def _announce_state(self) -> None:
        state = self.state.state
        if state == self._announced_state:
            return
        if "paused" in (state, self._announced_state):
            self.refresh_bindings()
        self._announced_state = state
        if not self.state.ended:
            return
        ended = self.state.ended_ts or self.state.last_ts
        if ended is None or self.clock() - ended > _ANNOUNCE_WITHIN_S:
            return  # history: the run was over before we attached
        severity = {"finished": "information", "stopped": "warning"}.get(state, "error")
        self.notify(
            f"The run is {state}. Press q to leave the dashboard.", title=f"Run {state}", severity=severity, timeout=8
        )

    # --- attributes down --------------------------------------------------------------------

    def refresh_view(self) -> None:
        s = self.state
        now = self.clock()
        self.query_one(RunHeader).info = s.header()
        self.query_one(LossChart).data = ChartData(s.revision, s.loss_steps, s.loss_values, s.eval_steps, s.eval_values)
        self.query_one(StatPanel).stats = s.stats(now)
        self.query_one(TelemetryPanel).view = s.telemetry_view()
        self.query_one(CheckpointTable).checkpoints = s.checkpoint_rows()
        self.query_one(LogTail).feed = LogFeed(s.log_total, s.logs)
        if s.eval_steps:
            self.query_one(
                LossChart
            ).border_title = "Loss [$foreground-darken-3]·[/] [$primary-lighten-3]⣿ train[/] [$accent]● eval[/]"

    def _tick(self) -> None:
        if not self.state.terminal and self.state.started_ts is not None:
            self.query_one(StatPanel).stats = self.state.stats(self.clock())

    # --- commands ---------------------------------------------------------------------------

    def action_checkpoint(self) -> None:
        self.send_command("checkpoint_now")

    def action_pause(self) -> None:
        self.send_command("pause")

    def action_resume(self) -> None:
        self.send_command("resume")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # One key, p, pauses a running run and resumes a paused one; the footer names which.
        if action == "pause":
            return self.state.state != "paused"
        if action == "resume":
            return self.state.state == "paused"
        return True

    def action_checkpoints(self) -> None:
        self.post_message(OpenCheckpoints(self.run_dir))

    def action_stop_run(self) -> None:
        if self.state.ended:
            self.notify(f"The run is already {self.state.state}.", severity="warning")
            return

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.send_command("stop")

        self.app.push_screen(
            ConfirmScreen(
                f"Stop {self.state.run or 'this run'}?",
                "Training stops after the current step and the engine exits.\n"
                "Checkpoints already written stay on disk.",
                confirm_label="Stop run",
                cancel_label="Keep running",
            ),
            answered,
        )

    def send_command(self, cmd: str) -> None:
        self.run_worker(
            partial(self._send_blocking, cmd), thread=True, group="commands", name=f"command-{cmd}", exit_on_error=False
        )

    def _send_blocking(self, cmd: str) -> None:
        try:
            reply = self.client.send(cmd)
        except Exception as exc:
            self.post_message(CommandDone(cmd, None, exc))
        else:
            self.post_message(CommandDone(cmd, reply, None))

    def on_command_done(self, message: CommandDone) -> None:
        message.stop()
        word, done_text = _COMMAND_WORDS.get(message.cmd, (message.cmd, f"{message.cmd}: ok"))
        if message.error is None:
            self.notify(done_text, title=word, timeout=4)
            return
        err = message.error
        if isinstance(err, EngineUnavailable):
            state = self.state.state
            why = f"the run is {state}" if state not in (CONNECTING, "running") else "the engine is not reachable"
            self.notify(
                f"{why.capitalize()}; nothing to send the command to.\n{err}",
                title=f"{word}: engine unavailable",
                severity="warning",
                timeout=6,
            )
        elif isinstance(err, CommandRefused):
            self.notify(str(err), title=f"{word}: refused", severity="error", timeout=6)
        else:
            self.notify(f"{type(err).__name__}: {err}", title=f"{word} failed", severity="error", timeout=6)

    def on_checkpoint_table_chosen(self, message: CheckpointTable.Chosen) -> None:
        path = self.run_dir / message.checkpoint.path
        self.app.copy_to_clipboard(str(path))
        self.notify(str(path), title="Checkpoint path copied", timeout=4)
