"""The wizard's step indicator: ``1 Checklist › 2 Data › 3 Tokenizer ...`` with the current step lit."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class WizardNav(Static):
    """Shows the steps' titles and which one is current; knows nothing of what they do."""

    step: reactive[int] = reactive(0)

    def __init__(self, titles: tuple[str, ...], step: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.titles = titles
        self.set_reactive(WizardNav.step, step)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, title in enumerate(self.titles):
            if i:
                text.append(" › ", style="dim")
            style = "bold reverse" if i == self.step else ("" if i < self.step else "dim")
            text.append(f" {i + 1} {title} ", style=style)
        return text
