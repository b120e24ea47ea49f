"""Uploading a run's checkpoints now, in the foreground, for a run whose engine is not running:
what `cockpit ckpt upload` and the checkpoint viewer's upload action do. Torch-free.

The same ``Uploader`` as the engine's background uploads (engine/uploads.py), the same queue in
``uploads/`` and the same ``upload`` events, appended to the run's ``events.jsonl`` under the run's
lock (a live run's engine uploads its own checkpoints: refused).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.rundir import RunPaths, checkpoint_step, run_dir_of


class UploadRefused(ValueError):
    """The upload cannot start as asked; the message names what and where, and what to do."""


def upload_now(
    run_dir: str | os.PathLike,
    *,
    step: int | None = None,
    again: bool = False,
    targets: Sequence[str] = (),
    retries: int | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[tuple[int, str], str | None]:
    """Upload checkpoint ``step`` of ``run_dir`` (default: every complete checkpoint whose copy is not
    verified yet; ``again``: verified copies are checked again and repaired) to ``targets`` (default:
    the run's ``upload.targets``). ``on_event(type, payload)`` hears each event as it is appended.
    Returns each copy tried -> None when verified, else the error ({}: nothing to do). UploadRefused
    for a run that cannot be uploaded now (no targets, a bad URL, a live engine, no such checkpoint)."""
    from engine.config import ConfigError, read_run_config
    from engine.eventlog import EventLog
    from engine.rundir import RunLock, RunLocked
    from engine.transfer import check_target
    from engine.uploads import Uploader

    run_dir = Path(run_dir)
    paths = RunPaths(run_dir)
    try:
        cfg = read_run_config(run_dir)
    except ConfigError as exc:
        raise UploadRefused(str(exc)) from None
    for url in targets:
        try:
            check_target(url)
        except ValueError as exc:
            raise UploadRefused(f"--to {exc}") from None
    targets = list(targets) or cfg.upload.targets
    if not targets:
        raise UploadRefused(f"{paths.run_yaml}: the run has no upload.targets; give one with --to URL")
    try:
        lock = RunLock(run_dir)
    except RunLocked as exc:
        who = f"engine pid {exc.pid}" if exc.pid else "an engine"
        raise UploadRefused(
            f"{run_dir}: the run is live ({who}): its engine uploads its own checkpoints (upload.targets); "
            "upload once it has ended"
        ) from None
    try:
        try:
            events = EventLog(paths.events, paths.run_id)
        except (OSError, RuntimeError) as exc:
            raise UploadRefused(f"{paths.events}: cannot append the upload events: {exc}") from None

        def emit(type_: str, **payload: Any) -> None:
            events.append(type_, **payload)
            if on_event is not None:
                on_event(type_, payload)

        uploader = Uploader(
            paths,
            targets,
            cfg.upload.retries if retries is None else retries,
            emit,
            parallel_files=cfg.upload.parallel_files,
        )
        steps = uploader.local_steps()
        if step is not None:
            if step not in steps:
                raise UploadRefused(
                    f"no complete checkpoint of step {step} in {paths.checkpoints} "
                    f"(`cockpit ckpt list {run_dir}` lists them)"
                )
            steps = [step]
        bad = _unsafe_manifests(paths, steps)
        if bad:
            raise UploadRefused(
                "refusing to upload: " + "; ".join(bad) + " (nothing was sent; upload the others one by one: "
                f"cockpit ckpt upload {run_dir} STEP)"
            )
        uploader.start(steps, background=False, again=again)
        if uploader.pending():
            uploader.run_all()
    finally:
        lock.release()
    return dict(uploader.results)


def _unsafe_manifests(paths: RunPaths, steps: list[int]) -> list[str]:
    """Why each of ``steps`` may not be sent: a manifest that is unreadable or names a file outside
    its checkpoint (engine.checkpoint_index.read_manifest); [] when all are sound."""
    from engine.checkpoint_index import MANIFEST, read_manifest
    from engine.safe_path import inside

    bad = []
    for step in steps:
        ckpt = paths.checkpoint_dir(step)
        try:
            for rel in read_manifest(ckpt)["files"]:
                inside(ckpt, rel, str(ckpt / MANIFEST))  # no symlink leading a read out of it
        except ValueError as exc:
            bad.append(str(exc))
    return bad


def upload_checkpoint(ckpt_dir: str | os.PathLike, progress: Callable[[Any], None] | None = None) -> dict:
    """Upload the checkpoint ``ckpt_dir`` of a run to the run's targets, checking copies already
    there: plain arguments in, a plain dict out (``verified``: targets; ``failed``: target -> error),
    for the checkpoint viewer's child process; ``progress`` gets ``(bytes done, bytes total, target)``."""
    ckpt = Path(ckpt_dir)
    run_dir, step = run_dir_of(ckpt), checkpoint_step(ckpt.name)
    if run_dir is None or step is None:
        raise UploadRefused(f"{ckpt}: not a checkpoint directory of a run")

    def on_event(type_: str, payload: dict[str, Any]) -> None:
        if progress is not None and type_ == "upload" and payload.get("bytes_total"):
            progress((int(payload.get("bytes_done") or 0), int(payload["bytes_total"]), payload["target"]))

    results = upload_now(run_dir, step=step, again=True, on_event=on_event)
    return {
        "verified": sorted(target for (_, target), error in results.items() if error is None),
        "failed": {target: error for (_, target), error in sorted(results.items()) if error is not None},
    }
