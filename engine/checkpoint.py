"""Checkpoints: Hugging Face layout plus the training state, written atomically.

``checkpoints/checkpoint-<step>/`` holds::

    config.json, generation_config.json, model.safetensors    model.save_pretrained
    tokenizer.json, tokenizer_config.json, ...                tokenizer.save_pretrained
    training_state.pt    optimizer, scheduler, RNG states, data position, counters; tensors and
                         primitives only, so torch.load(..., weights_only=True) reads it
    manifest.json        step + sha256 and size of every other file (written and verified by the
                         torch-free ``engine.checkpoint_index``, which the cockpit reads it with)

It is written as ``checkpoints/.tmp-checkpoint-<step>`` and renamed when complete; then the text
file ``checkpoints/latest`` is atomically replaced with the directory name.

Weights and optimizer state are full (unsharded) state dicts keyed by parameter name, gathered and
restored through ``torch.distributed.checkpoint.state_dict``: one format and one code path for a
single process, DDP and FSDP alike, so a checkpoint resumes under another strategy or process count.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.atomic import atomic_write_text
from engine.checkpoint_index import (  # noqa: F401  (the manifest parts live there, torch-free)
    MANIFEST,
    MODEL_CONFIG,
    TRAINING_STATE,
    WEIGHTS,
    verify_checkpoint,
    write_manifest,
)
from engine.rundir import (
    CHECKPOINT_PREFIX,
    LATEST,
    checkpoint_name,
    checkpoint_step,
    replaced_checkpoint_name,
    temporary_checkpoint_name,
)


@dataclass(frozen=True)
class SavedCheckpoint:
    path: Path
    step: int
    size_bytes: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """The RNG states of Python, NumPy and torch (CPU and CUDA) as tensors and primitives."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def gather_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Full model and optimizer state dicts on the CPU, keyed by parameter name, from a model as
    prepared (plain, DDP or FSDP). With several processes every one must call it (FSDP gathers
    the shards); only the main process gets the dicts, the others get empty ones."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    return get_state_dict(model, inner, options=_options(cpu_offload=True))


def with_tied_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` plus the names of tied parameters that ``save_pretrained`` left out (the output
    embedding tied to the input one), so that a strict load sees every parameter."""
    names_of: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names_of.setdefault(id(param), []).append(name)
    full = dict(weights)
    for names in names_of.values():
        present = [n for n in names if n in full]
        for name in names:
            if present and name not in full:
                full[name] = full[present[0]]
    return full


def restore_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    weights: dict[str, torch.Tensor],
    optim_state: dict[str, Any],
) -> None:
    """Load full state dicts (as ``gather_state`` made them) into a prepared model and optimizer;
    every process calls it with the same dicts. Raises KeyError or RuntimeError when they do not
    fit the model (the names of the first offending parameters in the message)."""
    from torch.distributed.checkpoint.state_dict import set_state_dict

    inner = getattr(optimizer, "optimizer", optimizer)
    unwrapped = getattr(model, "module", model)
    expected = {n for n, _ in unwrapped.named_parameters(remove_duplicate=False)}
    expected |= {n for n, _ in unwrapped.named_buffers() if n in weights}
    weights = with_tied_weights(unwrapped, weights)
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - set(unwrapped.state_dict()))
    if missing or unexpected:
        raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    set_state_dict(model, inner, model_state_dict=weights, optim_state_dict=optim_state, options=_options(strict=False))


def save_checkpoint(
    checkpoints_dir: str | os.PathLike,
    step: int,
    model,
    tokenizer,
    training_state: dict[str, Any],
    model_state: dict[str, torch.Tensor] | None = None,
) -> SavedCheckpoint:
    """Write checkpoint ``step`` under ``checkpoints_dir`` and point ``latest`` at it.

    ``model`` is the unwrapped Transformers model (its config and ``save_pretrained``);
    ``model_state`` the full state dict to write (``gather_state``), else the model's own.
    ``training_state`` must hold only tensors, primitives, lists and dicts. An existing
    checkpoint of the same step is replaced."""
    root = Path(checkpoints_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final, tmp = root / name, root / temporary_checkpoint_name(step)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, state_dict=model_state, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        torch.save(training_state, tmp / TRAINING_STATE)
        manifest = write_manifest(tmp, step)
        _fsync_dir(tmp)
        if final.exists():
            old = root / replaced_checkpoint_name(step, os.getpid())
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LATEST, name + "\n")
    size = sum(f["size"] for f in manifest["files"].values()) + (final / MANIFEST).stat().st_size
    return SavedCheckpoint(path=final, step=step, size_bytes=size)


def prune(
    checkpoints_dir: str | os.PathLike,
    limit: int,
    keep_steps: set[int | None],
    hold: Callable[[int], str | None] | None = None,
) -> list[tuple[int, Path]]:
    """Delete the oldest checkpoints under ``checkpoints_dir`` until at most ``limit`` are left,
    never those of ``keep_steps`` (the newest, the best held-out loss's); returns the ``(step,
    directory)`` of each one deleted, oldest first. Nothing is deleted when ``limit`` is 0.
    ``hold(step)``: a reason to keep a checkpoint that would be deleted (its upload is not verified
    yet), or None; a held checkpoint counts as deleted, so a newer one is not deleted in its place."""
    if not limit:
        return []
    root = Path(checkpoints_dir)
    found = sorted(
        (step, p)
        for p in root.glob(f"{CHECKPOINT_PREFIX}*")
        if p.is_dir() and (step := checkpoint_step(p.name)) is not None
    )
    excess, pruned = len(found) - limit, []
    for step, path in found:
        if excess <= 0:
            break
        if step in keep_steps:
            continue
        excess -= 1
        if hold is not None and hold(step) is not None:
            continue
        shutil.rmtree(path, ignore_errors=True)
        pruned.append((step, path))
    return pruned


def load_training_state(ckpt_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``training_state.pt`` of a checkpoint, read with ``weights_only=True``."""
    return torch.load(Path(ckpt_dir) / TRAINING_STATE, map_location=map_location, weights_only=True)
