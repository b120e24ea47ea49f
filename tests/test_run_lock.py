"""One engine per run directory (``engine.lock``), and liveness that a reused pid cannot fake."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from helpers import events_of

from engine.rundir import RunLock, RunLocked, lock_held, process_start_time, read_status

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO}
#: A child that takes the run directory's lock, says so, and holds it until its stdin closes.
HOLDER = (
    "import sys; from engine.rundir import RunLock; RunLock(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"
)


def engine(run_dir, *args, out=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir), *args],
        cwd=REPO,
        env=ENV,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_status(run_dir, **fields) -> None:
    (run_dir / "status.json").write_text(json.dumps({"run": run_dir.name, "state": "running", "step": 3, **fields}))


@pytest.fixture
def holder(tmp_path):
    """A live process (not this one) holding tmp_path/run's lock."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)],
        cwd=REPO,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    yield run_dir, proc
    proc.stdin.close()
    proc.wait(10)


@pytest.mark.slow
def test_two_engines_resuming_one_run_directory_at_once_train_it_once(make_run_dir, tmp_path):
    run_dir = make_run_dir("lock", {"train.max_steps": 4, "train.warmup_steps": 1, "train.log_every": 1})
    first = engine(run_dir, out=subprocess.DEVNULL)
    assert first.wait(180) == 0, first.stderr.read()
    cfg = yaml.safe_load((run_dir / "run.yaml").read_text())
    cfg["train"]["max_steps"] = 8
    (run_dir / "run.yaml").write_text(yaml.safe_dump(cfg))

    a, b = (engine(run_dir, "--resume", "latest", out=subprocess.DEVNULL) for _ in range(2))
    codes = {a.pid: a.wait(180), b.pid: b.wait(180)}
    stderr = {a.pid: a.stderr.read(), b.pid: b.stderr.read()}
    assert sorted(codes.values()) == [0, 2], stderr
    winner = next(pid for pid, code in codes.items() if code == 0)
    loser = next(pid for pid, code in codes.items() if code == 2)
    lines = stderr[loser].strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr[loser], stderr[loser]
    assert lines[0].startswith(f"engine: {run_dir}: already trained by engine pid {winner};"), lines[0]
    events = events_of(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["step"] for e in events if e["type"] == "metrics"] == [1, 2, 3, 4, 5, 6, 7, 8]  # steps 5-8 once
    assert [e["pid"] for e in events if e["type"] == "hello"][-1] == winner
    assert read_status(run_dir)["state"] == "finished" and read_status(run_dir)["alive"] is False


def test_a_second_lock_names_the_holder_and_a_refused_engine_leaves_nothing(holder, make_run_dir):
    run_dir, proc = holder
    with pytest.raises(RunLocked) as exc:
        RunLock(run_dir)
    assert exc.value.pid == proc.pid and f"already trained by engine pid {proc.pid}" in str(exc.value)
    assert json.loads((run_dir / "engine.lock").read_text()) == {
        "pid": proc.pid,
        "pid_start": process_start_time(proc.pid),
    }
    fresh = make_run_dir("fresh")
    refused = engine(fresh, "--resume", "latest")
    assert refused.wait(60) == 2 and "no checkpoint to resume from" in refused.stderr.read()
    assert sorted(p.name for p in fresh.iterdir()) == ["run.yaml"]  # the lock it took is gone with it


def test_liveness_follows_the_lock_not_the_pid(holder):
    run_dir, proc = holder
    me = os.getpid()
    write_status(run_dir, pid=12345678)  # a pid that says nothing: the held lock decides
    assert read_status(run_dir)["alive"] is True and read_status(run_dir)["state"] == "running"
    proc.stdin.close()
    proc.wait(10)
    assert lock_held(run_dir) is False
    write_status(run_dir, pid=me, pid_start=process_start_time(me))  # a live pid, but nobody holds the lock
    status = read_status(run_dir)
    assert status["alive"] is False and status["state"] == "dead"
    assert lock_held(run_dir) is False  # probing released at once


def test_a_reused_pid_without_a_lock_file_reads_as_dead(tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    me = os.getpid()
    start = process_start_time(me)
    write_status(run_dir, pid=me, pid_start=start + 1)  # this pid, but another process's start time
    status = read_status(run_dir)
    assert status["alive"] is False and status["state"] == "dead" and status["step"] == 3
    write_status(run_dir, pid=me, pid_start=start)  # the very process recorded: alive
    assert read_status(run_dir)["alive"] is True and read_status(run_dir)["state"] == "running"
    write_status(run_dir, pid=me, pid_start=start + 1, state="finished")
    assert read_status(run_dir)["state"] == "finished"  # terminal states are kept as they are


def test_the_lock_is_released_when_its_engine_dies(holder):
    run_dir, proc = holder
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 5
    while lock_held(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock_held(run_dir) is False
    lock = RunLock(run_dir)  # the next engine gets it
    assert json.loads((run_dir / "engine.lock").read_text())["pid"] == os.getpid()
    lock.release()
