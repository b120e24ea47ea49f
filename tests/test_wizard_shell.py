"""The app's home and the wizard's frame: opening, moving between steps, saving the draft (Pilot)."""

from __future__ import annotations

from pathlib import Path

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
