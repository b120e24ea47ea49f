"""The app's home and the wizard's frame: opening, moving between steps, saving the draft (Pilot)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cockpit.app import make_app
from cockpit.screens.home import HomeScreen
from cockpit.screens.wizard_step import WizardStep
from cockpit.widgets.wizard_nav import WizardNav
from engine.config import load_config


async def test_no_runs_opens_the_wizard_and_the_keys_move_between_steps(tmp_path):
    app = make_app(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WizardStep) and app.screen.STEP == "checklist"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.STEP == "data" and app.screen.query_one(WizardNav).step == 1
        await pilot.press("ctrl+n", "ctrl+n")
        await pilot.pause()
        assert app.screen.STEP == "preset"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.STEP == "tokenizer" and app.wizard.step == 2
        for _ in range(3):
            await pilot.press("escape")
            await pilot.pause()
        assert isinstance(app.screen, HomeScreen)  # back past the first step: the home


async def test_ctrl_s_saves_the_draft_as_a_config_that_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.wizard.saved_to == Path("demo.yaml")
    cfg = load_config(tmp_path / "demo.yaml")
    assert cfg.preset == "tiny" and cfg.data.source == "demo"


# --- the home -----------------------------------------------------------------------------------


def two_runs(runs: Path) -> tuple[Path, Path]:
    """A finished run and, newer, a failed one; their events written at fixed times."""
    from tui_helpers import T0, finished_run, fixture_events, write_run

    done = finished_run(runs / "demo-finished")
    failed = write_run(runs / "oom-failed", fixture_events(run="oom-failed", final_state="failed"))
    os.utime(done / "events.jsonl", (T0 + 100, T0 + 100))
    os.utime(failed / "events.jsonl", (T0 + 200, T0 + 200))
    return done, failed


async def home_read(pilot) -> None:
    from tui_helpers import T0, screen_still, screen_text, wait_for

    screen = pilot.app.screen
    screen.clock = lambda: T0 + 3600  # an hour after the runs
    screen.summaries = None  # a read shown before the clock was set does not count
    screen.action_refresh()
    await wait_for(lambda: screen.summaries, 20, what="the runs to be read")
    # the table sizes its columns to the new rows when idle after a refresh: until the names show in full
    await wait_for(lambda: "oom-failed" in screen_text(pilot.app), 10, what="the columns to fit the runs")
    await screen_still(pilot)


async def test_the_home_lists_the_runs_newest_first_and_opens_one(tmp_path):
    done, failed = two_runs(tmp_path / "runs")
    app = make_app(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        await home_read(pilot)
        assert [s["name"] for s in app.screen.summaries] == ["oom-failed", "demo-finished"]
        assert [s["state"] for s in app.screen.summaries] == ["failed", "finished"]
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.dashboard is not None and app.run_dir == done
        await pilot.press("escape")  # not a key of the dashboard: it stays
        await pilot.pause()
        assert app.dashboard is not None


async def test_n_on_the_home_starts_the_wizard_and_escape_comes_back(tmp_path):
    two_runs(tmp_path / "runs")
    app = make_app(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, WizardStep) and app.screen.STEP == "checklist"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen) and len(app.screen_stack) == 2


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_home_snapshot(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    two_runs(Path("runs"))
    assert snap_compare(make_app(runs_dir=Path("runs")), terminal_size=size, run_before=home_read)


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_save_dialog_snapshot(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)

    async def ask(pilot) -> None:
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()

    from cockpit.app import CockpitApp
    from cockpit.wizard import WizardState

    # over the tokenizer step of the demo draft, which shows nothing of this machine
    app = CockpitApp(runs_dir=Path("runs"), wizard=WizardState().go("tokenizer"))
    assert snap_compare(app, terminal_size=size, run_before=ask)
