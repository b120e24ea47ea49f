"""PLACEHOLDER of the wizard's tokenizer step: replaced by its real screen (issue 11)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from cockpit.screens.wizard_step import WizardStep


class TokenizerScreen(WizardStep):
    STEP = "tokenizer"

    def compose_step(self) -> ComposeResult:
        yield Static("(not built yet)")
