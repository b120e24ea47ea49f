"""The checkpoint viewer (Pilot) on the real checkpoints of one tiny run trained in-process: the list,
a checkpoint's detail, marking and comparing two, the plot, verify (a tampered copy fails), resume's
confirmation and refusal, new checkpoints of a live run appearing, and the ways in (home, dashboard,
`cockpit ckpt view`)."""

from __future__ import annotations

import json
import os
import shutil

import helpers
import pytest
from helpers import train_in_process
from tui_helpers import settled_text, wait_for
from typer.testing import CliRunner

from cockpit.app import make_app
from cockpit.checkpoint_view import FAILED, VERIFIED
from cockpit.ckpt_actions import ACTIONS
from cockpit.cli import app as cli_app
from cockpit.client import read_events
from cockpit.screens.ask_text import AskTextScreen
from cockpit.screens.checkpoint_compare import CheckpointCompareScreen
from cockpit.screens.checkpoint_detail import CheckpointDetailScreen
from cockpit.screens.checkpoint_pick import CheckpointPickScreen
from cockpit.screens.checkpoint_plot import CheckpointPlotScreen
from cockpit.screens.checkpoint_viewer import CheckpointViewerScreen
from cockpit.screens.confirm import ConfirmScreen
from cockpit.screens.dashboard import DashboardScreen
from cockpit.widgets.checkpoint_list import CheckpointList
from engine import units
from engine.checkpoint_index import list_checkpoints, read_manifest
from engine.rundir import RunPaths

SIZE = (120, 40)


@pytest.fixture(scope="module")
def run_dir(make_run_dir):
    run_dir = make_run_dir(
        "viewer", {"train.max_steps": 12, "train.save_every": 5, "train.eval_every": 5, "train.log_every": 1}
    )
    assert train_in_process(run_dir) == 0
    return run_dir


@pytest.fixture(scope="module")
def records(run_dir):
    records = list_checkpoints(run_dir, read_events(RunPaths(run_dir).events))
    assert [r.step for r in records] == [5, 10, 12]
    return records


async def _viewer(pilot) -> CheckpointViewerScreen:
    app = pilot.app
    await wait_for(lambda: isinstance(app.screen, CheckpointViewerScreen) and app.screen.loaded, 10, what="the list")
    await pilot.pause()
    return app.screen


def _row_of(screen: CheckpointViewerScreen, step: int) -> int:
    steps = [r.step for r in reversed(screen.snapshot.records)]  # newest first
    return steps.index(step)


async def _select(pilot, step: int) -> None:
    screen = pilot.app.screen
    screen.query_one(CheckpointList).move_cursor(row=_row_of(screen, step))
    await pilot.pause()


async def test_list_shows_each_checkpoint_with_its_metrics(run_dir, records):
    app = make_app(run_dir, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        await _viewer(pilot)
        text = await settled_text(app, "latest")
        lines = text.splitlines()
        for r in records:
            row = next(line for line in lines if f" {r.step} " in line and r.reason in line)
            assert units.loss(r.train_loss) in row
            assert units.nbytes(r.size_bytes) in row and "not verified" in row
            if r.eval_loss is not None:
                assert units.loss(r.eval_loss) in row and f"{r.perplexity:.2f}" in row
            assert ("latest" in row) == r.latest and ("best" in row) == r.best
        # newest first
        assert text.index(" 12 ") < text.index(" 10 ") < text.index(" 5 ")
        for key in ("Open", "Mark", "Diff", "Plot", "Verify", "Eval", "Export", "Sample", "Resume", "Back"):
            assert key in lines[-1]


async def test_detail_shows_config_metrics_and_manifest_files(run_dir, records):
    record = records[1]
    manifest = read_manifest(run_dir / record.directory)
    app = make_app(run_dir, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        await _viewer(pilot)
        await _select(pilot, record.step)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, CheckpointDetailScreen), 5, what="the detail")
        text = await settled_text(app, "model.safetensors")
        assert f"step {record.step}" in text and record.directory in text
        assert "hidden_size 64" in text and "num_hidden_layers 2" in text
        assert units.loss(record.train_loss) in text and units.loss(record.eval_loss) in text
        for rel, meta in manifest["files"].items():
            row = next(line for line in text.splitlines() if rel in line)
            assert meta["sha256"][:16] in row and units.nbytes(meta["size"]) in row
        await pilot.press("escape")
        assert isinstance(app.screen, CheckpointViewerScreen)


async def test_mark_two_and_compare_shows_the_deltas(run_dir, records):
    a, b = records[0], records[1]
    app = make_app(run_dir, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await pilot.press("c")  # nothing marked yet: a warning, no compare
        assert app.screen is screen
        await _select(pilot, a.step)
        await pilot.press("space")
        await _select(pilot, b.step)
        await pilot.press("space")
        assert [s.record.step for s in screen.marked] == [a.step, b.step]
        text = await settled_text(app, "Marked:")
        assert "A" in next(line for line in text.splitlines() if f" {a.step} " in line and a.reason in line)
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, CheckpointCompareScreen), 5, what="the comparison")
        text = await settled_text(app, "run.yaml")
        loss_row = next(line for line in text.splitlines() if "train loss" in line)
        assert f"{b.train_loss - a.train_loss:+.4f}" in loss_row
        eval_row = next(line for line in text.splitlines() if "eval loss" in line)
        assert f"{b.eval_loss - a.eval_loss:+.4f}" in eval_row
        assert "run.yaml: no differences" in text and "config.json: no differences" in text


async def test_plot_marks_the_checkpoints(run_dir, records):
    app = make_app(run_dir, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        await _viewer(pilot)
        await pilot.press("p")
        await wait_for(lambda: isinstance(app.screen, CheckpointPlotScreen), 5, what="the plot")
        await wait_for(lambda: app.screen.data is not None, 5, what="the plot's data")
        text = await settled_text(app, "◆ checkpoints", "└")
        axis = next(line for line in text.splitlines() if "└" in line)
        assert axis.count("◆") == len(records)
        assert any(0x2800 < ord(ch) <= 0x28FF for ch in text), "no braille curve"
        assert "5 · 10 · 12" in text


async def test_verify_flags_a_tampered_checkpoint(run_dir, records, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    with open(copy / records[0].directory / "model.safetensors", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    app = make_app(copy, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await _select(pilot, records[0].step)
        await pilot.press("v")
        await _select(pilot, records[2].step)
        await pilot.press("v")
        await wait_for(lambda: len(screen.outcomes) == 2, 30, what="both verifications")
        assert screen.integrity == {records[0].step: FAILED, records[2].step: VERIFIED}
        assert screen.outcomes[("verify", records[0].step)].details == (
            "model.safetensors: sha256 differs from the manifest",
        )
        text = await settled_text(app, "FAILED", "verified")
        row = next(line for line in text.splitlines() if f" {records[0].step} " in line and "FAILED" in line)
        assert records[0].reason in row


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_each_action_names_a_function_that_takes_its_arguments(name, tmp_path):
    """What the child will call: the target imports, and takes the checkpoint directory, the action's
    keyword arguments, the question's answer and ``progress`` (export runs for real in
    tests/test_ckpt_export.py, the others in the Pilot tests here)."""
    import importlib
    import inspect

    action = ACTIONS[name]
    module, _, function = action.target.partition(":")
    fn = getattr(importlib.import_module(module), function)
    answer = action.question.argument("answer") if action.question else {}
    inspect.signature(fn).bind(str(tmp_path), **action.kwargs, **answer, progress=print)
    if action.question and action.question.default:
        assert action.question.default(tmp_path / "run", 12) == "exports/run-step12"


async def test_evaluate_asks_first_then_runs_in_a_child(run_dir, records, tmp_path, monkeypatch):
    """e on a checkpoint without an eval: blank data = the held-out split; the stored eval appears in
    its row (marked *). x asks where to export (escape: nothing runs); s asks a prompt (blank: nothing
    runs). Sample's child is tested through call_action in tests/test_generation.py, export's in
    tests/test_ckpt_export.py, each action's wiring by signature above."""
    from engine.eval_store import read_evals

    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    monkeypatch.chdir(tmp_path)
    last = records[-1]
    events = RunPaths(copy).events  # as if the run had not evaluated at its last step
    lines = events.read_text().splitlines(keepends=True)
    run_eval = next(
        json.loads(x) for x in lines if json.loads(x)["type"] == "eval" and json.loads(x)["step"] == last.step
    )
    events.write_text("".join(x for x in lines if json.loads(x) != run_eval))
    app = make_app(copy, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await _select(pilot, last.step)
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, AskTextScreen), 5, what="the data question")
        await pilot.press("escape")  # cancelled: nothing runs
        assert app.screen is screen and not screen.outcomes
        await pilot.press("e")
        await wait_for(lambda: isinstance(app.screen, AskTextScreen), 5, what="the data question")
        await pilot.press("enter")
        await pilot.press("x")
        await wait_for(lambda: isinstance(app.screen, AskTextScreen), 5, what="the export question")
        assert app.screen.query_one("#answer").value == f"exports/{copy.name}-step{last.step}"
        await pilot.press("escape")
        await pilot.press("s")
        await wait_for(lambda: isinstance(app.screen, AskTextScreen), 5, what="the prompt")
        await pilot.press("enter")  # blank: nothing runs
        assert app.screen is screen
        await wait_for(lambda: len(screen.outcomes) == 1, 90, what="the evaluation")
        evaluated = screen.outcomes[("evaluate", last.step)]
        assert evaluated.ok, evaluated
        assert ("sample", last.step) not in screen.outcomes
        stored = read_evals(copy)
        stored, _ = stored
        assert [e.step for e in stored] == [last.step] and units.loss(stored[0].loss) in evaluated.summary
        assert abs(stored[0].loss - run_eval["loss"]) < 1e-4  # the engine's own eval of that step
        text = await settled_text(app, units.loss(stored[0].loss) + "*")
        row = next(line for line in text.splitlines() if f" {last.step} " in line and last.reason in line)
        assert units.loss(stored[0].loss) + "*" in row


async def test_upload_copies_to_the_runs_targets_verified_or_says_why_not(run_dir, records, tmp_path):
    import yaml

    from engine.transfer import open_url, verify_copy
    from engine.uploads import remote_dir

    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    app = make_app(copy, checkpoints=True)
    first = records[0]
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await _select(pilot, first.step)
        await pilot.press("u")  # no upload.targets yet: refused, saying so
        await wait_for(lambda: ("upload", first.step) in screen.outcomes, 30, what="the refusal")
        refused = screen.outcomes.pop(("upload", first.step))
        assert not refused.ok and "no upload.targets" in refused.summary
        run_yaml = RunPaths(copy).run_yaml
        cfg = yaml.safe_load(run_yaml.read_text())
        target = f"file://{tmp_path / 'backup'}"
        cfg["upload"] = {**cfg.get("upload", {}), "targets": [target]}
        run_yaml.write_text(yaml.safe_dump(cfg))
        await pilot.press("u")
        await wait_for(lambda: ("upload", first.step) in screen.outcomes, 30, what="the upload")
        outcome = screen.outcomes[("upload", first.step)]
        assert outcome.ok and target in outcome.summary, outcome
        text = await settled_text(app, "1/1")
        assert any(f" {first.step} " in line and "1/1" in line for line in text.splitlines())
    fs, root = open_url(target)
    assert verify_copy(fs, remote_dir(root, copy.name, first.directory)) == []


async def test_resume_asks_first_and_a_refused_checkpoint_leaves_nothing(run_dir, records, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.safetensors", "*.pt"))
    app = make_app(copy, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), 5, what="the confirmation")
        assert f"from step {records[-1].step}" in app.screen.title_text
        await pilot.press("n")
        assert app.screen is screen
        await pilot.press("r")
        await wait_for(lambda: isinstance(app.screen, ConfirmScreen), 5, what="the confirmation")
        await pilot.press("y")
        await wait_for(lambda: "Resume failed" in str(screen.query_one("#viewer-status").render()), 20, what="refusal")
        assert "missing model.safetensors" in str(screen.query_one("#viewer-status").render())
        assert app.screen is screen
    assert not any(p.name.startswith(f"{run_dir.name}-from-") for p in tmp_path.iterdir())


async def test_resume_starts_a_new_run_from_the_checkpoint_and_leaves_the_old_one(run_dir, records, tmp_path):
    """A real engine continues from step 5 in ``<run>-from-5``; the run it came from keeps its files."""
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    before = sorted((p.relative_to(copy).as_posix(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file())
    first = records[0]
    app = make_app(copy, checkpoints=True)
    branch = tmp_path / f"{run_dir.name}-from-{first.step}"
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _viewer(pilot)
            await _select(pilot, first.step)
            await pilot.press("r")
            await wait_for(lambda: isinstance(app.screen, ConfirmScreen), 5, what="the confirmation")
            await pilot.press("y")
            await wait_for(lambda: isinstance(app.screen, DashboardScreen), 60, what="the new run's dashboard")
            assert app.screen.run_dir.resolve() == branch.resolve()

        def resumed() -> list:  # the engine may still be writing its first events on a busy machine
            return [e for e in read_events(RunPaths(branch).events) if e.type == "status" and e.reason]

        started = helpers.wait_for(resumed, 60)
        assert f"checkpoint-{first.step}" in (started[0].reason or ""), started
    finally:
        status = RunPaths(branch).status
        pid = json.loads(status.read_text()).get("pid") if status.is_file() else None
        if pid:
            os.kill(pid, 9)
    after = sorted((p.relative_to(copy).as_posix(), p.stat().st_mtime_ns) for p in copy.rglob("*") if p.is_file())
    assert after == before


async def test_new_checkpoints_of_a_live_run_appear(run_dir, records, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.safetensors", "*.pt"))
    last = copy / records[-1].directory
    aside = tmp_path / "aside"
    last.rename(aside)
    app = make_app(copy, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        screen.refresh_s = 0.1
        screen.set_interval(0.1, screen.action_refresh)
        assert [r.step for r in screen.snapshot.records] == [5, 10]
        aside.rename(last)
        await wait_for(lambda: [r.step for r in screen.snapshot.records] == [5, 10, 12], 5, what="the new checkpoint")
        assert screen.query_one(CheckpointList).row_count == 3


async def test_home_and_dashboard_keys_open_the_viewer(run_dir, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(run_dir, runs / run_dir.name, ignore=shutil.ignore_patterns("*.safetensors", "*.pt"))
    app = make_app(runs_dir=runs)
    async with app.run_test(size=SIZE) as pilot:
        await settled_text(app, run_dir.name)
        assert "v View checkpoints" in (await settled_text(app)).splitlines()[-1]
        await pilot.press("v")
        await _viewer(pilot)
        await pilot.press("escape")
        await wait_for(lambda: not isinstance(app.screen, CheckpointViewerScreen), 5, what="the home")
    app = make_app(runs / run_dir.name)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: isinstance(app.screen, DashboardScreen), 5, what="the dashboard")
        await pilot.press("v")
        screen = await _viewer(pilot)
        assert screen.run_dir == runs / run_dir.name
        await pilot.press("escape")
        assert isinstance(app.screen, DashboardScreen)


def test_ckpt_view_needs_a_terminal(run_dir):
    result = CliRunner().invoke(cli_app, ["ckpt", "view", str(run_dir)])
    assert result.exit_code == 2
    assert "needs a terminal" in result.output and "cockpit ckpt list" in result.output
    result = CliRunner().invoke(cli_app, ["ckpt", "view", str(run_dir / "nope")])
    assert result.exit_code == 2 and "nope" in result.output


async def test_compare_with_a_checkpoint_of_another_run(run_dir, records, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    keep_small = shutil.ignore_patterns("*.safetensors", "*.pt")
    mine = shutil.copytree(run_dir, runs / "mine", ignore=keep_small)
    other = shutil.copytree(run_dir, runs / "other", ignore=keep_small)
    run_yaml = RunPaths(other).run_yaml
    run_yaml.write_text(run_yaml.read_text().replace("  lr: 0.005\n", "  lr: 0.001\n"))
    app = make_app(mine, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await _select(pilot, records[-1].step)
        await pilot.press("space", "o")
        await wait_for(lambda: isinstance(app.screen, CheckpointPickScreen) and app.screen.sides, 10, what="the picker")
        assert {(s.run_dir.name, s.record.step) for s in app.screen.sides} == {("other", r.step) for r in records}
        await pilot.press("enter")  # the first: the other run's newest
        await wait_for(lambda: app.screen is screen, 5, what="the viewer")
        assert [(s.run_dir.name, s.record.step) for s in screen.marked] == [
            ("mine", records[-1].step),
            ("other", records[-1].step),
        ]
        await pilot.press("c")
        await wait_for(lambda: isinstance(app.screen, CheckpointCompareScreen), 5, what="the comparison")
        text = await settled_text(app, "train.lr")
        assert "run.yaml: 1 key differs" in text
        row = next(line for line in text.splitlines() if "train.lr" in line)
        assert "0.005" in row and "0.001" in row


async def test_an_action_that_fails_is_shown_not_raised(run_dir, records, tmp_path, monkeypatch):
    """The generic mechanism behind verify (and evaluate/sample/export to come): an action whose
    function raises in its child process ends as a failed outcome in the status line."""
    from cockpit import ckpt_actions

    copy = shutil.copytree(run_dir, tmp_path / run_dir.name, ignore=shutil.ignore_patterns("*.safetensors", "*.pt"))
    (copy / records[-1].directory / "manifest.json").unlink()
    action = ckpt_actions.CheckpointAction("manifest", "Manifest", "engine.checkpoint_index:read_manifest")
    monkeypatch.setitem(ckpt_actions.ACTIONS, "manifest", action)
    app = make_app(copy, checkpoints=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _viewer(pilot)
        await _select(pilot, records[-1].step)
        screen.action_checkpoint_action("manifest")
        await wait_for(lambda: ("manifest", records[-1].step) in screen.outcomes, 20, what="the action's end")
        outcome = screen.outcomes[("manifest", records[-1].step)]
        assert not outcome.ok and "ValueError" in outcome.summary and "manifest.json" in outcome.summary
        status = str(screen.query_one("#viewer-status").render())
        assert "Manifest step 12" in status and "FAILED" in status
        assert app.is_running and screen.integrity == {}
