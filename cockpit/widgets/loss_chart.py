"""A line chart of the training loss over steps, drawn with Unicode braille dots.

Every terminal cell holds a 2x4 grid of braille dots, so a chart of W x H cells has 2W x 4H points
of resolution. Any number of points is reduced to one bucket per dot column (min, max and mean of
the losses that fall in it): the mean is drawn as a continuous line and, where one column holds
several noisy points, the min..max band is drawn dimmer behind it. Thousands of points cost one
pass over the data per redraw.

Evaluation losses are drawn as markers on top. The y-axis carries "nice" tick labels (1, 2, 2.5, 5
times a power of ten), the x-axis the step range and, when given, marked steps (checkpoints).

Why this module is over 400 lines: the renderer (a pure function, also used by ``cockpit ckpt plot``)
and the thin widget that caches it are one concept; splitting them would only move the styles apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.units import si

#: Bit of each dot in a braille cell, indexed [row][col] (row 0 at the top).
_BRAILLE_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_EVAL_MARK = "●"
_STEP_MARK = "◆"
#: ``log_y="auto"`` switches to a log scale when the largest value is this many times the least.
LOG_SCALE_RATIO = 5.0


@dataclass(frozen=True)
class ChartData:
    """What the chart draws. ``revision`` changes whenever the series do (it alone is compared, so
    handing the same growing lists over again is cheap)."""

    revision: int = 0
    steps: Sequence[int] = field(default=(), compare=False)
    values: Sequence[float] = field(default=(), compare=False)
    eval_steps: Sequence[int] = field(default=(), compare=False)
    eval_values: Sequence[float] = field(default=(), compare=False)
    marks: Sequence[int] = field(default=(), compare=False)  #: steps marked on the x axis (checkpoints)


@dataclass(frozen=True)
class ChartStyles:
    line: Style = Style(color="cyan", bold=True)
    band: Style = Style(color="blue")
    eval: Style = Style(color="magenta", bold=True)
    mark: Style = Style(color="yellow", bold=True)
    axis: Style = Style(color="bright_black")
    label: Style = Style(color="bright_black")
    grid: Style = Style(color="grey23")
    empty: Style = Style(color="bright_black", italic=True)


def nice_step(span: float, target: int, integer: bool = False) -> float:
    """A round tick interval (1, 2, 2.5 or 5 times a power of ten) giving about ``target`` ticks."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, target)
    mag = 10 ** math.floor(math.log10(raw))
    best = None
    for m in (1, 2, 5, 10) if integer and mag < 10 else (1, 2, 2.5, 5, 10):
        step = m * mag
        if integer:
            step = max(1.0, round(step))
        # The candidate whose tick count is closest to the target, preferring fewer ticks.
        score = abs(math.log((span / step) / max(1, target))) + (0.1 if span / step > target else 0)
        if best is None or score < best[0]:
            best = (score, step)
    return best[1]


def _decimals(step: float) -> int:
    for d in range(7):
        scaled = step * 10**d
        if abs(scaled - round(scaled)) < 1e-6 * max(1.0, scaled):
            return d
    return 6


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def uses_log_scale(values: Sequence[float]) -> bool:
    """Whether ``log_y="auto"`` draws these (finite) values on a log scale."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) / min(finite) >= LOG_SCALE_RATIO


def _log_ticks(lo: float, hi: float, target: int) -> tuple[list[float], list[str]]:
    """Ticks between two log10 positions: 1-2-5 times powers of ten (1-9 when the range is
    narrow, powers of ten alone when it is wide). Returns positions and labels."""
    for mantissas in ((1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9), (1,)):
        values = [m * 10.0**k for k in range(math.floor(lo) - 1, math.ceil(hi) + 2) for m in mantissas]
        pos = [(math.log10(v), v) for v in values if lo <= math.log10(v) <= hi]
        if mantissas == (1, 2, 5) and len(pos) < 2:
            continue
        if mantissas == (1, 2, 5) and len(pos) > max(3, target * 2):
            continue
        if len(pos) >= 2 or mantissas == (1,):
            break
    if len(pos) > max(3, target * 2):
        keep = math.ceil(len(pos) / max(3, target * 2))
        pos = pos[::keep]
    return [p for p, _ in pos], [f"{v:g}" for _, v in pos]


def render_chart(
    width: int,
    height: int,
    data: ChartData,
    styles: ChartStyles = ChartStyles(),
    empty_text: str = "waiting for the first metrics…",
    log_y: bool | str = "auto",
) -> list[Text]:
    """The chart as ``height`` lines of exactly ``width`` cells. ``log_y``: True, False, or
    "auto" (a log scale when the values span a factor of :data:`LOG_SCALE_RATIO` or more)."""
    blank = [Text(" " * width) for _ in range(height)]
    if width <= 0 or height <= 0:
        return []

    pts = [(s, v) for s, v in zip(data.steps, data.values) if v is not None and math.isfinite(v)]
    evals = [(s, v) for s, v in zip(data.eval_steps, data.eval_values) if v is not None and math.isfinite(v)]
    if not pts and not evals:
        line = Text(empty_text[:width].center(width), style=styles.empty)
        blank[height // 2] = line
        return blank

    all_v = [v for _, v in pts] + [v for _, v in evals]
    all_s = [s for s, _ in pts] + [s for s, _ in evals] + list(data.marks)
    x0, x1 = min(all_s), max(all_s)
    vlo, vhi = min(all_v), max(all_v)

    # A loss that falls by an order of magnitude reads better on a log scale: the late, slow
    # progress is not squashed flat by the first steps.
    use_log = log_y is True or (log_y == "auto" and uses_log_scale(all_v))
    if use_log:
        pts = [(s, math.log10(v)) for s, v in pts]
        evals = [(s, math.log10(v)) for s, v in evals]
        vlo, vhi = math.log10(vlo), math.log10(vhi)
    if vhi - vlo < 1e-9:
        pad = max(abs(vhi) * 0.05, 0.05)
        vlo, vhi = vlo - pad, vhi + pad

    # Layout: y labels | axis | plot ; then the x axis line and the x labels.
    plot_h = height - 2 if height >= 5 else height
    show_x_axis = plot_h != height
    pad = (vhi - vlo) * 0.04
    ylo, yhi = vlo - pad, vhi + pad
    target = max(2, plot_h // 3)
    if use_log:
        yticks, ylabels = _log_ticks(ylo, yhi, target)
    else:
        ystep = nice_step(yhi - ylo, target)
        yticks = _ticks(ylo, yhi, ystep)
        while len(yticks) < 2 and target < 64:
            target *= 2
            ystep = nice_step(yhi - ylo, target)
            yticks = _ticks(ylo, yhi, ystep)
        dec = _decimals(ystep)
        ylabels = [f"{t:.{dec}f}" for t in yticks]
    label_w = max(len(s) for s in ylabels)
    gutter = label_w + 2  # label, space, axis
    plot_w = width - gutter
    if plot_w < 4:
        gutter, label_w, plot_w = 0, 0, width

    dots_w, dots_h = plot_w * 2, plot_h * 4

    def col_of(step: float) -> int:
        if x1 == x0:
            return 0
        return min(dots_w - 1, max(0, round((step - x0) / (x1 - x0) * (dots_w - 1))))

    def row_of(value: float) -> int:
        return min(dots_h - 1, max(0, round((yhi - value) / (yhi - ylo) * (dots_h - 1))))

    # Bucket the points: one (min, max, sum, count) per dot column.
    lo = [math.inf] * dots_w
    hi = [-math.inf] * dots_w
    total = [0.0] * dots_w
    count = [0] * dots_w
    xscale = (dots_w - 1) / (x1 - x0) if x1 != x0 else 0.0
    last_col = dots_w - 1
    for s, v in pts:
        c = int((s - x0) * xscale + 0.5)
        if c > last_col:
            c = last_col
        elif c < 0:
            c = 0
        if v < lo[c]:
            lo[c] = v
        if v > hi[c]:
            hi[c] = v
        total[c] += v
        count[c] += 1

    line_bits = [[0] * plot_w for _ in range(plot_h)]
    band_bits = [[0] * plot_w for _ in range(plot_h)]

    def dot(grid: list[list[int]], c: int, r: int) -> None:
        grid[r >> 2][c >> 1] |= _BRAILLE_BITS[r & 3][c & 1]

    def segment(ca: int, ra: int, cb: int, rb: int) -> None:
        """Neighbouring columns ``ca`` and ``cb`` = ca + 1: split the vertical run between them."""
        if abs(rb - ra) <= 1:
            dot(line_bits, ca, ra)
            dot(line_bits, cb, rb)
            return
        direction = 1 if rb > ra else -1
        mid = (ra + rb) / 2
        for y in range(ra, rb + direction, direction):
            dot(line_bits, ca if (y - mid) * direction < 0 else cb, y)

    prev_c = prev_r = None
    for c in range(dots_w):
        if not count[c]:
            continue
        r = row_of(total[c] / count[c])
        if count[c] > 1:
            for rr in range(row_of(hi[c]), row_of(lo[c]) + 1):
                dot(band_bits, c, rr)
        if prev_c is None:
            dot(line_bits, c, r)
        else:
            # Interpolate across empty columns (fewer points than columns).
            span = c - prev_c
            last_r = prev_r
            for cc in range(prev_c + 1, c + 1):
                rr = round(prev_r + (r - prev_r) * (cc - prev_c) / span)
                segment(cc - 1, last_r, cc, rr)
                last_r = rr
        prev_c, prev_r = c, r

    eval_cells: set[tuple[int, int]] = set()
    for s, v in evals:
        eval_cells.add((row_of(v) >> 2, col_of(s) >> 1))

    # Tick rows and columns.
    ytick_rows: dict[int, str] = {}
    for t, label in zip(yticks, ylabels):
        row = row_of(t) >> 2
        ytick_rows.setdefault(row, label)

    grid_rows = set(ytick_rows) if gutter else set()
    lines: list[Text] = []
    for y in range(plot_h):
        line = Text(no_wrap=True, overflow="crop")
        if gutter:
            label = ytick_rows.get(y)
            line.append((label or "").rjust(label_w) + " ", styles.label)
            line.append("┤" if label is not None else "│", styles.axis)
        run_chars: list[str] = []
        run_style: Style | None = None
        for x in range(plot_w):
            if (y, x) in eval_cells:
                ch, st = _EVAL_MARK, styles.eval
            else:
                lb, bb = line_bits[y][x], band_bits[y][x]
                if lb:
                    ch, st = chr(0x2800 + (lb | bb)), styles.line
                elif bb:
                    ch, st = chr(0x2800 + bb), styles.band
                elif y in grid_rows:
                    ch, st = "┈", styles.grid
                else:
                    ch, st = " ", None
            if st is not run_style and run_chars:
                line.append("".join(run_chars), run_style)
                run_chars = []
            run_style = st
            run_chars.append(ch)
        if run_chars:
            line.append("".join(run_chars), run_style)
        lines.append(line)

    if show_x_axis:
        axis = ["─"] * plot_w
        labels = [" "] * plot_w
        if x1 == x0:
            xticks = [x0]
        else:
            xstep = nice_step(x1 - x0, max(1, plot_w // 14), integer=True)
            xticks = _ticks(x0, x1, xstep)
            if not xticks or xticks[0] != x0:
                xticks.insert(0, x0)
        free_from = 0
        for i, t in enumerate(xticks):
            cell = col_of(t) >> 1
            axis[cell] = "┬"
            text = si(int(t)) if t >= 10_000 else f"{int(t):,}"
            start = cell - len(text) // 2
            start = max(0, min(start, plot_w - len(text)))
            if start < free_from:
                axis[cell] = "─" if i else axis[cell]
                continue
            for k, ch in enumerate(text):
                if start + k < plot_w:
                    labels[start + k] = ch
            free_from = start + len(text) + 2
        # Always show where the data ends, making room for it if need be.
        if x1 != x0 and xticks[-1] != x1:
            text = si(int(x1)) if x1 >= 10_000 else f"{int(x1):,}"
            start = max(0, plot_w - len(text))
            while start < free_from - 1 and free_from > 0:
                # Drop the label that is in the way.
                j = free_from - 3
                while j >= 0 and labels[j] != " ":
                    labels[j] = " "
                    j -= 1
                free_from = j + 2 if j >= 0 else 0
            axis[plot_w - 1] = "┬"
            for k, ch in enumerate(text):
                if start + k < plot_w:
                    labels[start + k] = ch
        axis_line = Text(no_wrap=True, overflow="crop")
        label_line = Text(no_wrap=True, overflow="crop")
        if gutter:
            axis_line.append(" " * (label_w + 1) + "└", styles.axis)
            label_line.append(" " * gutter)
        start = 0
        for cell in sorted({col_of(m) >> 1 for m in data.marks}):
            axis_line.append("".join(axis[start:cell]), styles.axis)
            axis_line.append(_STEP_MARK, styles.mark)
            start = cell + 1
        axis_line.append("".join(axis[start:]), styles.axis)
        label_line.append("".join(labels), styles.label)
        lines.append(axis_line)
        lines.append(label_line)
    return lines


class LossChart(Widget):
    """The loss curve. Set ``data`` (a :class:`ChartData`) to redraw."""

    COMPONENT_CLASSES = {
        "loss-chart--line",
        "loss-chart--band",
        "loss-chart--eval",
        "loss-chart--axis",
        "loss-chart--label",
        "loss-chart--grid",
        "loss-chart--empty",
        "loss-chart--mark",
    }

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
    }
    LossChart > .loss-chart--line { color: $primary-lighten-3; text-style: bold; }
    LossChart > .loss-chart--band { color: $secondary-lighten-1; }
    LossChart > .loss-chart--eval { color: $accent; text-style: bold; }
    LossChart > .loss-chart--axis { color: $panel-lighten-2; }
    LossChart > .loss-chart--label { color: $foreground-darken-3; }
    LossChart > .loss-chart--grid { color: $surface-lighten-1; }
    LossChart > .loss-chart--empty { color: $foreground-darken-3; text-style: italic; }
    LossChart > .loss-chart--mark { color: $warning; text-style: bold; }
    """

    data: reactive[ChartData] = reactive(ChartData(), layout=False)

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._cache_key: tuple | None = None
        self._cache: Text | None = None

    def _styles(self) -> ChartStyles:
        get = self.get_component_rich_style
        return ChartStyles(
            line=get("loss-chart--line", partial=True),
            band=get("loss-chart--band", partial=True),
            eval=get("loss-chart--eval", partial=True),
            axis=get("loss-chart--axis", partial=True),
            label=get("loss-chart--label", partial=True),
            grid=get("loss-chart--grid", partial=True),
            empty=get("loss-chart--empty", partial=True),
            mark=get("loss-chart--mark", partial=True),
        )

    def notify_style_update(self) -> None:
        self._cache_key = None
        super().notify_style_update()

    def watch_data(self, data: ChartData) -> None:
        values = [v for v in data.values if v is not None and math.isfinite(v)]
        if not values:
            self.border_subtitle = ""
            return
        scale = "log scale · " if uses_log_scale(list(values) + list(data.eval_values)) else ""
        self.border_subtitle = f"{scale}last {values[-1]:.4g} · best {min(values):.4g}"

    def render(self) -> Text:
        width, height = self.content_size
        key = (self.data.revision, len(self.data.steps), len(self.data.eval_steps), width, height)
        if key != self._cache_key or self._cache is None:
            lines = render_chart(width, height, self.data, self._styles())
            self._cache = Text("\n", no_wrap=True, overflow="crop").join(lines)
            self._cache_key = key
        return self._cache
