"""Follow a run's ``events.jsonl`` without re-reading it. Torch-free.

:class:`EventTail` reads the lines appended since its last read, from a saved byte offset: every
byte of the file is read and decoded once. :class:`DirWatch` wakes a reader when something in the
run directory changes (``watchdog``: inotify on Linux); a slow poll stands in for the changes a
filesystem does not report (some network filesystems).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from engine.protocol import Event, decode_events

log = logging.getLogger(__name__)

#: Bytes read from the file at a time.
CHUNK_BYTES = 1 << 20
#: Watchdog event types that mean the directory's content changed (opening or reading a file,
#: which readers do all the time, is not a change).
_CHANGES = frozenset({"created", "modified", "moved", "deleted", "closed"})


class _QuietStop(logging.Filter):
    """Drops the error watchdog logs when it is stopped in the middle of a read (a harmless race in
    its own shutdown), which would otherwise end every followed run with a stray line on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


_QUIET_STOP = _QuietStop()


class EventTail:
    """The events appended to an events file since the last :meth:`read`. A partial last line (the
    engine is writing it right now) is kept and completed by the next read."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        #: Bytes of the file read so far.
        self.offset = 0
        self._partial = b""
        self._file = None

    def read(self) -> Iterator[Event]:
        """The complete, valid events appended since the last read, in file order. A malformed line
        is skipped: the engine writes whole lines only, so it cannot be one of its events."""
        if self._file is None:
            try:
                self._file = open(self.path, "rb", buffering=0)
            except FileNotFoundError:
                return
        size = os.fstat(self._file.fileno()).st_size
        if size < self.offset:
            # Cut back: an engine restarting after a crash drops the torn line it left (the partial
            # line kept here). Go on from the last complete line.
            self.offset = min(size, self.offset - len(self._partial))
            self._partial = b""
            self._file.seek(self.offset)
        while True:
            data = self._file.read(CHUNK_BYTES)
            if not data:
                return
            self.offset += len(data)
            data = self._partial + data
            end = data.rfind(b"\n") + 1
            self._partial = data[end:]
            yield from decode_events(data[:end].splitlines())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EventTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DirWatch:
    """Wakes :meth:`wait` when something in ``directory`` changes. Without a working watchdog
    (no inotify left, directory missing) :meth:`wait` just waits: the caller's poll goes on."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._changed = threading.Event()
        self._observer = None
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            changed = self._changed

            class _Handler(FileSystemEventHandler):
                def on_any_event(self, event) -> None:
                    if event.event_type in _CHANGES:
                        changed.set()

            logging.getLogger("watchdog.observers.inotify").addFilter(_QUIET_STOP)
            observer = Observer()
            observer.schedule(_Handler(), str(self.directory), recursive=False)
            observer.daemon = True
            observer.start()
            self._observer = observer
        except Exception as exc:
            log.debug("not watching %s (%s); polling", self.directory, exc)

    @property
    def watching(self) -> bool:
        return self._observer is not None

    def wait(self, timeout: float, stop: threading.Event | None = None, slice_s: float = 0.25) -> bool:
        """Wait until a change, ``stop``, or ``timeout`` seconds; True when a change woke it."""
        remaining = timeout
        while remaining > 0 and not (stop is not None and stop.is_set()):
            step = min(slice_s, remaining)
            if self._changed.wait(step):
                self._changed.clear()
                return True
            remaining -= step
        return False

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(2.0)
            self._observer = None

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
