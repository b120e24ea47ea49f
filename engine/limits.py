"""``train.max_hours`` and ``train.budget_usd``: stop cleanly before either would be passed.

Torch-free arithmetic on what the loop measured: the training time so far, the seconds a step and a
checkpoint take. The loop asks :func:`limit_reason` at each control check.
"""

from __future__ import annotations

from engine.config import TrainConfig
from engine.sizing import CHECKPOINT_BYTES_PER_PARAM


def cost_usd(train: TrainConfig, elapsed_s: float) -> float | None:
    """What ``elapsed_s`` of training cost at ``train.price_per_hour`` (None without a price)."""
    price = train.price_per_hour
    return price * elapsed_s / 3600 if price else None


def checkpoint_s_estimate(measured_s: list[float], n_params: int) -> float:
    """Seconds a checkpoint takes: the slowest measured so far, or a guess from the model size
    (``CHECKPOINT_BYTES_PER_PARAM`` at 200 MB/s, plus half a second)."""
    if measured_s:
        return max(measured_s)
    return 0.5 + n_params * CHECKPOINT_BYTES_PER_PARAM / 200e6


def limit_reason(train: TrainConfig, elapsed_s: float, projected_s: float) -> str | None:
    """Why the run must stop now, or None: ``projected_s`` (the time so far, the steps until the
    next check and a checkpoint) would pass ``train.max_hours`` or ``train.budget_usd``."""
    if train.max_hours and projected_s > train.max_hours * 3600:
        return (
            f"max_hours {train.max_hours:g} reached: {elapsed_s / 3600:.4f} h trained, one more step and "
            f"the checkpoint would pass it"
        )
    if train.budget_usd and train.price_per_hour * projected_s / 3600 > train.budget_usd:
        return (
            f"budget_usd {train.budget_usd:g} reached: ${cost_usd(train, elapsed_s):.4f} spent at "
            f"${train.price_per_hour:g}/h, one more step and the checkpoint would pass it"
        )
    return None
