"""The new-run wizard's state: the steps, the draft config and what the steps found on the way.

Pure and torch-free. The app holds one ``WizardState`` and replaces it when a step posts a change
(``cockpit.screens.wizard_step``: ``DraftChanged``, ``FactsFound``, ``Navigate``); each step screen
is built from the state it is opened with ("attributes down, messages up").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import configs
from cockpit.run_draft import RunDraft

if TYPE_CHECKING:
    from cockpit.checks.memory import MemoryBudget


@dataclass(frozen=True)
class Step:
    key: str
    """The step's name in code (``data``)."""
    title: str
    """What the step indicator shows (``Data``)."""


#: The wizard's steps, in order.
STEPS: tuple[Step, ...] = (
    Step("checklist", "Checklist"),
    Step("data", "Data"),
    Step("tokenizer", "Tokenizer"),
    Step("preset", "Preset"),
    Step("review", "Review"),
    Step("launch", "Launch"),
)
STEP_KEYS: tuple[str, ...] = tuple(step.key for step in STEPS)


@dataclass(frozen=True)
class WizardFacts:
    """What the steps found that later steps use; None until found."""

    tokens_available: int | None = None
    """Training tokens in the chosen data (tokenized stats, or the prepared shards' manifest)."""
    data_problems: int | None = None
    """Records of the chosen data that cannot be used (the data step's validation)."""
    data_dir: str | None = None
    """A directory of data files the data step took as the corpus and has not prepared yet (the
    draft keeps its data until the shards are made)."""
    vocab_size: int | None = None
    """The chosen tokenizer's vocabulary."""
    params: int | None = None
    """Parameters of the chosen preset with its overrides and the tokenizer's vocabulary."""
    step_s: float | None = None
    """Seconds per optimizer step, measured by a dry run of the draft."""
    memory: MemoryBudget | None = None
    """The memory this machine has for training (device, bytes free), found once by the preset step."""

    def found(self, **changes: object) -> WizardFacts:
        return dataclasses.replace(self, **changes)


def starting_draft() -> RunDraft:
    """The draft a new run starts from: the shipped demo config (synthetic corpus, its tokenizer,
    ``tiny``), which trains as it is; the data step replaces its data."""
    return RunDraft.from_file(configs.builtin("demo"))


@dataclass(frozen=True)
class WizardState:
    draft: RunDraft = field(default_factory=starting_draft)
    """The config being put together."""
    facts: WizardFacts = WizardFacts()
    """What the steps found."""
    step: int = 0
    """Index of the current step in ``STEPS``."""
    saved_to: Path | None = None
    """Where the draft was last saved (``ctrl+s``), or None."""

    @property
    def current(self) -> Step:
        return STEPS[self.step]

    def go(self, target: int | str) -> WizardState:
        """The state at step ``target`` (an index, a step key, ``"next"`` or ``"back"``), clamped."""
        if target == "next":
            index = self.step + 1
        elif target == "back":
            index = self.step - 1
        elif isinstance(target, str):
            index = STEP_KEYS.index(target)
        else:
            index = target
        return dataclasses.replace(self, step=max(0, min(len(STEPS) - 1, index)))

    def with_draft(self, draft: RunDraft) -> WizardState:
        return dataclasses.replace(self, draft=draft)

    def with_facts(self, **changes: object) -> WizardState:
        return dataclasses.replace(self, facts=self.facts.found(**changes))

    def saved(self, path: Path) -> WizardState:
        return dataclasses.replace(self, saved_to=path)
