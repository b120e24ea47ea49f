"""Resuming a run from a checkpoint: find it, check it holds every part, and restore it.

    python -m engine --run-dir DIR --resume latest      DIR/checkpoints/latest
    python -m engine --run-dir DIR --resume PATH        a checkpoint directory (any run's)

The run continues in ``DIR``: events go on with the next ``seq`` of ``events.jsonl``, so the
metrics of the steps between the checkpoint and the interruption appear twice; the resumed part
begins with ``status starting`` whose ``reason`` is ``resumed from checkpoint-<step>``.

A checkpoint is refused (``ResumeError``, exit 2 before anything in the run directory changes)
unless it matches its manifest and holds every part an exact continuation needs: the weights, the
optimizer and scheduler states, the RNG states (Python, NumPy, torch, and CUDA when it was saved
on a GPU), the data position and the counters (step, tokens seen, best eval loss).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.rundir import LATEST_SPEC, RunPaths, checkpoint_step

#: training_state.pt key -> what it is, as a refusal names it.
REQUIRED_STATE = {
    "step": "counter: step",
    "tokens_seen": "counter: tokens_seen",
    "best_eval_loss": "counter: best_eval_loss",
    "optimizer": "optimizer state",
    "scheduler": "scheduler state",
    "rng": "RNG states",
    "data": "data position",
}
REQUIRED_RNG = ("python", "numpy", "torch")


class ResumeError(ValueError):
    """The checkpoint cannot be resumed from; the message names the checkpoint and what is wrong."""


@dataclass
class ResumePoint:
    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def resolve_checkpoint(run_dir: str | os.PathLike, spec: str) -> Path:
    """``latest`` -> the directory named by ``run_dir/checkpoints/latest``; anything else is a path
    to a checkpoint directory. Torch-free."""
    paths = RunPaths(Path(run_dir))
    if spec == LATEST_SPEC:
        name = paths.latest_name()
        if name is None:
            raise ResumeError(f"{paths.latest}: no checkpoint to resume from (the file is missing)")
        path = paths.checkpoints / name
        if checkpoint_step(name) is None or not path.is_dir():  # only ever checkpoint-<step>, never a path
            raise ResumeError(f"{paths.latest} names {name!r}, which is not a checkpoint directory")
        return path
    path = Path(spec)
    if not path.is_dir():
        raise ResumeError(f"{path}: checkpoint directory not found")
    return path


def missing_parts(state: Any) -> list[str]:
    """What an exact resume needs that ``state`` (a loaded training_state.pt) lacks."""
    if not isinstance(state, dict):
        return ["training state (not a dict)"]
    missing = [desc for key, desc in REQUIRED_STATE.items() if key not in state]
    rng = state.get("rng")
    if isinstance(rng, dict):
        missing += [f"RNG state: {k}" for k in REQUIRED_RNG if k not in rng]
        if state.get("device_type") == "cuda" and "cuda" not in rng:
            missing.append("RNG state: cuda")
    elif "rng" in state:
        missing.append("RNG states (not a dict)")
    data = state.get("data")
    if isinstance(data, dict):
        missing += [f"data position: {k}" for k in ("epoch", "index") if k not in data]
    return missing


def load_resume_point(path: str | os.PathLike) -> ResumePoint:
    """Check and load a checkpoint for resuming; raises ResumeError naming the missing part."""
    from engine.checkpoint import (
        MANIFEST,
        MODEL_CONFIG,
        TRAINING_STATE,
        WEIGHTS,
        load_training_state,
        verify_checkpoint,
    )

    required = {
        MODEL_CONFIG: "model config",
        WEIGHTS: "model weights",
        TRAINING_STATE: "training state",
        MANIFEST: "manifest",
    }  # the files of the checkpoint directory a resume reads
    path = Path(path)
    absent = [f"{name} ({what})" for name, what in required.items() if not (path / name).is_file()]
    if absent:
        raise ResumeError(f"{path}: cannot resume, missing {', '.join(absent)}")
    problems = verify_checkpoint(path)
    if problems:
        raise ResumeError(f"{path}: cannot resume, the checkpoint does not match its manifest: {'; '.join(problems)}")
    try:
        state = load_training_state(path)
    except Exception as exc:  # pickle errors, truncated files
        raise ResumeError(
            f"{path}: cannot resume, {TRAINING_STATE} is unreadable ({type(exc).__name__}: {exc})"
        ) from None
    missing = missing_parts(state)
    if missing:
        raise ResumeError(f"{path}: cannot resume, {TRAINING_STATE} lacks {', '.join(missing)}")
    return ResumePoint(path=path, state=state)


def restore(trainer, point: ResumePoint) -> None:
    """Continue ``trainer`` (built, not yet fitted) exactly where checkpoint ``point`` left off
    (``Trainer.load_state_dict``: weights, optimizer, scheduler, data position, counters, RNG)."""
    from safetensors.torch import load_file

    from engine.checkpoint import WEIGHTS

    trainer.load_state_dict(point.state, load_file(point.path / WEIGHTS), point.path)
    trainer.resumed_from = point
    batches = trainer.data.batches
    trainer.info(
        f"resumed from {point.path} at step {trainer.step} ({trainer.tokens_seen:,} tokens seen, "
        f"data epoch {batches.epoch} position {batches.index})"
    )
