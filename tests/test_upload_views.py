"""Upload state everywhere a person looks, from synthetic ``upload`` events (the engine side has its
own tests): the one fold (engine.upload_status), the checkpoint index, the dashboard's RunState, the
headless lines, `cockpit ckpt status`, `cockpit runs`, and the viewer following a run that starts
uploading. The pictures are in test_viewer_snapshots.py and test_snapshots.py."""

from __future__ import annotations

import json

from tui_helpers import (
    TARGET_A,
    TARGET_B,
    UPLOAD_BYTES,
    fixture_events,
    screen_text,
    viewer_run,
    wait_for,
    with_uploads,
)
from typer.testing import CliRunner

from cockpit.cli import app as cli
from cockpit.headless import format_event
from cockpit.run_state import RunState
from engine.checkpoint_index import list_checkpoints
from engine.protocol import Upload, encode, make_event
from engine.upload_status import DONE, FAILED, QUEUED, UPLOADING, UploadFold, upload_cell, upload_count

runner = CliRunner()
CKPT = "checkpoints/checkpoint-300"


def _up(seq: int, action: str, target: str = TARGET_A, done: int | None = None, **kw) -> Upload:
    extra = {"bytes_done": done, "bytes_total": UPLOAD_BYTES} if done is not None else {}
    return make_event("upload", "r", seq, ts=float(seq), action=action, path=CKPT, target=target, **extra, **kw)


def test_fold_queued_progress_done_keeps_only_the_latest():
    fold = UploadFold()
    assert fold.apply(_up(0, "queued")).state == QUEUED
    first = fold.apply(_up(1, "progress", done=10_000_000))
    assert (first.state, first.bytes_done, first.bytes_total) == (UPLOADING, 10_000_000, UPLOAD_BYTES)
    fold.apply(_up(2, "progress", done=20_650_000))
    (copy,) = fold.copies(CKPT)  # the progress events collapsed into one copy
    assert copy.state == UPLOADING and copy.fraction == 0.5 and copy.ts == 2.0
    assert upload_cell(fold.copies(CKPT)) == ("↑ 50%", "yellow")
    assert upload_cell(fold.copies(CKPT), wide=True)[0] == "↑ 50% 19.7 MiB"
    done = fold.apply(make_event("upload", "r", 3, ts=3.0, action="done", path=CKPT, target=TARGET_A))
    assert (done.state, done.bytes_done, done.fraction, done.error) == (DONE, UPLOAD_BYTES, 1.0, None)
    assert upload_cell(fold.copies(CKPT)) == ("1/1 ✓", "green")
    assert fold.copies("checkpoints/checkpoint-1") == () and upload_cell(()) == ("—", "dim")


def test_fold_failed_keeps_the_reason_until_retried_and_two_targets_add_up():
    fold = UploadFold().apply_all(
        [
            _up(0, "queued", TARGET_A),
            _up(1, "queued", TARGET_B),
            _up(2, "progress", TARGET_A, done=5_000_000),
            _up(3, "failed", TARGET_A, error="connection refused"),
            _up(4, "progress", TARGET_B, done=UPLOAD_BYTES // 2),
        ]
    )
    a, b = fold.copies(CKPT)
    assert (a.target, a.state, a.error, a.bytes_done) == (TARGET_A, FAILED, "connection refused", 5_000_000)
    assert (b.target, b.state) == (TARGET_B, UPLOADING)
    assert upload_cell((a, b)) == ("✗ failed", "bold red")  # a failure shows before progress
    assert upload_cell((b,))[0] == "↑ 50%"
    waiting = UploadFold().apply(_up(9, "queued", TARGET_A, done=0))
    assert upload_cell((b, waiting))[0] == "↑ 50%"  # the percent of the transfer under way
    assert upload_cell((waiting,)) == ("queued", "dim")
    count = upload_count(fold)
    assert (count.copies, count.failed, count.uploading) == (2, 1, 1)
    assert count.text() == "1 failed · 0/2 uploaded"
    # a retry clears the reason; a queued copy starts again from nothing sent
    retried = fold.apply(_up(5, "queued", TARGET_A))
    assert (retried.state, retried.error, retried.bytes_done) == (QUEUED, None, 0)
    fold.apply(_up(6, "done", TARGET_A, done=UPLOAD_BYTES))
    fold.apply(_up(7, "done", TARGET_B, done=UPLOAD_BYTES))
    assert upload_cell(fold.copies(CKPT)) == ("2/2 ✓", "green")
    assert upload_count(fold).text() == "2/2 uploaded"


def test_index_run_state_and_headless_read_the_same_uploads(tmp_path):
    events = with_uploads(fixture_events(run="demo-run"))
    run = viewer_run(tmp_path, events)
    records = {r.step: r for r in list_checkpoints(run, events, stored=[])}
    assert sorted(records) == [200, 300]  # 100 was pruned
    assert [(c.target, c.state) for c in records[200].uploads] == [(TARGET_A, DONE), (TARGET_B, FAILED)]
    assert records[200].uploads[1].error == "connection reset by peer (after 5 tries)"
    assert [(c.state, c.bytes_done) for c in records[300].uploads] == [(UPLOADING, 18_585_000), (QUEUED, 0)]

    state = RunState()
    state.apply_all(events)
    rows = {c.step: c for c in state.checkpoint_rows()}
    assert rows[300].uploads == records[300].uploads and rows[200].uploads == records[200].uploads
    assert [c.state for c in rows[100].uploads] == [DONE, DONE] and rows[100].action == "pruned"
    assert state.errors == 1
    texts = [e.text for e in state.logs]
    assert f"upload done: checkpoints/checkpoint-100 → {TARGET_B} (39.4 MiB, verified)" in texts
    assert any("upload failed: checkpoints/checkpoint-200" in t and "connection reset" in t for t in texts)
    assert not any("progress" in t for t in texts)

    lines = [line for e in events if isinstance(e, Upload) and (line := format_event(e, 300)) is not None]
    assert lines == [
        f"upload done: checkpoints/checkpoint-100 -> {TARGET_A} (39.4 MiB), verified",
        f"upload done: checkpoints/checkpoint-100 -> {TARGET_B} (39.4 MiB), verified",
        f"upload done: checkpoints/checkpoint-200 -> {TARGET_A} (39.4 MiB), verified",
        f"upload FAILED: checkpoints/checkpoint-200 -> {TARGET_B}: connection reset by peer (after 5 tries)",
    ]


def test_ckpt_status_lists_every_copy_and_runs_counts_them(tmp_path):
    run = viewer_run(tmp_path, with_uploads(fixture_events(run="demo-run")))
    result = runner.invoke(cli, ["ckpt", "status", str(run), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    by_step = {c["step"]: c for c in info["checkpoints"]}
    assert [(s, c["local"]) for s, c in by_step.items()] == [(100, "pruned"), (200, "present"), (300, "present")]
    assert [u["state"] for u in by_step[100]["uploads"]] == ["done", "done"]
    assert by_step[200]["uploads"][1] == {
        "target": TARGET_B,
        "state": "failed",
        "bytes_done": 5_000_000,
        "bytes_total": UPLOAD_BYTES,
        "error": "connection reset by peer (after 5 tries)",
        "ts": by_step[200]["uploads"][1]["ts"],
    }
    # the list's JSON keeps its keys and gains the copies
    listed = json.loads(runner.invoke(cli, ["ckpt", "list", str(run), "--json"]).output)
    assert {"step", "directory", "complete", "latest", "best", "uploads"} <= set(listed[0])
    assert listed[1]["uploads"] == by_step[300]["uploads"]
    table = runner.invoke(cli, ["ckpt", "list", str(run)], env={"COLUMNS": "160"}).output
    assert "upload" in table and "✗ failed" in table and "↑ 45%" in table

    (run / "checkpoints" / "checkpoint-200" / "config.json").write_text("{}")  # tampered
    result = runner.invoke(cli, ["ckpt", "status", str(run), "--verify"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("pruned", "verified", "FAILED", "uploading 45%", "17.7/39.4 MiB", TARGET_A, TARGET_B):
        assert text in out, (text, out)
    assert "connection reset by peer" in out
    assert "FAILED checkpoints/checkpoint-200: config.json: size" in out

    result = runner.invoke(cli, ["runs", "--runs-dir", str(tmp_path)], env={"COLUMNS": "160"})
    assert result.exit_code == 0 and "uploads" in result.output
    assert "1 failed · 3/6 uploaded" in result.output
    summary = json.loads(runner.invoke(cli, ["runs", "--runs-dir", str(tmp_path), "--json"]).output)[0]
    assert summary["uploads"] == {"copies": 6, "done": 3, "uploading": 1, "queued": 1, "failed": 1}


def test_ckpt_status_of_a_run_without_uploads(tmp_path):
    run = viewer_run(tmp_path)
    result = runner.invoke(cli, ["ckpt", "status", str(run)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "no uploads" in result.output and "present" in result.output
    assert runner.invoke(cli, ["ckpt", "status", str(tmp_path / "nope")]).exit_code == 2


async def test_the_viewer_shows_uploads_as_they_start(tmp_path):
    """The list of a run without uploads has no upload column; it appears, with each checkpoint's
    state, once upload events are appended, and the detail lists each target with its error."""
    from cockpit.app import make_app
    from cockpit.screens.checkpoint_detail import CheckpointDetailScreen
    from cockpit.screens.checkpoint_viewer import CheckpointViewerScreen
    from cockpit.widgets.checkpoint_list import CheckpointList

    events = fixture_events(run="demo-run")
    run = viewer_run(tmp_path, events)
    app = make_app(run, checkpoints=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(lambda: isinstance(app.screen, CheckpointViewerScreen) and app.screen.loaded, what="the list")
        screen = app.screen
        assert "upload" not in screen_text(app)
        with open(run / "events.jsonl", "ab") as f:
            for e in with_uploads(events)[len(events) :]:
                f.write(encode(e))
        screen.action_refresh()
        await wait_for(lambda: "✗ failed" in screen_text(app), what="the upload column")
        assert "upload" in screen_text(app) and "↑ 45%" in screen_text(app)
        screen.query_one(CheckpointList).move_cursor(row=1)
        await pilot.press("enter")
        await wait_for(lambda: isinstance(app.screen, CheckpointDetailScreen), what="the detail")
        await wait_for(lambda: "connection reset" in screen_text(app), what="the failed target reason")
        text = screen_text(app)
        assert "upload target" in text and TARGET_A in text and "done" in text and "failed" in text


async def test_the_home_counts_each_runs_uploads(tmp_path):
    from cockpit.app import make_app
    from cockpit.screens.home import HomeScreen

    viewer_run(tmp_path / "runs", with_uploads(fixture_events(run="demo-run")))
    app = make_app(runs_dir=tmp_path / "runs")
    async with app.run_test(size=(120, 24)):
        await wait_for(lambda: isinstance(app.screen, HomeScreen) and app.screen.summaries, what="the runs")
        await wait_for(lambda: "1 failed · 3/6 uploaded" in screen_text(app), what="the uploads column")
        assert "uploads" in screen_text(app)
