"""The one-line header: run name, state badge, preset, parameters, device."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cockpit.run_state import HeaderInfo
from cockpit.widgets.bars import state_color
from engine import units


class RunHeader(Widget):
    DEFAULT_CSS = """
    RunHeader {
        dock: top;
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    info: reactive[HeaderInfo | None] = reactive(None)

    def render(self) -> Table | Text:
        info = self.info
        left = Text.assemble((" ◆ cockpit ", "bold"), ("│ ", "dim"))
        if info is None:
            return left
        left.append(info.run or "run", style="bold")
        left.append("  ")
        color = state_color(info.state)
        left.append(f" {info.state.upper()} ", style=f"bold black on {color}")
        facts = []
        if info.preset:
            facts.append(info.preset)
        if info.params is not None:
            facts.append(units.params(info.params))
        if info.device:
            facts.append(info.device)
        if info.world_size and info.world_size > 1:
            facts.append(f"{info.world_size} processes")
        right = Text(" · ".join(facts) + " ", no_wrap=True, overflow="ellipsis")
        # The run name and state always show in full; the facts give way on a narrow terminal.
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=left.cell_len)
        grid.add_column(no_wrap=True, overflow="ellipsis", justify="right", ratio=1)
        grid.add_row(left, right)
        return grid
