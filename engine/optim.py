"""AdamW with weight-decay groups, and the learning-rate schedule (warm-up, then decay)."""

from __future__ import annotations

import functools
import math

import torch

from engine.config import TrainConfig


def build_optimizer(model: torch.nn.Module, train: TrainConfig, fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW where matrices (linear and embedding weights) decay and vectors (norms, biases) do not.

    Fused (one kernel for all parameters) wherever torch has it, CPU and CUDA alike: it is the
    fastest, and it can skip a step on the device (``step_unless``)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = all(p.device.type in FUSED_DEVICES for p in model.parameters())
    return torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas), fused=fused or None)


#: Devices where torch has a fused AdamW (which honours ``found_inf``).
FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")


def can_skip_on_device(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``step_unless`` can skip an update without a host sync (a fused optimizer)."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps it
    return bool(inner.defaults.get("fused"))


def step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` where the update (weights, moments and step count) is not applied when
    the 0-d tensor ``skip`` is true, decided on the device: the mechanism torch's grad scaler uses
    with fused optimizers, so the host never waits for ``skip``."""
    inner = getattr(optimizer, "optimizer", optimizer)
    inner.grad_scale, inner.found_inf = None, skip.to(torch.float32)
    try:
        optimizer.step()
    finally:
        del inner.grad_scale, inner.found_inf


def lr_multiplier(step: int, *, warmup_steps: int, max_steps: int, schedule: str, min_lr_ratio: float) -> float:
    """Factor of the peak learning rate for optimizer step ``step`` (0-based).

    Linear warm-up from ``1/(warmup_steps+1)`` to 1 over ``warmup_steps`` steps, then ``cosine`` or
    ``linear`` decay to ``min_lr_ratio`` at ``max_steps``, or ``constant``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    if schedule == "cosine":
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - (1.0 - min_lr_ratio) * progress
    raise ValueError(f"unknown schedule {schedule!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per optimizer step."""
    fn = functools.partial(
        lr_multiplier,
        warmup_steps=train.warmup_steps,
        max_steps=train.max_steps,
        schedule=train.schedule,
        min_lr_ratio=train.min_lr_ratio,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
