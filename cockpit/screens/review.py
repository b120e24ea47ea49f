"""PLACEHOLDER of the wizard's review step: replaced by its real screen (issue 11)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from cockpit.screens.wizard_step import WizardStep


class ReviewScreen(WizardStep):
    STEP = "review"

    def compose_step(self) -> ComposeResult:
        yield Static("(not built yet)")
