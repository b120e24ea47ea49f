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
        #: (key, description, enabled, action, namespace, the app's own, escape) of each key to show.
        self._keys: list[tuple[str, str, bool, str, object, bool, bool]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        keys = []  # (key, description, enabled, action, node, is the app's, is escape)
        shown: set[str] = set()
        for node, binding, enabled, _tooltip in screen.active_bindings.values():
            if not binding.show or binding.action in shown:
                continue
            shown.add(binding.action)
            escape = binding.key.split(",")[0] == "escape"
            keys.append(
                (
                    self.app.get_key_display(binding),
                    binding.description,
                    enabled,
                    binding.action,
                    node,
                    node is self.app,
                    escape,
                )
            )
        self._keys = keys
        self._render_keys()

    def on_resize(self) -> None:
        self._render_keys()

    def _render_keys(self) -> None:
        """The keys in one line; when they do not fit, the app's own keys (quit) are left out, and
        escape (back/cancel, the way out of every screen) too when that makes the rest fit, at a pinch
        with one space less after each key; else the line ends in an ellipsis."""
        keys = self._keys
        width = self.size.width or self.app.size.width
        options = [[k for k in keys if not any(k[i] for i in leave_out)] for leave_out in ((), (5,), (5, 6))]
        fitting = [keys for keys in options if sum(len(k[0]) + len(k[1]) + 3 for k in keys) <= width]
        # escape is left out only when that makes the rest fit; else one space less after each key
        chosen, gap = (fitting[0], " ") if fitting else (options[2], "")
        if not fitting and sum(len(k[0]) + len(k[1]) + 2 for k in chosen) > width:
            chosen, gap = options[1], " "
        text = Text(no_wrap=True, overflow="ellipsis")
        spans = []
        for key, description, enabled, action, node, _app, _escape in chosen:
            start = len(text)
            text.append(f" {key} ", style="bold" if enabled else "dim")
            text.append(f"{description}{gap}", style="" if enabled else "dim")
            spans.append((start, len(text), action, node))
        self.spans = spans
        self.update(text)

    async def on_click(self, event: events.Click) -> None:
        for start, end, action, node in self.spans:
            if start <= event.x < end:
                await self.app.run_action(action, node)
                return
