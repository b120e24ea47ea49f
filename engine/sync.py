"""Pulling a run's checkpoints from another machine (``cockpit ckpt sync``). Torch-free.

The source is a run directory on any fsspec filesystem (``sftp://host/abs/runs/<run>``, ``s3://...``):
its ``checkpoints/checkpoint-<step>/`` that hold ``manifest.json`` are complete (the engine writes a
checkpoint under ``.tmp-checkpoint-<step>`` with its manifest and renames it only then), so only
those are pulled; ``.tmp-*`` / ``.old-*`` directories and directories without a manifest are ignored.
Each goes to ``DEST/checkpoints/checkpoint-<step>/`` through ``engine.transfer.copy_checkpoint``:
verified against the manifest, the manifest last, so a local checkpoint with its manifest is one
that arrived whole. A pull stopped half way resumes per file; a checkpoint whose local manifest is
the remote's, byte for byte, is already here and is not read again. The run's ``run.yaml`` and
``events.jsonl`` come along (the events appended from where the local copy ends), and
``checkpoints/latest`` names the newest checkpoint pulled, so ``DEST`` is a run directory the other
``cockpit`` commands read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from engine.checkpoint_index import MANIFEST
from engine.rundir import CHECKPOINTS, RunPaths, checkpoint_name, checkpoint_step
from engine.transfer import CHUNK_BYTES, Progress, TransferError, copy_checkpoint, join, read_manifest_and_bytes

#: The mode of the directories a sync makes: a run's directory is its owner's only, as the engine's is.
PRIVATE_DIR = 0o700


@dataclass(frozen=True)
class Pulled:
    """What one pass did with one complete remote checkpoint."""

    step: int
    state: str
    """``pulled`` (sent now), ``resumed`` (an earlier, interrupted pull finished), ``here`` (already
    complete locally) or ``vanished`` (pruned at the source while it was read)."""
    files_sent: int = 0
    files_skipped: int = 0
    bytes_sent: int = 0
    bytes_total: int = 0

    @property
    def name(self) -> str:
        return checkpoint_name(self.step)


def remote_checkpoints(fs: Any, run_root: str) -> list[int]:
    """The steps of the complete checkpoints of the run at ``run_root`` on ``fs``, oldest first:
    ``checkpoints/checkpoint-<step>`` directories holding ``manifest.json``."""
    folder = join(run_root, CHECKPOINTS)
    try:
        entries = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return []
    steps = []
    for entry in entries:
        step = checkpoint_step(entry["name"].rstrip("/").rsplit("/", 1)[-1])
        if (
            step is not None
            and entry.get("type") == "directory"
            and fs.exists(join(folder, checkpoint_name(step), MANIFEST))
        ):
            steps.append(step)
    return sorted(steps)


def pull_checkpoint(
    fs: Any, run_root: str, dest: Path, step: int, progress: Callable[[Progress], None] | None = None, retries: int = 3
) -> Pulled:
    """Pull the checkpoint of ``step`` from the run at ``run_root`` on ``fs`` into the run directory
    ``dest`` (see the module's docstring). TransferError when it cannot be copied."""
    src = join(run_root, CHECKPOINTS, checkpoint_name(step))
    local = RunPaths(dest).checkpoint_dir(step)
    try:
        manifest, manifest_bytes = read_manifest_and_bytes(fs, src)
    except ValueError:
        if not fs.exists(src):
            return Pulled(step, "vanished")
        raise
    total = sum(int(meta.get("size") or 0) for meta in manifest["files"].values())
    local_manifest = local / MANIFEST
    if local_manifest.is_file():
        if local_manifest.read_bytes() == manifest_bytes:
            return Pulled(step, "here", files_skipped=len(manifest["files"]), bytes_total=total)
        local_manifest.unlink()  # the source's checkpoint of this step was replaced: not complete here any more
    resumed = local.is_dir()
    local.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    try:
        result = copy_checkpoint(fs, src, _local_fs(), str(local), progress=progress, retries=retries)
    except (TransferError, ValueError):
        if not fs.exists(src):  # pruned by the engine's retention while it was read
            _remove_tree(local)
            return Pulled(step, "vanished")
        raise
    return Pulled(
        step,
        "resumed" if resumed else "pulled",
        result.files_sent,
        result.files_skipped,
        result.bytes_sent,
        result.bytes_total,
    )


def pull_run_files(fs: Any, run_root: str, dest: Path) -> None:
    """The run's ``run.yaml`` (when it differs) and ``events.jsonl`` (the bytes past the local copy's
    end; the whole file again when the local one is longer, as for another run), if the source has them."""
    paths = RunPaths(dest)
    if not dest.is_dir():  # private, as the engine makes a run directory
        dest.mkdir(parents=True, mode=PRIVATE_DIR)
    for left in (paths.run_yaml, paths.latest):  # what a sync killed mid-write left beside them
        remove_stale_temporaries(left)
    remote_yaml = join(run_root, paths.run_yaml.name)
    if fs.exists(remote_yaml):
        data = fs.cat(remote_yaml)
        if not paths.run_yaml.is_file() or paths.run_yaml.read_bytes() != data:
            atomic_write_bytes(paths.run_yaml, data)
    remote_events = join(run_root, paths.events.name)
    if not fs.exists(remote_events):
        return
    size = fs.size(remote_events)
    have = paths.events.stat().st_size if paths.events.is_file() else 0
    if size == have:
        return
    start = have if size > have else 0
    with fs.open(remote_events, "rb") as fin, open(paths.events, "ab" if start else "wb") as fout:
        fin.seek(start)
        for block in iter(lambda: fin.read(CHUNK_BYTES), b""):
            fout.write(block)


def mark_latest(dest: Path, step: int) -> None:
    """``checkpoints/latest`` names ``checkpoint-<step>`` when it is newer than what it names."""
    paths = RunPaths(dest)
    current = checkpoint_step(paths.latest_name() or "")
    if current is None or step >= current or not (paths.checkpoints / checkpoint_name(current)).is_dir():
        atomic_write_text(paths.latest, checkpoint_name(step) + "\n")


def _local_fs() -> Any:
    import fsspec

    return fsspec.filesystem("file")


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
