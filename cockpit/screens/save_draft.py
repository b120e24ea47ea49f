"""Save the wizard's draft as a config file: a modal with the path; dismisses with the path written."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from cockpit.run_draft import RunDraft
from engine.config import ConfigError


class SaveDraftScreen(ModalScreen[Path | None]):
    """Asks where to write the draft and writes it; a draft that does not validate is not written,
    its problems are shown instead."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, draft: RunDraft, path: Path) -> None:
        super().__init__()
        self.draft = draft
        self.path = path

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Save the run's config as", id="question")
            yield Input(str(self.path), id="save-path")
            yield Label("", id="save-error")
            yield Label("[b]enter[/b] save · [b]esc[/b] cancel", id="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = Path(event.value.strip() or str(self.path)).expanduser()
        try:
            self.dismiss(self.draft.save(path))
        except (ConfigError, OSError) as exc:
            self.query_one("#save-error", Label).update(f"[red]{exc}[/red]")

    def action_cancel(self) -> None:
        self.dismiss(None)
