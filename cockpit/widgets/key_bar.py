"""The keys of the current screen in one line (``^n Next  esc Back  ^s Save YAML ...``).

A light stand-in for Textual's ``Footer``: one widget that renders one line of text, where the
``Footer`` mounts a widget per key and builds them again on every focus change, which made opening
a screen with many keys take a few hundred milliseconds. Disabled keys are dimmed; a click on a key
runs its action, as on the ``Footer``.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        #: (first column, last column, action, namespace) of each key shown, for clicks.
        self.spans: list[tuple[int, int, str, object]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        spans = []
        shown: set[str] = set()
        for node, binding, enabled, _tooltip in screen.active_bindings.values():
            if not binding.show or binding.action in shown:
                continue
            shown.add(binding.action)
            start = len(text)
            text.append(f" {self.app.get_key_display(binding)} ", style="bold" if enabled else "dim")
            text.append(f"{binding.description} ", style="" if enabled else "dim")
            spans.append((start, len(text), binding.action, node))
        self.spans = spans
        self.update(text)

    async def on_click(self, event: events.Click) -> None:
        for start, end, action, node in self.spans:
            if start <= event.x < end:
                await self.app.run_action(action, node)
                return
