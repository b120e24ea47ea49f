"""The dashboard driven with Textual's Pilot: finished-run fixtures, then a real engine."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from tui_helpers import (
    GPU_H100,
    engine_available,
    finished_run,
    fixture_events,
    screen_text,
    settled_text,
    wait_for,
    write_run,
)

from cockpit.app import make_app
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.dashboard import DashboardScreen
from cockpit.widgets.loss_chart import LossChart


async def loaded(app, timeout: float = 20.0) -> DashboardScreen:
    await wait_for(
        lambda: app.dashboard is not None and app.dashboard.intake_done,
        timeout,
        what="the dashboard to read the whole run",
    )
    return app.dashboard


def notifications(app) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


async def test_finished_run_shows_its_final_numbers(tmp_path):
    run = finished_run(tmp_path / "demo-run", gpus=[GPU_H100])
    app = make_app(run)
    async with app.run_test(size=(120, 36)):
        dash = await loaded(app)
        text = await settled_text(app, "checkpoint-300", "best 2.009", "finished — reached max_steps")
        for expected in (
            "demo-run",
            "FINISHED",
            "tiny",
            "3.42M params",
            "Step 300 / 300",
            "100.0%",
            "2.072",
            "best 2.009",
            "done",
            "checkpoint-300",
            "checkpoint-200",
            "2 saved · latest step 300",
            "H100 80GB HBM3",
            "38.4/79.6 GiB",
            "finished — reached max_steps",
            "Checkpoint",
            "Detach",
        ):
            assert expected in text, f"{expected!r} not on the dashboard:\n{text}"
        assert dash.state.step == 300 and len(dash.state.loss_steps) == 31
        # No notification for a run that was over before we attached.
        assert notifications(app) == []


async def test_keys_on_a_finished_run_notify_instead_of_failing(tmp_path):
    app = make_app(finished_run(tmp_path / "demo-run"))
    async with app.run_test(size=(120, 36)) as pilot:
        await loaded(app)
        await pilot.press("c")
        await wait_for(
            lambda: any("engine unavailable" in n for n in notifications(app)),
            what="the checkpoint command to be refused",
        )
        await pilot.press("p")
        await wait_for(
            lambda: any("Pause: engine unavailable" in n for n in notifications(app)),
            what="the pause command to be refused",
        )
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("already finished" in n for n in notifications(app))
        assert "no GPU" in screen_text(app)
        await pilot.press("q")
    assert app.return_value == "finished"


async def test_q_detaches(tmp_path):
    # A run whose engine is still "alive": this very process, as far as status.json can tell.
    events = fixture_events(run="live-run", final_state="finished")[:-3]
    run = write_run(tmp_path / "live-run", events, state="running")
    status = json.loads((run / "status.json").read_text())
    status["pid"] = __import__("os").getpid()
    (run / "status.json").write_text(json.dumps(status))
    app = make_app(run)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.dashboard is not None and app.dashboard.state.step >= 300)
        assert app.dashboard.state.state == "running"
        await pilot.press("q")
    assert app.return_value == "detached"


async def test_a_run_whose_engine_died_reads_dead(tmp_path):
    events = fixture_events(run="crashed", final_state="finished")[:-3]
    run = write_run(tmp_path / "crashed", events, state="running")  # pid None: not alive
    app = make_app(run)
    async with app.run_test(size=(120, 36)) as pilot:
        dash = await loaded(app)
        await pilot.pause()
        assert dash.state.state == "dead"
        text = await settled_text(app, "DEAD", "the engine exited without a final status")
        assert "DEAD" in text and "the engine exited without a final status" in text
        await pilot.press("q")
    assert app.return_value == "dead"


async def test_a_failed_run_shows_the_error(tmp_path):
    run = write_run(tmp_path / "oom", fixture_events(run="oom", final_state="failed"))
    app = make_app(run)
    async with app.run_test(size=(120, 36)):
        await loaded(app)
        text = await settled_text(app, "FAILED", "CUDA out of memory", "Step 200 / 300")
        assert "FAILED" in text and "CUDA out of memory" in text and "Step 200 / 300" in text


async def test_a_long_history_is_batched_and_renders_fast(tmp_path):
    run = finished_run(tmp_path / "long", max_steps=20_000, log_every=1, save_every=5_000, eval_every=2_500)
    n_events = sum(1 for _ in open(run / "events.jsonl"))
    assert n_events > 20_000
    app = make_app(run)
    started = time.monotonic()
    async with app.run_test(size=(120, 36)) as pilot:
        dash = await loaded(app, timeout=30)
        took = time.monotonic() - started
        await pilot.pause()
        assert dash.state.step == 20_000 and len(dash.state.loss_steps) == 20_000
        assert dash.batches <= 30, f"{n_events} events took {dash.batches} batches"
        assert took < 15, f"{n_events} events took {took:.1f}s to load"
        text = screen_text(app)
        assert "20,000 / 20,000" in text and "20k" in text  # x axis ends at the last step
        chart = app.screen.query_one(LossChart)
        assert chart.size.width > 40


@pytest.mark.parametrize("size", [(80, 24), (200, 60)])
async def test_small_and_large_terminals(tmp_path, size):
    app = make_app(finished_run(tmp_path / "demo-run", gpus=[GPU_H100]))
    async with app.run_test(size=size):
        await loaded(app)
        shown = ("demo-run", "FINISHED", "Step 300 / 300", "2.072", "checkpoint-300")
        text = await settled_text(app, *shown)
        lines = text.splitlines()
        assert len(lines) == size[1] and all(len(line) <= size[0] for line in lines)
        for expected in shown:
            assert expected in text, f"{expected!r} missing at {size}:\n{text}"


async def test_stop_asks_first_and_cancel_keeps_the_run(tmp_path):
    events = fixture_events(run="live-run", final_state="finished")[:-3]
    run = write_run(tmp_path / "live-run", events, state="running")
    status = json.loads((run / "status.json").read_text())
    status["pid"] = __import__("os").getpid()
    (run / "status.json").write_text(json.dumps(status))
    app = make_app(run)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(lambda: app.dashboard is not None and app.dashboard.state.step >= 300)
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert "Stop live-run?" in screen_text(app)
        await pilot.press("n")
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), what="the dialog to close")
        await pilot.pause()
        assert not any("Stop" in n for n in notifications(app))
        # Confirming sends the command; there is no socket, so it is reported, not raised.
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.click("#confirm")
        await wait_for(
            lambda: any("Stop: engine unavailable" in n for n in notifications(app)),
            what="the stop command to be reported",
        )
        app.dashboard.stop_following()


# --- a real engine ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not engine_available(), reason="the engine is not there yet")
async def test_live_engine_checkpoint_pause_and_stop(make_run_dir, start_engine):
    run_dir = make_run_dir(
        "tui-live", {"train.max_steps": 100_000, "train.warmup_steps": 5, "train.log_every": 5, "train.save_every": 0}
    )
    proc = start_engine(run_dir)
    try:
        app = make_app(run_dir, pid=proc.pid)
        async with app.run_test(size=(120, 36)) as pilot:
            dash = app.dashboard
            state = dash.state
            await wait_for(
                lambda: state.state == "running" and len(state.loss_values) >= 4,
                90,
                what="the engine to train a few steps",
            )
            assert state.step > 0
            await wait_for(lambda: min(state.loss_values[-3:]) < state.loss_values[0] - 0.1, 30, what="a falling loss")
            await pilot.pause()
            text = screen_text(app)
            assert "tui-live" in text and "RUNNING" in text and "/ 100,000" in text
            assert "p Pause" in text

            await pilot.press("c")
            await wait_for(
                lambda: any(c.reason == "command" for c in state.live_checkpoints),
                30,
                what="the checkpoint asked for with c",
            )
            ckpt = next(c for c in state.live_checkpoints if c.reason == "command")
            assert (run_dir / ckpt.path / "manifest.json").exists()
            await pilot.pause()
            assert f"checkpoint-{ckpt.step}" in screen_text(app)
            assert any(n.startswith("Checkpoint:") for n in notifications(app))

            await pilot.press("p")
            await wait_for(lambda: state.state == "paused", 30, what="the run to pause")
            paused_at = state.step
            await pilot.pause(0.5)
            assert state.step == paused_at
            assert "p Resume" in screen_text(app) and "PAUSED" in screen_text(app)
            await pilot.press("p")
            await wait_for(lambda: state.state == "running" and state.step > paused_at, 30, what="the run to resume")

            await pilot.press("s")
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("y")
            await wait_for(lambda: state.state == "stopped", 60, what="the run to stop")
            await wait_for(lambda: dash.intake_done, 30, what="the event stream to end")
            await pilot.pause()
            assert "STOPPED" in screen_text(app)
            await pilot.press("q")
        assert app.return_value == "stopped"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, None):
            log = run_dir / "logs" / "engine.log"
            print(log.read_text()[-3000:] if log.exists() else "(no engine log)", file=sys.stderr)


def test_the_dashboard_does_not_import_torch():
    import subprocess

    code = (
        "import json, sys, cockpit.app, cockpit.screenshot, cockpit.run_state; print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    modules = json.loads(out)
    assert not [m for m in modules if m.split(".")[0] in ("torch", "transformers", "accelerate")]
    # of the engine, only modules the import contracts hold torch-free (pyproject.toml [tool.importlinter])
    from importlinter.api import read_configuration

    contracts = read_configuration(str(Path(__file__).resolve().parents[1] / "pyproject.toml"))["contracts_options"]
    torch_free = next(c for c in contracts if c["name"] == "torch-free modules never import the torch stack")
    assert {m for m in modules if m.startswith("engine.")} <= set(torch_free["source_modules"])


async def test_log_tail_follows_new_lines_of_a_live_run(tmp_path):
    """Lines that arrive after attaching, more than the panel holds, keep the newest in view."""
    from cockpit.widgets.log_tail import LogTail
    from engine.bus import EventBus

    run = tmp_path / "live-run"
    run.mkdir()
    (run / "run.yaml").write_text("name: live-run\n", encoding="utf-8")
    bus = EventBus(run)
    try:
        bus.emit("status", state="running", step=0)
        app = make_app(run)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(
                lambda: app.dashboard is not None and "RUNNING" in screen_text(app), what="the live run to show"
            )
            for i in range(40):  # one at a time, as a run logs, crossing the point where the panel overflows
                bus.emit("log", level="info", message=f"line number {i} of a long live log")
                if i < 20:
                    await pilot.pause(0.12)
            await wait_for(lambda: "line number 39 " in screen_text(app), what="the newest log line in view")
            log = app.dashboard.query_one(LogTail)
            await pilot.pause()
            assert log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y
    finally:
        bus.emit("status", state="stopped", step=0)
        bus.close()


async def test_attach_reads_the_file_when_the_engine_socket_refuses_it(tmp_path):
    """The attack's symptom: an engine whose socket refuses the viewer ("too many viewers (32)"). The
    dashboard shows the history from events.jsonl and keeps following the file, instead of looping
    on "Reconnecting…" with nothing on screen."""
    from helpers import RefusingSocket

    from engine.bus import EventBus

    run = tmp_path / "live-run"
    run.mkdir()
    (run / "run.yaml").write_text("name: live-run\n", encoding="utf-8")
    bus = EventBus(run, serve=False)  # alive (this process): the socket is the one below, which refuses
    try:
        with RefusingSocket(run / "engine.sock") as refusing:
            bus.emit("status", state="running", step=0)
            for i in range(5):
                bus.emit("log", level="info", message=f"history line {i}")
            app = make_app(run)
            async with app.run_test(size=(120, 36)):
                await wait_for(
                    lambda: "history line 4" in screen_text(app), timeout=10, what="the history from the file"
                )
                bus.emit("log", level="info", message="a line logged after attaching")
                await wait_for(lambda: "logged after attaching" in screen_text(app), what="the live line")
                assert "RUNNING" in screen_text(app)
                assert not any("interrupted" in n or "Reconnecting" in n for n in notifications(app))
            assert refusing.refused == 1
    finally:
        bus.emit("status", state="stopped", step=0)
        bus.close()
