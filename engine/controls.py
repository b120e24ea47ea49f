"""What the outside world asks the training loop for: commands from the event bus and signals.
Torch-free, so ``python -m engine`` can install the signal handlers before the slow imports."""

from __future__ import annotations

import os
import signal
import sys


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
