"""``train.nonfinite``: what a step whose loss or gradient norm is not finite does.

    off   nothing is checked: every update is applied
    skip  the update is not applied (on the device with fused AdamW: no host sync); each skipped
          step becomes an ``error`` event when the values are read back at the next logging step,
          and ``train.nonfinite_max_skips`` skipped in a row fail the run
    stop  each step is checked on the host: the first non-finite one is not applied, and the run
          saves its last good state and fails

Under fp16 an inf gradient norm is the grad scaler's own business (it skipped and rescaled).
``Trainer.update`` applies or skips the update; :class:`NonFiniteSteps` accounts for the steps.
"""

from __future__ import annotations

import math

from engine.config import TrainConfig


class NonFiniteSteps:
    """The run's steps skipped for a non-finite value: in all (a checkpoint carries the count) and
    in a row; each one said in an ``error`` event."""

    def __init__(self, train: TrainConfig, bus):
        self.train, self.bus = train, bus
        self.skips = 0
        self.in_a_row = 0

    def read(self, step: int, loss: float, grad_norm: float) -> bool:
        """A step's values read back: True when its update was applied (they count), False when it
        was skipped (an ``error`` event says so)."""
        train = self.train
        bad = not math.isfinite(loss) or (train.precision != "fp16" and not math.isfinite(grad_norm))
        if train.nonfinite == "off" or not bad:
            self.in_a_row = 0
            return True
        self.skips += 1
        self.in_a_row += 1
        self.bus.emit(
            "error",
            step=step,
            message=f"non-finite loss at step {step} (loss {loss:.4g}, grad_norm "
            f"{grad_norm:.4g}): update skipped (train.nonfinite: skip)",
        )
        return False

    def too_many(self, step: int, last_good: str) -> str | None:
        """Why the run fails, once ``train.nonfinite_max_skips`` steps in a row up to ``step`` were
        skipped (``last_good``: the checkpoint that holds the last good weights); else None."""
        limit = self.train.nonfinite_max_skips
        if self.in_a_row < limit:
            return None
        return (
            f"{self.in_a_row} non-finite steps in a row up to step {step} (train.nonfinite_max_skips is "
            f"{limit}); their updates were not applied, {last_good} holds the last good weights"
        )

    def stop(self, step: int, loss: float, grad_norm: float, last_good: str) -> str:
        """``train.nonfinite: stop`` found ``step`` non-finite (its update not applied): an ``error``
        event, and why the run fails (``last_good``: the checkpoint of the last good state)."""
        self.bus.emit(
            "error",
            step=step,
            message=f"non-finite loss at step {step} (loss {loss:.4g}, grad_norm "
            f"{grad_norm:.4g}): stopping (train.nonfinite: stop)",
        )
        return (
            f"non-finite loss at step {step} (train.nonfinite: stop); the update was not applied, "
            f"{last_good} holds the last good state"
        )
