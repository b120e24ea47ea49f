"""The tail of the run's log: engine log lines, errors, state changes, checkpoints, evals."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import RichLog

from cockpit.run_state import LogEntry

#: Tag and colour of each entry level.
LEVELS = {
    "debug": ("DEBUG", "grey50", "grey50"),
    "info": ("INFO", "blue", ""),
    "warning": ("WARN", "yellow", "yellow"),
    "error": ("ERROR", "bold red", "red"),
    "state": ("STATE", "bold magenta", "bold"),
    "checkpoint": ("CKPT", "green", ""),
    "eval": ("EVAL", "cyan", ""),
    "upload": ("UPLD", "blue", ""),
}


@dataclass(frozen=True)
class LogFeed:
    """The entries to show; only ``total`` (entries ever logged) is compared."""

    total: int = 0
    entries: Iterable[LogEntry] = field(default=(), compare=False)


def format_entry(entry: LogEntry) -> Table:
    """One entry as a grid row, so a long message wraps under itself, not under the time."""
    tag, tag_style, text_style = LEVELS.get(entry.level, (entry.level.upper()[:5], "", ""))
    clock = time.strftime("%H:%M:%S", time.localtime(entry.ts)) if entry.ts is not None else "--:--:--"
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True, width=8)
    grid.add_column(no_wrap=True, width=5)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(Text(clock, style="grey50"), Text(tag, style=tag_style), Text(entry.text, style=text_style))
    return grid


class LogTail(RichLog):
    """Set ``feed`` to append what is new since the last update."""

    DEFAULT_CSS = """
    LogTail {
        height: 1fr;
        background: transparent;
    }
    """

    feed: reactive[LogFeed] = reactive(LogFeed())

    def __init__(self, *, id: str | None = None, classes: str | None = None, max_lines: int = 1000) -> None:
        super().__init__(
            id=id, classes=classes, max_lines=max_lines, wrap=True, markup=False, highlight=False, auto_scroll=True
        )
        self._shown = 0  # entries written so far (by running index)
        self._wrapped_at = 0

    def watch_feed(self, feed: LogFeed) -> None:
        if self._wrapped_at:
            self._append(feed)
        # else: written in full once the width is known (see _rewrap)

    def _append(self, feed: LogFeed) -> None:
        for entry in feed.entries:
            if entry.index >= self._shown:
                self.write(format_entry(entry), width=self._wrapped_at)
                self._shown = entry.index + 1

    def on_resize(self) -> None:
        self.call_after_refresh(self._rewrap)

    def _rewrap(self) -> None:
        """Lines are wrapped when written: write them all again for a new width."""
        width = self.scrollable_content_region.width
        if width <= 0 or width == self._wrapped_at:
            return
        self._wrapped_at = width
        self.clear()
        self._shown = 0
        self._append(self.feed)
