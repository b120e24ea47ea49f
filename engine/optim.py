"""AdamW with weight-decay groups, and the learning-rate schedule (warm-up, then decay)."""

from __future__ import annotations

import functools
import math

import torch

from engine.config import TrainConfig


def build_optimizer(model: torch.nn.Module, train: TrainConfig, fused: bool = False) -> torch.optim.AdamW:
    """AdamW where matrices (linear and embedding weights) decay and vectors (norms, biases) do not."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas), fused=fused or None)


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
    fn = functools.partial(lr_multiplier, warmup_steps=train.warmup_steps, max_steps=train.max_steps,
                           schedule=train.schedule, min_lr_ratio=train.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
