"""The base of the wizard's step screens: the step indicator, the keys, and the messages up.

A step screen is built from the wizard's state (``draft`` and ``facts`` come down as attributes)
and never changes the state itself: it posts ``DraftChanged`` (the config edited), ``FactsFound``
(a figure later steps use) and ``Navigate`` (next, back, another step, home) to the app, which
holds the one ``WizardState`` and opens the next screen. Keys: ``ctrl+n`` next, ``escape`` back
(home from the first step), ``ctrl+s`` save the draft as YAML.

A subclass sets ``STEP`` (its key in ``cockpit.wizard.STEPS``) and yields its body from
``compose_step``.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from cockpit.run_draft import RunDraft
from cockpit.widgets.key_bar import KeyBar
from cockpit.widgets.wizard_nav import WizardNav
from cockpit.wizard import STEP_KEYS, STEPS, WizardFacts


class DraftChanged(Message):
    """The step edited the draft config."""

    def __init__(self, draft: RunDraft) -> None:
        super().__init__()
        self.draft = draft


class FactsFound(Message):
    """The step found figures later steps use (``WizardFacts`` fields)."""

    def __init__(self, **facts: object) -> None:
        super().__init__()
        self.facts = facts


class Navigate(Message):
    """Go to another step (an index or key, ``"next"``, ``"back"``) or ``"home"``."""

    def __init__(self, target: int | str) -> None:
        super().__init__()
        self.target = target


class SaveRequested(Message):
    """The user asked to save the draft (``ctrl+s``)."""


class WizardStep(Screen):
    STEP: str = ""
    BINDINGS = [
        Binding("ctrl+n", "next_step", "Next", priority=True),
        Binding("escape", "previous_step", "Back"),
        Binding("ctrl+s", "save", "Save YAML", priority=True),
    ]

    def __init__(self, draft: RunDraft, facts: WizardFacts = WizardFacts()) -> None:
        super().__init__(classes="wizard-step")
        self.draft = draft
        self.facts = facts

    @property
    def index(self) -> int:
        return STEP_KEYS.index(self.STEP)

    def compose(self) -> ComposeResult:
        yield WizardNav(tuple(step.title for step in STEPS), self.index, id="wizard-nav")
        with Vertical(id="step-body"):
            yield from self.compose_step()
        yield Static("", id="step-status")
        yield KeyBar()

    def compose_step(self) -> ComposeResult:
        raise NotImplementedError

    # --- messages up ------------------------------------------------------------------------

    def change(self, draft: RunDraft) -> None:
        """Take ``draft`` as this screen's draft and tell the app."""
        self.draft = draft
        self.post_message(DraftChanged(draft))

    def found(self, **facts: object) -> None:
        self.facts = self.facts.found(**facts)
        self.post_message(FactsFound(**facts))

    def say(self, text: str) -> None:
        """One line of status under the step's body (what is running, what went wrong)."""
        self.query_one("#step-status", Static).update(text)

    def action_next_step(self) -> None:
        self.post_message(Navigate("next"))

    def action_previous_step(self) -> None:
        self.post_message(Navigate("back" if self.index else "home"))

    def action_save(self) -> None:
        self.post_message(SaveRequested())
