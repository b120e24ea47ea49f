"""PLACEHOLDER of the wizard's launch step: replaced by its real screen (issue 11)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from cockpit.screens.wizard_step import WizardStep


class LaunchScreen(WizardStep):
    STEP = "launch"

    def compose_step(self) -> ComposeResult:
        yield Static("(not built yet)")
