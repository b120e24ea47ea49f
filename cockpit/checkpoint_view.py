"""What the checkpoint viewer lists of one run, read from its directory. Torch-free, no Textual.

:class:`CheckpointSource` follows the run's ``events.jsonl`` (each byte read once, through
:class:`~cockpit.event_tail.EventTail`) and lists its checkpoints with
:func:`engine.checkpoint_index.list_checkpoints`; :meth:`CheckpointSource.read` returns a new
:class:`ViewerSnapshot` only when the events file or the checkpoints directory changed, so a timer
may call it every few seconds on a live run for next to nothing.

:func:`checkpoint_detail` gathers what the detail pane shows of one checkpoint, and
:func:`compare_records` what the compare pane shows of two (through
:func:`engine.checkpoint_compare.compare_checkpoints`, the one owner of what differs).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.event_tail import EventTail
from engine.checkpoint_compare import ComparedCheckpoint, compare_checkpoints
from engine.checkpoint_index import CheckpointRecord, config_summary, list_checkpoints, read_manifest
from engine.protocol import Checkpoint, Eval, Event, Metrics, Upload
from engine.rundir import RunPaths
from engine.upload_status import UploadFold

#: Integrity of a checkpoint in the viewer, until and after it is verified.
NOT_VERIFIED, CHECKING, VERIFIED, FAILED = "not verified", "checking…", "verified", "FAILED"


@dataclass(frozen=True)
class ViewerSnapshot:
    """A run's checkpoints (oldest first), as read at one moment."""

    records: tuple[CheckpointRecord, ...] = ()
    #: Grows with every read that found something new.
    revision: int = 0

    def record(self, step: int) -> CheckpointRecord | None:
        return next((r for r in self.records if r.step == step), None)


class CheckpointSource:
    """The checkpoints of the run in ``run_dir``, re-read when the run changes."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.paths = RunPaths(self.run_dir)
        self._tail = EventTail(self.paths.events)
        #: The events ``list_checkpoints`` describes checkpoints with (metrics, evals, checkpoints).
        self._events: list[Event] = []
        #: The run's ``upload`` events, folded as read (progress events are not kept).
        self._uploads = UploadFold()
        self._signature: tuple | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.snapshot = ViewerSnapshot()

    def _now_signature(self) -> tuple:
        def stat(path: Path) -> tuple[float, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_mtime_ns, st.st_size

        return stat(self.paths.events), stat(self.paths.checkpoints), stat(self.paths.latest), stat(self.paths.evals)

    def read(self) -> ViewerSnapshot | None:
        """The run as it is now; None when nothing changed since the last read. Thread-safe (one
        read at a time: a timer's read may overlap a slow one)."""
        with self._lock:
            signature = self._now_signature()
            if signature == self._signature or self._closed:
                return None
            self._signature = signature
            for event in self._tail.read():
                if isinstance(event, Upload):
                    self._uploads.apply(event)
                elif isinstance(event, Metrics | Eval | Checkpoint):
                    self._events.append(event)
            records = list_checkpoints(self.run_dir, self._events, uploads=self._uploads)
            self.snapshot = ViewerSnapshot(records=tuple(records), revision=self.snapshot.revision + 1)
            return self.snapshot

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._tail.close()


@dataclass(frozen=True)
class CheckpointDetail:
    """What the detail pane shows of one checkpoint."""

    path: Path
    record: CheckpointRecord
    #: ``engine.checkpoint_index.config_summary``: the model's shape, the run's name and preset.
    config: dict[str, Any] = field(default_factory=dict)
    #: (path in the checkpoint, size, sha256) of each file of its manifest.
    files: tuple[tuple[str, int | None, str | None], ...] = ()
    #: Why the files are not listed (no readable manifest: an incomplete checkpoint); None when they are.
    problem: str | None = None


def checkpoint_detail(run_dir: Path, record: CheckpointRecord) -> CheckpointDetail:
    """The config summary, metrics and manifest files of ``record``'s checkpoint."""
    path = Path(run_dir) / record.directory
    config = config_summary(run_dir, path)
    try:
        manifest = read_manifest(path)
    except ValueError as exc:
        return CheckpointDetail(path, record, config, problem=f"{exc}; the checkpoint is incomplete")
    files = tuple((rel, meta.get("size"), meta.get("sha256")) for rel, meta in manifest["files"].items())
    return CheckpointDetail(path, record, config, files)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a checkpoint of a run (possibly another run than the viewer's)."""

    run_dir: Path
    record: CheckpointRecord

    @property
    def path(self) -> Path:
        return self.run_dir / self.record.directory

    @property
    def label(self) -> str:
        return f"{self.run_dir.name} @ {self.record.step:,}"


def compare_records(a: Side, b: Side) -> dict[str, Any]:
    """``engine.checkpoint_compare.compare_checkpoints`` of the two sides (B - A)."""

    def compared(side: Side) -> ComparedCheckpoint:
        return ComparedCheckpoint(path=side.path, step=side.record.step, run_dir=side.run_dir, record=side.record)

    return compare_checkpoints(compared(a), compared(b))
