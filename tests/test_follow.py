"""Following a run through its events file alone (finished, or on a shared filesystem): read from a
saved byte offset, woken by filesystem events, with a slow poll as the fallback."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from helpers import RefusingSocket

from cockpit import event_tail
from cockpit.client import RunClient
from cockpit.event_tail import DirWatch, EventTail
from engine import protocol as P
from engine.bus import EventBus


def new_run(tmp_path: Path, name: str = "tailed") -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "run.yaml").write_text(f"name: {name}\n", encoding="utf-8")
    return run


def line(seq: int, message: str = "x") -> bytes:
    return P.encode(P.make_event("log", "r", seq, ts=1.0, level="info", message=message))


def read_bytes() -> int:
    """Bytes this process has read through read(2) so far (Linux /proc/self/io)."""
    with open("/proc/self/io", "rb") as f:
        fields = dict(ln.split(b": ") for ln in f.read().splitlines())
    return int(fields[b"rchar"])


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """The seq of every line the tail decodes, through the real decoder."""
    seen: list[int] = []
    decode = P.decode_event

    def counting(raw):
        event = decode(raw)
        seen.append(event.seq)
        return event

    monkeypatch.setattr(P, "decode_event", counting)  # what decode_events calls for each line
    return seen


def test_the_tail_reads_and_decodes_each_line_once(tmp_path, decoded):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line(i, "history " * 20) for i in range(3000)))
    with EventTail(path) as tail:
        assert [e.seq for e in tail.read()] == list(range(3000))
        assert tail.offset == path.stat().st_size
        assert list(tail.read()) == []
        with open(path, "ab") as f:
            f.write(line(3000) + line(3001))
        before = read_bytes()
        assert [e.seq for e in tail.read()] == [3000, 3001]
        took = read_bytes() - before
    assert decoded == list(range(3002))  # the history was decoded once, not again for the new lines
    assert took < 2_000 < path.stat().st_size // 100, f"read {took} bytes for two short lines"


def test_a_partial_last_line_is_left_for_the_next_read(tmp_path, decoded):
    path = tmp_path / "events.jsonl"
    whole = line(1)
    path.write_bytes(line(0) + whole[:10])
    with EventTail(path) as tail:
        assert [e.seq for e in tail.read()] == [0]
        with open(path, "ab") as f:
            f.write(whole[10:])
        assert [e.seq for e in tail.read()] == [1]
    assert decoded == [0, 1]


def test_a_torn_line_cut_by_a_restarting_engine_is_dropped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(0) + line(1) + line(2)[:15])  # the engine died in the middle of a write
    with EventTail(path) as tail:
        assert [e.seq for e in tail.read()] == [0, 1]
        with open(path, "rb+") as f:  # what EventBus does on start: cut the torn line, go on from seq 2
            f.truncate(len(line(0) + line(1)))
        with open(path, "ab") as f:
            f.write(line(2, "after the restart"))
        assert [(e.seq, e.message) for e in tail.read()] == [(2, "after the restart")]


def test_the_tail_skips_malformed_lines_and_waits_for_a_missing_file(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventTail(path) as tail:
        assert list(tail.read()) == []
        path.write_bytes(line(0) + b"not json\n" + b'{"v":1,"type":"log"}\n' + line(1))
        assert [e.seq for e in tail.read()] == [0, 1]


def follow_in_thread(client: RunClient, stop: threading.Event, **kwargs):
    got: list[tuple[int, float]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for event in client.follow(stop=stop, **kwargs):
                got.append((event.seq, time.monotonic()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, got, errors


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_follow_without_a_socket_is_woken_by_the_filesystem(tmp_path, decoded):
    run = new_run(tmp_path)
    bus = EventBus(run, serve=False, heartbeat_s=0.2)  # alive (this process), but no socket: a shared filesystem
    try:
        for i in range(200):
            bus.emit("log", level="info", message=f"history {i}")
        stop = threading.Event()
        # A poll far longer than the test: only a filesystem event can deliver the appended events in time.
        thread, got, errors = follow_in_thread(RunClient(run), stop, poll_s=30.0)
        wait_until(lambda: len(got) == 200)
        assert decoded == list(range(200))
        for i in range(5):
            sent = time.monotonic()
            seq = bus.emit("log", level="info", message=f"live {i}")
            wait_until(lambda seq=seq: len(got) > seq, timeout=5.0)
            assert got[-1][0] == seq and got[-1][1] - sent < 2.0
            time.sleep(0.05)
        bus.emit("status", state="stopped", step=0)
    finally:
        bus.close()
    thread.join(10)
    assert not thread.is_alive() and errors == []
    assert [seq for seq, _ in got] == list(range(206))  # in order, no gap, no duplicate, then the end
    assert decoded == list(range(206))  # every line decoded once


def test_follow_falls_back_to_polling_when_no_filesystem_event_comes(tmp_path, monkeypatch):
    monkeypatch.setattr(event_tail, "_CHANGES", frozenset())  # as on a filesystem that reports nothing
    run = new_run(tmp_path)
    bus = EventBus(run, serve=False, heartbeat_s=0.2)
    try:
        bus.emit("status", state="running", step=0)
        stop = threading.Event()
        thread, got, errors = follow_in_thread(RunClient(run), stop, poll_s=0.3)
        wait_until(lambda: len(got) == 1)
        bus.emit("log", level="info", message="found by the poll")
        wait_until(lambda: len(got) == 2, timeout=3.0)
        bus.emit("status", state="finished", step=0)
    finally:
        bus.close()
    thread.join(10)
    assert not thread.is_alive() and errors == [] and [s for s, _ in got] == [0, 1, 2]


def test_follow_reads_the_file_when_the_socket_refuses_it(tmp_path):
    """An engine's socket that answers subscribe with an error (all its viewers taken): the follower
    yields the history from events.jsonl and keeps following the file, without raising and without
    asking the socket again and again."""
    run = new_run(tmp_path)
    bus = EventBus(run, serve=False, heartbeat_s=0.2)  # alive (this process); the socket below refuses
    refusing = RefusingSocket(run / "engine.sock")
    try:
        bus.emit("status", state="running", step=0)
        for i in range(99):
            bus.emit("log", level="info", message=f"history {i}")
        stop = threading.Event()
        thread, got, errors = follow_in_thread(RunClient(run), stop, poll_s=0.2)
        wait_until(lambda: len(got) == 100 or errors, timeout=5.0)
        assert errors == [] and [seq for seq, _ in got] == list(range(100))  # the history, from the file
        for i in range(3):
            seq = bus.emit("log", level="info", message=f"live {i}")
            wait_until(lambda seq=seq: len(got) > seq or errors, timeout=5.0)  # and what comes next
        assert refusing.refused == 1  # turned away once, then left alone
        bus.emit("status", state="stopped", step=0)
    finally:
        refusing.close()
        bus.close()
    thread.join(10)
    assert not thread.is_alive() and errors == []
    assert [seq for seq, _ in got] == list(range(104))


def test_the_watch_ignores_reads(tmp_path):
    (tmp_path / "status.json").write_text("{}")
    with DirWatch(tmp_path) as watch:
        assert watch.watching
        (tmp_path / "status.json").read_text()  # opening and reading is not a change
        assert not watch.wait(0.3)
        (tmp_path / "events.jsonl").write_bytes(line(0))
        assert watch.wait(5.0)


def test_stopping_the_watch_leaves_nothing_on_stderr(tmp_path, caplog):
    """Watchdog logs an error when stopped mid-read; a followed run must not end with that line."""
    caplog.set_level(logging.WARNING)
    for i in range(40):
        watch = DirWatch(tmp_path)
        (tmp_path / "events.jsonl").write_bytes(line(i))
        watch.wait(0.02)
        (tmp_path / "events.jsonl").write_bytes(line(i))
        watch.close()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("watchdog")] == []
