"""Faults and limits of the real engine on the CPU, trained in-process (SIGINT needs the process):
a non-finite loss (injected from the test side: a model whose training forward returns a NaN loss at
chosen steps, ``nan_loss_at``) under
``train.nonfinite: skip`` and ``stop``; ``budget_usd`` and ``max_hours`` stopping cleanly with a
loadable checkpoint; and CUDA out-of-memory (raised by a fake forward, since there is no GPU here)
reported with a suggestion and no checkpoint of the bad step."""

from __future__ import annotations

import itertools
import math
import signal
from pathlib import Path

import pytest
from helpers import events_of, train_in_process, wait_for

from engine.rundir import RunPaths, latest_checkpoint, read_status

pytestmark = pytest.mark.slow

TOKENS_PER_STEP = 8 * 64

RUNS = {
    "skip": ({"train.max_steps": 12, "train.log_every": 5, "train.save_every": 4, "train.nonfinite": "skip"}, {3, 9}),
    "stop": ({"train.max_steps": 20, "train.log_every": 1, "train.save_every": 5, "train.nonfinite": "stop"}, {7}),
    "budget": (
        {"train.max_steps": 100_000, "train.warmup_steps": 5, "train.price_per_hour": 3600.0, "train.budget_usd": 2.0},
        set(),
    ),
    "hours": ({"train.max_steps": 100_000, "train.warmup_steps": 5, "train.max_hours": 2.0 / 3600}, set()),
    "sigint": ({"train.max_steps": 100_000, "train.warmup_steps": 5}, set()),
}


def nan_loss_at(steps: set[int]):
    """``engine.build.build_model`` whose model's training forward returns a NaN loss at the given
    optimizer steps (these runs take one micro batch per step): a fault from outside the engine."""
    from engine.model import build_model

    def build(config):
        model = build_model(config)
        forward, calls = model.forward, itertools.count(1)

        def faulty(*args, **kwargs):
            out = forward(*args, **kwargs)
            if model.training and next(calls) in steps:
                out.loss = out.loss * float("nan")
            return out

        model.forward = faulty
        return model

    return build


@pytest.fixture(scope="module")
def runs(make_run_dir, start_engine):
    """The five runs: name -> (run_dir, exit code, events). SIGINT needs the process (started first,
    so its start-up overlaps the others); the rest train in-process, one after the other."""
    dirs = {
        name: make_run_dir(f"fault-{name}", {"telemetry.enabled": False, **overrides})
        for name, (overrides, _) in RUNS.items()
    }
    sigint_proc = start_engine(dirs["sigint"])
    try:
        done = {}
        for name, (_, nan_steps) in RUNS.items():
            if name != "sigint":
                with pytest.MonkeyPatch.context() as mp:
                    if nan_steps:
                        mp.setattr("engine.build.build_model", nan_loss_at(nan_steps))
                    done[name] = (dirs[name], train_in_process(dirs[name]), events_of(dirs[name]))
        wait_for(lambda: any(e["type"] == "metrics" for e in events_of(dirs["sigint"])), timeout=120)
        sigint_proc.send_signal(signal.SIGINT)
        done["sigint"] = (dirs["sigint"], sigint_proc.wait(timeout=150), events_of(dirs["sigint"]))
    finally:
        if sigint_proc.poll() is None:
            sigint_proc.kill()
            sigint_proc.wait()
    return done


def log_of(run_dir: Path) -> str:
    return RunPaths(run_dir).engine_log.read_text(errors="replace")


def test_nonfinite_skip_skips_the_update_on_the_device_and_goes_on(runs):
    from safetensors.torch import load_file

    from engine.checkpoint import load_training_state

    run_dir, rc, events = runs["skip"]
    assert rc == 0, log_of(run_dir)
    errors = [e for e in events if e["type"] == "error"]
    assert [e["step"] for e in errors] == [3, 9]
    assert all(
        f"non-finite loss at step {e['step']}" in e["message"] and "update skipped" in e["message"] for e in errors
    )
    seq = {id(e): i for i, e in enumerate(events)}
    metrics = [e for e in events if e["type"] == "metrics"]
    assert [m["step"] for m in metrics] == [1, 5, 10, 12]  # a skipped step still counts
    # No host sync inside the interval: step 3's error arrives with the logging step after it.
    at5 = next(m for m in metrics if m["step"] == 5)
    assert seq[id(errors[0])] < seq[id(at5)] and not any(e["type"] == "error" for e in events[: seq[id(errors[0])]])
    assert {m["step"]: m.get("skipped_steps", 0) for m in metrics} == {1: 0, 5: 1, 10: 1, 12: 0}
    assert all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) for m in metrics)
    assert metrics[-1]["tokens_seen"] == 12 * TOKENS_PER_STEP
    assert metrics[-1]["data_position"][1] == 12 * 8  # one batch per step, skipped or not
    assert events[-1]["state"] == "finished"
    # The interval checkpoint at step 4 counts the skip that only the read-back saw.
    assert load_training_state(run_dir / "checkpoints" / "checkpoint-4")["nonfinite_skips"] == 1
    ckpt = latest_checkpoint(run_dir)
    state = load_training_state(ckpt)
    assert state["step"] == 12 and state["nonfinite_skips"] == 2
    # NaN gradients applied once would have made every weight NaN.
    assert all(t.isfinite().all() for t in load_file(ckpt / "model.safetensors").values())
    # AdamW's own step count shows two updates were not applied.
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {10}


def test_nonfinite_skip_without_a_fused_optimizer_syncs_and_skips_the_same_steps(make_run_dir, monkeypatch):
    """An optimizer that cannot skip on the device: each step is checked on the host instead, and the
    same steps are skipped (the schedule goes on), the run finishing as with the fused one."""
    overrides, nan_steps = RUNS["skip"]
    run_dir = make_run_dir("fault-skip-unfused", {"telemetry.enabled": False, **overrides})
    monkeypatch.setattr("engine.build.build_model", nan_loss_at(nan_steps))
    monkeypatch.setattr("engine.build.can_skip_on_device", lambda optimizer: False)
    assert train_in_process(run_dir) == 0, log_of(run_dir)
    events = events_of(run_dir)
    assert [e["step"] for e in events if e["type"] == "error"] == [3, 9]
    metrics = [e for e in events if e["type"] == "metrics"]
    assert {m["step"]: m.get("skipped_steps", 0) for m in metrics} == {1: 0, 5: 1, 10: 1, 12: 0}
    assert all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) for m in metrics)
    assert events[-1]["state"] == "finished"


def test_nonfinite_stop_saves_the_last_good_state_and_fails(runs):
    from safetensors.torch import load_file

    from engine.checkpoint import load_training_state, verify_checkpoint

    run_dir, rc, events = runs["stop"]
    assert rc == 1, log_of(run_dir)
    error = next(e for e in events if e["type"] == "error")
    assert error["step"] == 7 and "non-finite loss at step 7" in error["message"] and "stopping" in error["message"]
    last = events[-1]
    assert last["type"] == "status" and last["state"] == "failed" and last["step"] == 6
    assert "non-finite loss at step 7" in last["reason"] and "checkpoint-6" in last["reason"]
    assert read_status(run_dir)["state"] == "failed"
    assert [m["step"] for m in events if m["type"] == "metrics"] == list(range(1, 7))
    saved = [(e["step"], e["reason"]) for e in events if e["type"] == "checkpoint"]
    assert saved == [(5, "interval"), (6, "final")]
    ckpt = latest_checkpoint(run_dir)
    assert ckpt.name == "checkpoint-6" and verify_checkpoint(ckpt) == []
    assert all(
        t.isfinite().all() for t in load_file(ckpt / "model.safetensors").values()
    )  # the bad update never applied
    state = load_training_state(ckpt)
    assert state["step"] == 6 and state["tokens_seen"] == 6 * TOKENS_PER_STEP


@pytest.mark.parametrize("name, limit, word", [("budget", 2.0, "budget_usd 2"), ("hours", 2.0, "max_hours")])
def test_budget_and_max_hours_stop_cleanly_before_the_limit(runs, name, limit, word):
    from engine.resume import load_resume_point

    run_dir, rc, events = runs[name]
    assert rc == 0, log_of(run_dir)
    last = events[-1]
    assert last["type"] == "status" and last["state"] == "stopped" and word in last["reason"], last
    states = [e["state"] for e in events if e["type"] == "status"]
    assert states[-2:] == ["stopping", "stopped"]
    final = [e for e in events if e["type"] == "checkpoint"][-1]
    assert final["action"] == "saved" and final["reason"] == "final" and final["step"] == last["step"] > 0
    point = load_resume_point(run_dir / final["path"])  # complete and resumable
    assert point.step == last["step"]
    running = next(e for e in events if e["type"] == "status" and e["state"] == "running")
    # Stopped and saved before the limit (seconds, or $1/s); the margin covers a step or a save
    # running slower than predicted on a loaded machine.
    assert final["ts"] - running["ts"] <= limit + 0.5
    metrics = [e for e in events if e["type"] == "metrics"]
    if name == "budget":
        assert all(m["cost_usd"] is not None for m in metrics)
        assert 0 < metrics[-1]["cost_usd"] <= 2.0
        assert metrics[-1]["cost_usd"] == pytest.approx(metrics[-1]["elapsed_s"] / 1.0 * 3600 / 3600)
    else:
        assert all(m.get("cost_usd") is None for m in metrics)
    m = metrics[-1]
    assert m["data_wait_s"] >= 0 and m["compute_s"] > 0
    assert m["data_wait_s"] + m["compute_s"] == pytest.approx(m["step_time_s"], rel=1e-6)


def test_sigint_finishes_the_step_saves_a_resumable_checkpoint_and_exits_0(runs):
    from engine.resume import load_resume_point

    run_dir, rc, events = runs["sigint"]
    assert rc == 0, log_of(run_dir)
    last = events[-1]
    assert last["type"] == "status" and last["state"] == "stopped" and last["reason"] == "SIGINT"
    final = [e for e in events if e["type"] == "checkpoint"][-1]
    assert final["action"] == "saved" and final["reason"] == "final" and final["step"] == last["step"]
    assert load_resume_point(run_dir / final["path"]).step == last["step"]


def test_budget_needs_a_price():
    from engine.config import RunConfig

    with pytest.raises(ValueError, match="budget_usd needs train.price_per_hour"):
        RunConfig.model_validate({"train": {"budget_usd": 5}})


# --- CUDA out of memory (no GPU here: a fake forward raises it) -------------------------------


def test_cuda_oom_is_an_error_with_a_suggestion_and_no_checkpoint_of_the_step(engine_data_dir, tmp_path, monkeypatch):
    import torch
    from helpers import small_run_config

    import engine.build as build_mod
    import engine.train as train_mod
    from engine.controls import Controls

    real_build = build_mod.build_model
    calls = {"n": 0}

    def build_model(config):
        model = real_build(config)
        forward = model.forward

        def fake_forward(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(*args, **kwargs)

        model.forward = fake_forward
        return model

    monkeypatch.setattr(build_mod, "build_model", build_model)
    cfg = small_run_config(
        engine_data_dir,
        {
            "train.max_steps": 10,
            "train.save_every": 2,
            "train.log_every": 1,
            "telemetry.enabled": False,
            "events.enabled": False,
        },
    ).resolved(tmp_path)
    run_dir = tmp_path / "oom"
    run_dir.mkdir()
    threads = torch.get_num_threads()
    try:
        rc = train_mod.run(run_dir, cfg, Controls())
    finally:
        torch.set_num_threads(threads)
    assert rc == 1
    events = events_of(run_dir)
    error = next(e for e in events if e["type"] == "error")
    assert error["step"] == 3
    assert "CUDA out of memory at step 4" in error["message"]
    assert "train.micro_batch_size" in error["message"] and "train.gradient_checkpointing" in error["message"]
    assert "OutOfMemoryError" in error["traceback"]
    assert events[-1]["type"] == "status" and events[-1]["state"] == "failed"
    saved = [e["step"] for e in events if e["type"] == "checkpoint"]
    assert saved == [2]  # the checkpoint before the fault, nothing after it
    ckpts = RunPaths(run_dir).checkpoints
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2", "latest"]
    assert latest_checkpoint(run_dir).name == "checkpoint-2"
