"""The wire protocol between the engine and the cockpit.

Torch-free by contract: the cockpit imports this module at start-up.

Framing: newline-delimited JSON, UTF-8, one object per line, both in ``events.jsonl`` and on the
Unix socket ``engine.sock``.

Events (engine -> cockpit) all carry::

    {"v": 1, "type": "<event type>", "run": "<run id>", "seq": <int>, "ts": <unix seconds>, ...payload}

``seq`` starts at 0 and is gapless per run. The payload keys of each type are listed in
``EVENT_PAYLOADS`` below; those marked optional may be absent or ``null``.

Commands (cockpit -> engine) are::

    {"v": 1, "cmd": "<command>", "id": "<optional client token>", ...arguments}

and every command line gets exactly one reply on the same connection::

    {"v": 1, "type": "reply", "id": <the command's id or null>, "ok": true|false,
     "cmd": <command or null>, "error": <message when not ok>}

Replies are never written to ``events.jsonl`` and carry no ``seq``. ``subscribe`` is acknowledged
by its reply and then followed by every event whose ``seq >= from_seq``: first the history from
``events.jsonl``, then live events, with no gap and no duplicate.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from contextlib import contextmanager
from typing import Any, Iterator

PROTOCOL_VERSION = 1

#: Largest line either side accepts. A peer that sends a longer line is answered with an error
#: and disconnected.
MAX_LINE_BYTES = 64 * 1024

#: Run states carried by the ``status`` event, in the order a run moves through them.
STATES = (
    "starting",
    "running",
    "paused",
    "checkpointing",
    "stopping",
    "finished",
    "stopped",
    "failed",
)
#: States after which the engine process exits.
TERMINAL_STATES = frozenset({"finished", "stopped", "failed"})

#: Event type -> {payload key: description}. A key whose description starts with "optional" may be
#: missing; every other key is always present.
EVENT_PAYLOADS: dict[str, dict[str, str]] = {
    "hello": {
        "protocol": "protocol version the engine speaks (int)",
        "config": "the resolved run config, secrets redacted (object)",
        "preset": "model preset name (str)",
        "params": "total parameter count (int)",
        "world_size": "number of training processes (int)",
        "device": "device description, e.g. 'cpu' or 'cuda:0 NVIDIA H100' (str)",
        "pid": "engine process id (int)",
        "max_steps": "optimizer steps the run will take (int)",
        "tokens_per_step": "tokens consumed by one optimizer step, all processes (int)",
    },
    "status": {
        "state": "one of STATES (str)",
        "step": "optimizer steps completed so far (int)",
        "reason": "optional: why the state changed, human readable (str)",
    },
    "metrics": {
        "step": "optimizer steps completed (int)",
        "loss": "mean training loss over the logging interval's applied steps, null when all were skipped (float)",
        "lr": "learning rate after this step (float)",
        "grad_norm": "optional: gradient norm before clipping (float)",
        "tokens_per_s": "training throughput over the logging interval, all processes (float)",
        "tokens_seen": "tokens consumed since the start of the run (int)",
        "step_time_s": "mean wall time per optimizer step over the interval (float)",
        "elapsed_s": "wall time since training started (float)",
        "eta_s": "optional: estimated seconds to the end of the run (float)",
        "mfu": "optional: model FLOPs utilisation in [0, 1], null on a CPU (float)",
        "data_position": "optional: [epoch, index] of the training data iterator after this step (list)",
        "cost_usd": "optional: train.price_per_hour x training wall time so far, all resumes (float)",
        "data_wait_s": "optional: mean seconds per step spent waiting for training batches (float)",
        "compute_s": "optional: mean seconds per step besides waiting for batches (float)",
        "skipped_steps": "optional: steps of the interval whose update was skipped, non-finite (int)",
    },
    "eval": {
        "step": "optimizer step the evaluation ran at (int)",
        "loss": "held-out loss (float)",
        "perplexity": "exp(loss) (float)",
        "best": "optional: this is the lowest held-out loss of the run so far (bool)",
        "best_loss": "optional: lowest held-out loss so far (float)",
        "best_step": "optional: step of the lowest held-out loss so far (int)",
    },
    "telemetry": {
        "cpu_percent": "whole-machine CPU utilisation, 0-100 (float)",
        "ram_used": "machine RAM in use, bytes (int)",
        "ram_total": "machine RAM, bytes (int)",
        "proc_rss": "resident memory of the engine process, bytes (int)",
        "gpus": "per GPU: {index, name, util, mem_used, mem_total, temp_c, power_w}; [] without NVML (list)",
    },
    "checkpoint": {
        "action": "saved | pruned | failed (str)",
        "step": "step of the checkpoint (int)",
        "path": "checkpoint directory, relative to the run directory (str)",
        "size_bytes": "optional: bytes on disk (int)",
        "reason": "optional: why it was written, e.g. interval, command, final (str)",
        "error": "optional: message when action is failed (str)",
    },
    "upload": {
        "action": "queued | progress | done | failed (str)",
        "path": "what is uploaded, relative to the run directory (str)",
        "target": "destination, credentials removed (str)",
        "bytes_done": "optional (int)",
        "bytes_total": "optional (int)",
        "error": "optional (str)",
    },
    "log": {
        "level": "debug | info | warning | error (str)",
        "message": "one line of text (str)",
    },
    "error": {
        "message": "what went wrong (str)",
        "traceback": "optional: Python traceback (str)",
        "step": "optional: step at which it happened (int)",
    },
    "spillover": {
        "dropped": "number of events a slow consumer missed (int)",
    },
}
EVENT_TYPES = frozenset(EVENT_PAYLOADS)

#: Command -> {argument: description}.
COMMAND_ARGS: dict[str, dict[str, str]] = {
    "subscribe": {"from_seq": "first seq wanted, >= 0 (int, default 0)"},
    "checkpoint_now": {},
    "pause": {},
    "resume": {},
    "stop": {},
}
COMMANDS = frozenset(COMMAND_ARGS)


class ProtocolError(ValueError):
    """A line that is not a valid event or command; the message says what is wrong."""


def _required(payload_doc: dict[str, str]) -> list[str]:
    return [k for k, d in payload_doc.items() if not d.startswith("optional")]


def make_event(type_: str, run: str, seq: int, ts: float | None = None, **payload: Any) -> dict:
    """Build an event dict; raises ProtocolError for an unknown type or a missing payload key."""
    if type_ not in EVENT_TYPES:
        raise ProtocolError(f"unknown event type {type_!r}")
    missing = [k for k in _required(EVENT_PAYLOADS[type_]) if k not in payload]
    if missing:
        raise ProtocolError(f"{type_} event is missing {', '.join(missing)}")
    event = {"v": PROTOCOL_VERSION, "type": type_, "run": run, "seq": seq,
             "ts": time.time() if ts is None else ts}
    event.update(payload)
    return event


def _json_safe(value: Any) -> Any:
    """Non-finite floats are not JSON; they travel as null (the loss of a diverged step, say)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def encode(obj: dict) -> bytes:
    """One JSON line, UTF-8, newline-terminated."""
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_json_safe(obj), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def _parse_line(line: bytes | str) -> dict:
    if isinstance(line, bytes):
        if len(line) > MAX_LINE_BYTES:
            raise ProtocolError(f"line of {len(line)} bytes is longer than {MAX_LINE_BYTES}")
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer past Python's digit limit
        raise ProtocolError(f"not acceptable JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError("not acceptable JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def check_version(obj: dict) -> None:
    v = obj.get("v")
    if v != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {v!r} is not supported (this side speaks {PROTOCOL_VERSION})")


def decode_event(line: bytes | str) -> dict:
    """Parse and validate one event line (or a reply line from the socket)."""
    obj = _parse_line(line)
    check_version(obj)
    type_ = obj.get("type")
    if type_ == "reply":
        if not isinstance(obj.get("ok"), bool):
            raise ProtocolError("reply without a boolean 'ok'")
        return obj
    if type_ not in EVENT_TYPES:
        raise ProtocolError(f"unknown event type {type_!r}")
    if not isinstance(obj.get("seq"), int) or obj["seq"] < 0:
        raise ProtocolError(f"{type_} event has no valid 'seq'")
    missing = [k for k in _required(EVENT_PAYLOADS[type_]) if k not in obj]
    if missing:
        raise ProtocolError(f"{type_} event is missing {', '.join(missing)}")
    return obj


def decode_command(line: bytes | str) -> dict:
    """Parse and validate one command line; raises ProtocolError naming the problem."""
    obj = _parse_line(line)
    check_version(obj)
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolError("command has no 'cmd' string")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r} (known: {', '.join(sorted(COMMANDS))})")
    if "id" in obj and not isinstance(obj["id"], (str, int, type(None))):
        raise ProtocolError("'id' must be a string, an integer or null")
    if cmd == "subscribe":
        from_seq = obj.get("from_seq", 0)
        if not isinstance(from_seq, int) or isinstance(from_seq, bool) or from_seq < 0:
            raise ProtocolError("subscribe needs 'from_seq' as an integer >= 0")
        obj["from_seq"] = from_seq
    return obj


def make_command(cmd: str, id_: str | int | None = None, **args: Any) -> dict:
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}")
    return {"v": PROTOCOL_VERSION, "cmd": cmd, "id": id_, **args}


def make_reply(id_: Any, ok: bool, cmd: str | None = None, error: str | None = None) -> dict:
    reply = {"v": PROTOCOL_VERSION, "type": "reply", "id": id_, "ok": ok, "cmd": cmd}
    if error is not None:
        reply["error"] = error
    return reply


# --- Unix socket paths ------------------------------------------------------------------------

#: sun_path holds 108 bytes on Linux; longer paths are reached through /proc/self/fd.
_SUN_PATH_MAX = 100


@contextmanager
def socket_address(path: str | os.PathLike) -> Iterator[str]:
    """Yield an address for ``path`` short enough for bind()/connect().

    Run directories can be deep; a long path is reached through an open descriptor of its
    directory (``/proc/self/fd/N/engine.sock``), which is valid only inside the ``with`` block.
    """
    path = os.fspath(path)
    if len(path.encode()) <= _SUN_PATH_MAX:
        yield path
        return
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{dir_fd}/{os.path.basename(path)}"
    finally:
        os.close(dir_fd)


def connect(path: str | os.PathLike, timeout: float | None = 5.0) -> socket.socket:
    """Connect to an engine socket; raises OSError (FileNotFoundError, ConnectionRefusedError)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with socket_address(path) as addr:
            sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return sock
