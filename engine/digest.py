"""The sha256 of a file, read in 1 MiB blocks: how checkpoints' manifests, shard directories'
tokenizer ties, the token cache's key, evaluations' data and model cards fingerprint a file. Torch-free."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def file_sha256(path: str | os.PathLike, fsync: bool = False) -> str:
    """The sha256 of the file ``path``; ``fsync`` also flushes it to disk (when it was just written)."""
    h = hashlib.sha256()
    with open(Path(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        if fsync:
            os.fsync(f.fileno())
    return h.hexdigest()
