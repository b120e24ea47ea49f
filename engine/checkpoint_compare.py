"""What differs between two checkpoints, without torch: the run configs (flattened dotted keys of each
run's ``run.yaml``), the model configs (``config.json``), the metrics at their steps and their sizes.

``cockpit ckpt compare`` prints what :func:`compare_checkpoints` returns; the two checkpoints may
belong to two different runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoint_index import MODEL_CONFIG, CheckpointRecord, dir_size
from engine.config import ConfigError, read_run_config

METRICS = ("train_loss", "eval_loss", "perplexity")  #: the record fields compared, in order


@dataclass(frozen=True)
class ComparedCheckpoint:
    """One side of a comparison."""

    path: Path
    """The checkpoint directory."""
    step: int | None
    """The step it was saved at (its manifest's, else its directory name's)."""
    run_dir: Path | None
    """The run directory it belongs to; None when it lies outside one (no run config to compare)."""
    record: CheckpointRecord | None
    """Its entry in the run's checkpoint index (metrics at its step); None when the run has none for it."""


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-3}}`` -> ``{"train.lr": 1e-3}``; lists and scalars are leaves."""
    if not isinstance(data, dict):
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _model_config(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's Transformers ``config.json``, flattened; {} when missing or unreadable."""
    try:
        return flatten(json.loads((checkpoint / MODEL_CONFIG).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list]:
    """The keys whose values differ (a key missing on one side is None there): key -> [a, b]."""
    return {k: [a.get(k), b.get(k)] for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _size(side: ComparedCheckpoint) -> int:
    return side.record.size_bytes if side.record else dir_size(side.path)


def compare_checkpoints(a: ComparedCheckpoint, b: ComparedCheckpoint) -> dict[str, Any]:
    """What differs from ``a`` to ``b``: paths, steps, ``config`` (run.yaml keys -> [a, b]),
    ``model_config`` (config.json keys -> [a, b]), ``metrics`` (name -> {a, b, delta = b - a})
    and ``size`` ({a, b, delta})."""

    def run_config(side: ComparedCheckpoint) -> dict[str, Any]:
        """The run's resolved config (``run.yaml`` through ``engine.config``), flattened; {} without one."""
        if side.run_dir is None:
            return {}
        try:
            return flatten(read_run_config(side.run_dir).model_dump(mode="json"))
        except ConfigError:
            return {}

    metrics = {}
    for name in METRICS:
        va = getattr(a.record, name) if a.record else None
        vb = getattr(b.record, name) if b.record else None
        metrics[name] = {"a": va, "b": vb, "delta": _delta(va, vb)}
    size_a, size_b = _size(a), _size(b)
    return {
        "a": {"path": str(a.path), "step": a.step, "run": str(a.run_dir) if a.run_dir else None},
        "b": {"path": str(b.path), "step": b.step, "run": str(b.run_dir) if b.run_dir else None},
        "config": _diff(run_config(a), run_config(b)),
        "model_config": _diff(_model_config(a.path), _model_config(b.path)),
        "metrics": metrics,
        "size": {"a": size_a, "b": size_b, "delta": size_b - size_a},
    }
