"""The wizard's review step: the editable config form, the derived numbers, the problems beside
their fields, the memory estimate, the dry run, and the saved YAML (Pilot, in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SMALL_RUN
from tui_helpers import screen_still, wait_for
from typer.testing import CliRunner

from cockpit.app import CockpitApp
from cockpit.cli import app as cli
from cockpit.review_form import parse_entry
from cockpit.screens.review import ReviewScreen
from cockpit.wizard import WizardFacts, WizardState
from engine.config import load_config


def review_app(tmp_path: Path, facts: WizardFacts = WizardFacts(), draft_changes: dict | None = None) -> CockpitApp:
    """The app opened on the review step of the demo draft (no runs: the wizard opens directly)."""
    state = WizardState(facts=facts).go("review")
    if draft_changes:
        state = state.with_draft(state.draft.update(draft_changes))
    return CockpitApp(runs_dir=tmp_path / "runs", wizard=state)


async def type_into(pilot, selector: str, text: str) -> None:
    """Replace the text of the input ``selector`` by typing ``text``, as a person does."""
    pilot.app.screen.query_one(selector).focus()
    await pilot.press("home", "ctrl+k", *text)
    await pilot.pause()


def shown_text(app, selector: str) -> str:
    """What a Static shows, as plain text."""
    from rich.console import Console

    console = Console(width=200, record=True, file=open("/dev/null", "w"))
    console.print(app.screen.query_one(selector).content)
    return console.export_text()


@pytest.fixture(autouse=True)
def no_gpus(monkeypatch):
    """The memory estimate for this CPU whatever the machine has, so the pictures match everywhere."""
    monkeypatch.setattr("cockpit.checks.environment.gpus", lambda: ([], None))


def test_entries_parse_leniently():
    assert parse_entry("3e-4", "float") == pytest.approx(3e-4)
    assert parse_entry(" 2e3 ", "int") == 2000 and isinstance(parse_entry("2e3", "int"), int)
    assert parse_entry("1_000", "int") == 1000
    assert parse_entry("abc", "int") == "abc"  # kept as typed: the config check names it
    assert parse_entry("2.5", "int") == "2.5"
    assert parse_entry("", "float") is None  # empty: the key's default


async def test_editing_steps_and_micro_batch_changes_the_derived_numbers(tmp_path):
    facts = WizardFacts(tokens_available=1_000_000, params=500_000)
    app = review_app(tmp_path, facts)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReviewScreen)
        before = screen.plan
        assert (before.steps, before.tokens_per_step) == (300, 16 * 128)

        await type_into(pilot, "#review-train-max-steps", "50")
        await type_into(pilot, "#review-train-micro-batch-size", "4")
        plan = screen.plan
        assert app.wizard.draft.get("train.max_steps") == 50
        assert app.wizard.draft.get("train.micro_batch_size") == 4
        assert (plan.steps, plan.tokens_per_step, plan.total_tokens) == (50, 4 * 128, 50 * 4 * 128)
        assert plan.epochs == pytest.approx(50 * 4 * 128 / 1_000_000)
        text = shown_text(app, "#review-plan")
        assert "4 sequences x 128 = 512 tokens" in text and "25.6k" in text

        await type_into(pilot, "#review-train-lr", "3e-4")
        assert app.wizard.draft.get("train.lr") == pytest.approx(3e-4)
        await type_into(pilot, "#review-train-epochs", "2")  # epochs replace the steps
        assert screen.plan.steps == 2 * (1_000_000 // 128) // 4


async def test_an_invalid_value_shows_beside_its_field_and_blocks_saving(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = review_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        await type_into(pilot, "#review-train-lr", "-1")
        problem = screen.query_one("#review-train-lr-problem")
        assert problem.display and "greater than 0" in shown_text(app, "#review-train-lr-problem")
        assert screen.plan is None and "Fix the values marked in red" in shown_text(app, "#review-plan")
        assert not screen.query_one("#review-train-micro-batch-size-problem").display

        await type_into(pilot, "#review-train-micro-batch-size", "abc")
        assert "integer" in shown_text(app, "#review-train-micro-batch-size-problem")

        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert "train.lr" in shown_text(app, "#save-error")  # the modal refuses, naming the key
        assert not (tmp_path / "demo.yaml").exists()
        await pilot.press("escape")
        await pilot.pause()

        await type_into(pilot, "#review-train-lr", "0.001")
        await type_into(pilot, "#review-train-micro-batch-size", "8")
        assert not problem.display and screen.plan is not None


async def test_saved_yaml_runs_unchanged_with_cockpit_run_and_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = review_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await type_into(pilot, "#review-train-max-steps", "40")
        await type_into(pilot, "#review-train-price-per-hour", "2.5")
        app.screen.query_one("#review-train-precision").value = "bf16"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.wizard.saved_to == Path("demo.yaml")

    cfg = load_config(tmp_path / "demo.yaml")
    assert (cfg.train.max_steps, cfg.train.price_per_hour, cfg.train.precision) == (40, 2.5, "bf16")
    assert cfg.preset == "tiny" and cfg.train.lr == pytest.approx(3e-3)
    result = CliRunner().invoke(cli, ["check", "demo.yaml", "--json"])
    assert result.exit_code in (0, 1), result.output  # 1: not ready on this machine; 2 would be a bad file
    report = json.loads(result.stdout)
    config_results = {r["id"]: r["status"] for r in report["results"] if r["section"] == "config"}
    assert config_results["config.load"] == "ok" and "fail" not in config_results.values()


async def test_memory_estimate_follows_the_micro_batch(tmp_path):
    app = review_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        await pilot.pause()
        first = shown_text(app, "#review-memory")
        assert "needs ~" in first and "on the CPU" in first
        assert app.wizard.facts.params  # the model's parameters, found on the way, for tokens/param
        await type_into(pilot, "#review-train-micro-batch-size", "256")
        await pilot.pause(0.5)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert shown_text(app, "#review-memory") != first


async def settled(pilot) -> None:
    """Once the memory estimate (debounced, in a worker) is shown."""
    await wait_for(lambda: pilot.app.screen.memory[1] != "estimating...", 30, what="the memory estimate")
    await screen_still(pilot)


def test_review_120x40(snap_compare, tmp_path):
    app = review_app(tmp_path, WizardFacts(tokens_available=2_400_000, params=918_656))

    assert snap_compare(app, terminal_size=(120, 40), run_before=settled)


def test_review_with_a_problem_80x24(snap_compare, tmp_path):
    app = review_app(tmp_path, WizardFacts(params=918_656), {"train.lr": -1})

    assert snap_compare(app, terminal_size=(80, 24), run_before=settled)


async def test_dry_run_measures_the_step_time_for_the_eta_and_cost(tmp_path, monkeypatch, engine_data_dir):
    monkeypatch.chdir(tmp_path)
    small = {
        **SMALL_RUN,
        "data.path": str(engine_data_dir / "corpus.txt"),
        "tokenizer.path": str(engine_data_dir / "tokenizer"),
    }
    app = review_app(tmp_path, draft_changes={**small, "train.price_per_hour": 3.6})
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.plan.eta_s is None
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert "running" in shown_text(app, "#review-dry-run")
        await wait_for(
            lambda: app.wizard.facts.step_s is not None or "failed" in shown_text(app, "#review-dry-run"),
            180,
            what="the dry run",
        )
        await pilot.pause()
        step_s = app.wizard.facts.step_s
        assert step_s and step_s > 0, shown_text(app, "#review-dry-run")
        assert screen.plan.eta_s == pytest.approx(30 * step_s)
        assert screen.plan.cost_usd == pytest.approx(30 * step_s / 3600 * 3.6)
        assert "s per step" in shown_text(app, "#review-dry-run") and "Cost" in shown_text(app, "#review-plan")


async def test_ctrl_r_again_cancels_the_dry_run_and_kills_its_engine(tmp_path, monkeypatch, engine_data_dir):
    import psutil

    monkeypatch.chdir(tmp_path)
    small = {
        **SMALL_RUN,
        "data.path": str(engine_data_dir / "corpus.txt"),
        "tokenizer.path": str(engine_data_dir / "tokenizer"),
    }
    app = review_app(tmp_path, draft_changes=small)

    def dry_runs() -> list:
        return [p for p in psutil.Process().children(recursive=True) if "engine.dryrun" in " ".join(p.cmdline())]

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("ctrl+r")
        await wait_for(lambda: dry_runs(), 10, what="the dry run's engine to start")
        await pilot.press("ctrl+r")
        await wait_for(lambda: screen._dry_run_cancel is None, 10, what="the dry run to be cancelled")
        await pilot.pause()
        assert "cancelled" in shown_text(app, "#step-status")
        assert not dry_runs() and app.wizard.facts.step_s is None
        assert "ctrl+r runs the real engine" in shown_text(app, "#review-dry-run")


def test_a_cost_over_the_budget_is_said():
    from cockpit.review_form import plan_lines
    from cockpit.run_plan import plan_run
    from engine.config import RunConfig

    cfg = RunConfig.model_validate({"train": {"max_steps": 3600, "price_per_hour": 10.0, "budget_usd": 5.0}})
    rows = dict(plan_lines(plan_run(cfg, step_s=1.0), cfg.train.seq_len, cfg.train.budget_usd))
    assert rows["Time"] == "1h00m"
    assert rows["Cost"].startswith("$10.00") and "over the $5 budget" in rows["Cost"]
    within = dict(plan_lines(plan_run(cfg, step_s=0.1), cfg.train.seq_len, cfg.train.budget_usd))
    assert within["Cost"] == "$1.00"
