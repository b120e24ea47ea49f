"""The real engine on the CPU: what a run computes and writes (events, metrics, checkpoints,
failures) trained in-process by ``engine.train.run``; the process itself (`python -m engine --run-dir
DIR`) where it is the point: commands over the socket, signals, a bad run.yaml."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from helpers import events_of, train_in_process, wait_for

from cockpit.client import RunClient
from engine.protocol import EVENT_PAYLOADS, PROTOCOL_VERSION
from engine.rundir import RunPaths, latest_checkpoint, read_status

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def states(events: list[dict]) -> list[str]:
    return [e["state"] for e in events if e["type"] == "status"]


def engine_log(run_dir: Path) -> str:
    return RunPaths(run_dir).engine_log.read_text(errors="replace")


def assert_gapless(events: list[dict]) -> None:
    assert [e["seq"] for e in events] == list(range(len(events)))


# --- a run to the end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(make_run_dir):
    run_dir = make_run_dir("finished", {"train.save_every": 20})
    rc = train_in_process(run_dir)
    return run_dir, rc, events_of(run_dir)


def test_run_exits_0_and_ends_finished(finished_run):
    run_dir, rc, events = finished_run
    assert rc == 0, engine_log(run_dir)
    assert read_status(run_dir)["state"] == "finished"
    assert not RunPaths(run_dir).socket.exists()


def test_events_are_gapless_valid_and_in_order(finished_run):
    run_dir, _, events = finished_run
    assert_gapless(events)
    for e in events:
        assert e["v"] == PROTOCOL_VERSION and e["run"] == run_dir.name
        missing = [k for k, d in EVENT_PAYLOADS[e["type"]].items() if not d.startswith("optional") and k not in e]
        assert not missing, (e, missing)
    types = [e["type"] for e in events]
    assert events[0]["type"] == "status" and events[0]["state"] == "starting"
    hello = types.index("hello")
    running = next(i for i, e in enumerate(events) if e["type"] == "status" and e["state"] == "running")
    first_metrics = types.index("metrics")
    final_ckpt = max(i for i, t in enumerate(types) if t == "checkpoint")
    assert hello < running < first_metrics < final_ckpt < len(events) - 1
    assert events[-1]["type"] == "status" and events[-1]["state"] == "finished" and events[-1]["step"] == 30
    assert "failed" not in states(events)
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any("generated demo corpus" in m for m in logs) or any("data:" in m for m in logs)


def test_hello_describes_the_run(finished_run):
    run_dir, _, events = finished_run
    hello = next(e for e in events if e["type"] == "hello")
    assert hello["protocol"] == PROTOCOL_VERSION
    assert hello["config"] == yaml.safe_load((run_dir / "run.yaml").read_text())
    assert hello["preset"] == "tiny" and hello["device"] == "cpu" and hello["world_size"] == 1
    assert hello["max_steps"] == 30 and hello["tokens_per_step"] == 8 * 64
    assert 10_000 < hello["params"] < 1_000_000
    assert hello["pid"] > 0


def test_metrics_at_step_1_every_log_every_and_the_last_step_and_loss_falls(finished_run):
    _, _, events = finished_run
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [m["step"] for m in metrics] == [1, 5, 10, 15, 20, 25, 30]
    for m in metrics:
        assert m["tokens_seen"] == m["step"] * 8 * 64
        assert m["tokens_per_s"] > 0 and m["step_time_s"] > 0 and m["elapsed_s"] > 0
        assert m["grad_norm"] > 0 and m["lr"] > 0 and m["mfu"] is None
    assert metrics[-1]["eta_s"] == 0
    losses = [m["loss"] for m in metrics]
    assert losses[-1] < losses[0] - 1.0, losses
    assert metrics[-1]["lr"] == pytest.approx(0.005 * 0.1)  # cosine down to min_lr_ratio


def test_telemetry_events_sample_the_machine(finished_run):
    _, _, events = finished_run
    telemetry = [e for e in events if e["type"] == "telemetry"]
    assert telemetry, "no telemetry in a run of several seconds with interval_s 0.5"
    t = telemetry[-1]
    assert 0 <= t["cpu_percent"] <= 100 and 0 < t["ram_used"] <= t["ram_total"] and t["proc_rss"] > 0
    assert isinstance(t["gpus"], list)


def test_checkpoints_are_complete_loadable_and_match_their_manifest(finished_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.checkpoint import load_training_state, verify_checkpoint

    run_dir, _, events = finished_run
    saved = [e for e in events if e["type"] == "checkpoint"]
    assert [(e["action"], e["step"], e["reason"]) for e in saved] == [("saved", 20, "interval"), ("saved", 30, "final")]
    ckpts = RunPaths(run_dir).checkpoints
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-20", "checkpoint-30", "latest"]  # no temp dirs
    assert latest_checkpoint(run_dir) == ckpts / "checkpoint-30"
    for e in saved:
        path = run_dir / e["path"]
        assert verify_checkpoint(path) == []
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["step"] == e["step"]
        assert {"config.json", "model.safetensors", "tokenizer.json", "training_state.pt"} <= set(manifest["files"])
        assert e["size_bytes"] == sum(f.stat().st_size for f in path.iterdir())
        assert 0 < e["duration_s"] < 60  # what the save cost the loop (bench/checkpoint_stall.py)

    path = ckpts / "checkpoint-30"
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer("12 + 7 = 19.", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape == (1, ids.shape[1], len(tokenizer))
    state = load_training_state(path)  # weights_only=True
    assert state["step"] == 30 and state["tokens_seen"] == 30 * 8 * 64
    assert {"optimizer", "scheduler", "rng", "data"} <= set(state)
    assert state["scheduler"]["last_epoch"] == 30


def test_engine_log_has_one_line_per_logging_step(finished_run):
    run_dir, _, _ = finished_run
    log = engine_log(run_dir)
    assert "step  1/30 | loss" in log and "step 30/30 | loss" in log
    assert "it/s]" not in log  # no progress bars


# --- commands over the socket -----------------------------------------------------------------


class Follower:
    """RunClient.follow() in a thread, collecting events."""

    def __init__(self, run_dir: Path, pid: int):
        self.events: list[dict] = []
        self.error: BaseException | None = None
        self.client = RunClient(run_dir, pid=pid)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self.client.follow():
                self.events.append(event)
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def wait_for(self, predicate, timeout: float = 60.0) -> dict:
        def found():
            return next((e for e in list(self.events) if predicate(e)), None)

        return wait_for(found, timeout)

    def join(self, timeout: float = 30.0) -> list[dict]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "follow() did not end after the run ended"
        assert self.error is None, self.error
        return self.events


def test_live_commands_checkpoint_pause_resume_stop_and_a_late_subscriber(make_run_dir, start_engine):
    run_dir = make_run_dir("live", {"train.max_steps": 100_000, "train.log_every": 10})
    proc = start_engine(run_dir)
    first = Follower(run_dir, proc.pid)
    first.wait_for(lambda e: e["type"] == "metrics" and e["step"] >= 10)
    client = RunClient(run_dir, pid=proc.pid)

    assert client.send("checkpoint_now")["ok"]
    ckpt = first.wait_for(lambda e: e["type"] == "checkpoint" and e.get("reason") == "command")
    assert ckpt["action"] == "saved" and (run_dir / ckpt["path"] / "model.safetensors").is_file()
    first.wait_for(lambda e: e["type"] == "status" and e["state"] == "running" and e["seq"] > ckpt["seq"])

    # A late subscriber, connected after many events, gets the whole history.
    assert len(first.events) >= 8
    late = Follower(run_dir, proc.pid)
    late.wait_for(lambda e: e["seq"] >= ckpt["seq"])

    client.send("pause")
    paused = first.wait_for(lambda e: e["type"] == "status" and e["state"] == "paused")
    time.sleep(0.8)
    assert not [e for e in first.events if e["type"] == "metrics" and e["seq"] > paused["seq"]]
    client.send("resume")
    resumed = first.wait_for(lambda e: e["type"] == "status" and e["state"] == "running" and e["seq"] > paused["seq"])
    first.wait_for(lambda e: e["type"] == "metrics" and e["seq"] > resumed["seq"])

    client.send("stop")
    assert proc.wait(timeout=60) == 0, engine_log(run_dir)
    events = first.join()
    late_events = late.join()

    on_disk = events_of(run_dir)
    assert_gapless(on_disk)
    assert events == on_disk and late_events == on_disk
    stopped = on_disk[-1]
    assert stopped["type"] == "status" and stopped["state"] == "stopped" and stopped["reason"] == "stop command"
    assert states(on_disk)[-2:] == ["stopping", "stopped"]
    final = [e for e in on_disk if e["type"] == "checkpoint"][-1]
    assert final["reason"] == "final" and final["step"] == stopped["step"]
    assert latest_checkpoint(run_dir) == run_dir / final["path"]
    assert read_status(run_dir)["state"] == "stopped"


def test_sigterm_finishes_the_step_saves_and_exits_0(make_run_dir, start_engine):
    run_dir = make_run_dir("sigterm", {"train.max_steps": 100_000})
    proc = start_engine(run_dir)
    wait_for(lambda: any(e["type"] == "metrics" for e in events_of(run_dir)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, engine_log(run_dir)
    events = events_of(run_dir)
    assert_gapless(events)
    last = events[-1]
    assert last["type"] == "status" and last["state"] == "stopped" and last["reason"] == "SIGTERM"
    final = [e for e in events if e["type"] == "checkpoint"][-1]
    assert final["action"] == "saved" and final["reason"] == "final" and final["step"] == last["step"]
    from engine.checkpoint import verify_checkpoint

    assert verify_checkpoint(run_dir / final["path"]) == []


# --- failures ---------------------------------------------------------------------------------


def test_a_failing_run_emits_error_and_failed_and_exits_1(make_run_dir, tmp_path):
    run_dir = make_run_dir(
        "failing",
        {
            "data.source": "text",
            "data.path": str(tmp_path / "missing.txt"),
            "tokenizer.path": str(tmp_path / "tokenizer"),
        },
    )
    assert train_in_process(run_dir) == 1
    events = events_of(run_dir)
    assert_gapless(events)
    error = next(e for e in events if e["type"] == "error")
    assert "missing.txt" in error["message"] and "Traceback" in error["traceback"]
    assert events[-1]["type"] == "status" and events[-1]["state"] == "failed"
    assert read_status(run_dir)["state"] == "failed"


@pytest.mark.parametrize("content", [None, "train: {max_stepz: 3}\n", "train: [unclosed\n"])
def test_missing_or_bad_run_yaml_exits_2_with_one_line(tmp_path, content):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if content is not None:
        (run_dir / "run.yaml").write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.yaml" in lines[0] and "Traceback" not in proc.stderr
    assert not (run_dir / "events.jsonl").exists()


def test_tensorboard_event_files_hold_the_logged_metrics(finished_run):
    """Read back with TensorBoard's own reader: train/loss at every logged step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, events = finished_run
    acc = EventAccumulator(str(RunPaths(run_dir).tensorboard))
    acc.Reload()
    logged = {e["step"]: e["loss"] for e in events if e["type"] == "metrics"}
    scalars = {s.step: s.value for s in acc.Scalars("train/loss")}
    assert sorted(scalars) == sorted(logged)
    for step, loss in logged.items():
        assert scalars[step] == pytest.approx(loss, rel=1e-6)
    assert "train/lr" in acc.Tags()["scalars"]


def test_epochs_set_max_steps_from_the_data(make_run_dir):
    import math
    import re

    run_dir = make_run_dir("epochs", {"train.epochs": 0.25, "train.max_steps": 1, "train.warmup_steps": 2})
    assert train_in_process(run_dir) == 0, engine_log(run_dir)
    events = events_of(run_dir)
    data_line = next(e["message"] for e in events if e["type"] == "log" and e["message"].startswith("data:"))
    sequences = int(re.search(r"\(([\d,]+) sequences", data_line).group(1).replace(",", ""))
    expected = math.ceil(0.25 * sequences / 8)  # micro batch 8, one process, no accumulation
    hello = next(e for e in events if e["type"] == "hello")
    assert hello["max_steps"] == expected > 1
    assert events[-1]["state"] == "finished" and events[-1]["step"] == expected
