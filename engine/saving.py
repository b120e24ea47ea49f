"""A run's checkpoints as the main process writes them: the ``checkpoint`` events (saved, failed,
pruned), pruning past ``train.save_total_limit``, and handing each saved checkpoint to the uploads
(engine.uploads; pruning then spares a checkpoint until every target holds a verified copy). The layout and the atomic write are
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
        self.uploads = None  # an engine.uploads.Uploader when the run has upload targets (send_to)
        self._held: set[int] = set()  # steps kept past the limit for their uploads (said once each)

    def send_to(self, uploads) -> None:
        """Hand each checkpoint saved from now on to ``uploads`` (an engine.uploads.Uploader), and
        spare from pruning each one whose copies it has not verified."""
        self.uploads = uploads

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
        if self.uploads is not None:
            self.uploads.submit(step)
        self.prune(keep)
        print(f"saved {rel} ({units.nbytes(saved.size_bytes)}, {reason}) in {duration:.1f}s", flush=True)

    def prune(self, keep: set[int | None]) -> None:
        """Delete the oldest checkpoints beyond ``train.save_total_limit``, sparing the steps in
        ``keep`` (the newest, the best held-out loss's); a ``checkpoint pruned`` event for each. With
        uploads, a checkpoint whose copies are not all verified is kept, and a log line says why."""
        for step, path in prune(self.paths.checkpoints, self.limit, keep, self._hold if self.uploads else None):
            self._held.discard(step)
            self.bus.emit(
                "checkpoint",
                action="pruned",
                step=step,
                path=self.paths.relative(path),
                reason=f"save_total_limit {self.limit}" + (", its uploads verified" if self.uploads else ""),
            )

    def _hold(self, step: int) -> str | None:
        reason = self.uploads.hold_reason(step)
        if reason is not None and step not in self._held:
            self._held.add(step)
            self.info(f"kept {self.paths.checkpoint_rel(step)} past save_total_limit {self.limit}: {reason}")
        return reason
