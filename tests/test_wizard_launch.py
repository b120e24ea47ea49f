"""The wizard's launch step: the summary, where it writes the config, and a refused launch that leaves
nothing behind (Pilot). A real engine started from it, its dashboard, and the same YAML run with
`cockpit run --headless`: tests/test_wizard_flow.py, which drives the whole wizard."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import SMALL_RUN
from tui_helpers import screen_text, wait_for

from cockpit.app import CockpitApp
from cockpit.client import read_events
from cockpit.screens.launch_step import LaunchScreen, config_file_for
from cockpit.wizard import WizardFacts, WizardState
from engine.protocol import Metrics
from engine.rundir import RunPaths


def launch_app(tmp_path: Path, changes: dict, facts: WizardFacts = WizardFacts()) -> CockpitApp:
    """The app on the launch step of the demo draft with ``changes``."""
    state = WizardState(facts=facts).go("launch")
    state = state.with_draft(state.draft.update(changes))
    return CockpitApp(runs_dir=tmp_path / "runs", wizard=state)


def small_draft(data_dir: Path, runs_dir: Path, **more) -> dict:
    """Draft keys for a run that trains in seconds (the test suite's small run) on the demo corpus."""
    return {
        **SMALL_RUN,
        "name": "wizard",
        "data.path": str(data_dir / "corpus.txt"),
        "tokenizer.path": str(data_dir / "tokenizer"),
        "runs_dir": str(runs_dir),
        "train.max_steps": 20,
        **more,
    }


def wait_exited(pid: int, timeout: float = 60) -> None:
    """Reap the engine (a child of this process) once it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError(f"the engine (pid {pid}) did not exit in {timeout:.0f} s")


def test_the_config_file_never_replaces_one_the_wizard_did_not_write(tmp_path):
    assert config_file_for("demo", None, tmp_path) == tmp_path / "demo.yaml"
    (tmp_path / "demo.yaml").write_text("mine\n")
    (tmp_path / "demo-2.yaml").write_text("mine too\n")
    assert config_file_for("demo", None, tmp_path) == tmp_path / "demo-3.yaml"
    assert config_file_for("demo", Path("saved.yaml"), tmp_path) == Path("saved.yaml")  # where ctrl+s saved it


def first_losses(run_dir: Path) -> dict[int, float]:
    """The training loss of each logged step of a run."""
    return {e.step: e.loss for e in read_events(RunPaths(run_dir).events) if isinstance(e, Metrics)}


async def test_a_refused_launch_says_why_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    changes = {"data.source": "text", "data.path": "missing.txt", "runs_dir": str(runs)}
    app = launch_app(tmp_path, changes)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("l")
        screen = app.screen
        await wait_for(lambda: not screen.launching, 30, what="the launch to be refused")
        await pilot.pause()
        text = screen_text(app)
        assert "error:" in text and "missing.txt" in text
        assert isinstance(app.screen, LaunchScreen) and app.dashboard is None
    assert not runs.exists() or not any(runs.iterdir())
    assert not (tmp_path / "demo.yaml").exists()  # written for the launch, removed with it


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_launch_screen(snap_compare, tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    facts = WizardFacts(tokens_available=2_400_000, params=918_656, step_s=0.25)
    app = launch_app(tmp_path, {"train.price_per_hour": 2.0}, facts)
    assert snap_compare(app, terminal_size=size)


async def test_saving_on_the_launch_step_is_where_the_launch_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = launch_app(tmp_path, {})
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "demo.yaml (written at launch)" in screen_text(app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("home", "ctrl+k", *"mine.yaml", "enter")
        await pilot.pause()
        assert app.wizard.saved_to == Path("mine.yaml") and (tmp_path / "mine.yaml").is_file()
        assert "mine.yaml (saved)" in screen_text(app) and app.screen.config_path == Path("mine.yaml")
