"""Every reader of a run's events (the bus's status.json, the dashboard's RunState, the headless
printer, `cockpit runs`) takes the same parsed models; the engine's bus validates what it writes."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from tui_helpers import screen_text, wait_for
from typer.testing import CliRunner

from cockpit import headless
from cockpit.cli import app as cli_app
from cockpit.client import read_events, summarize_run
from cockpit.run_state import RunState
from engine import protocol as P
from engine.bus import EventBus

METRICS = dict(lr=1e-3, tokens_per_s=1000.0, step_time_s=0.1, elapsed_s=1.0, eta_s=2.0)


def new_run(tmp_path: Path, name: str = "nan-run") -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "run.yaml").write_text(f"name: {name}\n", encoding="utf-8")
    return run


def nan_eval_run(tmp_path: Path) -> Path:
    """A finished run, written by the real EventBus, whose loss and held-out loss went NaN: the
    engine sends them as the trainer does (perplexity = exp(min(loss, 700)))."""
    run = new_run(tmp_path)
    with EventBus(run, serve=False) as bus:
        bus.emit("status", state="starting", step=0)
        bus.emit(
            "hello",
            protocol=1,
            config={},
            preset="tiny",
            params=1000,
            world_size=1,
            device="cpu",
            pid=1,
            max_steps=20,
            tokens_per_step=64,
        )
        bus.emit("status", state="running", step=0)
        bus.emit("metrics", step=10, loss=2.5, tokens_seen=640, **METRICS)
        loss = math.nan
        bus.emit(
            "eval",
            step=10,
            loss=loss,
            perplexity=math.exp(min(loss, 700.0)),
            best=False,
            best_loss=None,
            best_step=None,
        )
        bus.emit("metrics", step=20, loss=math.nan, tokens_seen=1280, **METRICS)
        bus.emit("status", state="finished", step=20, reason="reached max_steps (20)")
    return run


def test_the_bus_writes_a_nan_eval_as_null(tmp_path):
    run = nan_eval_run(tmp_path)
    lines = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    ev = next(e for e in lines if e["type"] == "eval")
    assert ev["loss"] is None and ev["perplexity"] is None
    status = json.loads((run / "status.json").read_text())  # the bus's own reader of the models
    assert (status["state"], status["step"], status["loss"], status["max_steps"]) == ("finished", 20, None, 20)


def test_a_nan_eval_goes_through_headless(tmp_path):
    run = nan_eval_run(tmp_path)
    out = io.StringIO()
    assert headless.follow(run, out=out) == 0
    text = out.getvalue()
    assert "eval at step 10: loss nan  ppl —" in text
    assert "step 20/20  loss nan" in text and "step 10/20  loss 2.500" in text
    assert "state: finished at step 20 (reached max_steps (20))" in text


def test_a_nan_eval_goes_through_the_dashboard_state(tmp_path):
    s = RunState()
    s.apply_all(read_events(nan_eval_run(tmp_path) / "events.jsonl"))
    assert s.state == "finished" and s.eval_steps == [10] and math.isnan(s.eval_values[0])
    stats = s.stats()
    assert math.isnan(stats.eval_loss) and stats.eval_ppl is None
    assert stats.loss is None and stats.best_loss == 2.5
    assert any(e.level == "warning" and e.text == "eval at step 10: loss nan" for e in s.logs)


async def test_a_nan_eval_shows_on_the_dashboard(tmp_path):
    from cockpit.app import make_app

    app = make_app(nan_eval_run(tmp_path))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.dashboard is not None and app.dashboard.intake_done, 20)
        await pilot.pause()
        text = screen_text(app)
    assert "FINISHED" in text and "eval at step 10: loss nan" in text


def test_a_nan_eval_goes_through_cockpit_runs(tmp_path):
    nan_eval_run(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["runs", "--runs-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert (row["name"], row["state"], row["step"], row["max_steps"], row["loss"]) == (
        "nan-run",
        "finished",
        20,
        20,
        None,
    )
    table = runner.invoke(cli_app, ["runs", "--runs-dir", str(tmp_path)])
    assert table.exit_code == 0 and "nan-run" in table.output and "20/20" in table.output


def exited_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait()
    return proc.pid


def resumed_run(tmp_path: Path, finish: bool) -> Path:
    """Trained to step 30 (checkpoints at 10 and 20), killed, resumed from checkpoint-20: the
    events file holds steps 21..30 twice. The engines have exited."""
    run = new_run(tmp_path, "resumed")
    with EventBus(run, serve=False, pid=exited_pid()) as bus:
        bus.emit("status", state="starting", step=0)
        bus.emit(
            "hello",
            protocol=1,
            config={},
            preset="tiny",
            params=1000,
            world_size=1,
            device="cpu",
            pid=1,
            max_steps=40,
            tokens_per_step=64,
        )
        bus.emit("status", state="running", step=0)
        for step in range(1, 31):
            bus.emit("metrics", step=step, loss=5.0 - step / 10, tokens_seen=step * 64, **METRICS)
            if step % 10 == 0 and step < 30:
                bus.emit("checkpoint", action="saved", step=step, path=f"checkpoints/checkpoint-{step}")
    with EventBus(run, serve=False, pid=exited_pid()) as bus:  # the resumed engine appends to the same file
        bus.emit("status", state="starting", step=20, reason="resumed from checkpoint-20")
        bus.emit("status", state="running", step=20)
        if finish:
            for step in range(21, 41):
                bus.emit("metrics", step=step, loss=1.0 + step / 100, tokens_seen=step * 64, **METRICS)
            bus.emit("status", state="finished", step=40)
    return run


@pytest.mark.parametrize("finish", [False, True])
def test_cockpit_runs_agrees_with_the_dashboard_on_a_resumed_run(tmp_path, finish):
    run = resumed_run(tmp_path, finish)
    dashboard = RunState()
    dashboard.apply_all(read_events(run / "events.jsonl"))
    summary = summarize_run(run)
    # Not finished: the resumed engine went away without a terminal state.
    assert summary["state"] == ("finished" if finish else P.DEAD)
    assert summary["step"] == dashboard.step == (40 if finish else 20)
    assert summary["loss"] == dashboard.loss == pytest.approx(1.4 if finish else 3.0)
    assert summary["last_checkpoint"] == "checkpoints/checkpoint-20"
    assert dashboard.loss_steps == list(range(1, dashboard.step + 1))  # each step once


def test_emit_refuses_an_invalid_payload_and_writes_nothing(tmp_path):
    run = new_run(tmp_path, "strict")
    with EventBus(run, serve=False) as bus:
        with pytest.raises(P.ProtocolError, match=r"metrics event: 'loss' should be a valid number \(got 'high'\)"):
            bus.emit("metrics", step=1, loss="high", tokens_seen=64, **METRICS)
        with pytest.raises(P.ProtocolError, match="status event is missing state"):
            bus.emit("status", step=1)
        with pytest.raises(P.ProtocolError, match="log event has no field colour"):
            bus.emit("log", level="info", message="x", colour="red")
        with pytest.raises(P.ProtocolError, match="unknown event type 'progress'"):
            bus.emit("progress", step=1)
        assert bus.emit("log", level="info", message="fine") == 0  # no seq was used up
    (event,) = read_events(run / "events.jsonl")
    assert isinstance(event, P.Log) and (event.seq, event.message) == (0, "fine")


def test_run_folds_summarise_as_a_whole_read_and_fold_only_what_is_appended(tmp_path):
    from tui_helpers import fixture_events, write_run

    from cockpit.client import RunFolds
    from engine.protocol import encode

    events = fixture_events(run="growing", final_state="finished")
    run = write_run(tmp_path / "growing", events[:-40], state="running")
    folds = RunFolds()
    try:
        assert summarize_run(run, folds.state(run)) == summarize_run(run)
        read_before = folds._runs[run][0].offset
        with open(run / "events.jsonl", "ab") as f:  # the engine appends the rest
            f.write(b"".join(encode(e) for e in events[-40:]))
        state = folds.state(run)
        assert folds._runs[run][0].offset > read_before
        assert summarize_run(run, state) == summarize_run(run)
        assert state.step == 300
    finally:
        folds.close()
