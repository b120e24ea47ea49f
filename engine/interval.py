"""The logging interval: the optimizer steps since the last ``metrics`` event.

Each step's ``[loss, grad_norm]`` stays on the device until :meth:`LogInterval.read_back` (the one
host sync of an interval, at a logging step or a checkpoint); the read values and where the
interval's time went are what the next ``metrics`` event averages.
"""

from __future__ import annotations

import math
import time

import torch


class LogInterval:
    """The steps since the last ``metrics`` event; :meth:`reset` starts the next interval."""

    step_values: list[torch.Tensor]  # [loss, grad_norm] per step, on the device until read_back
    losses: list[float]  # steps whose update was applied
    grad_norms: list[float]
    skipped: int  # steps whose update was skipped for a non-finite value
    steps: int
    t0: float  # perf_counter when the interval began
    excluded_s: float  # checkpoint, eval and pause time inside the interval
    data_wait_s: float  # time spent waiting for batches

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.step_values = []
        self.losses = []
        self.grad_norms = []
        self.skipped = 0
        self.steps = 0
        self.t0 = time.perf_counter()
        self.excluded_s = 0.0
        self.data_wait_s = 0.0

    def add(self, values: torch.Tensor) -> None:
        """One more optimizer step, its ``[loss, grad_norm]`` still on the device."""
        self.step_values.append(values)
        self.steps += 1

    def read_back(self, accelerator) -> list[list[float]]:
        """The ``[loss, grad_norm]`` of the steps not read yet, oldest first, brought to the host
        (the loss averaged over the processes; the gradient norm is global already)."""
        if not self.step_values:
            return []
        values = torch.stack(self.step_values)
        if accelerator.num_processes > 1:
            values[:, 0] = accelerator.reduce(values[:, 0].contiguous(), "mean")
        self.step_values.clear()
        return values.tolist()

    def keep(self, loss: float, grad_norm: float) -> None:
        """A read step whose update was applied: its values count in the averages."""
        self.losses.append(loss)
        if math.isfinite(grad_norm):
            self.grad_norms.append(grad_norm)

    def busy_s(self, now: float) -> float:
        """Training seconds of the interval up to ``now`` (perf_counter), without the excluded time."""
        return max(now - self.t0 - self.excluded_s, 1e-9)

    def mean_loss(self) -> float:
        """The mean loss of the applied steps; NaN (null in the event) when every step was skipped."""
        return sum(self.losses) / len(self.losses) if self.losses else math.nan

    def mean_grad_norm(self) -> float | None:
        return sum(self.grad_norms) / len(self.grad_norms) if self.grad_norms else None
