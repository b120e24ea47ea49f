"""Plain progress lines for servers and CI: what the dashboard shows, one line at a time."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import TextIO

from cockpit import units
from cockpit.client import RunClient

#: Exit code of `cockpit run --headless` for each final state of the engine.
EXIT_CODES = {"finished": 0, "stopped": 0, "failed": 1, "dead": 1}


def format_event(event: dict, max_steps: int | None) -> str | None:
    """One line for an event worth printing, or None."""
    kind = event["type"]
    if kind == "metrics":
        total = f"/{max_steps}" if max_steps else ""
        width = len(str(max_steps)) if max_steps else 1
        return (f"step {event['step']:>{width}}{total}  loss {units.loss(event['loss'])}  "
                f"lr {units.lr(event.get('lr'))}  {units.rate(event.get('tokens_per_s'))}  "
                f"ETA {units.duration(event.get('eta_s'))}")
    if kind == "hello":
        return (f"engine up: preset {event['preset']}, {units.si(event['params'])} params, "
                f"device {event['device']}, {event['max_steps']} steps")
    if kind == "status":
        reason = f" ({event['reason']})" if event.get("reason") else ""
        return f"state: {event['state']} at step {event['step']}{reason}"
    if kind == "checkpoint":
        size = f" ({units.nbytes(event['size_bytes'])})" if event.get("size_bytes") else ""
        err = f": {event['error']}" if event.get("error") else ""
        return f"checkpoint {event['action']}: {event['path']}{size}{err}"
    if kind == "eval":
        return f"eval at step {event['step']}: loss {units.loss(event['loss'])}  ppl {event['perplexity']:.2f}"
    if kind == "log" and event["level"] in ("warning", "error", "info"):
        return f"[{event['level']}] {event['message']}"
    if kind == "error":
        return f"ERROR: {event['message']}"
    return None


def follow(run_dir: Path, pid: int | None = None, out: TextIO = sys.stdout,
           stop: threading.Event | None = None, from_seq: int = 0) -> int:
    """Print a run's progress from ``from_seq`` until it ends; returns the exit code for its final
    state."""
    client = RunClient(run_dir, pid=pid)
    max_steps = None
    final = None
    for event in client.follow(from_seq=from_seq, stop=stop):
        if event["type"] == "hello":
            max_steps = event["max_steps"]
        if event["type"] == "status":
            final = event["state"]
        line = format_event(event, max_steps)
        if line is not None:
            print(line, file=out, flush=True)
    if stop is not None and stop.is_set():
        return 0
    if final not in EXIT_CODES:
        final = "dead"
        print(f"engine exited without a final state; see {client.paths.engine_log}", file=out, flush=True)
    return EXIT_CODES[final]
