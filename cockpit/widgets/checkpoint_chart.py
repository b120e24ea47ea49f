"""The loss chart (``loss_chart.render_chart``) with the run's checkpoints marked on its step axis:
``◆`` at each checkpoint's step, the selected one highlighted."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive

from cockpit.widgets.loss_chart import ChartData, LossChart, render_chart

_MARK = "◆"


def mark_columns(axis_plain: str, width: int, data: ChartData, steps: Sequence[int]) -> dict[int, int]:
    """Step -> cell of ``axis_plain`` (the chart's x axis line, ``└`` where the plot starts) for each
    of ``steps`` in the chart's step range, placed as ``render_chart`` places points."""
    corner = axis_plain.find("└")
    gutter = corner + 1
    plot_w = width - gutter
    xs = [s for s, v in zip(data.steps, data.values) if v is not None and math.isfinite(v)]
    xs += [s for s, v in zip(data.eval_steps, data.eval_values) if v is not None and math.isfinite(v)]
    if corner < 0 or plot_w < 1 or not xs:
        return {}
    x0, x1 = min(xs), max(xs)
    dots_w = plot_w * 2
    cells = {}
    for step in steps:
        if not x0 <= step <= x1:
            continue
        dot = 0 if x1 == x0 else min(dots_w - 1, max(0, round((step - x0) / (x1 - x0) * (dots_w - 1))))
        cells[step] = gutter + (dot >> 1)
    return cells


class CheckpointChart(LossChart):
    """Set ``marks`` (checkpoint steps) and ``selected`` (one of them, or None) with ``data``."""

    marks: reactive[tuple[int, ...]] = reactive((), layout=False)
    selected: reactive[int | None] = reactive(None, layout=False)

    def render(self) -> Text:
        width, height = self.content_size
        lines = render_chart(width, height, self.data, self._styles())
        if height >= 5 and len(lines) == height and self.marks:
            axis = lines[-2]
            cells = mark_columns(axis.plain, width, self.data, self.marks)
            eval_style = self.get_component_rich_style("loss-chart--eval", partial=True)
            for step, cell in sorted(cells.items(), key=lambda kv: kv[0] == self.selected):
                style = eval_style + Style(reverse=True) if step == self.selected else eval_style
                axis = axis[:cell] + Text(_MARK, style=style) + axis[cell + 1 :]
            lines[-2] = axis
        return Text("\n", no_wrap=True, overflow="crop").join(lines)
