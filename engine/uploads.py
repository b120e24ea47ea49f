"""Background uploads of a run's checkpoints (config ``upload``): one thread beside the training
loop copies each complete checkpoint to each target, verified, and says so in ``upload`` events.
Torch-free: ``cockpit ckpt upload`` runs the same uploader in the foreground.

    Uploader(paths, targets, retries, emit)
      start()           queue what an earlier process left (queued, uploading, failed) and every
                        complete local checkpoint without a verified copy; start the thread
      submit(step)      a checkpoint was just saved: queue it for every target, and retry failed ones
      hold_reason(step) pruning asks: None once every target holds a verified copy
      finish(wait_s)    end of run: wait for the queue up to ``wait_s``, then stop; returns what is left

The remote layout is a run directory's: ``<target>/<run id>/checkpoints/checkpoint-<step>/``, so
``cockpit ckpt sync <target>/<run id> DIR`` pulls it back. The copy is engine.transfer's
(``copy_checkpoint``: file by file via ``.part``, read back and hashed, the manifest last, intact files
not sent again); the state of each checkpoint x target is engine.upload_queue's. ``submit`` only
appends to an in-memory queue, so a slow or dead target never slows a training step. Events:
``queued``, ``progress`` (about once a second), ``done`` (after the copy verified), ``failed`` (after
the retries, with the reason; the checkpoint is tried again at the next save and the next start).
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.checkpoint_index import MANIFEST
from engine.rundir import CHECKPOINT_PREFIX, RunPaths, checkpoint_step
from engine.transfer import Progress, TransferError, copy_checkpoint, join, open_url, read_manifest_at, redact
from engine.upload_queue import UploadQueue

#: Seconds between ``upload progress`` events of one copy.
PROGRESS_EVERY_S = 1.0


class _Cancelled(Exception):
    """Raised from the progress callback to abandon a copy when the run ends (not an OSError, so the
    transfer's retries let it through)."""


def remote_dir(target: str, run_id: str, checkpoint_rel: str) -> str:
    """Where a checkpoint's copy lives at ``target``: ``<target>/<run id>/<checkpoints/checkpoint-N>``."""
    return join(target, run_id, checkpoint_rel)


class Uploader:
    """Copies one run's checkpoints to its targets (see the module's docstring)."""

    def __init__(
        self,
        paths: RunPaths,
        targets: list[str],
        retries: int,
        emit: Callable[..., Any],
        base_delay: float = 0.5,
        run_id: str | None = None,
        log: Callable[..., None] | None = None,
        parallel_files: int = 1,
    ):
        self.paths, self.targets, self.retries, self.emit = paths, list(targets), retries, emit
        self.parallel_files = parallel_files
        self._log = log
        self.base_delay = base_delay
        self.run_id = run_id or paths.run_id
        self.queue = UploadQueue(paths)
        self._jobs: collections.deque[tuple[int, str]] = collections.deque()
        self._cond = threading.Condition()
        self._active: tuple[int, str] | None = None
        self._closing = False
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.results: dict[tuple[int, str], str | None] = {}
        """Each copy tried by this process: None when verified, else the error."""

    # --- the training side ---------------------------------------------------------------------

    def log(self, message: str, level: str = "info") -> None:
        """A ``log`` event (through ``log`` when given: the engine's, which also writes engine.log)."""
        if self._log is not None:
            self._log(message, level=level)
        else:
            self.emit("log", level=level, message=message)

    def start(self, steps: list[int] | None = None, background: bool = True, again: bool = False) -> None:
        """Queue ``steps`` (default: every complete local checkpoint) for every target where its copy is
        not verified yet, what an earlier process left unfinished included (``again``: verified ones too,
        checked again: a copy that no longer matches is repaired); with ``background``, start the upload
        thread."""
        if self.queue.problem:
            self.log(self.queue.problem, "warning")
        for step in self.local_steps() if steps is None else steps:
            for target in self.targets:
                self._enqueue(step, target, again=again)
        if background:
            self._thread = threading.Thread(target=self._work, name="uploads", daemon=True)
            self._thread.start()

    def local_steps(self) -> list[int]:
        """Steps of the complete checkpoints in the run directory (renamed into place, manifest present)."""
        root = self.paths.checkpoints
        if not root.is_dir():
            return []
        steps = (checkpoint_step(p.name) for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / MANIFEST).is_file())
        return sorted(s for s in steps if s is not None)

    def submit(self, step: int) -> None:
        """A checkpoint was saved: queue it for every target, and the failed ones again. Never blocks
        on a target."""
        for target in self.targets:
            self._enqueue(step, target, again=True)
        self._retry_failed()

    def _retry_failed(self) -> None:
        """Queue again each copy that failed (its target may be back), of a checkpoint still here."""
        for entry in self.queue.entries():
            if (
                entry.state == "failed"
                and entry.target in self.targets
                and self.paths.checkpoint_dir(entry.step).is_dir()
            ):
                self._enqueue(entry.step, entry.target)

    def hold_reason(self, step: int) -> str | None:
        """Why the local checkpoint ``step`` may not be deleted yet (a copy not verified), or None."""
        return self.queue.hold_reason(step, self.targets)

    def _enqueue(self, step: int, target: str, again: bool = False) -> None:
        """Queue one copy unless it is verified already (``again``: a checkpoint just written again
        under the same step is sent again) or waiting in the queue."""
        entry = self.queue.get(step, target)
        if entry is not None and entry.state == "done" and not again:
            return
        with self._cond:
            if (step, target) in self._jobs:
                return
        rel = self.paths.checkpoint_rel(step)
        try:
            manifest = read_manifest_at(_local_fs(), str(self.paths.checkpoint_dir(step)))
            total = sum(int(meta.get("size") or 0) for meta in manifest["files"].values())
        except ValueError as exc:
            self.log(f"upload of {rel}: not queued: {exc}", "warning")
            return
        self.queue.set(step, target, "queued", bytes_done=0, bytes_total=total)
        self.emit("upload", action="queued", path=rel, target=redact(target), bytes_done=0, bytes_total=total)
        with self._cond:
            self._jobs.append((step, target))
            self._cond.notify_all()

    # --- the upload thread ---------------------------------------------------------------------

    def _work(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                self._active = self._jobs.popleft()
            try:
                self.upload(*self._active)
            except _Cancelled:
                return
            except Exception as exc:  # never let the thread die silently: say it and go on
                self.log(f"upload thread: {type(exc).__name__}: {exc}", "error")
            finally:
                with self._cond:
                    self._active = None
                    self._cond.notify_all()

    def run_all(self) -> None:
        """Upload every queued copy in this thread (``cockpit ckpt upload``)."""
        while self._jobs:
            self.upload(*self._jobs.popleft())

    def upload(self, step: int, target: str) -> bool:
        """Copy checkpoint ``step`` to ``target``, verified; the queue and the events follow. True when
        verified. Raises _Cancelled when ``finish`` gave up waiting in the middle."""
        rel, shown = self.paths.checkpoint_rel(step), redact(target)
        entry = self.queue.get(step, target)
        total = entry.bytes_total if entry else 0
        self.queue.set(step, target, "uploading", bytes_done=0)
        last = [0.0]

        def progress(p: Progress) -> None:
            if self._cancel.is_set():
                raise _Cancelled
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self.queue.set(step, target, "uploading", durable=False, bytes_done=p.bytes_done)
                self.emit(
                    "upload",
                    action="progress",
                    path=rel,
                    target=shown,
                    bytes_done=p.bytes_done,
                    bytes_total=p.bytes_total,
                )

        def on_retry(n: int, exc: Exception, delay: float) -> None:
            self.log(f"upload of {rel} to {shown}: try {n + 1} of {self.retries + 1} in {delay:.1f}s: {exc}", "warning")

        try:
            fs, root = open_url(target)
            result = copy_checkpoint(
                _local_fs(),
                str(self.paths.checkpoint_dir(step)),
                fs,
                remote_dir(root, self.run_id, rel),
                progress=progress,
                retries=self.retries,
                base_delay=self.base_delay,
                on_retry=on_retry,
                sleep=self._backoff,
                workers=self.parallel_files,
            )
        except _Cancelled:
            self.queue.set(step, target, "queued")
            raise
        except Exception as exc:  # TransferError after the retries, or a library's own (paramiko's SSHException)
            error = _one_line(exc) if isinstance(exc, (TransferError, OSError)) else f"{type(exc).__name__}: {exc}"
            self.queue.set(step, target, "failed", error=error)
            self.results[(step, target)] = error
            self.emit("upload", action="failed", path=rel, target=shown, bytes_total=total or None, error=error)
            return False
        self.queue.set(step, target, "done", bytes_done=result.bytes_total, bytes_total=result.bytes_total)
        self.results[(step, target)] = None
        self.emit(
            "upload",
            action="done",
            path=rel,
            target=shown,
            bytes_done=result.bytes_total,
            bytes_total=result.bytes_total,
        )
        self.log(
            f"uploaded {rel} to {shown}, verified: {result.files_sent} file(s) sent, "
            f"{result.files_skipped} already there intact"
        )
        return True

    def _backoff(self, seconds: float) -> None:
        """The wait between tries; ``finish`` cuts it short."""
        if self._cancel.wait(seconds):
            raise _Cancelled

    # --- the end -------------------------------------------------------------------------------

    def pending(self) -> list[tuple[int, str]]:
        """Copies queued or in flight in this process."""
        with self._cond:
            return ([self._active] if self._active else []) + list(self._jobs)

    def finish(self, wait_s: float) -> list[str]:
        """Wait up to ``wait_s`` for the queue to empty, try each failed copy once more and wait for
        those too, then stop the thread (a copy in flight is abandoned and stays queued for the next
        start). Returns ``checkpoint -> target`` of each copy
        left, and says them in a log line."""
        deadline = time.monotonic() + wait_s
        for last_try in (False, True):
            if last_try:  # once what was queued is done: one more try for what failed (a target back since)
                self._retry_failed()
            with self._cond:
                while (self._jobs or self._active) and time.monotonic() < deadline:
                    self._cond.wait(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        with self._cond:
            left = [f"{self.paths.checkpoint_rel(s)} -> {redact(t)}" for s, t in self.pending()]
            self._closing = True
            self._cancel.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5.0)  # a copy blocked inside the filesystem is left to the exit
        if left:
            self.log(
                f"{len(left)} checkpoint upload(s) left: {', '.join(left)}; "
                f"`cockpit ckpt upload {self.paths.root}` finishes them",
                "warning",
            )
        return left


#: The upload thread's nice value (Linux: per thread): on a machine whose CPUs also train (a CPU run,
#: data loading), reading and hashing a checkpoint yields to the training threads.
UPLOAD_NICE = 19


def _lower_priority() -> None:
    if sys.platform != "linux":  # elsewhere the call would name a process, not this thread
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), UPLOAD_NICE)
    except OSError:
        pass


def _local_fs():
    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
