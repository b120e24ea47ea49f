"""The event bus over a real Unix socket: history, live events, commands, hostile and slow peers."""

import errno
import json
import os
import socket
import stat
import threading
import time

import pytest

from cockpit.client import RunClient, read_events
from engine import bus as bus_mod
from engine import eventlog as eventlog_mod
from engine import protocol as P
from engine.bus import MAX_BACKLOG_BYTES, MAX_CLIENTS, MAX_SUBSCRIBERS, EventBus


def raw_connect(bus: EventBus) -> socket.socket:
    return P.connect(bus.paths.socket, timeout=5)


def read_lines(sock: socket.socket, count: int, timeout: float = 5.0) -> list[dict]:
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        out.extend(json.loads(x) for x in lines if x)
    return out


def subscribe(sock, from_seq=0):
    sock.sendall(P.encode(P.make_command("subscribe", "sub", from_seq=from_seq)))


@pytest.fixture
def bus(tmp_path):
    (tmp_path / "run-1").mkdir()
    b = EventBus(tmp_path / "run-1", heartbeat_s=0.2)
    yield b
    b.close()


def test_socket_is_owner_only(bus):
    mode = os.stat(bus.paths.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


def test_events_file_is_flushed_per_event_with_gapless_seq(bus):
    for i in range(5):
        bus.emit("log", level="info", message=f"m{i}")
    events = list(read_events(bus.paths.events))  # read while the bus is still open
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert all(e["run"] == "run-1" for e in events)


def test_late_subscriber_gets_history_then_live_without_gap(bus):
    for i in range(10):
        bus.emit("log", level="info", message=f"early{i}")
    sock = raw_connect(bus)
    subscribe(sock)
    got = read_lines(sock, 11)  # reply + 10 history events
    assert got[0]["type"] == "reply" and got[0]["ok"]
    for i in range(5):
        bus.emit("log", level="info", message=f"live{i}")
    got += read_lines(sock, 5)
    seqs = [e["seq"] for e in got if e["type"] != "reply"]
    assert seqs == list(range(15))
    sock.close()


def test_subscribe_from_a_seq_skips_earlier_events(bus):
    for i in range(600):  # crosses the history index stride
        bus.emit("log", level="info", message=f"{i}")
    sock = raw_connect(bus)
    time.sleep(0.2)
    subscribe(sock, from_seq=590)
    got = read_lines(sock, 11)
    assert [e["seq"] for e in got[1:]] == list(range(590, 600))
    sock.close()


def test_concurrent_emit_and_subscribe_is_gapless(bus):
    """A subscriber arriving while the loop emits fast sees every seq exactly once."""
    total = 3000
    done = threading.Event()

    def producer():
        for i in range(total):
            bus.emit("log", level="debug", message=f"e{i}")
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.01)
    client = RunClient(bus.paths.root, pid=os.getpid())
    seqs = []
    stop = threading.Event()
    for event in client.follow(stop=stop):
        seqs.append(event["seq"])
        if len(seqs) == total:
            stop.set()
    t.join()
    assert seqs == list(range(total))


def test_commands_are_queued_and_acknowledged(bus):
    client = RunClient(bus.paths.root)
    assert client.send("checkpoint_now")["ok"]
    assert client.send("stop")["ok"]
    assert [c["cmd"] for c in bus.poll_commands()] == ["checkpoint_now", "stop"]
    assert bus.poll_commands() == []


@pytest.mark.parametrize(
    "line, error",
    [
        (b"garbage\n", "not JSON"),
        (b"\xff\xff\n", "not UTF-8"),
        (b'{"v": 9, "cmd": "stop"}\n', "protocol version"),
        (b'{"v": 1, "cmd": "rm -rf /"}\n', "unknown command"),
        (b'{"v": 1, "cmd": "subscribe", "from_seq": -5}\n', "from_seq"),
        (b"[]\n", "JSON object"),
        (b'{"v":1,"cmd":"subscribe","from_seq":' + b"9" * 5000 + b"}\n", "not acceptable JSON"),
        (b"[" * 20000 + b"\n", "not acceptable JSON"),
    ],
    ids=["garbage", "utf8", "version", "unknown", "negative", "array", "huge-int", "deep-nesting"],
)
def test_hostile_messages_get_an_error_reply_and_change_nothing(bus, line, error):
    bus.emit("log", level="info", message="before")
    sock = raw_connect(bus)
    sock.sendall(line)
    reply = read_lines(sock, 1)[0]
    assert reply["type"] == "reply" and reply["ok"] is False and error in reply["error"]
    # the connection stays usable and nothing was queued or written
    sock.sendall(P.encode(P.make_command("checkpoint_now", "ok-1")))
    assert read_lines(sock, 1)[0]["ok"] is True
    assert [c["cmd"] for c in bus.poll_commands()] == ["checkpoint_now"]
    assert [e["message"] for e in read_events(bus.paths.events)] == ["before"]
    sock.close()


def test_over_long_line_is_refused_and_disconnected(bus):
    sock = raw_connect(bus)
    try:
        sock.sendall(b"x" * (P.MAX_LINE_BYTES + 10))
    except BrokenPipeError:
        pass
    reply = read_lines(sock, 1)[0]
    assert reply["ok"] is False and "longer than" in reply["error"]
    assert sock.recv(10) == b""  # closed by the engine
    assert bus.poll_commands() == []


def test_a_client_that_never_reads_does_not_slow_emit(bus):
    stuck = raw_connect(bus)
    subscribe(stuck)  # subscribes, then never reads
    payload = "x" * 2000
    t0 = time.perf_counter()
    n = (MAX_BACKLOG_BYTES // 2000) + 2000  # far more than the socket buffer and the backlog cap
    for _ in range(n):
        bus.emit("log", level="debug", message=payload)
    elapsed = time.perf_counter() - t0
    # The loop only appends to a file; a stuck client cannot block it. Generous bound for a noisy machine.
    assert elapsed < 30, elapsed
    deadline = time.time() + 10
    while bus.dropped_clients == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert bus.dropped_clients == 1  # cut off once its backlog passed the cap...
    fresh = RunClient(bus.paths.root, pid=os.getpid())
    stop = threading.Event()
    count = 0
    for event in fresh.follow(stop=stop):  # ...and a reconnect gets everything back
        assert event["seq"] == count
        count += 1
        if count == n:
            stop.set()
    assert count == n
    stuck.close()


def test_vanished_client_is_forgotten(bus):
    sock = raw_connect(bus)
    subscribe(sock)
    read_lines(sock, 1)
    sock.close()
    for i in range(50):
        bus.emit("log", level="info", message=str(i))
    assert RunClient(bus.paths.root).send("pause")["ok"]


def test_reopened_bus_continues_seq_and_drops_a_torn_line(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    with EventBus(run) as b:
        b.emit("log", level="info", message="a")
        b.emit("log", level="info", message="b")
    with open(run / "events.jsonl", "ab") as f:
        f.write(b'{"v":1,"type":"log","run":"r","seq":2,"ts"')  # a crash mid-write
    with EventBus(run) as b:
        assert b.emit("log", level="info", message="c") == 2
    lines = (run / "events.jsonl").read_bytes().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [0, 1, 2]


def test_status_json_tracks_state_and_heartbeat(bus):
    bus.emit("status", state="running", step=0)
    bus.emit("metrics", step=5, loss=2.5, lr=1e-3, tokens_per_s=100.0, tokens_seen=500, step_time_s=0.1, elapsed_s=1.0)
    bus.emit("checkpoint", action="saved", step=5, path="checkpoints/checkpoint-5")
    deadline = time.time() + 5
    status = {}
    while time.time() < deadline:
        try:
            status = json.loads(bus.paths.status.read_text())
        except (OSError, ValueError):
            pass
        if status.get("last_checkpoint") and status.get("loss") == 2.5:
            break
        time.sleep(0.05)
    assert status["state"] == "running" and status["step"] == 5 and status["pid"] == os.getpid()
    assert status["last_checkpoint"] == "checkpoints/checkpoint-5"
    first = status["heartbeat"]
    time.sleep(0.6)
    assert json.loads(bus.paths.status.read_text())["heartbeat"] > first


def test_close_removes_the_socket_and_writes_final_status(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    b = EventBus(run)
    b.emit("status", state="finished", step=3)
    b.close()
    assert not b.paths.socket.exists()
    assert json.loads(b.paths.status.read_text())["state"] == "finished"


def test_serve_false_writes_events_but_no_socket(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    with EventBus(run, serve=False) as b:
        b.emit("log", level="info", message="x")
        assert not b.paths.socket.exists()
    assert len(list(read_events(run / "events.jsonl"))) == 1


def test_a_burst_of_short_lines_gets_one_error_reply_each(bus):
    """64 KiB of one-byte lines in one write: one error reply each, and other clients stay served."""
    sock = raw_connect(bus)
    count = P.MAX_LINE_BYTES // 2
    sock.sendall(b"x\n" * count)
    replies = read_lines(sock, count, timeout=20)
    assert len(replies) == count and all(r["ok"] is False and "not JSON" in r["error"] for r in replies)
    assert RunClient(bus.paths.root).send("pause")["ok"]
    sock.close()


def test_reading_lines_is_linear_in_the_bytes_received(bus):
    """1 MiB of empty lines, then a command: split once per read, it is answered at once (splitting
    line by line off the whole buffer took ~8 s here)."""
    sock = raw_connect(bus)
    t0 = time.perf_counter()
    sock.sendall(b"\n" * (16 * 65536) + P.encode(P.make_command("pause", "p")))
    reply = read_lines(sock, 1, timeout=30)[0]
    assert reply["id"] == "p" and reply["ok"]
    assert time.perf_counter() - t0 < 4
    sock.close()


def test_idle_connections_cannot_lock_out_commands(bus):
    idle = [raw_connect(bus) for _ in range(MAX_CLIENTS + 10)]
    viewers = [raw_connect(bus) for _ in range(MAX_SUBSCRIBERS + 1)]
    for sock in viewers:
        subscribe(sock)
    answers = [read_lines(sock, 1)[0] for sock in viewers]
    assert [a["ok"] for a in answers] == [True] * (MAX_SUBSCRIBERS + 1)  # the last took the place of one
    assert bus.dropped_clients == 1
    assert RunClient(bus.paths.root).send("stop")["ok"]  # the oldest idle connections made room
    assert [c["cmd"] for c in bus.poll_commands()] == ["stop"]
    bus.emit("log", level="info", message="still live")
    assert read_lines(viewers[0], 1)[0]["message"] == "still live"
    for sock in idle + viewers:
        sock.close()


def test_40_viewers_that_never_read_cannot_lock_out_a_new_one(bus):
    """The attack: 40 connections subscribe and then never read while events flow. Each subscriber
    past MAX_SUBSCRIBERS takes the place of one of them, so a fresh one still gets in with the whole
    history, and a viewer that reads keeps its place throughout."""
    for i in range(200):
        bus.emit("log", level="info", message=f"history {i} " + "x" * 100)
    reader = raw_connect(bus)
    subscribe(reader)
    assert len(read_lines(reader, 201)) == 201
    stuck = [raw_connect(bus) for _ in range(40)]
    for sock in stuck:
        subscribe(sock)  # and never read
    for i in range(300):
        bus.emit("log", level="info", message=f"live {i} " + "y" * 100)
    assert [e["seq"] for e in read_lines(reader, 300)] == list(range(200, 500))
    deadline = time.monotonic() + 5
    while bus.dropped_clients < 40 + 1 - MAX_SUBSCRIBERS and time.monotonic() < deadline:
        time.sleep(0.02)  # every subscribe handled (the bus made room for the last 9)

    fresh = raw_connect(bus)
    subscribe(fresh)
    reply, *history = read_lines(fresh, 501)
    assert reply["type"] == "reply" and reply["ok"] is True, reply
    assert [e["seq"] for e in history] == list(range(500))  # the history, all of it
    assert bus.dropped_clients == 40 + 2 - MAX_SUBSCRIBERS  # one of the stuck made room for each newcomer
    bus.emit("log", level="info", message="after")
    assert read_lines(fresh, 1)[0]["message"] == "after"
    assert read_lines(reader, 1)[0]["message"] == "after"  # the viewer that reads was never the one dropped
    assert RunClient(bus.paths.root).send("pause")["ok"]
    for sock in [reader, fresh, *stuck]:
        sock.close()


def test_a_viewer_whose_socket_stays_full_is_dropped_before_its_backlog_cap(bus, monkeypatch):
    """A viewer that reads nothing is cut off once its socket has taken nothing for STALL_TIMEOUT_S,
    long before its backlog reaches MAX_BACKLOG_BYTES; a viewer that reads is kept."""
    monkeypatch.setattr(bus_mod, "STALL_TIMEOUT_S", 1.0)
    stuck = raw_connect(bus)
    subscribe(stuck)
    reader = raw_connect(bus)
    subscribe(reader)
    count = 1000
    received: list[dict] = []
    reading = threading.Thread(target=lambda: received.extend(read_lines(reader, count + 2, timeout=10)))
    reading.start()
    for i in range(count):  # 1 MB: far past the socket's buffer, far below the backlog cap
        bus.emit("log", level="info", message=f"{i} " + "z" * 1000)
    assert count * 1000 < MAX_BACKLOG_BYTES // 8
    deadline = time.monotonic() + 5
    while bus.dropped_clients == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bus.dropped_clients == 1
    bus.emit("log", level="info", message="kept")
    reading.join(10)
    assert [e["seq"] for e in received[1:]] == list(range(count + 1)) and received[-1]["message"] == "kept"
    stuck.settimeout(5)
    while stuck.recv(1 << 20):  # what its socket held, then the end: the bus closed it
        pass
    stuck.close()
    reader.close()


def test_an_error_reply_carries_the_id_of_the_line_it_answers(bus):
    sock = raw_connect(bus)
    lines = [
        (b'{"v": 1, "cmd": "rm -rf /", "id": "u-1"}\n', "u-1", None, "unknown command"),
        (b'{"v": 9, "cmd": "stop", "id": 42}\n', 42, "stop", "protocol version"),
        (b'{"v": 1, "cmd": "subscribe", "from_seq": -5, "id": "neg"}\n', "neg", "subscribe", "from_seq"),
        (b'{"v": 1, "id": "no-cmd"}\n', "no-cmd", None, "no 'cmd'"),
        (b'{"v": 1, "cmd": "stop", "id": [1]}\n', None, "stop", "'id'"),  # no id a reply can carry
    ]
    for line, id_, cmd, error in lines:
        sock.sendall(line)
        reply = read_lines(sock, 1)[0]
        assert reply["type"] == "reply" and reply["ok"] is False and error in reply["error"], reply
        assert (reply["id"], reply["cmd"]) == (id_, cmd), reply
    assert bus.poll_commands() == []
    sock.close()


def test_a_connection_that_never_subscribes_times_out(bus, monkeypatch):
    monkeypatch.setattr(bus_mod, "IDLE_TIMEOUT_S", 0.3)
    silent = raw_connect(bus)
    viewer = raw_connect(bus)
    subscribe(viewer)
    read_lines(viewer, 1)
    silent.settimeout(5)
    assert silent.recv(10) == b""  # closed by the engine
    time.sleep(0.5)
    bus.emit("log", level="info", message="viewer kept")
    assert read_lines(viewer, 1)[0]["message"] == "viewer kept"  # a subscriber is not idle
    silent.close()
    viewer.close()


class FailingFile:
    """The bus's events file whose next ``failures`` writes put half the bytes down (a torn line)
    and then fail as a full disk does."""

    def __init__(self, real, failures: int):
        self.real = real
        self.failures = failures

    def write(self, data) -> int:
        if self.failures:
            self.failures -= 1
            self.real.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_failed_append_holds_events_and_writes_them_late_in_order(bus, capfd):
    viewer = RunClient(bus.paths.root, pid=os.getpid())
    for i in range(3):
        bus.emit("log", level="info", message=f"before{i}")
    bus.event_log._file = FailingFile(bus.event_log._file, failures=13)
    for i in range(13):
        assert bus.emit("log", level="info", message=f"held{i}") is None  # never raises
    data = bus.paths.events.read_bytes()
    assert data.endswith(b"\n") and len(data.splitlines()) == 3  # the torn bytes were cut off
    assert "No space left on device" in capfd.readouterr().err  # said at once in engine.log
    status = wait_for_status(bus, lambda st: st.get("events_error"))
    assert "No space left on device" in status["events_error"]

    assert bus.emit("log", level="info", message="after") == 16  # writing works again
    events = list(read_events(bus.paths.events))
    assert [e["seq"] for e in events] == list(range(18))
    assert [e["message"] for e in events[:17]] == (
        [f"before{i}" for i in range(3)] + [f"held{i}" for i in range(13)] + ["after"]
    )
    error = events[17]
    assert error["type"] == "error" and "No space left on device" in error["message"]
    assert "14 events were written late" in error["message"]
    assert b"\n" not in bus.paths.events.read_bytes().replace(b"}\n", b"")  # only whole lines
    wait_for_status(bus, lambda st: "events_error" in st and st["events_error"] is None)
    stop = threading.Event()
    seen = []
    for event in viewer.follow(stop=stop):  # a live subscriber gets the same gapless stream
        seen.append(event["seq"])
        if len(seen) == 18:
            stop.set()
    assert seen == list(range(18))


def test_past_the_bound_only_telemetry_is_dropped_and_counted(bus, monkeypatch):
    monkeypatch.setattr(eventlog_mod, "MAX_UNWRITTEN_EVENTS", 10)
    bus.event_log._file = FailingFile(bus.event_log._file, failures=30)
    sample = dict(cpu_percent=1.0, ram_used=1, ram_total=2, proc_rss=1, gpus=[])
    for i in range(30):
        if i % 3:
            bus.emit("telemetry", **sample)
        else:
            bus.emit("log", level="info", message=f"kept{i}")
    bus.event_log._file = bus.event_log._file.real
    bus.emit("log", level="info", message="after")
    events = list(read_events(bus.paths.events))
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["message"] for e in events if e["type"] == "log"] == [f"kept{i}" for i in range(0, 30, 3)] + ["after"]
    dropped = sum(e["dropped"] for e in events if e["type"] == "spillover")
    assert dropped == 20 - sum(e["type"] == "telemetry" for e in events) and dropped > 0
    assert events[-1]["type"] == "spillover" and events[-2]["type"] == "error"


def wait_for_status(bus: EventBus, predicate, timeout: float = 5.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            status = json.loads(bus.paths.status.read_text())
        except (OSError, ValueError):
            status = {}
        if predicate(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"status.json never matched: {status}")
