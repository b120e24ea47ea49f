"""Machine telemetry: CPU, RAM, the engine's memory, and each GPU (or "no GPU")."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cockpit.run_state import TelemetryView
from cockpit.widgets.bars import meter
from engine import units


def _short_gpu_name(name: str | None) -> str:
    if not name:  # NVML could not read it
        return "GPU"
    for prefix in ("NVIDIA ", "GeForce "):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def _meter_grid() -> Table:
    """Rows of label | meter | value."""
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True, min_width=4)
    grid.add_column(ratio=1)
    grid.add_column(justify="right", no_wrap=True)
    return grid


def _fraction(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


class TelemetryPanel(Widget):
    DEFAULT_CSS = """
    TelemetryPanel {
        height: auto;
    }
    """

    view: reactive[TelemetryView] = reactive(TelemetryView(known=False), layout=True)

    def render(self) -> Group | Text:
        v = self.view
        if not v.known:
            return Text("waiting for telemetry…", style="dim italic")
        grid = _meter_grid()
        _percent_row(grid, "CPU", v.cpu_percent)
        _bytes_row(grid, "RAM", v.ram_used, v.ram_total)
        parts: list = [grid]
        if v.proc_rss is not None:
            parts.append(Text.assemble(("engine RSS ", "dim"), (units.nbytes(v.proc_rss), "bold")))
        if not v.gpus:
            parts.append(Text("no GPU", style="dim italic"))
        for g in v.gpus:
            head = Table.grid(expand=True, padding=(0, 1))
            head.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
            head.add_column(justify="right", no_wrap=True)
            extra = []
            if g.temp_c is not None:
                extra.append(f"{g.temp_c:.0f}°C")
            if g.power_w is not None:
                extra.append(f"{g.power_w:.0f} W")
            head.add_row(
                Text.assemble((f"GPU{g.index} ", "bold"), (_short_gpu_name(g.name), "")),
                Text("  ".join(extra), style="dim"),
            )
            rows = _meter_grid()
            _percent_row(rows, " util", g.util)
            _bytes_row(rows, " mem", g.mem_used, g.mem_total)
            parts.extend([head, rows])
        return Group(*parts)


def _percent_row(grid: Table, label: str, percent: float | None) -> None:
    grid.add_row(label, meter(_fraction(percent, 100)), Text(units.percent(percent), style="bold"))


def _bytes_row(grid: Table, label: str, used: int | None, total: int | None) -> None:
    grid.add_row(label, meter(_fraction(used, total)), Text(units.bytes_pair(used, total), style="bold"))
