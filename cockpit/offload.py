"""Heavy Python work in a child process, so the app's event loop never waits for the GIL.

A worker thread of the app would share the interpreter's lock with the event loop: shard
preparation (tokenizing, hashing, numpy on large batches) holds it for up to a few hundred
milliseconds at a time, and every frame waits that long (the tokenizer trainer, at times, too). ``run_in_child`` runs the function in a
child Python process instead and relays its progress to the calling (worker) thread::

    manifest = run_in_child(prepare, (inputs, tok, out, settings), on_progress, cancel)

The function is called with ``progress=`` a callable that sends a (picklable) value to
``on_progress`` in the caller; its return value comes back, and an exception it raises is raised
again in the caller. Setting ``cancel`` terminates the child (the work must be safe to kill: the
shard writer's files are atomic) and raises ``Cancelled``.

The child is ``python -m cockpit.offload``: the call arrives pickled on its stdin and the news
leaves as length-prefixed pickles on its stdout (only this program's own two processes read
them); what the work prints goes to a log file whose tail explains a child that died.
(``multiprocessing`` is no use here: its start needs a real ``sys.stderr``, which a running
Textual app replaces.)
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import IO, Any

#: Seconds between looks at the cancel flag while waiting for news from the child.
POLL_S = 0.05
_LENGTH = struct.Struct("<Q")


class Cancelled(Exception):
    """The work was cancelled and its process ended."""


class ChildDied(RuntimeError):
    """The child process ended without an answer (killed, or out of memory)."""


def run_in_child(
    target: Callable[..., Any],
    args: tuple,
    on_progress: Callable[[Any], None],
    cancel: threading.Event,
) -> Any:
    """``target(*args, progress=...)`` in a child process; see the module docstring."""
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "cockpit.offload"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            close_fds=True,
            bufsize=0,  # unbuffered: no frame waits in a buffer while select() says nothing is ready
        )
        try:
            child.stdin.write(pickle.dumps((target, args)))
            child.stdin.close()
            return _relay(child, on_progress, cancel, log)
        finally:
            _end(child)
            child.stdout.close()


def _end(child: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Reap the child; one still running (a moment after its answer) is asked to stop (its cleanups
    run), then killed."""
    try:
        child.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        child.terminate()
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _relay(child: subprocess.Popen, on_progress: Callable[[Any], None], cancel: threading.Event, log: IO) -> Any:
    out = child.stdout
    while True:
        if cancel.is_set():
            raise Cancelled
        ready, _, _ = select.select([out], [], [], POLL_S)
        if not ready:
            continue
        frame = _read_frame(out)
        if frame is None:
            child.wait(timeout=30)
            log.seek(0)
            tail = log.read()[-2000:].decode("utf-8", "replace").strip()
            raise ChildDied(f"the child process ended with code {child.returncode}" + (f": {tail}" if tail else ""))
        kind, value = frame
        if kind == "progress":
            on_progress(value)
        elif kind == "error":
            raise value
        else:
            return value


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    parts, missing = [], size
    while missing:
        part = stream.read(missing)
        if not part:
            return None
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def _read_frame(stream: IO[bytes]) -> tuple[str, Any] | None:
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return None
    body = _read_exactly(stream, _LENGTH.unpack(head)[0])
    return None if body is None else pickle.loads(body)


def _main() -> None:
    """The child: run the call from stdin, news to the original stdout, prints to stderr."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a cancel unwinds: the work's cleanups run
    news = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the work prints cannot break the frames
    target, args = pickle.loads(sys.stdin.buffer.read())

    def send(kind: str, value: Any) -> None:
        data = pickle.dumps((kind, value))
        news.write(_LENGTH.pack(len(data)) + data)
        news.flush()

    try:
        result = target(*args, progress=lambda value: send("progress", value))
    except BaseException as exc:
        send("error", exc)
    else:
        send("done", result)


if __name__ == "__main__":
    _main()
