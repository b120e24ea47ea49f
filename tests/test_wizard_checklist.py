"""The wizard's checklist step (Pilot): the readiness checks fill in live, blocking problems first,
safe fixes on a key, a draft that does not validate shown without a crash; snapshots."""

from __future__ import annotations

from pathlib import Path

from tui_helpers import wait_for

from cockpit.app import CockpitApp
from cockpit.checks.config import check_config
from cockpit.checks.dataset import check_dataset
from cockpit.checks.tokenizer import check_tokenizer
from cockpit.screens.checklist import ChecklistScreen, wizard_checks
from cockpit.wizard import WizardState, starting_draft

TEXT = "\n".join(f"line {i}: the quick brown fox jumps over the lazy dog number {i * 7}" for i in range(200)) + "\n"


def app_on(tmp_path: Path, draft=None) -> CockpitApp:
    return CockpitApp(runs_dir=tmp_path / "runs", wizard=WizardState(draft=draft or starting_draft()))


async def finished(pilot) -> ChecklistScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ChecklistScreen)
    await wait_for(lambda: screen.done, 60, what="the checks to finish")
    await pilot.pause()
    return screen


async def test_the_demo_draft_fills_in_every_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = app_on(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await finished(pilot)
        sections = {row.section for row in screen.rows}
        assert {"environment", "machine", "config", "tokenizer", "dataset", "memory"} <= sections
        assert "dry_run" not in sections and len(screen.results) == len(wizard_checks())
        assert not [r for r in screen.rows if r.blocking and r.status == "fail"]
        table = screen.query_one("#check-table")
        assert table.row_count == len(screen.rows)  # no row left pending
        assert "READY" in str(screen.query_one("#check-verdict").render())


async def test_a_missing_data_file_is_the_first_row_and_f_goes_to_the_data_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    draft = starting_draft().update({"data.source": "text", "data.path": "missing.txt"})
    app = app_on(tmp_path, draft)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await finished(pilot)
        first = screen.rows[0]
        assert first.status == "fail" and first.blocking and "missing.txt" in first.detail
        assert "NOT READY" in str(screen.query_one("#check-verdict").render())
        assert "f: go to the data step" in str(screen.query_one("#check-detail").render())
        await pilot.press("f")
        await pilot.pause()
        assert app.screen.STEP == "data"


async def test_f_creates_the_missing_output_directory_and_checks_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = app_on(tmp_path, starting_draft().set("runs_dir", "out/runs"))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await finished(pilot)
        index = next(i for i, row in enumerate(screen.rows) if row.id == "machine.output")
        screen.query_one("#check-table").move_cursor(row=index)
        await pilot.pause()
        assert "create the output directory" in str(screen.query_one("#check-detail").render())
        run = screen.run
        await pilot.press("f")
        await wait_for(lambda: screen.run > run and screen.done, 60, what="the second run")
        assert (tmp_path / "out" / "runs").is_dir()
        row = next(row for row in screen.rows if row.id == "machine.output")
        assert "will be created" not in row.detail


async def test_a_draft_that_does_not_validate_shows_its_problems(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = app_on(tmp_path, starting_draft().update({"train.lr": -1, "train.seq_len": 2}))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await finished(pilot)
        failed = [row.detail for row in screen.rows if row.id == "config.load"]
        assert any("train.lr" in d for d in failed) and any("train.seq_len" in d for d in failed)
        assert screen.rows[0].status == "fail"
        assert {row.section for row in screen.rows} <= {"config", "environment", "machine"}
        await pilot.press("r")  # again: still no crash
        await wait_for(lambda: screen.done, 60)


def _snapshot_app(tmp_path: Path) -> CockpitApp:
    """Checks whose findings do not depend on the machine, on files the test makes in the cwd: a
    text corpus, a broken tokenizer (a blocking row with its fix)."""
    (tmp_path / "corpus.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "broken-tokenizer").mkdir()
    (tmp_path / "broken-tokenizer" / "tokenizer.json").write_text("{not json", encoding="utf-8")
    draft = starting_draft().update(
        {"data.source": "text", "data.path": "corpus.txt", "tokenizer.path": "broken-tokenizer"}
    )
    app = app_on(tmp_path, draft)
    app.step_screen = lambda: ChecklistScreen(draft, checks=(check_config, check_tokenizer, check_dataset))
    return app


def test_snapshot_checklist_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(_snapshot_app(tmp_path), terminal_size=(120, 40), run_before=finished)


def test_snapshot_checklist_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(_snapshot_app(tmp_path), terminal_size=(80, 24), run_before=finished)
