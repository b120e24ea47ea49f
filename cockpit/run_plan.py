"""What a config means in numbers, before it runs: tokens per step, steps, epochs over the data,
tokens per parameter, and with a measured step time the ETA and the cost.

Pure and torch-free: the wizard's review recomputes it on every keystroke. The epoch-to-steps rule
is the engine's (``engine.sizing.steps_for_epochs``), so the figure shown is the one the run takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.sizing import steps_for_epochs

#: Training tokens per parameter that a compute-optimal run takes (Hoffmann et al. 2022, "Chinchilla").
COMPUTE_OPTIMAL_TOKENS_PER_PARAM = 20
#: Passes over the same data beyond which more are worth much less (Muennighoff et al. 2023).
USEFUL_EPOCHS = 4


@dataclass(frozen=True)
class RunPlan:
    """The derived numbers of one config (None where an input is not known yet)."""

    sequences_per_step: int
    """Sequences per optimizer step: micro batch x accumulation x processes."""
    tokens_per_step: int
    """Tokens per optimizer step."""
    steps: int | None
    """Optimizer steps: ``train.max_steps``, or from ``train.epochs`` and the data (None while the
    data's size is unknown)."""
    total_tokens: int | None
    """Tokens the run trains on."""
    tokens_available: int | None
    """Training tokens in the data (after the held-out split), when known."""
    epochs: float | None
    """Passes over the training tokens."""
    tokens_per_param: float | None
    """Training tokens per model parameter."""
    eta_s: float | None
    """Training time from a measured step time (the dry run), without start-up."""
    cost_usd: float | None
    """``eta_s`` at ``train.price_per_hour`` (None without a price)."""

    def hints(self) -> list[str]:
        """What is worth a second look: too few tokens for the model, too many passes over the data."""
        out = []
        if self.tokens_per_param is not None and self.tokens_per_param < COMPUTE_OPTIMAL_TOKENS_PER_PARAM / 4:
            out.append(
                f"under-trained: {self.tokens_per_param:.1f} tokens per parameter, compute-optimal is "
                f"~{COMPUTE_OPTIMAL_TOKENS_PER_PARAM}; train longer or pick a smaller preset"
            )
        if self.epochs is not None and self.epochs > USEFUL_EPOCHS:
            out.append(
                f"{self.epochs:.1f} passes over the data: beyond ~{USEFUL_EPOCHS} repeats are worth little; "
                f"more data or fewer steps"
            )
        return out


def plan_run(
    cfg: Any,
    *,
    nproc: int = 1,
    tokens_available: int | None = None,
    params: int | None = None,
    step_s: float | None = None,
) -> RunPlan:
    """The numbers of ``cfg`` (an ``engine.config.RunConfig``) trained by ``nproc`` processes on
    ``tokens_available`` training tokens by a model of ``params`` parameters, at ``step_s`` seconds
    per optimizer step."""
    train = cfg.train
    per_step = train.micro_batch_size * train.grad_accum_steps * max(1, nproc)
    tokens_per_step = per_step * train.seq_len
    steps: int | None = train.max_steps
    if train.epochs:
        steps = (
            steps_for_epochs(train.epochs, tokens_available // train.seq_len, per_step) if tokens_available else None
        )
    total = steps * tokens_per_step if steps is not None else None
    epochs = total / tokens_available if total is not None and tokens_available else None
    eta = steps * step_s if steps is not None and step_s is not None else None
    cost = eta / 3600 * train.price_per_hour if eta is not None and train.price_per_hour else None
    return RunPlan(
        per_step,
        tokens_per_step,
        steps,
        total,
        tokens_available,
        epochs,
        total / params if total is not None and params else None,
        eta,
        cost,
    )
