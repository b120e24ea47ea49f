"""Talk to a run: follow its events and send it commands. Torch-free.

``RunClient.follow()`` yields every event of a run (the protocol's models) in ``seq`` order with no
gap and no duplicate, whether the engine is live (socket), finished (``events.jsonl``), or goes away
in between. The socket is preferred for its push latency; the file is the fallback and the source
of truth, tailed from a saved byte offset and woken by filesystem events (see ``event_tail``). A
socket that turns the follower away (an engine that serves no more viewers) leaves it on the file.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from cockpit.event_tail import DirWatch, EventTail
from cockpit.run_state import RunState
from engine.protocol import (
    CONNECTING,
    MAX_LINE_BYTES,
    TERMINAL_STATES,
    Event,
    ProtocolError,
    Reply,
    Status,
    connect,
    decode_event,
    encode,
    make_command,
)
from engine.rundir import RunPaths, pid_alive, read_status
from engine.upload_status import upload_count

log = logging.getLogger(__name__)

#: Seconds between looks at the file when no filesystem event comes (some network filesystems
#: report none), and between liveness checks of the engine.
POLL_S = 1.0
#: Seconds a follower that the socket turned away follows the file alone before it asks again.
REFUSED_RETRY_S = 10.0


class EngineUnavailable(RuntimeError):
    """The run's engine is not reachable (finished, dead, or not started yet)."""


class CommandRefused(RuntimeError):
    """The engine answered a command with an error."""


class SubscribeRefused(ProtocolError):
    """The engine's socket answered ``subscribe`` with an error: the events are in the file."""


_ids = itertools.count(1)


def read_events(path: Path, from_seq: int = 0) -> Iterator[Event]:
    """Complete, valid events of an events file with ``seq >= from_seq``. A malformed line is
    skipped (it cannot come from the engine, which only writes whole lines)."""
    with EventTail(path) as tail:
        for event in tail.read():
            if event.seq >= from_seq:
                yield event


def _terminal(event: Event) -> bool:
    return isinstance(event, Status) and event.state in TERMINAL_STATES


class RunClient:
    def __init__(self, run_dir: str | os.PathLike, pid: int | None = None):
        self.paths = RunPaths(Path(run_dir))
        self.pid = pid  # the engine's pid when the caller launched it (status.json may lag)

    # --- commands -------------------------------------------------------------------------

    def send(self, cmd: str, timeout: float = 5.0) -> Reply:
        """Send one command and return the engine's reply; raises EngineUnavailable or
        CommandRefused."""
        id_ = f"c{os.getpid()}-{next(_ids)}"
        try:
            sock = connect(self.paths.socket, timeout=timeout)
        except OSError as exc:
            raise EngineUnavailable(f"{self.paths.root}: engine is not running ({exc.strerror or exc})") from None
        with sock:
            try:
                sock.sendall(encode(make_command(cmd, id_)))
                buf = b""
                while b"\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise EngineUnavailable(f"{self.paths.root}: engine closed the connection")
                    buf += chunk
            except (TimeoutError, OSError) as exc:
                raise EngineUnavailable(f"{self.paths.root}: no reply from the engine ({exc})") from None
        reply = decode_event(buf.split(b"\n", 1)[0])
        if not isinstance(reply, Reply):
            raise ProtocolError(f"{self.paths.root}: the engine answered {cmd} with a {reply.type} event")
        if not reply.ok:
            raise CommandRefused(reply.error or f"{cmd} refused")
        return reply

    # --- events ---------------------------------------------------------------------------

    def engine_alive(self) -> bool | None:
        """True/False when known, None when the engine has not written status.json yet."""
        if self.paths.status.exists():
            return bool(read_status(self.paths.root).get("alive"))
        if self.pid is not None:
            return pid_alive(self.pid)
        return None

    def follow(
        self, from_seq: int = 0, stop: threading.Event | None = None, poll_s: float = POLL_S, wait_start_s: float = 60.0
    ) -> Iterator[Event]:
        """Yield events from ``from_seq`` on, in order, until the run ends or ``stop`` is set.

        The stream ends after the engine has gone (terminal state reached, or its process died)
        and every event it wrote has been yielded. Without a live socket the file is tailed: each
        byte read once, woken by filesystem events, looked at every ``poll_s`` seconds regardless.
        A socket that refuses the subscription is left alone for ``REFUSED_RETRY_S`` seconds
        meanwhile: the follower reads the history and what comes next from the file.
        """
        stop = stop or threading.Event()
        tail = EventTail(self.paths.events)
        pending: deque[Event] = deque()  # read from the file ahead of the socket, not yielded yet
        watch: DirWatch | None = None
        next_seq = from_seq
        ended = False
        started = time.monotonic()
        socket_after = started  # the socket is not asked before then (it turned us away)

        def from_file() -> Iterator[Event]:
            while pending:
                yield pending.popleft()
            yield from tail.read()

        def catch_up() -> Iterator[Event]:
            """What the file holds past ``next_seq`` (a line the file lacks cannot come later)."""
            nonlocal next_seq, ended
            for event in from_file():
                if event.seq >= next_seq:
                    next_seq = event.seq + 1
                    ended = ended or _terminal(event)
                    yield event

        try:
            while not stop.is_set():
                sock = None
                if time.monotonic() >= socket_after:
                    try:
                        sock = connect(self.paths.socket, timeout=2.0)
                    except OSError:
                        pass
                if sock is not None:
                    try:
                        for event in self._follow_socket(sock, next_seq, stop):
                            if event.seq > next_seq:
                                # Cannot happen with a correct engine; fill from the file to stay gapless.
                                ahead = []
                                for missed in from_file():
                                    if next_seq <= missed.seq < event.seq:
                                        yield missed
                                        next_seq = missed.seq + 1
                                    elif missed.seq > event.seq:
                                        ahead.append(missed)
                                pending.extend(ahead)
                            if event.seq < next_seq:
                                continue
                            yield event
                            next_seq = event.seq + 1
                            ended = ended or _terminal(event)
                    except SubscribeRefused as exc:
                        log.info("%s: %s; following events.jsonl", self.paths.root, exc)
                        socket_after = time.monotonic() + REFUSED_RETRY_S
                # No live channel (not up yet, gone, cut off, or turned away): catch up from the file.
                # The watch starts first, so that a line appended after this read still wakes the wait.
                if watch is None:
                    watch = DirWatch(self.paths.root)
                yield from catch_up()
                alive = self.engine_alive()
                if alive is False or (ended and not self.paths.socket.exists()):
                    yield from catch_up()  # the engine is gone: the rest of what it wrote is in the file
                    return
                if alive is None and time.monotonic() - started > wait_start_s:
                    raise EngineUnavailable(f"{self.paths.root}: the engine never started (no status.json)")
                watch.wait(poll_s, stop)
        finally:
            tail.close()
            if watch is not None:
                watch.close()

    def _follow_socket(self, sock: socket.socket, from_seq: int, stop: threading.Event) -> Iterator[Event]:
        with sock:
            try:
                sock.sendall(encode(make_command("subscribe", f"s{next(_ids)}", from_seq=from_seq)))
                sock.settimeout(0.25)
                buf = b""
                while not stop.is_set():
                    try:
                        chunk = sock.recv(1 << 16)
                    except TimeoutError:
                        continue
                    if not chunk:
                        return
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            event = decode_event(line)
                        except ProtocolError:
                            continue  # not one of ours (a newer engine's type, say): skipped, as in the file
                        if isinstance(event, Reply):
                            if not event.ok:
                                raise SubscribeRefused(f"engine refused subscribe: {event.error}")
                            continue
                        yield event
                    if len(buf) > MAX_LINE_BYTES * 4:
                        raise ProtocolError("engine sent an over-long line")
            except OSError:
                return


def iter_runs(runs_dir: Path) -> list[Path]:
    """Run directories under ``runs_dir`` (those with a run.yaml), newest first."""
    if not runs_dir.is_dir():
        return []
    runs = [p for p in runs_dir.iterdir() if RunPaths(p).is_run_dir()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def summarize_run(run_dir: Path, state: RunState | None = None) -> dict:
    """State, step, last loss and last checkpoint of a run: its events folded by the dashboard's
    own :class:`RunState` (so both agree, a resumed run's redone steps included), and
    ``status.json`` for whether its engine still lives. A loss that is not finite reads None.
    ``state``: the run's events folded already (``RunFolds``); without it they are read now."""
    if state is None:
        state = RunState(run=run_dir.name)
        state.apply_all(read_events(RunPaths(run_dir).events))
    status = read_status(run_dir)
    # no event says yet, or the engine is gone without a final state: status.json says (dead, unknown...)
    gone = not status.get("alive") and not state.terminal
    saved = state.live_checkpoints
    return {
        "name": run_dir.name,
        "path": str(run_dir),
        "state": status["state"] if gone or state.state == CONNECTING else state.state,
        "step": state.step if state.last_seq >= 0 else None,
        "max_steps": state.max_steps,
        "loss": state.loss,
        "last_checkpoint": max(saved, key=lambda c: c.step).path if saved else status.get("last_checkpoint"),
        "alive": bool(status.get("alive")),
        "updated": _last_change(run_dir),
        # checkpoint copies at the upload targets by state: copies, done, uploading, queued, failed
        "uploads": asdict(upload_count(state.uploads)),
    }


class RunFolds:
    """The events of several runs, each folded once and then by what was appended since: for a view
    that summarises runs again every few seconds (the home), instead of reading whole files again."""

    def __init__(self) -> None:
        self._runs: dict[Path, tuple[EventTail, RunState]] = {}

    def state(self, run_dir: Path) -> RunState:
        """The run's events folded up to now (read and fold only what is new)."""
        if run_dir not in self._runs:
            self._runs[run_dir] = (EventTail(RunPaths(run_dir).events), RunState(run=run_dir.name))
        tail, state = self._runs[run_dir]
        state.apply_all(tail.read())
        return state

    def close(self) -> None:
        for tail, _ in self._runs.values():
            tail.close()
        self._runs.clear()


def _last_change(run_dir: Path) -> float | None:
    """When the run last wrote an event (or its config, before the first event): unix seconds."""
    paths = RunPaths(run_dir)
    for path in (paths.events, paths.run_yaml):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return None
