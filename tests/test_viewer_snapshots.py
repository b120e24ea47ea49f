"""SVG snapshots of the checkpoint viewer: the list, a checkpoint's detail, a comparison and the plot,
at 120x40 and 80x24 (the list and the detail of a run that uploads its checkpoints). The run is written from fixed events with small checkpoint directories of fixed
bytes and manifest times, and the viewer's clock is pinned, so the pictures are the same everywhere.
Regenerate after a deliberate visual change with
``pytest tests/test_viewer_snapshots.py --snapshot-update`` and look at the SVGs."""

from __future__ import annotations

import pytest
from tui_helpers import T0, fixture_events, screen_still, viewer_run, wait_for, with_uploads

from cockpit.app import make_app
from cockpit.screens.ask_text import AskTextScreen
from cockpit.screens.checkpoint_compare import CheckpointCompareScreen
from cockpit.screens.checkpoint_detail import CheckpointDetailScreen
from cockpit.screens.checkpoint_plot import CheckpointPlotScreen
from cockpit.screens.checkpoint_viewer import CheckpointViewerScreen
from cockpit.widgets.checkpoint_list import CheckpointList

SIZES = [(120, 40), (80, 24)]


async def _list(pilot) -> CheckpointViewerScreen:
    app = pilot.app
    await wait_for(lambda: isinstance(app.screen, CheckpointViewerScreen) and app.screen.loaded, 10, what="the list")
    screen = app.screen
    screen.clock = lambda: T0 + 3600.0
    screen._show()
    await screen_still(pilot)
    return screen


@pytest.mark.parametrize("size", SIZES)
def test_list(snap_compare, tmp_path, size):
    async def run_before(pilot) -> None:
        screen = await _list(pilot)
        screen.query_one(CheckpointList).move_cursor(row=1)
        await pilot.press("space")
        await screen_still(pilot)

    run = viewer_run(tmp_path, with_uploads(fixture_events(run="demo-run")))
    assert snap_compare(make_app(run, checkpoints=True), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_detail(snap_compare, tmp_path, size):
    async def run_before(pilot) -> None:
        await _list(pilot)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(pilot.app.screen, CheckpointDetailScreen), 5, what="the detail")
        await screen_still(pilot)

    run = viewer_run(tmp_path, with_uploads(fixture_events(run="demo-run")))
    assert snap_compare(make_app(run, checkpoints=True), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare, tmp_path, size):
    async def run_before(pilot) -> None:
        screen = await _list(pilot)
        screen.query_one(CheckpointList).move_cursor(row=1)
        await pilot.press("space")
        screen.query_one(CheckpointList).move_cursor(row=0)
        await pilot.press("space", "c")
        await wait_for(lambda: isinstance(pilot.app.screen, CheckpointCompareScreen), 5, what="the comparison")
        await screen_still(pilot)

    assert snap_compare(make_app(viewer_run(tmp_path), checkpoints=True), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_plot(snap_compare, tmp_path, size):
    async def run_before(pilot) -> None:
        await _list(pilot)
        await pilot.press("p")
        await wait_for(lambda: isinstance(pilot.app.screen, CheckpointPlotScreen), 5, what="the plot")
        await wait_for(lambda: pilot.app.screen.data is not None, 5, what="the plot's data")
        await screen_still(pilot)

    assert snap_compare(make_app(viewer_run(tmp_path), checkpoints=True), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_export_question(snap_compare, tmp_path, size):
    """The question an action asks first (cockpit/screens/ask_text.py): x on a checkpoint."""

    async def run_before(pilot) -> None:
        await _list(pilot)
        await pilot.press("x")
        await wait_for(lambda: isinstance(pilot.app.screen, AskTextScreen), 5, what="the question")
        await screen_still(pilot)

    assert snap_compare(make_app(viewer_run(tmp_path), checkpoints=True), terminal_size=size, run_before=run_before)
