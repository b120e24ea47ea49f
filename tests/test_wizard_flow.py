"""The whole wizard, as a person drives it, on a small text file the test writes: pick it, validate,
train a tokenizer, prepare shards, pick `tiny`, edit steps and batch, save YAML, launch; the
dashboard shows metrics from the real engine, and the saved YAML run with `cockpit run --headless`
trains the same first losses (Pilot; the engine is a real process)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from test_wizard_launch import first_losses, wait_exited
from test_wizard_review import type_into
from tui_helpers import wait_for

from cockpit.app import make_app
from cockpit.client import RunClient
from engine.config import load_config
from engine.protocol import TERMINAL_STATES
from engine.rundir import read_status

WORDS = ["amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper", "kelp", "lumen"]


def write_corpus(path: Path, docs: int) -> Path:
    rng = random.Random(7)
    lines = [
        " ".join(rng.choice(WORDS) + str(rng.randrange(40)) for _ in range(rng.randrange(12, 60))) + "."
        for _ in range(docs)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def step(pilot, key: str = "ctrl+n") -> None:
    await pilot.press(key)
    await pilot.pause()


async def test_the_whole_wizard_from_a_text_file_to_a_live_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "notes.txt", 1500)
    app = make_app(runs_dir=Path("runs"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.screen.STEP == "checklist"  # no runs here: the wizard opens directly
        await step(pilot)

        # data: pick the file, it validates with no problem
        data = app.screen
        assert data.STEP == "data"
        data.query_one("#data-path").focus()
        data.query_one("#data-path").value = "notes.txt"
        await step(pilot, "enter")
        await wait_for(lambda: data.stats is not None, 60, what="the data's stats")
        assert app.wizard.facts.data_problems == 0 and app.wizard.draft.get("data.path") == "notes.txt"
        await step(pilot)

        # tokenizer: train a small one on that file
        assert app.screen.STEP == "tokenizer"
        app.screen.query_one("#tok-path").value = "tok"
        app.screen.query_one("#tok-vocab").value = "320"
        await pilot.pause()
        await step(pilot, "ctrl+t")
        await wait_for(lambda: app.wizard.facts.vocab_size is not None, 60, what="the tokenizer")
        assert (tmp_path / "tok" / "tokenizer.json").is_file() and app.wizard.draft.get("tokenizer.path") == "tok"

        # back to the data: prepare shards with it
        await step(pilot, "escape")
        data = app.screen
        assert data.STEP == "data"
        await step(pilot, "p")
        await wait_for(lambda: data.manifest is not None, 120, what="the shards")
        await pilot.pause()
        assert app.wizard.draft.get("data.source") == "shards"
        manifest = json.loads((tmp_path / app.wizard.draft.get("data.path") / "manifest.json").read_text())
        assert app.wizard.facts.tokens_available == manifest["total_tokens"] > 0

        # preset: pick tiny
        await step(pilot)
        await step(pilot)
        assert app.screen.STEP == "preset"
        table = app.screen.query_one("#preset-table")
        table.focus()
        table.move_cursor(row=[str(key.value) for key in table.rows].index("tiny"))
        await step(pilot, "enter")
        assert app.wizard.draft.get("preset") == "tiny" and app.wizard.facts.params

        # review: a short run with a smaller batch, saved as YAML
        await step(pilot)
        assert app.screen.STEP == "review"
        await type_into(pilot, "#review-train-max-steps", "20")
        await type_into(pilot, "#review-train-micro-batch-size", "4")
        assert app.screen.plan.steps == 20 and app.screen.plan.tokens_per_step == 4 * 128
        await step(pilot, "ctrl+s")
        await step(pilot, "enter")  # the dialog's default: <name>.yaml here
        assert app.wizard.saved_to == Path("demo.yaml")

        # launch: the engine starts and its dashboard shows its metrics
        await step(pilot)
        assert app.screen.STEP == "launch"
        await step(pilot, "l")
        await wait_for(lambda: app.dashboard is not None, 60, what="the dashboard of the launched run")
        run_dir, pid = app.run_dir, app.pid
        try:
            dashboard = app.dashboard
            await wait_for(lambda: dashboard.state.loss is not None, 120, what="metrics from the engine")
            assert dashboard.state.step > 0
        finally:
            if read_status(run_dir).get("state") not in TERMINAL_STATES:
                try:
                    RunClient(run_dir, pid).send("stop")
                except Exception:
                    os.kill(pid, 15)
            wait_exited(pid)

    saved = load_config(tmp_path / "demo.yaml")
    assert (saved.preset, saved.data.source, saved.train.max_steps, saved.train.micro_batch_size) == (
        "tiny",
        "shards",
        20,
        4,
    )
    # the saved file, unchanged, as a person runs it on a server
    result = subprocess.run(
        [sys.executable, "-m", "cockpit", "run", "demo.yaml", "--headless"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    again = next(p for p in (tmp_path / "runs").iterdir() if p != run_dir)
    wizard_losses, cli_losses = first_losses(run_dir), first_losses(again)
    common = sorted(wizard_losses.keys() & cli_losses.keys())
    assert common and common[0] == 1
    assert [wizard_losses[s] for s in common] == pytest.approx([cli_losses[s] for s in common], rel=1e-4)
