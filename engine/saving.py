"""A run's checkpoints as the main process writes them: the ``checkpoint`` events (saved, failed,
pruned), and pruning past ``train.save_total_limit``. The layout and the atomic write are
engine.checkpoint's; when to save and the gathering every process takes part in are the loop's
(``Trainer.save``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine import units
from engine.checkpoint import prune, save_checkpoint
from engine.rundir import RunPaths


class CheckpointWriter:
    """Writes and prunes the checkpoints of one run (main process only), saying so on the bus."""

    def __init__(self, paths: RunPaths, bus, save_total_limit: int, info: Callable[..., None]):
        self.paths, self.bus, self.limit, self.info = paths, bus, save_total_limit, info

    def write(
        self,
        step: int,
        model,
        tokenizer,
        state: dict,
        model_state: dict[str, Any],
        reason: str,
        keep: set[int | None],
        started: float,
    ) -> None:
        """``checkpoints/checkpoint-<step>`` (``model``: unwrapped; ``state``: the training state),
        then prune, sparing the steps in ``keep``. A failed write is a ``checkpoint failed`` event;
        it raises only for the ``final`` checkpoint (``started``: perf_counter when saving began)."""
        rel = self.paths.checkpoint_rel(step)
        try:
            saved = save_checkpoint(self.paths.checkpoints, step, model, tokenizer, state, model_state=model_state)
        except Exception as exc:
            self.bus.emit(
                "checkpoint", action="failed", step=step, path=rel, reason=reason, error=f"{type(exc).__name__}: {exc}"
            )
            if reason == "final":
                raise
            self.info(f"checkpoint at step {step} failed: {exc}", level="error")
            return
        duration = time.perf_counter() - started
        self.bus.emit(
            "checkpoint",
            action="saved",
            step=step,
            path=rel,
            size_bytes=saved.size_bytes,
            reason=reason,
            duration_s=round(duration, 4),
        )
        self.prune(keep)
        print(f"saved {rel} ({units.nbytes(saved.size_bytes)}, {reason}) in {duration:.1f}s", flush=True)

    def prune(self, keep: set[int | None]) -> None:
        """Delete the oldest checkpoints beyond ``train.save_total_limit``, sparing the steps in
        ``keep`` (the newest, the best held-out loss's); a ``checkpoint pruned`` event for each."""
        for step, path in prune(self.paths.checkpoints, self.limit, keep):
            self.bus.emit(
                "checkpoint",
                action="pruned",
                step=step,
                path=self.paths.relative(path),
                reason=f"save_total_limit {self.limit}",
            )
