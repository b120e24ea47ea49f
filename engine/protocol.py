"""The wire protocol between the engine and the cockpit: typed models, defined once here.

Torch-free by contract: the cockpit imports this module at start-up.

Framing: newline-delimited JSON, UTF-8, one object per line, both in ``events.jsonl`` and on the
Unix socket ``engine.sock``.

Events (engine -> cockpit) are the models below, one per ``type``; all share the envelope::

    {"v": 1, "type": "<event type>", "run": "<run id>", "seq": <int>, "ts": <unix seconds>, ...payload}

``seq`` starts at 0 and is gapless per run. A payload field with a default may be absent. Floats
that are not finite (the loss of a diverged step, say) travel as ``null`` and read back as
``None``. Keys a newer engine adds are ignored by readers; the engine itself writes exactly the
fields of its models (:func:`make_event` refuses anything else).

Commands (cockpit -> engine) are::

    {"v": 1, "cmd": "<command>", "id": "<optional client token>", ...arguments}

and every command line gets exactly one reply (:class:`Reply`) on the same connection. Replies are
never written to ``events.jsonl`` and carry no ``seq``. ``subscribe`` is acknowledged by its reply
and then followed by every event whose ``seq >= from_seq``: first the history from
``events.jsonl``, then live events, with no gap and no duplicate.

Every reader (the bus's ``status.json``, the dashboard, the headless printer, ``cockpit runs``)
consumes the models :func:`decode_event` returns, by attribute. For scripts and tests a model also
reads like the dict of its line (``event["step"]``, ``event.get("reason")``).

Why this module is over 400 lines: it is the protocol's one definition, read as a whole: the
models of its ten events, its five commands and the reply (each field with its documentation, from
which ``EVENT_PAYLOADS`` and ``COMMAND_ARGS`` are derived), and the few functions that build,
encode and decode their lines. Splitting the models from their framing would only send a reader of
the protocol through several files for one contract.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1

#: Largest line either side accepts. A peer that sends a longer line is answered with an error
#: and disconnected.
MAX_LINE_BYTES = 64 * 1024

# --- run states -------------------------------------------------------------------------------

#: States the engine reports in ``status`` events, in the order a run moves through them.
EngineState = Literal["starting", "running", "paused", "checkpointing", "stopping", "finished", "stopped", "failed"]
STATES: tuple[str, ...] = get_args(EngineState)
#: States after which the engine process exits.
TERMINAL_STATES = frozenset({"finished", "stopped", "failed"})

#: States only readers give a run (the engine never sends them):
DEAD = "dead"  #: the engine exited without reaching a terminal state
UNKNOWN = "unknown"  #: no status yet: the engine has not written status.json
CONNECTING = "connecting"  #: the dashboard has read nothing of the run yet
#: Every state a reader may show.
RunStateName = Literal[EngineState, "dead", "unknown", "connecting"]
#: States of a run that is over: a terminal state, or a dead engine.
ENDED_STATES = TERMINAL_STATES | {DEAD}


class ProtocolError(ValueError):
    """A line that is not a valid event or command; the message says what is wrong."""


class CommandError(ProtocolError):
    """A command line that is a JSON object but not a valid command. ``id`` is the line's own id
    (when it is a string or an integer) and ``cmd`` its command name (when it is a known one), so
    that the error reply names the request it answers."""

    def __init__(self, message: str, id_: str | int | None = None, cmd: str | None = None):
        super().__init__(message)
        self.id = id_
        self.cmd = cmd


# --- models -------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


#: A float on the wire: a non-finite value becomes ``None`` (it travels as ``null``).
Real = Annotated[float | None, AfterValidator(_finite)]


class _Line(BaseModel):
    """One line of the protocol. Strict (a string is never a number), immutable, and lenient only
    about keys it does not know (a newer peer may send more)."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore", use_attribute_docstrings=True)

    v: Literal[1] = PROTOCOL_VERSION
    """Protocol version."""

    # Dict-style reading, for scripts and tests: ``event["step"]``, ``event.get("reason")``.
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        value = getattr(self, key, None) if key in type(self).model_fields else None
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return key in self.model_fields_set  # the key was on the line


class Event(_Line):
    """The envelope every event carries."""

    type: str
    """Event type; selects the payload model."""
    run: str
    """Run id (the run directory's name)."""
    seq: int = Field(ge=0)
    """Position in the run's event stream: 0, 1, 2, ... with no gap."""
    ts: float
    """When the engine wrote it, unix seconds."""


class Hello(Event):
    """The engine is up: what it trains and where."""

    type: Literal["hello"] = "hello"
    protocol: int
    """Protocol version the engine speaks."""
    config: dict[str, Any]
    """The resolved run config, secrets redacted."""
    preset: str
    """Model preset name."""
    params: int
    """Total parameter count."""
    world_size: int
    """Number of training processes."""
    device: str
    """Device description, e.g. 'cpu' or 'cuda:0 NVIDIA H100'."""
    pid: int
    """Engine process id."""
    max_steps: int
    """Optimizer steps the run will take."""
    tokens_per_step: int
    """Tokens consumed by one optimizer step, all processes."""


class Status(Event):
    """The run's state changed."""

    type: Literal["status"] = "status"
    state: EngineState
    """One of STATES."""
    step: int
    """Optimizer steps completed so far. Lower than before: the run resumed from an earlier
    checkpoint and trains the steps after it again."""
    reason: str | None = None
    """Why the state changed, human readable."""


class Metrics(Event):
    """Training progress over one logging interval."""

    type: Literal["metrics"] = "metrics"
    step: int
    """Optimizer steps completed."""
    loss: Real
    """Mean training loss over the interval's applied steps; null when all were skipped."""
    lr: Real
    """Learning rate after this step."""
    grad_norm: Real = None
    """Gradient norm before clipping."""
    tokens_per_s: Real
    """Training throughput over the logging interval, all processes."""
    tokens_seen: int
    """Tokens consumed since the start of the run."""
    step_time_s: Real
    """Mean wall time per optimizer step over the interval."""
    elapsed_s: Real
    """Wall time since training started."""
    eta_s: Real = None
    """Estimated seconds to the end of the run."""
    mfu: Real = None
    """Model FLOPs utilisation in [0, 1]; null on a CPU."""
    data_position: list[int] | None = None
    """[epoch, index] of the training data iterator after this step."""
    cost_usd: Real = None
    """train.price_per_hour x training wall time so far, all resumes."""
    data_wait_s: Real = None
    """Mean seconds per step spent waiting for training batches."""
    compute_s: Real = None
    """Mean seconds per step besides waiting for batches."""
    skipped_steps: int | None = None
    """Steps of the interval whose update was skipped (non-finite)."""


class Eval(Event):
    """A held-out evaluation."""

    type: Literal["eval"] = "eval"
    step: int
    """Optimizer step the evaluation ran at."""
    loss: Real
    """Held-out loss; null when it is not finite."""
    perplexity: Real
    """exp(loss); null when the loss is not finite."""
    best: bool | None = None
    """This is the lowest held-out loss of the run so far."""
    best_loss: Real = None
    """Lowest held-out loss so far."""
    best_step: int | None = None
    """Step of the lowest held-out loss so far."""


class GpuSample(BaseModel):
    """One GPU's readings; a field NVML could not read is null."""

    model_config = _Line.model_config

    index: int
    """GPU index."""
    name: str | None = None
    """Product name."""
    util: Real = None
    """Utilisation, 0-100."""
    mem_used: int | None = None
    """Memory in use, bytes."""
    mem_total: int | None = None
    """Memory, bytes."""
    temp_c: Real = None
    """Temperature, degrees Celsius."""
    power_w: Real = None
    """Power draw, watts."""


class Telemetry(Event):
    """A sample of the machine."""

    type: Literal["telemetry"] = "telemetry"
    cpu_percent: Real
    """Whole-machine CPU utilisation, 0-100."""
    ram_used: int
    """Machine RAM in use, bytes."""
    ram_total: int
    """Machine RAM, bytes."""
    proc_rss: int
    """Resident memory of the engine process, bytes."""
    gpus: list[GpuSample]
    """Per GPU readings; [] without NVML."""


class Checkpoint(Event):
    """A checkpoint was written, removed, or could not be written."""

    type: Literal["checkpoint"] = "checkpoint"
    action: Literal["saved", "pruned", "failed"]
    """saved | pruned | failed."""
    step: int
    """Step of the checkpoint."""
    path: str
    """Checkpoint directory, relative to the run directory."""
    size_bytes: int | None = None
    """Bytes on disk."""
    reason: str | None = None
    """Why it was written, e.g. interval, command, final."""
    error: str | None = None
    """Message when action is failed."""
    duration_s: float | None = None
    """Seconds the save held training up, from gathering the state to the checkpoint complete on disk (saved)."""


class Upload(Event):
    """Progress of a checkpoint upload."""

    type: Literal["upload"] = "upload"
    action: Literal["queued", "progress", "done", "failed"]
    """queued | progress | done | failed."""
    path: str
    """What is uploaded, relative to the run directory."""
    target: str
    """Destination, credentials removed."""
    bytes_done: int | None = None
    """Bytes uploaded so far."""
    bytes_total: int | None = None
    """Bytes to upload."""
    error: str | None = None
    """Message when action is failed."""


class Log(Event):
    """A line of the engine's log."""

    type: Literal["log"] = "log"
    level: Literal["debug", "info", "warning", "error"]
    """debug | info | warning | error."""
    message: str
    """One line of text."""


class Error(Event):
    """Something went wrong in the engine."""

    type: Literal["error"] = "error"
    message: str
    """What went wrong."""
    traceback: str | None = None
    """Python traceback."""
    step: int | None = None
    """Step at which it happened."""


class Spillover(Event):
    """Events a slow consumer missed."""

    type: Literal["spillover"] = "spillover"
    dropped: int
    """Number of events dropped."""


_EVENT_CLASSES = (Hello, Status, Metrics, Eval, Telemetry, Checkpoint, Upload, Log, Error, Spillover)
#: Every event model, by type.
EVENT_MODELS: dict[str, type[Event]] = {get_args(cls.model_fields["type"].annotation)[0]: cls for cls in _EVENT_CLASSES}
EVENT_TYPES = frozenset(EVENT_MODELS)
_ENVELOPE = frozenset(Event.model_fields) | {"v"}


def _payload_doc(cls: type[BaseModel]) -> dict[str, str]:
    return {
        name: (field.description or "") if field.is_required() else f"optional: {field.description or ''}"
        for name, field in cls.model_fields.items()
        if name not in _ENVELOPE
    }


#: Event type -> {payload key: description}, derived from the models (a key whose description
#: starts with "optional" may be missing; every other key is always present).
EVENT_PAYLOADS: dict[str, dict[str, str]] = {type_: _payload_doc(cls) for type_, cls in EVENT_MODELS.items()}


class Reply(_Line):
    """The engine's answer to one command line."""

    type: Literal["reply"] = "reply"
    id: str | int | None = None
    """The command's id, or null."""
    ok: bool
    """The command was accepted."""
    cmd: str | None = None
    """The command answered, or null when the line was not a command."""
    error: str | None = None
    """What was wrong, when not ok."""


class Command(_Line):
    """The envelope every command carries."""

    cmd: str
    """Command name; selects the model."""
    id: str | int | None = None
    """A token of the client's choosing, echoed in the reply."""


class Subscribe(Command):
    """Send every event from ``from_seq`` on: the history, then live events."""

    cmd: Literal["subscribe"] = "subscribe"
    from_seq: int = Field(0, ge=0)
    """First seq wanted."""


class CheckpointNow(Command):
    """Save a checkpoint after the current step."""

    cmd: Literal["checkpoint_now"] = "checkpoint_now"


class Pause(Command):
    """Pause training after the current step."""

    cmd: Literal["pause"] = "pause"


class Resume(Command):
    """Resume a paused run."""

    cmd: Literal["resume"] = "resume"


class Stop(Command):
    """Finish the current step, save a checkpoint, exit."""

    cmd: Literal["stop"] = "stop"


#: Every command model, by name.
COMMAND_MODELS: dict[str, type[Command]] = {
    get_args(cls.model_fields["cmd"].annotation)[0]: cls for cls in (Subscribe, CheckpointNow, Pause, Resume, Stop)
}
COMMANDS = frozenset(COMMAND_MODELS)
#: Command -> {argument: description}, derived from the models.
COMMAND_ARGS: dict[str, dict[str, str]] = {
    name: {k: f.description or "" for k, f in cls.model_fields.items() if k not in Command.model_fields}
    for name, cls in COMMAND_MODELS.items()
}

#: Any event or a reply, told apart by ``type``: what a line read from the engine may be.
_EVENT_OR_REPLY: TypeAdapter[Event | Reply] = TypeAdapter(
    Annotated[Union[(*_EVENT_CLASSES, Reply)], Field(discriminator="type")]
)


# --- building -----------------------------------------------------------------------------------


def _explain(what: str, exc: ValidationError) -> ProtocolError:
    """One message naming every problem of a line: missing keys first, then wrong values."""
    missing: list[str] = []
    wrong: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        # A union's members add their own names to the location ('id.str'): the key is enough.
        loc = ".".join(str(p) for p in err["loc"] if p not in _TYPE_NAMES)
        if err["type"] == "missing":
            missing.append(loc)
        elif loc not in wrong:
            msg = err["msg"].removeprefix("Input ")
            wrong[loc] = f"'{loc}' {msg} (got {err.get('input')!r:.60})"
    text = what + (f" is missing {', '.join(missing)}" if missing else "")
    if wrong:
        text += ("; " if missing else ": ") + "; ".join(wrong.values())
    return ProtocolError(text)


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "none"})


def _validate(cls: type[_Line], what: str, obj: dict) -> Any:
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        raise _explain(what, exc) from None


def make_event(type_: str, run: str, seq: int, ts: float | None = None, **payload: Any) -> Event:
    """The validated event model; raises ProtocolError for an unknown type, a missing or unknown
    payload key, or a value of the wrong type."""
    cls = EVENT_MODELS.get(type_)
    if cls is None:
        raise ProtocolError(f"unknown event type {type_!r}")
    unknown = payload.keys() - cls.model_fields.keys()
    if unknown:
        raise ProtocolError(f"{type_} event has no field {', '.join(sorted(unknown))}")
    return _validate(
        cls,
        f"{type_} event",
        {
            "v": PROTOCOL_VERSION,
            "type": type_,
            "run": run,
            "seq": seq,
            "ts": time.time() if ts is None else ts,
            **payload,
        },
    )


def make_command(cmd: str, id_: str | int | None = None, **args: Any) -> Command:
    cls = COMMAND_MODELS.get(cmd)
    if cls is None:
        raise ProtocolError(f"unknown command {cmd!r}")
    return _validate(cls, f"{cmd} command", {"v": PROTOCOL_VERSION, "cmd": cmd, "id": id_, **args})


def make_reply(id_: str | int | None, ok: bool, cmd: str | None = None, error: str | None = None) -> Reply:
    fields: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": "reply", "id": id_, "ok": ok, "cmd": cmd}
    if error is not None:
        fields["error"] = error
    return _validate(Reply, "reply", fields)


# --- encoding -----------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Non-finite floats are not JSON; they travel as null (the loss of a diverged step, say)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def encode(obj: _Line | dict) -> bytes:
    """One JSON line, UTF-8, newline-terminated. A model writes the fields it was given, in the
    order of its envelope first (``{"v":1,"type":...,"run":...,"seq":N,...}``)."""
    if isinstance(obj, _Line):
        return obj.__pydantic_serializer__.to_json(obj, exclude_unset=True) + b"\n"
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_json_safe(obj), separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


# --- decoding -----------------------------------------------------------------------------------


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
        raise ProtocolError(f"not acceptable JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise ProtocolError("not acceptable JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def check_version(obj: dict) -> None:
    v = obj.get("v")
    if v != PROTOCOL_VERSION or isinstance(v, bool):
        raise ProtocolError(f"protocol version {v!r} is not supported (this side speaks {PROTOCOL_VERSION})")


def decode_event(line: bytes | str) -> Event | Reply:
    """Parse and validate one event line (or a reply line from the socket) into its model; raises
    ProtocolError naming what is wrong."""
    if len(line) <= MAX_LINE_BYTES:
        try:  # the fast path: one pass in pydantic's core
            return _EVENT_OR_REPLY.validate_json(line)
        except (ValidationError, ValueError, RecursionError):
            pass  # say precisely what is wrong, below
    obj = _parse_line(line)
    check_version(obj)
    type_ = obj.get("type")
    cls = Reply if type_ == "reply" else EVENT_MODELS.get(type_) if isinstance(type_, str) else None
    if cls is None:
        raise ProtocolError(f"unknown event type {type_!r}" if "type" in obj else "event has no 'type'")
    return _validate(cls, f"{type_} event" if cls is not Reply else "reply", obj)


def decode_events(lines: Iterable[bytes]) -> Iterator[Event]:
    """The events of complete event-file lines (each known to have ended in a newline), skipping
    blank and malformed lines (the engine writes only whole, valid ones: a bad line is not its) and
    replies: how every reader of ``events.jsonl`` turns its lines into events."""
    for line in lines:
        if not line.strip():
            continue
        try:
            event = decode_event(line)
        except ProtocolError:
            continue
        if not isinstance(event, Reply):
            yield event


def decode_command(line: bytes | str) -> Command:
    """Parse and validate one command line into its model; raises ProtocolError naming the problem:
    a :class:`CommandError`, with the line's id, once the line is a JSON object."""
    obj = _parse_line(line)
    id_ = obj.get("id")
    if not isinstance(id_, (str, int)) or isinstance(id_, bool):
        id_ = None  # not an id a reply can carry (the model says so, below, for a known command)
    cmd = obj.get("cmd")
    known = cmd if isinstance(cmd, str) and cmd in COMMAND_MODELS else None
    try:
        check_version(obj)
        if not isinstance(cmd, str):
            raise ProtocolError("command has no 'cmd' string")
        if known is None:
            raise ProtocolError(f"unknown command {cmd!r} (known: {', '.join(sorted(COMMANDS))})")
        return _validate(COMMAND_MODELS[known], f"{cmd} command", obj)
    except ProtocolError as exc:
        raise CommandError(str(exc), id_, known) from None


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
