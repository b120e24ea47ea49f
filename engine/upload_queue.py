"""The upload queue of a run: ``uploads/queue.json``, one entry per checkpoint x target with its
state (queued, uploading, done, failed), bytes and last error. Torch-free.

The file is the queue's memory across processes: a restarted or resumed engine, or ``cockpit ckpt
upload``, reads it and carries on with what is not done. It is replaced atomically at each change
(engine.atomic), so a crash leaves the old state or the new. ``done`` means the copy at the target was
verified against the checkpoint's manifest (engine.transfer.copy_checkpoint); an entry found
``uploading`` by a new process was interrupted and is sent again (intact files are skipped).

Only one process writes it at a time: the engine that holds the run's lock, or ``cockpit ckpt upload``
holding the same lock while no engine runs. Targets are stored as configured (config refuses URLs
with credentials, engine.transfer.check_target).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Literal

from engine.atomic import atomic_write_text
from engine.rundir import RunPaths

#: The queue's file inside ``uploads/``.
QUEUE_FILE = "queue.json"
VERSION = 1

State = Literal["queued", "uploading", "done", "failed"]


@dataclass(frozen=True)
class UploadEntry:
    """One checkpoint's copy at one target."""

    step: int
    """The checkpoint's step (``checkpoints/checkpoint-<step>``)."""
    target: str
    """The target URL as configured (no credentials in it)."""
    state: State
    """queued | uploading | done (verified at the target) | failed (``error`` says why)."""
    bytes_done: int = 0
    """Bytes at the target so far (all of them once done)."""
    bytes_total: int = 0
    """Bytes of the checkpoint's files (its manifest's sizes)."""
    error: str | None = None
    """Why the last try failed (state failed)."""
    updated: float = 0.0
    """Unix time of the last change."""


class UploadQueue:
    """The entries of ``uploads/queue.json``, kept in memory and written through at each change.
    Thread-safe (the upload thread writes, the training thread reads for pruning)."""

    def __init__(self, paths: RunPaths):
        self.paths = paths
        self.path = paths.uploads / QUEUE_FILE
        self._lock = threading.Lock()
        self.problem: str | None = None
        """Why an existing queue file could not be read (the queue starts empty then)."""
        self._entries: dict[tuple[int, str], UploadEntry] = {}
        self._load()

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            entries = [UploadEntry(**item) for item in raw["entries"]]
            for entry in entries:  # a step names a directory (checkpoint-<step>): a whole number, nothing else
                if not isinstance(entry.step, int) or isinstance(entry.step, bool) or entry.step < 0:
                    raise ValueError(f"step {entry.step!r} is not a step")
                if not isinstance(entry.target, str):
                    raise ValueError(f"target {entry.target!r} is not a URL")
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            self.problem = f"{self.path}: unreadable ({exc}); every checkpoint is queued again"
            return
        self._entries = {(e.step, e.target): e for e in entries}

    def _save(self, fsync: bool = True) -> None:  # holds self._lock
        self.paths.uploads.mkdir(parents=True, exist_ok=True)
        entries = [asdict(e) for _, e in sorted(self._entries.items())]
        atomic_write_text(self.path, json.dumps({"version": VERSION, "entries": entries}, indent=1) + "\n", fsync)

    def get(self, step: int, target: str) -> UploadEntry | None:
        with self._lock:
            return self._entries.get((step, target))

    def entries(self) -> list[UploadEntry]:
        """Every entry, by step then target."""
        with self._lock:
            return [e for _, e in sorted(self._entries.items())]

    def set(self, step: int, target: str, state: State, durable: bool = True, **fields) -> UploadEntry:
        """Change (or create) the entry of ``step`` x ``target`` and write the file; ``durable=False``
        (progress bytes) skips the fsync."""
        with self._lock:
            old = self._entries.get((step, target)) or UploadEntry(step, target, state)
            if state != "failed":
                fields.setdefault("error", None)
            entry = replace(old, state=state, updated=round(time.time(), 3), **fields)
            self._entries[(step, target)] = entry
            self._save(fsync=durable)
            return entry

    def verified(self, step: int, target: str) -> bool:
        entry = self.get(step, target)
        return entry is not None and entry.state == "done"

    def hold_reason(self, step: int, targets: list[str]) -> str | None:
        """Why the local checkpoint ``step`` must stay (a target without a verified copy), or None."""
        from engine.transfer import redact

        missing = []
        for target in targets:
            entry = self.get(step, target)
            if entry is None or entry.state != "done":
                state = "not queued" if entry is None else entry.state
                if entry is not None and entry.error:
                    state += f": {entry.error}"
                missing.append(f"{redact(target)} ({state})")
        if not missing:
            return None
        return "its upload is not verified yet at " + ", ".join(missing)
