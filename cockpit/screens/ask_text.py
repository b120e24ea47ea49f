"""A one-line question in a modal: dismisses with the text entered (``enter``), or None (``escape``)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AskTextScreen(ModalScreen[str | None]):
    """Asks ``question``; the input starts as ``value``; ``note`` (dim) says what a blank answer means."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, question: str, value: str = "", note: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.note = note
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            if self.note:
                yield Label(self.note, id="note")
            yield Label("[b]enter[/b] go · [b]esc[/b] cancel", id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
