"""The event bus over a real Unix socket: history, live events, commands, hostile and slow peers."""

import json
import os
import socket
import stat
import threading
import time

import pytest

from cockpit.client import RunClient, read_events
from engine import protocol as P
from engine.bus import MAX_BACKLOG_BYTES, EventBus


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
    ],
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
    bus.emit("metrics", step=5, loss=2.5, lr=1e-3, tokens_per_s=100.0, tokens_seen=500, step_time_s=0.1,
             elapsed_s=1.0)
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
