"""`cockpit ckpt plot` on the events of one tiny run trained in-process: the plot data equals the
events, a PNG is a real, non-blank picture holding the train curve's colour, an SVG holds paths, the
terminal chart has braille dots, the step range and the checkpoints marked, and a live run's torn last
line is no obstacle."""

from __future__ import annotations

import shutil

import pytest
from helpers import train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from cockpit.client import read_events
from cockpit.plot_data import METRICS, read_plot_data
from cockpit.plot_file import TRAIN_COLOUR
from engine.protocol import Checkpoint, Eval, Metrics
from engine.rundir import RunPaths

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(make_run_dir):
    run_dir = make_run_dir(
        "plot", {"train.max_steps": 8, "train.save_every": 3, "train.eval_every": 4, "train.log_every": 1}
    )
    assert train_in_process(run_dir) == 0
    return run_dir


def test_plot_data_equals_the_events(run_dir):
    events = list(read_events(RunPaths(run_dir).events))
    data = read_plot_data(run_dir)
    metrics = [e for e in events if isinstance(e, Metrics)]
    assert data.steps == tuple(e.step for e in metrics) and data.values == tuple(e.loss for e in metrics)
    assert data.eval_steps == tuple(e.step for e in events if isinstance(e, Eval)) == (4, 8)
    saved = sorted(e.step for e in events if isinstance(e, Checkpoint) and e.action == "saved")
    assert data.checkpoint_steps == tuple(saved) == (3, 6, 8)
    assert data.run == run_dir.name and data.max_steps == 8
    lr = read_plot_data(run_dir, "lr")
    assert lr.values == tuple(e.lr for e in metrics) and lr.eval_steps == ()
    assert "loss" in METRICS and "tokens_per_s" in METRICS and "data_position" not in METRICS
    with pytest.raises(ValueError, match="unknown metric 'nope'"):
        read_plot_data(run_dir, "nope")


def test_png_is_a_real_picture_with_the_train_curve(run_dir, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    out = tmp_path / "loss.png"
    result = runner.invoke(app, ["ckpt", "plot", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < out.stat().st_size < 2_000_000
    pixels = imread(out)[..., :3]  # floats in [0, 1]
    assert pixels.shape[0] > 400 and pixels.shape[1] > 800 and pixels.std() > 0.05
    rgb = np.array([int(TRAIN_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    assert (np.abs(pixels - rgb).max(axis=-1) < 0.02).sum() > 200  # the curve, not just the legend's swatch


def test_svg_holds_paths_and_names_the_run(run_dir, tmp_path):
    out = tmp_path / "loss.svg"
    result = runner.invoke(app, ["ckpt", "plot", str(run_dir), "--out", str(out), "--metric", "lr"])
    assert result.exit_code == 0, result.output
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<path" in svg


@pytest.mark.parametrize("name", ["loss.gif", "loss"])
def test_unknown_picture_format_is_exit_2(run_dir, tmp_path, name):
    out = tmp_path / name
    result = runner.invoke(app, ["ckpt", "plot", str(run_dir), "--out", str(out)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output
    assert (".gif" if "." in name else "(no extension)") in result.output and ".png" in result.output
    assert not out.exists()


def test_unknown_metric_is_exit_2(run_dir):
    result = runner.invoke(app, ["ckpt", "plot", str(run_dir), "--metric", "los"])
    assert result.exit_code == 2 and "--metric los: unknown" in result.output and "loss" in result.output


def test_terminal_chart_has_braille_the_step_range_and_the_checkpoints(run_dir):
    result = runner.invoke(app, ["ckpt", "plot", str(run_dir), "--height", "12"], terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{run_dir.name}: loss (steps 1-8")
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in result.output)
    axis = next(line for line in lines if "└" in line)
    assert axis.count("◆") == 3  # checkpoints 3, 6 and 8
    labels = lines[lines.index(axis) + 1].split()
    assert labels[0] == "1" and labels[-1] == "8"
    assert "● eval loss" in result.output and "◆ checkpoints (3, 6, 8)" in result.output


def test_a_live_runs_torn_last_line_is_skipped(run_dir, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(run_dir, live, ignore=shutil.ignore_patterns("checkpoints", "*.sock"))
    events = RunPaths(live).events
    lines = events.read_bytes().splitlines(keepends=True)
    cut = next(
        i
        for i, line in enumerate(lines)
        if b'"type":"metrics"' in line.replace(b" ", b"") and b'"step":5' in line.replace(b" ", b"")
    )
    events.write_bytes(b"".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])
    data = read_plot_data(live)
    assert data.steps == (1, 2, 3, 4) and data.checkpoint_steps == (3,)
    result = runner.invoke(app, ["ckpt", "plot", str(live), "--out", str(tmp_path / "live.png")])
    assert result.exit_code == 0 and "4 points, 1 checkpoint" in result.output


def test_a_run_without_events_yet_plots_empty(make_run_dir):
    fresh = make_run_dir("plot-fresh")
    result = runner.invoke(app, ["ckpt", "plot", str(fresh), "--height", "8"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "no steps yet" in result.output and "no metrics yet" in result.output
