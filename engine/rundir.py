"""The run directory: where everything about one run lives (see DESIGN.md). Torch-free.

Both sides use these names; nothing else should spell out a file name of the run directory.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.protocol import TERMINAL_STATES


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def run_yaml(self) -> Path:
        return self.root / "run.yaml"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def socket(self) -> Path:
        return self.root / "engine.sock"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def engine_log(self) -> Path:
        return self.logs / "engine.log"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def run_id(self) -> str:
        return self.root.name


def atomic_write_text(path: Path, text: str, fsync: bool = True) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``; readers see
    the old or the new content, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


def read_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``status.json`` plus ``alive`` (the engine process exists). A run whose engine died without
    reaching a terminal state reads as ``state: "dead"``. A missing or unreadable file gives
    ``state: "unknown"``."""
    paths = RunPaths(Path(run_dir))
    try:
        status = json.loads(paths.status.read_text(encoding="utf-8"))
        if not isinstance(status, dict):
            raise ValueError
    except (OSError, ValueError):
        return {"state": "unknown", "alive": False}
    alive = pid_alive(status.get("pid"))
    status["alive"] = alive
    if not alive and status.get("state") not in TERMINAL_STATES:
        status["state"] = "dead"
    return status


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint named by ``checkpoints/latest``, or None."""
    paths = RunPaths(Path(run_dir))
    try:
        name = paths.latest.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    ckpt = paths.checkpoints / name
    return ckpt if name and ckpt.is_dir() else None
