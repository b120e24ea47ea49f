"""The real `cockpit` command launching a real engine: headless, detach, and survival of the engine
when the cockpit dies."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import small_run_config, wait_for

from cockpit.client import read_events
from engine.rundir import read_status

pytestmark = pytest.mark.slow

COCKPIT = [sys.executable, "-m", "cockpit"]


def small_config(tmp_path: Path, data_dir: Path, **train) -> Path:
    """A config file for the shared small run, its runs under ``tmp_path/runs``."""
    overrides = {"name": "e2e", "runs_dir": str(tmp_path / "runs"), **{f"train.{k}": v for k, v in train.items()}}
    path = tmp_path / "e2e.yaml"
    path.write_text(small_run_config(data_dir, overrides).to_yaml())
    return path


def started_run(tmp_path: Path) -> Path | None:
    """The run directory once `cockpit run` has made it (``runs/`` comes a moment before it), else None."""
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()] if (tmp_path / "runs").is_dir() else []
    return only_run(tmp_path) if runs else None


def only_run(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def test_headless_prints_progress_and_exits_with_the_result(tmp_path, engine_data_dir):
    config = small_config(tmp_path, engine_data_dir)
    proc = subprocess.run(COCKPIT + ["run", str(config), "--headless"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    steps = [ln for ln in lines if ln.startswith("step ")]
    assert steps[0].startswith("step  1/30") and steps[-1].startswith("step 30/30")
    assert all("loss" in ln and "tok/s" in ln and "ETA" in ln for ln in steps)
    assert "state: finished at step 30" in proc.stdout
    assert "checkpoint saved: checkpoints/checkpoint-30" in proc.stdout
    run = only_run(tmp_path)
    assert read_status(run)["state"] == "finished"
    # run.yaml holds the resolved config, absolute paths included
    resolved = yaml.safe_load((run / "run.yaml").read_text())
    assert resolved["train"]["max_steps"] == 30 and Path(resolved["data"]["path"]).is_absolute()


def test_headless_exit_code_is_1_when_the_run_fails(tmp_path, engine_data_dir):
    config = small_config(tmp_path, engine_data_dir)
    # An activation Transformers does not know passes config validation but fails in the engine.
    proc = subprocess.run(
        COCKPIT + ["run", str(config), "--headless", "--set", "model.hidden_act=no_such_act"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no_such_act" in proc.stdout


def test_detach_returns_at_once_and_the_run_goes_on(tmp_path, engine_data_dir):
    config = small_config(tmp_path, engine_data_dir, max_steps=20)
    t0 = time.monotonic()
    proc = subprocess.run(COCKPIT + ["run", str(config), "--detach"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 30
    run = Path(proc.stdout.strip())
    assert run == only_run(tmp_path)
    status = wait_for(lambda: (s := read_status(run))["state"] in ("finished", "failed") and s)
    assert status["state"] == "finished"
    listing = subprocess.run(
        COCKPIT + ["runs", "--runs-dir", str(tmp_path / "runs"), "--json"], capture_output=True, text=True, check=True
    )
    row = json.loads(listing.stdout)[0]
    assert row["name"] == run.name and row["state"] == "finished" and row["step"] == 20


def test_killing_the_cockpit_leaves_the_engine_training(tmp_path, engine_data_dir):
    config = small_config(tmp_path, engine_data_dir, max_steps=100000, log_every=2)
    cockpit = subprocess.Popen(
        COCKPIT + ["run", str(config), "--headless"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        run = wait_for(lambda: started_run(tmp_path))
        events = run / "events.jsonl"
        wait_for(lambda: any(e["type"] == "metrics" for e in read_events(events)))
        engine_pid = wait_for(lambda: read_status(run).get("pid"))
        os.killpg(cockpit.pid, signal.SIGKILL)  # the cockpit and its terminal session die hard
        cockpit.wait(10)
        step_then = max(e["step"] for e in read_events(events) if e["type"] == "metrics")
        wait_for(lambda: max(e["step"] for e in read_events(events) if e["type"] == "metrics") > step_then + 4)
        assert read_status(run)["alive"] and read_status(run)["pid"] == engine_pid
        # and it can still be stopped from another cockpit, gracefully
        stop = subprocess.run(COCKPIT + ["stop", str(run)], capture_output=True, text=True, timeout=30)
        assert stop.returncode == 0, stop.stderr
        final = wait_for(lambda: (s := read_status(run))["state"] in ("stopped", "finished", "failed") and s)
        assert final["state"] == "stopped"
        assert final["last_checkpoint"] and (run / final["last_checkpoint"] / "model.safetensors").is_file()
    finally:
        if cockpit.poll() is None:
            os.killpg(cockpit.pid, signal.SIGKILL)
        pid = read_status(only_run(tmp_path)).get("pid") if (tmp_path / "runs").is_dir() else None
        if pid and read_status(only_run(tmp_path)).get("alive"):
            os.kill(pid, signal.SIGKILL)
