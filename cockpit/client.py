"""Talk to a run: follow its events and send it commands. Torch-free.

``RunClient.follow()`` yields every event of a run in ``seq`` order with no gap and no duplicate,
whether the engine is live (socket), finished (``events.jsonl``), or goes away in between. The
socket is preferred for its push latency; the file is the fallback and the source of truth.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

from engine.protocol import (
    MAX_LINE_BYTES,
    TERMINAL_STATES,
    ProtocolError,
    connect,
    decode_event,
    encode,
    make_command,
)
from engine.rundir import RunPaths, pid_alive, read_status


class EngineUnavailable(RuntimeError):
    """The run's engine is not reachable (finished, dead, or not started yet)."""


class CommandRefused(RuntimeError):
    """The engine answered a command with an error."""


_ids = itertools.count(1)


def read_events(path: Path, from_seq: int = 0) -> Iterator[dict]:
    """Complete, valid events of an events file with ``seq >= from_seq``. A malformed line is
    skipped (it cannot come from the engine, which only writes whole lines)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                return  # being written right now; the next read gets it whole
            try:
                event = decode_event(line)
            except ProtocolError:
                continue
            if event.get("type") != "reply" and event["seq"] >= from_seq:
                yield event


class RunClient:
    def __init__(self, run_dir: str | os.PathLike, pid: int | None = None):
        self.paths = RunPaths(Path(run_dir))
        self.pid = pid  # the engine's pid when the caller launched it (status.json may lag)

    # --- commands -------------------------------------------------------------------------

    def send(self, cmd: str, timeout: float = 5.0) -> dict:
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
            except (socket.timeout, OSError) as exc:
                raise EngineUnavailable(f"{self.paths.root}: no reply from the engine ({exc})") from None
        reply = decode_event(buf.split(b"\n", 1)[0])
        if not reply.get("ok"):
            raise CommandRefused(reply.get("error") or f"{cmd} refused")
        return reply

    # --- events ---------------------------------------------------------------------------

    def engine_alive(self) -> bool | None:
        """True/False when known, None when the engine has not written status.json yet."""
        if self.paths.status.exists():
            return bool(read_status(self.paths.root).get("alive"))
        if self.pid is not None:
            return pid_alive(self.pid)
        return None

    def follow(self, from_seq: int = 0, stop: threading.Event | None = None,
               poll_s: float = 0.2, wait_start_s: float = 60.0) -> Iterator[dict]:
        """Yield events from ``from_seq`` on, in order, until the run ends or ``stop`` is set.

        The stream ends after the engine has gone (terminal state reached, or its process died)
        and every event it wrote has been yielded.
        """
        stop = stop or threading.Event()
        next_seq = from_seq
        ended = False
        started = time.monotonic()
        while not stop.is_set():
            sock = None
            try:
                sock = connect(self.paths.socket, timeout=2.0)
            except OSError:
                pass
            if sock is not None:
                for event in self._follow_socket(sock, next_seq, stop):
                    if event["seq"] > next_seq:
                        # Cannot happen with a correct engine; fill from the file to stay gapless.
                        for missed in read_events(self.paths.events, next_seq):
                            if missed["seq"] >= event["seq"]:
                                break
                            yield missed
                            next_seq = missed["seq"] + 1
                    if event["seq"] < next_seq:
                        continue
                    yield event
                    next_seq = event["seq"] + 1
                    if event["type"] == "status" and event.get("state") in TERMINAL_STATES:
                        ended = True
            # No live channel (not up yet, gone, or cut off): catch up from the file.
            for event in read_events(self.paths.events, next_seq):
                if event["seq"] != next_seq:
                    break
                yield event
                next_seq += 1
                if event["type"] == "status" and event.get("state") in TERMINAL_STATES:
                    ended = True
            alive = self.engine_alive()
            if alive is False or (ended and not self.paths.socket.exists()):
                # The engine is gone: whatever it wrote is in the file, which we have read.
                for event in read_events(self.paths.events, next_seq):
                    if event["seq"] != next_seq:
                        break
                    yield event
                    next_seq += 1
                return
            if alive is None and time.monotonic() - started > wait_start_s:
                raise EngineUnavailable(f"{self.paths.root}: the engine never started (no status.json)")
            stop.wait(poll_s)

    def _follow_socket(self, sock: socket.socket, from_seq: int, stop: threading.Event) -> Iterator[dict]:
        with sock:
            try:
                sock.sendall(encode(make_command("subscribe", f"s{next(_ids)}", from_seq=from_seq)))
                sock.settimeout(0.25)
                buf = b""
                while not stop.is_set():
                    try:
                        chunk = sock.recv(1 << 16)
                    except socket.timeout:
                        continue
                    if not chunk:
                        return
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = decode_event(line)
                        if event["type"] == "reply":
                            if not event["ok"]:
                                raise ProtocolError(f"engine refused subscribe: {event.get('error')}")
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
    runs = [p for p in runs_dir.iterdir() if (p / "run.yaml").is_file()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def summarize_run(run_dir: Path) -> dict:
    """State, step, last loss and last checkpoint of a run, from status.json (events as fallback)."""
    status = read_status(run_dir)
    summary = {
        "name": run_dir.name,
        "path": str(run_dir),
        "state": status.get("state", "unknown"),
        "step": status.get("step"),
        "max_steps": status.get("max_steps"),
        "loss": status.get("loss"),
        "last_checkpoint": status.get("last_checkpoint"),
    }
    if summary["state"] == "unknown":
        for event in read_events(RunPaths(run_dir).events):
            if event["type"] == "metrics":
                summary["step"], summary["loss"] = event["step"], event["loss"]
            elif event["type"] == "checkpoint" and event["action"] == "saved":
                summary["last_checkpoint"] = event["path"]
    return summary

