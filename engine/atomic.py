"""Atomic file writes: a temporary file beside the target, optionally fsynced, renamed over it.

Readers see the old content or the new, never a mix; a write that fails (or is interrupted by an
exception) leaves the target as it was and no temporary file behind. The temporary file is hidden
(``.<name>.<pid>-<random>.tmp``) in the target's directory, so the rename never crosses file systems.
Renaming a whole directory (a complete checkpoint, a saved tokenizer) is another concept and lives
with its owner. Torch-free.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class AtomicFile:
    """A file written under a temporary name and renamed to ``path`` by ``commit()``.

    For writers that keep a file open across steps (shards filled chunk by chunk); ``atomic_open``
    is the same as a ``with`` block. ``file`` is the open file object."""

    def __init__(self, path: str | os.PathLike, mode: str = "wb", fsync: bool = True):
        if "w" not in mode:
            raise ValueError(f"atomic files are written; mode {mode!r} has no 'w'")
        self.path = Path(path)
        self.fsync = fsync
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        # created as open() would create it (0o666 less the umask): shards and caches stay readable
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            self.file: IO = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
        except BaseException:
            os.close(fd)
            os.unlink(self.tmp)
            raise

    def commit(self) -> None:
        """Flush (and fsync) the file, close it and rename it over ``path``."""
        try:
            self.file.flush()
            if self.fsync:
                os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Close and remove the temporary file; ``path`` is untouched."""
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", fsync: bool = True) -> Iterator[IO]:
    """``with atomic_open(path) as f:`` writes ``f`` and renames it over ``path`` when the block
    ends; an exception in the block leaves ``path`` as it was."""
    out = AtomicFile(path, mode, fsync)
    try:
        yield out.file
    except BaseException:
        out.abort()
        raise
    out.commit()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb", fsync) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", fsync) as f:
        f.write(text)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files an atomic write of ``path`` left when its process was killed
    mid-write (``.<name>.<pid>-<random>.tmp`` of a process that no longer runs); returns them."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*-*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
