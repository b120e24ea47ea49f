"""Held-out evaluation: mean loss over fixed windows of the validation token stream.

The windows are the first ``n_batches * batch_size`` sequences of the held-out tail, in order, so
every evaluation of a run scores the same text and the numbers are comparable across steps. Draws
nothing from any RNG (no dropout in eval mode, no shuffling), so evaluating does not change what
training does next: a run with evaluations resumes exactly like one without.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch


class NoHeldOutData(ValueError):
    """The held-out split is shorter than one sequence."""


def eval_windows(
    val_tokens: np.ndarray, seq_len: int, n_windows: int, rank: int = 0, world_size: int = 1
) -> np.ndarray:
    """Start offsets of this process's share of the first ``n_windows`` held-out windows."""
    available = len(val_tokens) // seq_len
    if available < 1:
        raise NoHeldOutData(
            f"the held-out split has {len(val_tokens)} tokens, fewer than one sequence of "
            f"seq_len {seq_len}; raise data.val_fraction or turn off train.eval_every"
        )
    return np.arange(min(n_windows, available))[rank::world_size] * seq_len


@torch.no_grad()
def evaluate(
    model,
    val_tokens: np.ndarray,
    *,
    seq_len: int,
    batch_size: int,
    n_batches: int,
    device,
    accelerator=None,
    val_mask: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> float:
    """Mean per-token loss of ``model`` on the held-out windows (all processes together); with
    ``val_mask`` (a fine-tuning loss mask), over the learnt tokens only. ``progress(done, total)``
    is called after each batch with this process's windows."""
    from engine.data.text import masked_labels

    rank = accelerator.process_index if accelerator is not None else 0
    world = accelerator.num_processes if accelerator is not None else 1
    starts = eval_windows(val_tokens, seq_len, n_batches * batch_size, rank, world)
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, sequences
    try:
        for i in range(0, len(starts), batch_size):
            chunk = starts[i : i + batch_size]
            idx = chunk[:, None] + np.arange(seq_len)[None, :]
            x_host = torch.from_numpy(val_tokens[idx].astype(np.int64))
            y_host = masked_labels(x_host, None if val_mask is None else val_mask[idx])
            scored = int((y_host[:, 1:] != -100).sum())  # the model predicts token t+1 from tokens up to t
            x = x_host.to(device)
            y = x if y_host is x_host else y_host.to(device)
            loss = model(input_ids=x, labels=y, use_cache=False).loss  # every process runs every forward
            if scored:  # a window of prompts only has no loss (NaN): it adds nothing
                total[0] += loss.double() * scored
                total[1] += scored
            if progress is not None:
                progress(i + len(chunk), len(starts))
    finally:
        model.train(was_training)
    if accelerator is not None and world > 1:
        total = accelerator.reduce(total, "sum")
    loss_sum, count = total.tolist()
    return loss_sum / count if count else math.nan


def scored_tokens(val_tokens: np.ndarray, seq_len: int, n_windows: int, val_mask: np.ndarray | None = None) -> int:
    """The tokens :func:`evaluate` scores on the first ``n_windows`` windows (one process): every
    position after the first of each window, or with ``val_mask`` the learnt ones only."""
    starts = eval_windows(val_tokens, seq_len, n_windows)
    if val_mask is None:
        return len(starts) * (seq_len - 1)
    idx = starts[:, None] + np.arange(1, seq_len)[None, :]
    return int(np.count_nonzero(np.asarray(val_mask)[idx]))
