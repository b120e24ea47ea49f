"""What the outside world asks the training loop for: commands from the event bus and signals.
Torch-free at import, so ``python -m engine`` can install the signal handlers before the slow
imports (only :meth:`Controls.agree`, with several processes, imports torch when called)."""

from __future__ import annotations

import os
import signal
import sys

#: With several processes, commands, signals and the budget are agreed on by a small all-reduce (a
#: host sync) about this often, not every step; at most every CONTROL_SYNC_MAX_STEPS steps.
CONTROL_SYNC_S = 1.0
CONTROL_SYNC_MAX_STEPS = 100


class Controls:
    """Requests the loop acts on between optimizer steps: ``stop_reason`` (set by a ``stop``
    command, SIGTERM or SIGINT), ``checkpoint_requested``, ``paused``.

    Signal handlers only set a flag (emitting an event from a handler could deadlock on the bus
    lock). A second signal ends the process at once, without a final checkpoint, as if no handler
    were set."""

    def __init__(self, bus=None):
        self.bus = bus  # anything with poll_commands(); set once the bus exists
        self.stop_reason: str | None = None
        self.checkpoint_requested = False
        self.paused = False
        self._signal: str | None = None

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self._signal is not None:
            print(f"second {name}: exiting now, without a final checkpoint", file=sys.stderr, flush=True)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self._signal = name
        print(f"{name} received: finishing the current step, then saving and stopping", file=sys.stderr, flush=True)

    def poll(self) -> None:
        """Take in the commands received since the last call, and a pending signal."""
        for cmd in self.bus.poll_commands() if self.bus is not None else []:
            name = cmd.get("cmd")
            if name == "checkpoint_now":
                self.checkpoint_requested = True
            elif name == "pause":
                self.paused = True
            elif name == "resume":
                self.paused = False
            elif name == "stop" and self.stop_reason is None:
                self.stop_reason = "stop command"
        if self._signal is not None and self.stop_reason is None:
            self.stop_reason = self._signal

    def agree(self, accelerator, step_s: float) -> int:
        """With several processes: every process follows the main process's commands; a signal or a
        limit on any process stops all (every process's requests become the same). Returns the
        steps until the next agreement, set by the main process: about CONTROL_SYNC_S of training at
        ``step_s`` a step. One small all-reduce, a host sync."""
        import torch

        acc = accelerator
        every = max(1, min(CONTROL_SYNC_MAX_STEPS, int(CONTROL_SYNC_S / step_s))) if step_s > 0 else 1
        flags = torch.tensor(
            [self.checkpoint_requested, self.paused, self.stop_reason is not None, every],
            dtype=torch.int64,
            device=acc.device,
        )
        if not acc.is_main_process:
            flags[[0, 1, 3]] = 0
        flags = acc.reduce(flags, "sum").tolist()
        self.checkpoint_requested, self.paused = bool(flags[0]), bool(flags[1])
        if flags[2] and self.stop_reason is None:
            self.stop_reason = "stop requested on another process"
        return int(flags[3])
