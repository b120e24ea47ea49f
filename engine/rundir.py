"""The run directory: where everything about one run lives (see DESIGN.md). Torch-free.

Both sides use these names; nothing else should spell out a file name of the run directory.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import DEAD, TERMINAL_STATES, UNKNOWN

CHECKPOINTS = "checkpoints"  #: the run directory's folder of checkpoints
LATEST = "latest"  #: the text file in it naming the newest complete checkpoint
LATEST_SPEC = "latest"  #: the ``--resume`` value for the checkpoint ``LATEST`` names
CHECKPOINT_PREFIX = "checkpoint-"  #: a checkpoint directory is ``checkpoint-<step>``


def checkpoint_name(step: int) -> str:
    """The directory name of the checkpoint of ``step``: ``checkpoint-<step>``."""
    return f"{CHECKPOINT_PREFIX}{step}"


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint directory name (``checkpoint-<step>``); None for any other name."""
    step = name[len(CHECKPOINT_PREFIX) :] if name.startswith(CHECKPOINT_PREFIX) else ""
    return int(step) if step.isdigit() else None


def temporary_checkpoint_name(step: int) -> str:
    """The name checkpoint ``step`` is written under until it is complete."""
    return f".tmp-{checkpoint_name(step)}"


def replaced_checkpoint_name(step: int, pid: int) -> str:
    """The name an older checkpoint of the same step takes while a new one replaces it."""
    return f".old-{checkpoint_name(step)}-{pid}"


class _Within:
    """A name of the run directory: on ``RunPaths(root)`` it reads ``root / parts...``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, paths: RunPaths | None, owner: type) -> Path:
        if paths is None:
            raise AttributeError("a run directory's path is read on a RunPaths instance")
        return paths.root.joinpath(*self.parts)


@dataclass(frozen=True)
class RunPaths:
    """Every name of the run directory ``root``; nothing else spells one out."""

    root: Path

    run_yaml = _Within("run.yaml")  #: the resolved config, written before the engine starts
    events = _Within("events.jsonl")  #: every event, one JSON line each
    socket = _Within("engine.sock")  #: the live channel while the engine runs
    status = _Within("status.json")  #: the last known state, pid and heartbeat
    lock = _Within("engine.lock")  #: held by the one engine that owns the directory
    checkpoints = _Within(CHECKPOINTS)  #: the folder of checkpoints
    latest = _Within(CHECKPOINTS, LATEST)  #: names the newest complete checkpoint
    logs = _Within("logs")  #: the engine's logs
    engine_log = _Within("logs", "engine.log")  #: the engine's stdout and stderr
    tensorboard = _Within("tensorboard")  #: TensorBoard event files
    evals = _Within("evals")  #: evaluations made after the fact (ckpt eval, gates), one JSON each
    uploads = _Within("uploads")  #: the upload queue (engine/upload_queue.py)

    def latest_name(self) -> str | None:
        """The checkpoint directory name ``checkpoints/latest`` holds ("" when it is empty); None
        when the file is missing or unreadable."""
        try:
            return self.latest.read_text(encoding="utf-8").strip()
        except OSError:
            return None

    def checkpoint_dir(self, step: int) -> Path:
        """``checkpoints/checkpoint-<step>``."""
        return self.checkpoints / checkpoint_name(step)

    def checkpoint_rel(self, step: int) -> str:
        """The checkpoint of ``step`` as events name it, relative to the run directory."""
        return self.relative(self.checkpoint_dir(step))

    def relative(self, path: Path) -> str:
        """``path`` (inside the run directory) relative to it, as events and messages name it."""
        return Path(path).relative_to(self.root).as_posix()

    @property
    def run_id(self) -> str:
        return self.root.name

    def is_run_dir(self) -> bool:
        """Whether ``root`` holds a run (its ``run.yaml``)."""
        return self.run_yaml.is_file()


def process_start_time(pid: int | None) -> int | None:
    """When process ``pid`` started (clock ticks since boot, ``/proc/<pid>/stat`` field 22), or None
    when it does not exist or the platform has no /proc. With the pid it names one process for good:
    a reused pid has another start time."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])  # fields after the name start at 3
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None, start_time: int | None = None) -> bool:
    """Process ``pid`` exists and is not a zombie; with ``start_time`` (process_start_time of the
    process meant), it must also be that very process, not a later one that reused the pid."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        if fields[0] == b"Z":
            return False
        return start_time is None or int(fields[19]) == start_time
    except (OSError, IndexError, ValueError):
        return True


class RunLocked(RuntimeError):
    """Another engine holds the run directory's lock; ``pid`` is its process id when known."""

    def __init__(self, run_dir: Path, pid: int | None):
        self.pid = pid
        who = f"engine pid {pid}" if pid else "another engine"
        super().__init__(
            f"{run_dir}: already trained by {who}; stop it (`cockpit stop`) or "
            f"`cockpit attach` it instead of starting a second engine"
        )


def _lock_holder(path: Path) -> int | None:
    """The pid written into a lock file by its holder, None while it is not written yet."""
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RunLock:
    """The exclusive lock of one engine on its run directory (``engine.lock``, an flock held for
    the life of the process). The file holds the holder's pid and process start time."""

    def __init__(self, run_dir: str | os.PathLike):
        self.paths = RunPaths(Path(run_dir))
        self.created = False
        self.fd = self._acquire()

    def _acquire(self) -> int:
        path = self.paths.lock
        while True:
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunLocked(self.paths.root, self._wait_for_holder()) from None
            except BaseException:
                os.close(fd)
                raise
            try:  # a holder that gave up may have removed the file we opened: lock the one in place
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.created = created
                pid = os.getpid()
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"pid": pid, "pid_start": process_start_time(pid)}).encode() + b"\n", 0)
                return fd
            os.close(fd)

    def _wait_for_holder(self, timeout: float = 1.0) -> int | None:
        """The holder's pid; it writes it right after locking, so wait a moment for it."""
        deadline = time.monotonic() + timeout
        while (pid := _lock_holder(self.paths.lock)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    def release(self, remove: bool = False) -> None:
        """Give the lock up; ``remove``: also delete ``engine.lock`` when this lock created it (an
        engine that refuses to start leaves the run directory as it found it)."""
        if self.fd < 0:
            return
        if remove and self.created:
            try:
                self.paths.lock.unlink()
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = -1


def lock_held(run_dir: str | os.PathLike) -> bool | None:
    """Whether an engine holds the run directory's lock right now; None when there is no
    ``engine.lock`` (a run directory from before the lock, or no engine started yet)."""
    try:
        fd = os.open(RunPaths(Path(run_dir)).lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # absent, or not ours to read
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return True if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else None
    finally:
        os.close(fd)  # releases the probe's lock at once
    return False


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``status.json`` plus ``alive`` (its engine is running). Liveness is the run directory's lock
    when there is one (a pid can be reused; a held lock cannot lie), else the pid together with its
    process start time. A run whose engine died without reaching a terminal state reads as
    ``state: "dead"``. A missing or unreadable file gives ``state: "unknown"``, or ``"starting"`` while
    an engine holds the lock (it has not written its first status yet)."""
    paths = RunPaths(Path(run_dir))
    try:
        status = json.loads(paths.status.read_text(encoding="utf-8"))
        if not isinstance(status, dict):
            raise ValueError
    except (OSError, ValueError):
        if lock_held(paths.root):
            return {"state": "starting", "alive": True}
        return {"state": UNKNOWN, "alive": False}
    alive = lock_held(paths.root)
    if alive is None:
        pid, start = status.get("pid"), status.get("pid_start")
        alive = pid_alive(pid if isinstance(pid, int) else None, start if isinstance(start, int) else None)
    status["alive"] = alive
    if not alive and status.get("state") not in TERMINAL_STATES:
        status["state"] = DEAD
    return status


def run_dir_of(ckpt_dir: str | os.PathLike) -> Path | None:
    """The run directory holding the checkpoint ``ckpt_dir`` (``<run>/checkpoints/checkpoint-<step>``),
    or None when it lies outside a run."""
    run_dir = Path(ckpt_dir).resolve().parent.parent
    return run_dir if RunPaths(run_dir).is_run_dir() else None


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint named by ``checkpoints/latest``, or None."""
    paths = RunPaths(Path(run_dir))
    name = paths.latest_name()
    if name is None:
        return None
    ckpt = paths.checkpoints / name
    return ckpt if checkpoint_step(name) is not None and ckpt.is_dir() else None  # only ever checkpoint-<step>
