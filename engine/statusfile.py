"""``status.json``: the run's last known state, pid and heartbeat, for readers that do not follow the
events (``cockpit runs``, liveness). Torch-free.

The bus thread feeds it every event it forwards (:meth:`StatusFile.observe`) and calls
:meth:`StatusFile.write` each turn: the file is replaced atomically when something that matters
changed (state, checkpoint, the events file's write error) or a heartbeat is due.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text
from engine.protocol import Checkpoint, Hello, Metrics, ProtocolError, Status, decode_event
from engine.rundir import process_start_time

log = logging.getLogger(__name__)


class StatusFile:
    """The run's ``status.json``, kept by the one thread that calls it."""

    def __init__(self, path: Path, run_id: str, pid: int, heartbeat_s: float):
        self.path = path
        self.heartbeat_s = heartbeat_s
        self._fields: dict[str, Any] = {
            "run": run_id,
            "pid": pid,
            "pid_start": process_start_time(pid),
            "state": "starting",
            "step": 0,
            "loss": None,
            "last_checkpoint": None,
            "seq": -1,
            "started_at": time.time(),
        }
        self._dirty = True
        self._last_write = 0.0

    def observe(self, line: bytes, seq: int) -> None:
        """Take in one forwarded event line (``seq``: its seq); what changes the state marks the file due."""
        try:
            event = decode_event(line)
        except ProtocolError:
            return
        st = self._fields
        st["seq"] = seq
        if isinstance(event, Status):
            st["state"], st["step"], st["reason"] = event.state, event.step, event.reason
            self._dirty = True
        elif isinstance(event, Metrics):
            st["step"], st["loss"] = event.step, event.loss
            st["tokens_per_s"], st["eta_s"] = event.tokens_per_s, event.eta_s
        elif isinstance(event, Checkpoint) and event.action == "saved":
            st["last_checkpoint"] = event.path
            self._dirty = True
        elif isinstance(event, Hello):
            st["max_steps"], st["preset"] = event.max_steps, event.preset
            self._dirty = True

    def write(self, error: str | None, force: bool = False) -> None:
        """Replace the file when due (``force``: now); ``error``: why events.jsonl cannot be written, or None."""
        now = time.time()
        if error != self._fields.get("events_error"):
            self._fields["events_error"] = error
            force = True
        if not (force or self._dirty or now - self._last_write >= self.heartbeat_s):
            return
        self._fields["heartbeat"] = now
        try:
            atomic_write_text(self.path, json.dumps(self._fields, indent=1) + "\n", fsync=False)
        except OSError as exc:
            log.warning("could not write %s: %s", self.path, exc)
        self._dirty = False
        self._last_write = now
