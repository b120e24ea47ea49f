"""Loop features: held-out evaluation and the best-eval tracker, checkpoint pruning by
``save_total_limit`` (keeping the latest and the best), the data-wait/compute split of step time,
and gradient checkpointing (same losses, less memory)."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest
from helpers import events_of, train_in_process

from engine.rundir import RunPaths, latest_checkpoint

pytestmark = pytest.mark.slow

CONFIG = {
    "train.max_steps": 20,
    "train.log_every": 1,
    "train.save_every": 5,
    "train.eval_every": 5,
    "train.eval_batches": 2,
    "train.save_total_limit": 2,
    "data.val_fraction": 0.05,
    "telemetry.enabled": False,
}


@pytest.fixture(scope="module")
def runs(make_run_dir):
    dirs = {
        "plain": make_run_dir("loop-plain", CONFIG),
        "gc": make_run_dir("loop-gc", {**CONFIG, "train.gradient_checkpointing": True}),
    }
    for run_dir in dirs.values():
        assert train_in_process(run_dir) == 0, RunPaths(run_dir).engine_log.read_text(errors="replace")
    return {name: (d, events_of(d)) for name, d in dirs.items()}


def test_eval_events_at_every_eval_step_with_the_best_tracked(runs):
    from engine.checkpoint import load_training_state

    run_dir, events = runs["plain"]
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [5, 10, 15, 20]
    best = math.inf
    for e in evals:
        assert math.isfinite(e["loss"]) and e["perplexity"] == pytest.approx(math.exp(e["loss"]))
        assert e["best"] == (e["loss"] < best)
        best = min(best, e["loss"])
        assert e["best_loss"] == pytest.approx(best)
    assert evals[-1]["loss"] < evals[0]["loss"]  # it learns, held out too
    state = load_training_state(latest_checkpoint(run_dir))
    assert state["best_eval_loss"] == pytest.approx(best)
    assert state["best_eval_step"] == evals[-1]["best_step"]


def test_save_total_limit_prunes_the_oldest_and_keeps_latest_and_best(runs):
    run_dir, events = runs["plain"]
    saved = [e["step"] for e in events if e["type"] == "checkpoint" and e["action"] == "saved"]
    pruned = [e for e in events if e["type"] == "checkpoint" and e["action"] == "pruned"]
    assert saved == [5, 10, 15, 20]
    assert pruned and all(e["reason"] == "save_total_limit 2" for e in pruned)
    left = sorted(int(p.name.split("-")[1]) for p in RunPaths(run_dir).checkpoints.glob("checkpoint-*"))
    best_step = [e for e in events if e["type"] == "eval"][-1]["best_step"]
    assert 20 in left and best_step in left and len(left) == 2 if best_step == 20 or best_step == 15 else 3
    assert sorted(set(saved) - {e["step"] for e in pruned}) == left
    assert latest_checkpoint(run_dir).name == "checkpoint-20"


def test_prune_keeps_the_best_eval_checkpoint_even_when_oldest(tmp_path):
    from engine.saving import CheckpointWriter

    ckpts = tmp_path / "checkpoints"
    for step in (5, 10, 15, 20):
        (ckpts / f"checkpoint-{step}").mkdir(parents=True)
    emitted = []
    bus = SimpleNamespace(emit=lambda type_, **p: emitted.append((type_, p)))
    CheckpointWriter(RunPaths(tmp_path), bus, save_total_limit=2, info=print).prune(keep={20, 5})
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-20", "checkpoint-5"]
    assert [(t, p["action"], p["step"]) for t, p in emitted] == [
        ("checkpoint", "pruned", 10),
        ("checkpoint", "pruned", 15),
    ]


def test_step_time_splits_into_data_wait_and_compute(runs):
    _, events = runs["plain"]
    for m in (e for e in events if e["type"] == "metrics"):
        assert 0 <= m["data_wait_s"] < m["step_time_s"] and m["compute_s"] > 0
        assert m["data_wait_s"] + m["compute_s"] == pytest.approx(m["step_time_s"], rel=1e-6)
        assert m.get("cost_usd") is None  # no price_per_hour


def test_gradient_checkpointing_gives_the_same_losses(runs):
    _, plain = runs["plain"]
    _, gc = runs["gc"]
    assert any("gradient checkpointing on" in e.get("message", "") for e in gc if e["type"] == "log")
    a = {e["step"]: e["loss"] for e in plain if e["type"] == "metrics"}
    b = {e["step"]: e["loss"] for e in gc if e["type"] == "metrics"}
    assert a.keys() == b.keys() == set(range(1, 21))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-5), step


def test_without_tensorboard_the_run_says_so_and_writes_no_event_files(runs):
    run_dir, events = runs["plain"]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert any("tensorboard is not installed" in e["message"] for e in events if e["type"] == "log")
        assert not (run_dir / "tensorboard").exists()
    else:
        assert list((run_dir / "tensorboard").iterdir())


def test_tensorboard_sink_writes_numeric_scalars(monkeypatch, tmp_path):
    import types

    from engine import metrics

    calls = []

    class FakeWriter:
        def __init__(self, log_dir):
            calls.append(("init", log_dir))

        def add_scalar(self, tag, value, step):
            calls.append((tag, value, step))

        def close(self):
            calls.append(("close",))

    fake_tb = types.ModuleType("torch.utils.tensorboard")
    fake_tb.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake_tb)
    monkeypatch.setitem(sys.modules, "tensorboard", types.ModuleType("tensorboard"))
    sink = metrics.tensorboard_sink(tmp_path / "tb")
    assert sink is not None
    logger = metrics.MetricsLogger([sink])
    logger.log({"loss": 2.5, "lr": 1e-3, "mfu": None, "data_position": [0, 8], "eta_s": float("nan")}, step=7)
    sink.write({"loss": 2.0}, 10, prefix="eval")
    logger.close()
    assert calls == [
        ("init", str(tmp_path / "tb")),
        ("train/loss", 2.5, 7),
        ("train/lr", 1e-3, 7),
        ("eval/loss", 2.0, 10),
        ("close",),
    ]


def test_eval_without_held_out_text_fails_before_training_with_a_clear_message(engine_data_dir, tmp_path):
    import torch
    from helpers import small_run_config

    from engine.controls import Controls
    from engine.train import run

    cfg = small_run_config(
        engine_data_dir,
        {
            "data.val_fraction": 0.0,
            "train.eval_every": 5,
            "train.max_steps": 10,
            "telemetry.enabled": False,
            "events.enabled": False,
        },
    ).resolved(tmp_path)
    run_dir = tmp_path / "no-val"
    run_dir.mkdir()
    threads = torch.get_num_threads()
    try:
        assert run(run_dir, cfg, Controls()) == 1
    finally:
        torch.set_num_threads(threads)
    events = events_of(run_dir)
    error = next(e for e in events if e["type"] == "error")
    assert "held-out split has 0 tokens" in error["message"] and "data.val_fraction" in error["message"]
    assert error["step"] == 0 and not [e for e in events if e["type"] == "metrics"]
    assert events[-1]["state"] == "failed"
