"""The event log: ``events.jsonl``, appended one whole line per event, seqs gapless. Torch-free.

:meth:`EventLog.append` assigns the next ``seq``, appends one line and flushes it: nothing more, so
the training loop never waits on anything but the file. Appends are serialised by a lock (the
telemetry thread emits too).

When ``events.jsonl`` cannot be written (disk full), nothing is torn and no seq is spent: the file
is cut back to its last whole line, the event is held in memory, and every later append first retries
the held ones in order (a seq is given when a line is written, so seqs stay gapless). The failure
is said at once on stderr (``logs/engine.log``) and by :attr:`EventLog.write_error` (the bus puts it in
``status.json``); once writing works again an ``error`` event says since when and why, and how many
events came late (and a ``spillover`` event how many telemetry samples were dropped past
``MAX_UNWRITTEN_EVENTS``). Append never raises for it.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.protocol import Event, encode, make_event

#: Events held in memory while events.jsonl cannot be written; past it telemetry samples are dropped.
MAX_UNWRITTEN_EVENTS = 10_000


def _last_seq_and_truncate(path: Path) -> int:
    """Seq of the last complete line of an existing events file (-1 when none). A partial last
    line, left by a crash in the middle of a write, is cut off."""
    if not path.exists():
        return -1
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            f.truncate(end)
    for line in reversed(data[:end].splitlines()):
        if line.strip():
            try:
                return int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                raise RuntimeError(f"{path}: last line is not a valid event; refusing to append") from None
    return -1


def say(message: str) -> None:
    """One line on stderr (``logs/engine.log``), even when that cannot be written either."""
    try:
        print(f"engine: {message}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class _WriteFailure:
    """events.jsonl could not be written since ``since`` (unix seconds) because of ``error``."""

    __slots__ = ("since", "error", "late", "dropped")

    def __init__(self, error: OSError):
        self.since = time.time()
        self.error = error
        self.late = 0  # held events written since
        self.dropped = 0  # telemetry samples dropped past MAX_UNWRITTEN_EVENTS

    def describe(self) -> str:
        return f"cannot write since {time.strftime('%H:%M:%S', time.localtime(self.since))}: {self.error}"


class EventLog:
    """The append side of one run's ``events.jsonl``; the file itself is the stream readers follow."""

    def __init__(self, path: Path, run_id: str):
        self.path = path
        self.run_id = run_id
        self._lock = threading.Lock()
        self._next_seq = _last_seq_and_truncate(path) + 1
        self._file = open(path, "ab", buffering=0)
        self._size = self._file.seek(0, os.SEEK_END)  # bytes of whole lines in the file
        self._unwritten: collections.deque[Event] = collections.deque()  # events waiting for the file
        self._failure: _WriteFailure | None = None

    @property
    def size(self) -> int:
        """Bytes of whole lines written so far: a reader may read up to here and never see a torn line."""
        return self._size

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(self, type_: str, **payload: Any) -> int | None:
        """Append one event; returns its seq, or None when events.jsonl cannot be written now (the
        event is held and written by a later append). Thread-safe, never raises for a failed write."""
        event = make_event(type_, self.run_id, 0, **payload)  # checked now; its real seq is given when written
        with self._lock:
            self._unwritten.append(event)
            return self._write_unwritten(event)

    def _write_unwritten(self, mine: Event) -> int | None:
        """Write the held events in order, each with the next seq; returns the seq given to
        ``mine``, or None when the file refused an event (it stays held, with every later one).
        Holds self._lock."""
        seq = None
        while self._unwritten:
            event = self._unwritten[0]
            line = encode(event.model_copy(update={"seq": self._next_seq}))
            try:
                self._append(line)
            except OSError as exc:
                self._write_failed(exc)
                return None
            if event is mine:
                seq = self._next_seq
            self._unwritten.popleft()
            self._next_seq += 1
            self._size += len(line)
            if self._failure is not None:
                self._failure.late += 1
                if not self._unwritten:
                    self._write_recovered()
        return seq

    def _append(self, line: bytes) -> None:
        """Write one whole line or, on failure, cut the file back to its last whole line and raise."""
        view = memoryview(line)
        try:
            while view:
                n = self._file.write(view)
                if not n:
                    raise OSError(errno.EIO, "the write made no progress")
                view = view[n:]
        except OSError:
            try:
                os.ftruncate(self._file.fileno(), self._size)
            except OSError as exc:
                say(f"cannot cut {self.path} back to its last whole line: {exc}")
            raise

    def _write_failed(self, exc: OSError) -> None:
        if self._failure is None:
            self._failure = _WriteFailure(exc)
            say(
                f"{self.path}: {self._failure.describe()}; events are held in memory and "
                f"written once it can be (free disk space)"
            )
        if len(self._unwritten) > MAX_UNWRITTEN_EVENTS:
            kept = collections.deque(e for e in self._unwritten if e.type != "telemetry")
            self._failure.dropped += len(self._unwritten) - len(kept)
            self._unwritten = kept

    def _write_recovered(self) -> None:
        failure, self._failure = self._failure, None
        assert failure is not None
        message = (
            f"{self.path} could not be written from "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(failure.since))} to "
            f"{time.strftime('%H:%M:%S')} ({failure.error}); {failure.late} events were written late"
        )
        say(message)
        self._unwritten.append(make_event("error", self.run_id, 0, message=message))
        if failure.dropped:
            self._unwritten.append(make_event("spillover", self.run_id, 0, dropped=failure.dropped))

    @property
    def write_error(self) -> str | None:
        """Why events.jsonl cannot be written right now, or None when it can."""
        failure = self._failure
        return f"{self.path.name}: {failure.describe()}" if failure is not None else None

    def write_held(self) -> None:
        """A last try at the held events (before closing): what the file still refuses is lost, said on stderr."""
        with self._lock:
            if self._unwritten and self._write_unwritten(self._unwritten[-1]) is None:
                say(f"{self.path}: {len(self._unwritten)} events could not be written and are lost")

    def close(self) -> None:
        with self._lock:
            self._file.close()
