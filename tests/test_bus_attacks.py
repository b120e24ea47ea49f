"""Attacks on the live channel of a real training engine: after each one the engine still trains,
still obeys commands, and its events stay one gapless stream; at the end `cockpit stop` stops it.

One engine subprocess serves the whole module (the attacks run in file order; the last test stops it).
"""

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import events_of, wait_for
from typer.testing import CliRunner

from cockpit.cli import app
from cockpit.client import RunClient
from engine import protocol as P
from engine.rundir import RunPaths, read_status

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine(make_run_dir):
    """(run_dir, process) of an engine training a long, fast run, one metrics event per step."""
    run_dir = make_run_dir("attacked", {"train.max_steps": 100000, "train.log_every": 1})
    (run_dir / "logs").mkdir()
    with open(run_dir / "logs" / "engine.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: last_step(run_dir) >= 2, timeout=120)
    yield run_dir, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def last_step(run_dir) -> int:
    return max((e["step"] for e in events_of(run_dir) if e["type"] == "metrics"), default=-1)


def states(run_dir) -> list[str]:
    return [e["state"] for e in events_of(run_dir) if e["type"] == "status"]


def attack(run_dir, payload: bytes, replies: int = 1) -> list[dict]:
    """Send ``payload`` on a fresh connection and read ``replies`` reply lines."""
    sock = P.connect(RunPaths(run_dir).socket, timeout=20)
    with sock:
        sock.sendall(payload)
        buf, out = b"", []
        while len(out) < replies:
            chunk = sock.recv(1 << 20)
            assert chunk, "the engine closed the connection"
            buf += chunk
            *lines, buf = buf.split(b"\n")
            out += [json.loads(x) for x in lines if x]
    return out


def assert_still_serving(run_dir, proc) -> None:
    """Training goes on, commands work (pause and resume take effect), status.json is kept."""
    assert proc.poll() is None and RunPaths(run_dir).socket.exists()
    step = last_step(run_dir)
    wait_for(lambda: last_step(run_dir) > step, timeout=60)
    client = RunClient(run_dir)
    before = len(states(run_dir))
    assert client.send("pause")["ok"]
    wait_for(lambda: "paused" in states(run_dir)[before:], timeout=60)
    assert client.send("resume")["ok"]
    wait_for(lambda: states(run_dir)[-1] == "running", timeout=60)
    heartbeat = json.loads(RunPaths(run_dir).status.read_text())["heartbeat"]
    wait_for(lambda: json.loads(RunPaths(run_dir).status.read_text())["heartbeat"] > heartbeat, timeout=10)


def test_an_integer_of_5000_digits(engine):
    run_dir, proc = engine
    (reply,) = attack(run_dir, b'{"v":1,"cmd":"subscribe","from_seq":' + b"9" * 5000 + b"}\n")
    assert reply["ok"] is False and "not acceptable JSON" in reply["error"]
    assert_still_serving(run_dir, proc)


def test_20000_nested_brackets(engine):
    run_dir, proc = engine
    (reply,) = attack(run_dir, b"[" * 20000 + b"\n")
    assert reply["ok"] is False and "nested too deeply" in reply["error"]
    assert_still_serving(run_dir, proc)


def test_64_kib_of_short_lines(engine):
    run_dir, proc = engine
    count = P.MAX_LINE_BYTES // 2
    replies = attack(run_dir, b"x\n" * count, replies=count)
    assert len(replies) == count and not any(r["ok"] for r in replies)
    assert_still_serving(run_dir, proc)


def test_events_jsonl_that_cannot_be_written_for_a_while(engine):
    """The engine's file size limit is lowered under the running engine (EFBIG, as a full disk
    gives ENOSPC), then lifted: nothing torn, no seq reused, nothing lost, and it is reported."""
    run_dir, proc = engine
    paths = RunPaths(run_dir)
    log_size = paths.engine_log.stat().st_size
    limit = paths.events.stat().st_size + 100  # the next lines straddle it: a partial write, then EFBIG
    assert log_size < limit - 4096  # engine.log stays writable meanwhile
    soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, hard))
    try:
        status = wait_for(lambda: json.loads(paths.status.read_text()).get("events_error"), timeout=30)
        assert "File too large" in status
        logged = paths.engine_log.read_text().count("\nstep ")
        wait_for(lambda: paths.engine_log.read_text().count("\nstep ") >= logged + 5, timeout=60)  # still training
        assert paths.events.read_bytes().endswith(b"\n")
        assert paths.events.stat().st_size <= limit
    finally:
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
    assert "cannot write since" in paths.engine_log.read_text()  # said in engine.log at once
    late = wait_for(lambda: [e for e in events_of(run_dir) if e["type"] == "error"], timeout=60)
    assert "could not be written" in late[0]["message"] and "File too large" in late[0]["message"]
    written_late = re.search(r"; (\d+) events were written late", late[0]["message"])
    assert written_late and int(written_late[1]) >= 5, late[0]["message"]
    data = paths.events.read_bytes()  # once: the engine keeps appending
    lines = data[: data.rfind(b"\n") + 1].splitlines()
    events = [P.decode_event(line) for line in lines]  # every line whole and valid (raises otherwise)
    assert [e["seq"] for e in events] == list(range(len(events)))
    steps = [e["step"] for e in events if e["type"] == "metrics"]
    assert steps == list(range(steps[0], steps[-1] + 1))  # every step's metrics, in order
    wait_for(lambda: json.loads(paths.status.read_text()).get("events_error", "") is None, timeout=10)
    assert_still_serving(run_dir, proc)


def test_40_viewers_that_never_read_do_not_lock_out_attach(engine):
    """40 connections subscribe and never read while the run trains: a fresh viewer still gets in
    over the socket, with the history from seq 0 and the live steps after it."""
    run_dir, proc = engine
    stuck = [P.connect(RunPaths(run_dir).socket, timeout=5) for _ in range(40)]
    try:
        for sock in stuck:
            sock.sendall(P.encode(P.make_command("subscribe", "stuck", from_seq=0)))  # and never read
        step = last_step(run_dir)
        wait_for(lambda: last_step(run_dir) > step + 5, timeout=60)  # events flow into their backlogs
        sock = P.connect(RunPaths(run_dir).socket, timeout=20)
        with sock:
            sock.sendall(P.encode(P.make_command("subscribe", "fresh", from_seq=0)))
            buf, lines = b"", []
            target = last_step(run_dir) + 2
            while not any(x.get("type") == "metrics" and x["step"] >= target for x in lines):
                chunk = sock.recv(1 << 20)
                assert chunk, f"the engine closed the connection after {lines[:1]}"
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines += [json.loads(x) for x in done if x]
        assert lines[0]["type"] == "reply" and lines[0]["id"] == "fresh" and lines[0]["ok"], lines[0]
        assert [e["seq"] for e in lines[1:]] == list(range(len(lines) - 1))  # history, then live, no gap
    finally:
        for sock in stuck:
            sock.close()
    assert_still_serving(run_dir, proc)


def test_40_idle_connections_do_not_stop_cockpit_stop(engine):
    run_dir, proc = engine
    idle = [P.connect(RunPaths(run_dir).socket, timeout=5) for _ in range(40)]
    try:
        result = CliRunner().invoke(app, ["stop", str(run_dir)])
        assert result.exit_code == 0, result.output
        assert "stop requested" in result.output
        assert proc.wait(120) == 0
    finally:
        for sock in idle:
            sock.close()
    events = events_of(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "status" and events[-1]["state"] == "stopped"
    assert read_status(run_dir)["state"] == "stopped" and read_status(run_dir)["alive"] is False
