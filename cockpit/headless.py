"""Plain progress lines for servers and CI: what the dashboard shows, one line at a time."""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import TextIO

from cockpit.client import RunClient
from engine import protocol as P
from engine import units
from engine.protocol import DEAD

#: Exit code of `cockpit run --headless` for each final state of the engine.
EXIT_CODES = {"finished": 0, "stopped": 0, "failed": 1, DEAD: 1}


def _loss(value: float | None) -> str:
    """A loss; null on the wire means it was not finite."""
    return units.loss(math.nan if value is None else value)


def _ppl(value: float | None) -> str:
    return units.DASH if value is None else f"{value:.2f}"


def _upload_line(event: P.Upload) -> str | None:
    """A line when an upload ends (done and verified, or failed); queued and progress events are
    not printed (progress comes about once a second per transfer)."""
    if event.action == "done":
        size = f" ({units.nbytes(event.bytes_total)})" if event.bytes_total is not None else ""
        return f"upload done: {event.path} -> {event.target}{size}, verified"
    if event.action == "failed":
        return f"upload FAILED: {event.path} -> {event.target}: {event.error or 'unknown error'}"
    return None


def format_event(event: P.Event, max_steps: int | None) -> str | None:
    """One line for an event worth printing, or None. A value that was not finite (null on the
    wire) reads "nan" for a loss and "—" otherwise."""
    if isinstance(event, P.Metrics):
        total = f"/{max_steps}" if max_steps else ""
        width = len(str(max_steps)) if max_steps else 1
        return (
            f"step {event.step:>{width}}{total}  loss {_loss(event.loss)}  lr {units.lr(event.lr)}  "
            f"{units.rate(event.tokens_per_s)}  ETA {units.duration(event.eta_s)}"
        )
    if isinstance(event, P.Hello):
        return (
            f"engine up: preset {event.preset}, {units.si(event.params)} params, "
            f"device {event.device}, {event.max_steps} steps"
        )
    if isinstance(event, P.Status):
        reason = f" ({event.reason})" if event.reason else ""
        return f"state: {event.state} at step {event.step}{reason}"
    if isinstance(event, P.Checkpoint):
        size = f" ({units.nbytes(event.size_bytes)})" if event.size_bytes else ""
        err = f": {event.error}" if event.error else ""
        return f"checkpoint {event.action}: {event.path}{size}{err}"
    if isinstance(event, P.Upload):
        return _upload_line(event)
    if isinstance(event, P.Eval):
        return f"eval at step {event.step}: loss {_loss(event.loss)}  ppl {_ppl(event.perplexity)}"
    if isinstance(event, P.Log) and event.level in ("warning", "error", "info"):
        return f"[{event.level}] {event.message}"
    if isinstance(event, P.Error):
        return f"ERROR: {event.message}"
    return None


def follow(
    run_dir: Path,
    pid: int | None = None,
    out: TextIO = sys.stdout,
    stop: threading.Event | None = None,
    from_seq: int = 0,
) -> int:
    """Print a run's progress from ``from_seq`` until it ends; returns the exit code for its final
    state."""
    client = RunClient(run_dir, pid=pid)
    max_steps = None
    final = None
    for event in client.follow(from_seq=from_seq, stop=stop):
        if isinstance(event, P.Hello):
            max_steps = event.max_steps
        if isinstance(event, P.Status):
            final = event.state
        line = format_event(event, max_steps)
        if line is not None:
            print(line, file=out, flush=True)
    if stop is not None and stop.is_set():
        return 0
    if final not in EXIT_CODES:
        final = DEAD
        print(f"engine exited without a final state; see {client.paths.engine_log}", file=out, flush=True)
    return EXIT_CODES[final]
