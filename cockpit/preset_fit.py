"""Each preset against a run and this machine: parameters with the run's vocabulary, training memory,
whether it fits, the largest micro batch that fits, and tokens per parameter. What the wizard's preset
step shows; torch-free (``cockpit.checks.model_facts``, ``cockpit.checks.memory``, ``cockpit.run_plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cockpit.checks.memory import MemoryBudget, estimate_memory, fit_in
from cockpit.checks.model_facts import facts_from_fields, resolved_fields
from cockpit.run_plan import RunPlan, plan_run
from presets import load_preset


@dataclass(frozen=True)
class PresetFit:
    """One preset sized for a run (``fit`` None until the machine's memory is known)."""

    name: str
    """The preset's name."""
    description: str
    """What the preset is for (its YAML's ``description``)."""
    facts: dict[str, Any]
    """Shape and exact parameter counts (``model_facts``), with the run's vocabulary and overrides."""
    memory: dict[str, Any]
    """The training memory estimate per device (``estimate_memory``) on the budget's device."""
    fit: dict[str, Any] | None
    """``fit_in``'s verdict against the budget: needed, fits, largest_micro_batch; None without a budget."""
    plan: RunPlan
    """The run's numbers with this model: tokens per parameter, epochs, and their hints."""

    @property
    def params(self) -> int:
        return self.facts["total_params"]


def preset_fit(
    name: str,
    cfg: Any,
    budget: MemoryBudget | None,
    *,
    overrides: dict[str, Any] | None = None,
    vocab_size: int | None = None,
    tokens_available: int | None = None,
    nproc: int = 1,
) -> PresetFit:
    """Preset ``name`` with the model ``overrides`` and the tokenizer's ``vocab_size`` (None: the
    preset's), trained as ``cfg`` (a RunConfig: batch, sequence, precision, strategy) by ``nproc``
    processes within ``budget``, on ``tokens_available`` training tokens. Raises PresetError naming
    the field for an override that does not make a model."""
    facts = facts_from_fields(resolved_fields(name, overrides, vocab_size))
    device = budget.device if budget is not None else "cuda"
    memory = estimate_memory(facts, cfg, nproc, device=device)
    return PresetFit(
        name,
        load_preset(name).get("description", ""),
        facts,
        memory,
        fit_in(facts, cfg, nproc, budget, memory) if budget is not None else None,
        plan_run(cfg, nproc=nproc, tokens_available=tokens_available, params=facts["total_params"]),
    )
