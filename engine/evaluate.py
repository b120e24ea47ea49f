"""Held-out evaluation: mean loss over fixed windows of the validation token stream.

The windows are the first ``n_batches * batch_size`` sequences of the held-out tail, in order, so
every evaluation of a run scores the same text and the numbers are comparable across steps. Draws
nothing from any RNG (no dropout in eval mode, no shuffling), so evaluating does not change what
training does next: a run with evaluations resumes exactly like one without.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class NoHeldOutData(ValueError):
    """The held-out split is shorter than one sequence."""


def eval_windows(val_tokens: np.ndarray, seq_len: int, n_windows: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Start offsets of this process's share of the first ``n_windows`` held-out windows."""
    available = len(val_tokens) // seq_len
    if available < 1:
        raise NoHeldOutData(f"the held-out split has {len(val_tokens)} tokens, fewer than one sequence of "
                            f"seq_len {seq_len}; raise data.val_fraction or turn off train.eval_every")
    return np.arange(min(n_windows, available))[rank::world_size] * seq_len


@torch.no_grad()
def evaluate(model, val_tokens: np.ndarray, *, seq_len: int, batch_size: int, n_batches: int,
             device, accelerator=None) -> float:
    """Mean per-token loss of ``model`` on the held-out windows (all processes together)."""
    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    starts = eval_windows(val_tokens, seq_len, n_batches * batch_size, rank, world)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, sequences
    try:
        for i in range(0, len(starts), batch_size):
            chunk = starts[i:i + batch_size]
            idx = chunk[:, None] + np.arange(seq_len)[None, :]
            x = torch.from_numpy(val_tokens[idx].astype(np.int64)).to(device)
            loss = model(input_ids=x, labels=x, use_cache=False).loss
            total[0] += loss.double() * len(chunk)
            total[1] += len(chunk)
    finally:
        model.train(was_training)
    if accelerator is not None and world > 1:
        total = accelerator.reduce(total, "sum")
    loss_sum, count = total.tolist()
    return loss_sum / count if count else math.nan
