"""One interface for training metrics: ``MetricsLogger.log(metrics, step)`` fans out to sinks.

A sink is anything with ``write(metrics, step)`` and ``close()``. The engine uses the event bus
(``metrics`` events, what the cockpit shows), the console (a plain line in ``logs/engine.log``) and,
when the ``tensorboard`` package is installed, TensorBoard event files in ``run_dir/tensorboard``.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any, Protocol, TextIO

from engine import units
from engine.eventlog import say

log = logging.getLogger(__name__)


class MetricsSink(Protocol):
    def write(self, metrics: dict[str, Any], step: int) -> None: ...
    def close(self) -> None: ...


class EventSink:
    """``metrics`` events on the bus; ``metrics`` must hold the protocol's payload keys."""

    def __init__(self, bus):
        self.bus = bus

    def write(self, metrics: dict[str, Any], step: int) -> None:
        self.bus.emit("metrics", **{"step": step, **metrics})

    def close(self) -> None:
        pass


#: (metric, format) of the console line, in order; absent or None metrics are left out.
CONSOLE_FIELDS = (
    ("loss", "loss {:.4f}"),
    ("lr", "lr {:.2e}"),
    ("grad_norm", "gnorm {:.2f}"),
    ("tokens_per_s", "{:,.0f} tok/s"),
    ("step_time_s", "{:.3f} s/step"),
    ("mfu", "mfu {:.1%}"),
    ("cost_usd", "${:.2f}"),
)


class ConsoleSink:
    """One human-readable line per log step, e.g.
    ``step   10/300 | loss 5.2311 | lr 1.00e-03 | gnorm 1.42 | 9,812 tok/s | 0.21 s/step | eta 1m02s``"""

    def __init__(self, max_steps: int | None = None, stream: TextIO | None = None):
        self.max_steps = max_steps
        self.stream = stream

    def write(self, metrics: dict[str, Any], step: int) -> None:
        width = len(str(self.max_steps)) if self.max_steps else 0
        parts = [f"step {step:>{width}}/{self.max_steps}" if self.max_steps else f"step {step}"]
        parts += [fmt.format(metrics[key]) for key, fmt in CONSOLE_FIELDS if metrics.get(key) is not None]
        if "eta_s" in metrics:
            parts.append(f"eta {units.duration(metrics['eta_s'])}")
        print(" | ".join(parts), file=self.stream or sys.stdout, flush=True)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Every numeric metric as a TensorBoard scalar ``<prefix>/<name>`` (``train/loss``, ``eval/loss``)
    through ``torch.utils.tensorboard``, written by its background thread.

    The writer is made at the first write: importing ``torch.utils.tensorboard`` takes about half a
    second, which would otherwise delay the first step; by then the step's ``metrics`` event has
    gone out through the sinks before this one."""

    def __init__(self, log_dir, prefix: str = "train"):
        self.log_dir = str(log_dir)
        self.prefix = prefix
        self.writer = None

    def write(self, metrics: dict[str, Any], step: int, prefix: str | None = None) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=self.log_dir)
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix or self.prefix}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def tensorboard_sink(log_dir) -> TensorBoardSink | None:
    """A TensorBoardSink, or None when the ``tensorboard`` package is not installed."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return None
    return TensorBoardSink(log_dir)


class MetricsLogger:
    def __init__(self, sinks: list[MetricsSink]):
        self.sinks = list(sinks)

    def add_sink(self, sink: MetricsSink) -> None:
        self.sinks.append(sink)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Send ``metrics`` of optimizer step ``step`` to every sink. A failing sink is said on
        stderr (``logs/engine.log``) and does not stop the others (nor the training)."""
        for sink in self.sinks:
            try:
                sink.write(metrics, step)
            except Exception as exc:
                say(f"metrics sink {type(sink).__name__} failed at step {step}: {type(exc).__name__}: {exc}")
                log.debug("metrics sink %s failed", type(sink).__name__, exc_info=True)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("metrics sink %s failed to close", type(sink).__name__)
