"""The event bus: ``events.jsonl`` plus the live Unix socket. Torch-free.

The training thread calls :meth:`EventBus.emit`, which appends the event to ``events.jsonl``
(:class:`engine.eventlog.EventLog`: the next ``seq``, one whole line, flushed; held in memory while
the disk refuses it): nothing more, so the loop never waits on a client.

One background thread tails that same file and is the only one that touches sockets. Because the
file is the single ordered stream, a subscriber gets the history (read from the file up to the
thread's position) followed by the live lines (everything past that position): no gap, no
duplicate, and nothing is lost if the thread falls behind. A viewer that does not read is cut off
once its backlog passes ``MAX_BACKLOG_BYTES`` or its socket has taken nothing for
``STALL_TIMEOUT_S``; it reconnects with ``from_seq`` and loses nothing. Viewers that read nothing
cannot lock out a new one either: when ``MAX_SUBSCRIBERS`` are served, a new subscriber takes the
place of the viewer furthest behind (see :meth:`EventBus._make_room`). The thread forwards only
whole lines the training thread has written, never a line being written.

Commands arrive on the same thread, are validated, answered at once, and queued for the training
loop, which drains them with :meth:`EventBus.poll_commands` between steps. Malformed input gets an
error reply and changes nothing; no input and no failure while serving one client can stop the
thread (that client is dropped). Connections that have not subscribed are closed after
``IDLE_TIMEOUT_S`` without input, and viewers are capped below the connection limit, so a command
such as ``stop`` always gets in.

The thread also keeps ``status.json`` (:class:`engine.statusfile.StatusFile`) from the events it forwards.

Why this module is over 400 lines: it is one job, the thread that owns the sockets (bind, accept,
read and answer commands, subscribe with history, forward, flush, drop, make room, shut down), and
its parts share that thread's selector and client table; the file appender and status.json are apart.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import queue
import selectors
import socket
import struct
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

from engine.eventlog import EventLog
from engine.protocol import (
    MAX_LINE_BYTES,
    CommandError,
    ProtocolError,
    decode_command,
    encode,
    make_reply,
    socket_address,
)
from engine.rundir import RunPaths
from engine.statusfile import StatusFile

log = logging.getLogger(__name__)

#: Unsent bytes a live client may fall behind by before it is disconnected.
MAX_BACKLOG_BYTES = 8 * 1024 * 1024
#: Commands waiting for the training loop; more are refused with an error reply.
MAX_PENDING_COMMANDS = 64
#: Subscribed connections (viewers) served at once. A subscriber past them takes the place of the
#: viewer furthest behind, which is disconnected (and, if it still reads, catches up from the file).
MAX_SUBSCRIBERS = 32
#: Seconds a viewer's socket may stay full (the viewer reads nothing) before it is disconnected.
STALL_TIMEOUT_S = 30.0
#: Connections served at once. Room is left above MAX_SUBSCRIBERS for commands; when full, the
#: longest-idle connection that has not subscribed is closed to let a new one in.
MAX_CLIENTS = MAX_SUBSCRIBERS + 16
#: Seconds a connection that has not subscribed may stay silent before it is closed.
IDLE_TIMEOUT_S = 10.0
#: Bytes of events.jsonl the thread reads at once.
_READ_CHUNK = 4 * 1024 * 1024
#: An index entry (seq -> file offset) every this many events, for fast history reads.
_INDEX_EVERY = 256
#: The ioctl that tells how many bytes sent on a Unix socket its peer has not read yet (Linux's
#: SIOCOUTQ, which is TIOCOUTQ); None where there is none, and only the bus's own backlog counts.
_SIOCOUTQ = getattr(termios, "TIOCOUTQ", None) if sys.platform.startswith("linux") else None


class _Client:
    __slots__ = ("sock", "fd", "inbuf", "outbuf", "from_seq", "limit", "last_active", "subscribed_at", "last_sent")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.from_seq: int | None = None  # None until subscribed
        self.limit = MAX_BACKLOG_BYTES
        self.last_active = time.monotonic()  # of its last input
        self.subscribed_at = 0.0
        self.last_sent = 0.0  # when its socket last took bytes (or it subscribed)

    def unread(self) -> int:
        """Bytes queued for this client that it has not read: the bus's backlog plus what its socket
        holds (as the kernel counts it, overhead included)."""
        queued = 0
        if _SIOCOUTQ is not None:
            buf = array.array("i", [0])
            try:
                fcntl.ioctl(self.fd, _SIOCOUTQ, buf)
                queued = buf[0]
            except OSError:
                pass
        return len(self.outbuf) + queued


class EventBus:
    """Event log + live channel of one run. Use as a context manager or call close()."""

    def __init__(
        self, run_dir: str | os.PathLike, *, serve: bool = True, heartbeat_s: float = 2.0, pid: int | None = None
    ):
        self.paths = RunPaths(Path(run_dir))
        self.run_id = self.paths.run_id
        self.serve = serve
        self.heartbeat_s = heartbeat_s
        self.pid = pid or os.getpid()

        self.event_log = EventLog(self.paths.events, self.run_id)
        self._commands: queue.Queue[dict] = queue.Queue(MAX_PENDING_COMMANDS)
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        # Owned by the bus thread from here on.
        self._reader = open(self.paths.events, "rb")
        self._offset = 0  # bytes of events.jsonl already forwarded
        self._index: list[tuple[int, int]] = [(0, 0)]
        self._clients: dict[int, _Client] = {}
        self._status = StatusFile(self.paths.status, self.run_id, self.pid, heartbeat_s)
        #: Viewers disconnected for falling behind: backlog past the cap, stalled, or their place taken.
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

    def emit(self, type_: str, **payload: Any) -> int | None:
        """Append one event; returns its seq, or None when events.jsonl cannot be written now (the
        event is held and written by a later emit). Thread-safe, never blocks on a client, never
        raises for a failed write."""
        seq = self.event_log.append(type_, **payload)
        self._wake()
        return seq

    @property
    def write_error(self) -> str | None:
        """Why events.jsonl cannot be written right now, or None when it can."""
        return self.event_log.write_error

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
        return self.event_log.next_seq

    def close(self, timeout: float = 3.0) -> None:
        """Forward every event to live clients (waiting up to ``timeout`` for slow ones), write the
        final ``status.json``, and remove the socket."""
        if self._stopping.is_set():
            return
        self.event_log.write_held()
        self._stopping.set()
        self._wake()
        self._thread.join(timeout + 2.0)
        self.event_log.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def __enter__(self) -> EventBus:
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
        srv.listen(socket.SOMAXCONN)  # a burst of connections waits to be accepted, not refused
        srv.setblocking(False)
        return srv

    # --- bus thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._serve_once()
            except Exception:  # a bug here must neither stop the thread nor spin on it
                log.exception("event bus: unexpected failure; carrying on")
                time.sleep(0.5)
        try:
            self._shutdown()
        except Exception:  # the bus must never take the training loop down with it
            log.exception("event bus: failed while shutting down; live clients are disconnected")
            self._close_all()

    def _serve_once(self) -> None:
        for key, mask in self._sel.select(timeout=0.5):
            self._dispatch(key, mask)
        self._expire_idle()
        self._pump()
        self._status.write(self.event_log.write_error)

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data in ("wake", "accept"):
            self._dispatch_own(key)
            return
        client: _Client = key.data
        try:
            if mask & selectors.EVENT_READ:
                self._read(client)
            if mask & selectors.EVENT_WRITE and self._connected(client):
                self._flush(client)
        except Exception:  # whatever went wrong serving this client costs that client only
            log.exception("event bus: dropping a client after an internal error")
            self._drop(client)

    def _dispatch_own(self, key: selectors.SelectorKey) -> None:
        if key.data == "wake":
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        else:
            self._accept()

    def _connected(self, client: _Client) -> bool:
        return self._clients.get(client.fd) is client

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                sock, _ = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            if not self._same_user(sock) or (len(self._clients) >= MAX_CLIENTS and not self._evict_idle()):
                sock.close()
                continue
            sock.setblocking(False)
            client = _Client(sock)
            self._clients[client.fd] = client
            self._sel.register(sock, selectors.EVENT_READ, client)

    def _evict_idle(self) -> bool:
        """Close the connection that has not subscribed and was silent longest; False when every
        connection is a subscriber."""
        idle = [c for c in self._clients.values() if c.from_seq is None]
        if not idle:
            return False
        self._drop(min(idle, key=lambda c: c.last_active))
        return True

    def _expire_idle(self) -> None:
        """Close connections that have not subscribed and said nothing for IDLE_TIMEOUT_S, and
        viewers whose socket has taken nothing for STALL_TIMEOUT_S while their backlog waits."""
        now = time.monotonic()
        for client in list(self._clients.values()):
            if client.from_seq is None and client.last_active < now - IDLE_TIMEOUT_S:
                self._drop(client)
            elif client.from_seq is not None and client.outbuf and client.last_sent < now - STALL_TIMEOUT_S:
                self.dropped_clients += 1
                self._drop(client)

    def _make_room(self) -> None:
        """Disconnect the viewer furthest behind, to serve a new one in its place: the one whose
        socket has been full longest, else the one with the most bytes it has not read, else (all
        keep up) the latest to subscribe, so that the viewers of long standing stay. It loses
        nothing: it reconnects from its last seq or, turned away, reads the file."""
        now = time.monotonic()
        viewers = [c for c in self._clients.values() if c.from_seq is not None]
        victim = max(viewers, key=lambda c: (now - c.last_sent if c.outbuf else 0.0, c.unread(), c.subscribed_at))
        log.info("event bus: %d viewers; disconnecting the one furthest behind for a new one", len(viewers))
        self.dropped_clients += 1
        self._drop(victim)

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
        client.last_active = time.monotonic()
        client.inbuf += data
        if b"\n" in data:  # split once per read: the cost stays linear in the bytes received
            *lines, tail = client.inbuf.split(b"\n")
            client.inbuf = tail
            for line in lines:
                if line.strip():
                    self._answer_line(client, bytes(line))
                if not self._connected(client):
                    return
        if len(client.inbuf) > MAX_LINE_BYTES:
            self._send(client, make_reply(None, False, error=f"line longer than {MAX_LINE_BYTES} bytes"))
            self._flush(client)
            self._drop(client)
            return
        self._flush(client)

    def _answer_line(self, client: _Client, line: bytes) -> None:
        """Handle one line; whatever goes wrong is answered on this connection only."""
        try:
            self._handle_line(client, line)
        except Exception as exc:
            log.exception("event bus: failed to handle a command line")
            self._send(
                client,
                make_reply(
                    None, False, error=f"the engine could not handle this line ({type(exc).__name__}); nothing was done"
                ),
            )

    def _handle_line(self, client: _Client, line: bytes) -> None:
        try:
            cmd = decode_command(line)
        except CommandError as exc:  # a JSON object: the reply carries its id
            self._send(client, make_reply(exc.id, False, exc.cmd, str(exc)))
            return
        except ProtocolError as exc:
            self._send(client, make_reply(None, False, error=str(exc)))
            return
        name, id_ = cmd["cmd"], cmd.get("id")
        if name == "subscribe":
            if client.from_seq is not None:
                self._send(client, make_reply(id_, False, name, "already subscribed on this connection"))
                return
            if sum(c.from_seq is not None for c in self._clients.values()) >= MAX_SUBSCRIBERS:
                self._make_room()
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
        client.subscribed_at = client.last_sent = time.monotonic()
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
        while k < len(line) and line[k : k + 1].isdigit():
            k += 1
        return int(line[j:k]) if k > j else -1

    def _pump(self) -> None:
        """Forward the whole lines written to events.jsonl since the last call."""
        while self.event_log.size > self._offset:
            chunk = os.pread(self._reader.fileno(), min(self.event_log.size - self._offset, _READ_CHUNK), self._offset)
            complete = chunk[: chunk.rfind(b"\n") + 1]
            if not complete:
                break
            self._forward(complete)
            self._flush_all()  # per chunk: a viewer past its cap is dropped before the next
        self._flush_all()

    def _flush_all(self) -> None:
        for client in list(self._clients.values()):
            if client.outbuf:
                self._flush(client)

    def _forward(self, complete: bytes) -> None:
        offset = self._offset
        for line in complete.splitlines(keepends=True):
            seq = self._seq_of(line)
            if seq >= 0 and seq % _INDEX_EVERY == 0 and seq > self._index[-1][0]:
                self._index.append((seq, offset))
            offset += len(line)
            try:
                self._status.observe(line, seq)
            except Exception:  # status.json misses one event; the stream goes on
                log.exception("event bus: could not read event %d for status.json", seq)
            for client in self._clients.values():
                if client.from_seq is not None and seq >= client.from_seq:
                    client.outbuf += line
        self._offset = offset

    def _send(self, client: _Client, obj: dict) -> None:
        """Queue a reply; _read flushes once it has handled every line of what it received."""
        client.outbuf += encode(obj)

    def _flush(self, client: _Client) -> None:
        if not self._connected(client):
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
            client.last_sent = time.monotonic()
        if len(client.outbuf) > client.limit:
            self.dropped_clients += 1
            self._drop(client)  # too slow: it reconnects from its last seq and loses nothing
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.outbuf else 0)
        self._sel.modify(client.sock, events, client)

    def _drop(self, client: _Client) -> None:
        if self._connected(client):
            del self._clients[client.fd]
            try:
                self._sel.unregister(client.sock)
            except (KeyError, ValueError):
                pass
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
        self._status.write(self.event_log.write_error, force=True)
        self._reader.close()
        self._sel.close()


class NullBus:
    """The bus of processes other than the main one: events go nowhere, no commands arrive."""

    def emit(self, type_: str, **payload) -> int:
        return -1

    def poll_commands(self) -> list[dict]:
        return []

    def close(self) -> None:
        pass
