"""The event bus: ``events.jsonl`` plus the live Unix socket. Torch-free.

The training thread calls :meth:`EventBus.emit`, which assigns the next ``seq``, appends one line to
``events.jsonl`` and flushes it: nothing more, so the loop never waits on a client.

One background thread tails that same file and is the only one that touches sockets. Because the
file is the single ordered stream, a subscriber gets the history (read from the file up to the
thread's position) followed by the live lines (everything past that position): no gap, no
duplicate, and nothing is lost if the thread falls behind. A client that does not read is cut off
once its backlog passes ``MAX_BACKLOG_BYTES``; it reconnects with ``from_seq`` and loses nothing.

Commands arrive on the same thread, are validated, answered at once, and queued for the training
loop, which drains them with :meth:`EventBus.poll_commands` between steps. Malformed input gets an
error reply and changes nothing.

The thread also keeps ``status.json`` (state, step, last loss, last checkpoint, pid, heartbeat).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import selectors
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

from engine.protocol import (
    MAX_LINE_BYTES,
    ProtocolError,
    decode_command,
    encode,
    make_event,
    make_reply,
    socket_address,
)
from engine.rundir import RunPaths, atomic_write_text

log = logging.getLogger(__name__)

#: Unsent bytes a live client may fall behind by before it is disconnected.
MAX_BACKLOG_BYTES = 8 * 1024 * 1024
#: Commands waiting for the training loop; more are refused with an error reply.
MAX_PENDING_COMMANDS = 64
#: Connections served at once; more are refused.
MAX_CLIENTS = 32
#: An index entry (seq -> file offset) every this many events, for fast history reads.
_INDEX_EVERY = 256


def _last_seq_and_truncate(path: Path) -> int:
    """Seq of the last complete line of an existing events file (-1 when none). A partial last
    line, left by a crash in the middle of a write, is cut off."""
    if not path.exists():
        return -1
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            f.truncate(end)
    for line in reversed(data[:end].splitlines()):
        if line.strip():
            try:
                return int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                raise RuntimeError(f"{path}: last line is not a valid event; refusing to append") from None
    return -1


class _Client:
    __slots__ = ("sock", "inbuf", "outbuf", "from_seq", "limit")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.from_seq: int | None = None  # None until subscribed
        self.limit = MAX_BACKLOG_BYTES


class EventBus:
    """Event log + live channel of one run. Use as a context manager or call close()."""

    def __init__(self, run_dir: str | os.PathLike, *, serve: bool = True, heartbeat_s: float = 2.0,
                 pid: int | None = None):
        self.paths = RunPaths(Path(run_dir))
        self.run_id = self.paths.run_id
        self.serve = serve
        self.heartbeat_s = heartbeat_s
        self.pid = pid or os.getpid()

        self._lock = threading.Lock()
        self._next_seq = _last_seq_and_truncate(self.paths.events) + 1
        self._file = open(self.paths.events, "ab")
        self._commands: queue.Queue[dict] = queue.Queue(MAX_PENDING_COMMANDS)
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        # Owned by the bus thread from here on.
        self._reader = open(self.paths.events, "rb")
        self._offset = 0          # bytes of events.jsonl already forwarded
        self._partial = b""
        self._index: list[tuple[int, int]] = [(0, 0)]
        self._clients: dict[int, _Client] = {}
        self._status: dict[str, Any] = {"run": self.run_id, "pid": self.pid, "state": "starting",
                                        "step": 0, "loss": None, "last_checkpoint": None, "seq": -1,
                                        "started_at": time.time()}
        self._status_dirty = True
        self._last_status_write = 0.0
        self.dropped_clients = 0

        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._server: socket.socket | None = None
        if serve:
            self._server = self._bind()
            self._sel.register(self._server, selectors.EVENT_READ, "accept")
        self._thread = threading.Thread(target=self._run, name="event-bus", daemon=True)
        self._thread.start()

    # --- training-thread side -------------------------------------------------------------

    def emit(self, type_: str, **payload: Any) -> int:
        """Append one event; returns its seq. Thread-safe, never blocks on a client."""
        with self._lock:
            seq = self._next_seq
            line = encode(make_event(type_, self.run_id, seq, **payload))
            self._file.write(line)
            self._file.flush()
            self._next_seq = seq + 1
        self._wake()
        return seq

    def poll_commands(self) -> list[dict]:
        """Commands received since the last call, oldest first (non-blocking)."""
        out = []
        while True:
            try:
                out.append(self._commands.get_nowait())
            except queue.Empty:
                return out

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def close(self, timeout: float = 3.0) -> None:
        """Forward every event to live clients (waiting up to ``timeout`` for slow ones), write the
        final ``status.json``, and remove the socket."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake()
        self._thread.join(timeout + 2.0)
        with self._lock:
            self._file.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> "EventBus":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the thread is already due to wake) or closed

    # --- socket setup ---------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        path = self.paths.socket
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600, no window where others can connect
        try:
            with socket_address(path) as addr:
                srv.bind(addr)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        srv.listen(16)
        srv.setblocking(False)
        return srv

    # --- bus thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, mask in self._sel.select(timeout=0.5):
                    self._dispatch(key, mask)
                self._pump()
                self._write_status()
            self._shutdown()
        except Exception:  # the bus must never take the training loop down with it
            log.exception("event bus thread failed; live clients are disconnected")
            self._close_all()

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data == "wake":
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        elif key.data == "accept":
            self._accept()
        else:
            client: _Client = key.data
            if mask & selectors.EVENT_READ:
                self._read(client)
            if mask & selectors.EVENT_WRITE and client.sock.fileno() in self._clients:
                self._flush(client)

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                sock, _ = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            if not self._same_user(sock) or len(self._clients) >= MAX_CLIENTS:
                sock.close()
                continue
            sock.setblocking(False)
            client = _Client(sock)
            self._clients[sock.fileno()] = client
            self._sel.register(sock, selectors.EVENT_READ, client)

    @staticmethod
    def _same_user(sock: socket.socket) -> bool:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except (OSError, AttributeError):
            return True  # no SO_PEERCRED on this platform; the 0600 mode still guards the socket
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid in (os.getuid(), 0)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.inbuf += data
        while b"\n" in client.inbuf:
            line, _, rest = bytes(client.inbuf).partition(b"\n")
            client.inbuf = bytearray(rest)
            if line.strip():
                self._handle_line(client, line)
            if client.sock.fileno() not in self._clients:
                return
        if len(client.inbuf) > MAX_LINE_BYTES:
            self._send(client, make_reply(None, False, error=f"line longer than {MAX_LINE_BYTES} bytes"))
            self._flush(client)
            self._drop(client)

    def _handle_line(self, client: _Client, line: bytes) -> None:
        try:
            cmd = decode_command(line)
        except ProtocolError as exc:
            self._send(client, make_reply(None, False, error=str(exc)))
            return
        name, id_ = cmd["cmd"], cmd.get("id")
        if name == "subscribe":
            if client.from_seq is not None:
                self._send(client, make_reply(id_, False, name, "already subscribed on this connection"))
                return
            self._send(client, make_reply(id_, True, name))
            self._subscribe(client, cmd["from_seq"])
            return
        try:
            self._commands.put_nowait({"cmd": name, "id": id_, "received": time.time()})
        except queue.Full:
            self._send(client, make_reply(id_, False, name, "engine is busy: too many pending commands"))
            return
        self._send(client, make_reply(id_, True, name))

    def _subscribe(self, client: _Client, from_seq: int) -> None:
        """Queue the history (seq >= from_seq up to what has been forwarded) for this client and
        make it live; later lines come from _pump."""
        start = 0
        for seq, offset in self._index:
            if seq > from_seq:
                break
            start = offset
        history = b""
        if self._offset > start:
            with open(self.paths.events, "rb") as f:
                f.seek(start)
                chunk = f.read(self._offset - start)
            if from_seq > 0:
                kept = [ln for ln in chunk.splitlines(keepends=True) if self._seq_of(ln) >= from_seq]
                history = b"".join(kept)
            else:
                history = chunk
        client.from_seq = from_seq
        client.limit = MAX_BACKLOG_BYTES + len(history)
        client.outbuf += history
        self._flush(client)

    @staticmethod
    def _seq_of(line: bytes) -> int:
        # Lines are written by encode(): {"v":1,"type":...,"run":...,"seq":N,...}
        i = line.find(b'"seq":')
        if i < 0:
            return -1
        j = i + 6
        k = j
        while k < len(line) and line[k:k + 1].isdigit():
            k += 1
        return int(line[j:k]) if k > j else -1

    def _pump(self) -> None:
        """Forward lines appended to events.jsonl since the last call."""
        data = self._reader.read()
        if not data:
            return
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if not end:
            return
        complete = data[:end]
        offset = self._offset
        for line in complete.splitlines(keepends=True):
            seq = self._seq_of(line)
            if seq >= 0 and seq % _INDEX_EVERY == 0 and seq > self._index[-1][0]:
                self._index.append((seq, offset))
            offset += len(line)
            self._observe(line, seq)
            for client in list(self._clients.values()):
                if client.from_seq is not None and seq >= client.from_seq:
                    client.outbuf += line
        self._offset = offset
        for client in list(self._clients.values()):
            if client.outbuf:
                self._flush(client)

    def _send(self, client: _Client, obj: dict) -> None:
        client.outbuf += encode(obj)
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd not in self._clients:
            return
        while client.outbuf:
            try:
                n = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(client)
                return
            del client.outbuf[:n]
        if len(client.outbuf) > client.limit:
            self.dropped_clients += 1
            self._drop(client)  # too slow: it reconnects from its last seq and loses nothing
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        self._sel.modify(client.sock, events, client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd in self._clients:
            del self._clients[fd]
            self._sel.unregister(client.sock)
        client.sock.close()

    def _close_all(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        if self._server is not None:
            try:
                self._sel.unregister(self._server)
            except (KeyError, ValueError):
                pass
            self._server.close()
            self._server = None
            try:
                self.paths.socket.unlink()
            except FileNotFoundError:
                pass

    def _shutdown(self) -> None:
        self._pump()
        deadline = time.monotonic() + 3.0
        while any(c.outbuf for c in self._clients.values()) and time.monotonic() < deadline:
            for key, mask in self._sel.select(timeout=0.05):
                if key.data not in ("wake", "accept"):
                    self._dispatch(key, mask)
        self._close_all()
        self._status_dirty = True
        self._write_status(force=True)
        self._reader.close()
        self._sel.close()

    # --- status.json ----------------------------------------------------------------------

    def _observe(self, line: bytes, seq: int) -> None:
        # Imported here, not at the top: this method is the bus's one reader of event models.
        from engine.protocol import Checkpoint, Hello, Metrics, ProtocolError, Status, decode_event

        try:
            event = decode_event(line)
        except ProtocolError:
            return
        st = self._status
        st["seq"] = seq
        if isinstance(event, Status):
            st["state"], st["step"], st["reason"] = event.state, event.step, event.reason
            self._status_dirty = True
        elif isinstance(event, Metrics):
            st["step"], st["loss"] = event.step, event.loss
            st["tokens_per_s"], st["eta_s"] = event.tokens_per_s, event.eta_s
        elif isinstance(event, Checkpoint) and event.action == "saved":
            st["last_checkpoint"] = event.path
            self._status_dirty = True
        elif isinstance(event, Hello):
            st["max_steps"], st["preset"] = event.max_steps, event.preset
            self._status_dirty = True

    def _write_status(self, force: bool = False) -> None:
        now = time.time()
        if not (force or self._status_dirty or now - self._last_status_write >= self.heartbeat_s):
            return
        self._status["heartbeat"] = now
        try:
            atomic_write_text(self.paths.status, json.dumps(self._status, indent=1) + "\n", fsync=False)
        except OSError as exc:
            log.warning("could not write %s: %s", self.paths.status, exc)
        self._status_dirty = False
        self._last_status_write = now
