"""SVG snapshots of the dashboard (pytest-textual-snapshot). Regenerate after a deliberate visual
change with ``pytest tests/test_snapshots.py --snapshot-update`` and look at the SVGs under
``tests/__snapshots__/test_snapshots/``."""

from __future__ import annotations

import time

import pytest
from tui_helpers import GPU_H100, T0, finished_run, fixture_events, screen_still, wait_for, with_uploads, write_run

from cockpit.app import make_app
from cockpit.screens.confirm import ConfirmScreen


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Log lines show local clock times; pin the zone so the pictures match everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def _loaded(pilot) -> None:
    app = pilot.app
    await wait_for(lambda: app.dashboard is not None and app.dashboard.intake_done, 20, what="the run to be read")
    await screen_still(pilot)  # the log scrolls into place after the last batch


def test_finished_gpu_run_120x36(snap_compare, tmp_path):
    """A finished run with a GPU: the README picture."""
    app = make_app(finished_run(tmp_path / "demo-run", gpus=[GPU_H100]))
    assert snap_compare(app, terminal_size=(120, 36), run_before=_loaded)


def test_finished_gpu_run_120x40(snap_compare, tmp_path):
    """The same run at the size every screen of the app is pictured at."""
    app = make_app(finished_run(tmp_path / "demo-run", gpus=[GPU_H100]))
    assert snap_compare(app, terminal_size=(120, 40), run_before=_loaded)


def test_failed_cpu_run_80x24(snap_compare, tmp_path):
    """A run that failed two thirds in, on a CPU machine, in the smallest supported terminal."""
    app = make_app(write_run(tmp_path / "oom-run", fixture_events(run="oom-run", final_state="failed")))
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_stop_confirmation_dialog(snap_compare, tmp_path, size):
    """The modal that guards the stop key (on a run that still looks alive)."""
    import json
    import os

    events = fixture_events(run="live-run")[:-3]
    run = write_run(tmp_path / "live-run", events, state="running")
    status = json.loads((run / "status.json").read_text())
    status["pid"] = os.getpid()
    (run / "status.json").write_text(json.dumps(status))
    app = make_app(run)

    async def ask(pilot) -> None:
        await wait_for(lambda: app.dashboard is not None and app.dashboard.caught_up, 20)
        app.dashboard.stop_following()
        app.dashboard.clock = lambda: T0 + 80.0  # elapsed and ETA tick on the clock while running
        app.dashboard.refresh_view()
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), 10, what="the dialog")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=ask)


def _live(run, events) -> None:
    """``run`` (written from ``events``) looks alive: its status.json names this process."""
    import json
    import os

    status = json.loads((run / "status.json").read_text())
    status["pid"] = os.getpid()
    (run / "status.json").write_text(json.dumps(status))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_uploading_run(snap_compare, tmp_path, size):
    """A live run at step 300 of 400 whose checkpoints upload to two targets: 100 done on both (and
    pruned), 200 failed on one, 300 in progress (the checkpoint panel's upload column; at 80 columns
    without the bytes and the size)."""
    events = fixture_events(run="live-run", max_steps=400)
    saved = next(i for i, e in enumerate(events) if e["type"] == "checkpoint" and e.get("step") == 300)
    run = write_run(tmp_path / "live-run", with_uploads(events[: saved + 2]), state="running")
    _live(run, events)
    app = make_app(run)

    async def loaded(pilot) -> None:
        await wait_for(lambda: app.dashboard is not None and app.dashboard.caught_up, 20, what="the run")
        app.dashboard.stop_following()
        app.dashboard.clock = lambda: T0 + 80.0  # elapsed and ETA tick on the clock while running
        app.dashboard.refresh_view()
        await screen_still(pilot)

    assert snap_compare(app, terminal_size=size, run_before=loaded)
