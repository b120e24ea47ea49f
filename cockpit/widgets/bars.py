"""Small Rich renderables shared by the dashboard panels: meters and state colours."""

from __future__ import annotations

from rich.progress_bar import ProgressBar
from rich.style import Style

from engine.protocol import CONNECTING, DEAD, UNKNOWN

#: Colour of each run state (Rich colour names, readable on dark and light themes).
STATE_COLORS = {
    CONNECTING: "grey62",
    "starting": "cyan",
    "running": "green",
    "paused": "yellow",
    "checkpointing": "cyan",
    "stopping": "yellow",
    "finished": "bright_blue",
    "stopped": "yellow",
    "failed": "red",
    DEAD: "red",
    UNKNOWN: "grey62",
}


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, "grey62")


def level_color(fraction: float | None) -> str:
    """Green, then yellow above 70 %, red above 90 %."""
    if fraction is None:
        return "grey50"
    if fraction >= 0.9:
        return "red"
    if fraction >= 0.7:
        return "yellow"
    return "green"


def meter(fraction: float | None, width: int | None = None, color: str | None = None) -> ProgressBar:
    """A static horizontal meter for a value in [0, 1] (never animates)."""
    f = 0.0 if fraction is None else min(1.0, max(0.0, fraction))
    color = color or level_color(fraction)
    return ProgressBar(
        total=1000,
        completed=round(f * 1000),
        width=width,
        style=Style(color="grey27"),
        complete_style=Style(color=color),
        finished_style=Style(color=color),
        pulse_style=Style(color=color),
    )
