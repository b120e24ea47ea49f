"""The braille loss chart, rendered to plain text."""

from __future__ import annotations

import math
import random
import time

import pytest

from cockpit.widgets.loss_chart import ChartData, nice_step, render_chart, uses_log_scale


def curve(n: int, seed: int = 0, start: float = 7.0, end: float = 2.0) -> ChartData:
    rng = random.Random(seed)
    steps = list(range(1, n + 1))
    values = [end + (start - end) * math.exp(-5 * s / n) + rng.gauss(0, 0.05) for s in steps]
    return ChartData(1, steps, values)


def plain(lines) -> list[str]:
    return [line.plain for line in lines]


@pytest.mark.parametrize("width, height", [(44, 13), (70, 18), (120, 35), (200, 50)])
def test_every_line_fills_the_box_exactly(width, height):
    lines = plain(render_chart(width, height, curve(500)))
    assert len(lines) == height
    assert all(len(line) == width for line in lines)


def test_axes_ticks_and_labels():
    lines = plain(render_chart(70, 18, curve(300)))
    body, axis, labels = lines[:-2], lines[-2], lines[-1]
    gutter = axis.index("└")
    assert all(line[gutter] in "│┤" for line in body)
    ylabels = [line[:gutter].strip() for line in body if line[gutter] == "┤"]
    assert len(ylabels) >= 3
    values = [float(v) for v in ylabels]
    assert values == sorted(values, reverse=True)  # top to bottom
    assert labels.split()[0] == "1" and labels.split()[-1] == "300"
    assert axis.count("┬") == len(labels.split())
    # There are dots, and they fall from the top left to the bottom right.
    first_col = gutter + 1
    rows_with_dots_left = [
        i for i, line in enumerate(body) if any(ord(c) >= 0x2800 for c in line[first_col : first_col + 3])
    ]
    rows_with_dots_right = [i for i, line in enumerate(body) if any(ord(c) >= 0x2800 for c in line[-4:])]
    assert min(rows_with_dots_left) < min(rows_with_dots_right)


def test_thousands_of_points_are_downsampled_quickly():
    data = curve(100_000)
    started = time.perf_counter()
    lines = plain(render_chart(120, 30, data))
    assert time.perf_counter() - started < 1.0
    assert lines[-1].rstrip().endswith("100k")
    # The line is continuous: every plot column holds at least one dot.
    gutter = lines[-2].index("└")
    for x in range(gutter + 1, 120):
        assert any(ord(line[x]) > 0x2800 for line in lines[:-2]), f"gap at column {x}"


def test_eval_markers_and_missing_values():
    data = ChartData(1, [1, 2, 3, 4, 5], [5.0, float("nan"), 4.0, None, 3.0], [5], [3.2])
    lines = plain(render_chart(40, 10, data))
    assert sum(line.count("●") for line in lines) == 1


def test_empty_and_single_point_and_flat_series():
    assert any("waiting for the first metrics" in line for line in plain(render_chart(60, 10, ChartData())))
    one = plain(render_chart(60, 10, ChartData(1, [7], [3.0])))
    assert any(ord(c) >= 0x2800 for line in one for c in line)
    assert one[-1].strip() == "7"
    flat = plain(render_chart(60, 10, ChartData(1, [1, 2, 3], [2.0, 2.0, 2.0])))
    assert len(flat) == 10 and all(len(line) == 60 for line in flat)


def test_tiny_boxes_do_not_crash():
    for w, h in [(0, 0), (1, 1), (3, 2), (8, 4), (10, 5)]:
        lines = plain(render_chart(w, h, curve(50)))
        assert len(lines) == h and all(len(line) == w for line in lines)


def test_a_loss_falling_tenfold_is_drawn_on_a_log_scale():
    data = ChartData(1, list(range(1, 201)), [6.0 * math.exp(-s / 50) + 0.05 for s in range(1, 201)])
    assert uses_log_scale(data.values)
    lines = plain(render_chart(70, 18, data))
    gutter = lines[-2].index("└")
    labels = [line[:gutter].strip() for line in lines[:-2] if line[gutter] == "┤"]
    assert labels == ["5", "2", "1", "0.5", "0.2"]
    assert not uses_log_scale([3.0, 2.5, 2.0])


@pytest.mark.parametrize("span, target, expected", [(10, 5, 2), (1, 4, 0.25), (300, 4, 100), (7, 3, 2.5)])
def test_nice_steps(span, target, expected):
    assert nice_step(span, target) == pytest.approx(expected)


def test_integer_steps_are_whole_numbers():
    assert nice_step(5, 10, integer=True) == 1
    assert nice_step(39, 3, integer=True) == 10
