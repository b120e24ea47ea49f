"""The wizard review's form, torch-free and without widgets: which config keys it edits, how a typed
entry becomes a value, and the derived numbers as lines of text.

An entry is parsed leniently (``3e-4``, ``1_000``, `` 16 ``); what does not parse is kept as typed,
so the draft's own check (``RunDraft.check``) names the problem at its key, the one place config
values are validated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cockpit.run_plan import RunPlan
from engine.config import RunConfig
from engine.units import duration, si

Kind = Literal["int", "float", "text", "choice"]


@dataclass(frozen=True)
class FormField:
    key: str
    """The dotted config key the field edits (``train.lr``)."""
    label: str
    """What the form shows before the entry."""
    kind: Kind
    """How an entry is read: a whole number, a number, text, or one of ``choices``."""
    choices: tuple[str, ...] = ()
    """The values a ``choice`` field offers."""

    @property
    def slug(self) -> str:
        """The key as a widget id part (``train-lr``)."""
        return self.key.replace(".", "-").replace("_", "-")


#: The review form's fields, in order.
FIELDS: tuple[FormField, ...] = (
    FormField("name", "Run name", "text"),
    FormField("train.micro_batch_size", "Micro batch", "int"),
    FormField("train.grad_accum_steps", "Accumulation", "int"),
    FormField("train.lr", "Learning rate", "float"),
    FormField("train.max_steps", "Steps", "int"),
    FormField("train.epochs", "Epochs (0: steps)", "float"),
    FormField("train.seq_len", "Sequence length", "int"),
    FormField("train.precision", "Precision", "choice", ("fp32", "bf16", "fp16")),
    FormField("train.save_every", "Save every", "int"),
    FormField("train.eval_every", "Eval every", "int"),
    FormField("train.price_per_hour", "Price per hour $", "float"),
    FormField("train.budget_usd", "Budget $", "float"),
)


def parse_entry(text: str, kind: Kind) -> Any:
    """The value of a typed entry: None when empty (the key's default), a number when it reads as
    one (``"3e-4"``, ``"2e3"`` for a whole number), else the text as typed for the check to refuse."""
    text = text.strip()
    if not text:
        return None
    if kind in ("text", "choice"):
        return text
    try:
        number = float(text.replace("_", ""))
    except ValueError:
        return text
    if kind == "int":
        return int(number) if number.is_integer() else text
    return number


def default_of(key: str) -> Any:
    """What the config takes for ``key`` when the file does not set it."""
    node: Any = RunConfig()
    for part in key.split("."):
        node = getattr(node, part)
    return node


def shown(value: Any) -> str:
    """A draft value as the form's entry shows it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def plan_lines(plan: RunPlan, seq_len: int, budget_usd: float = 0.0) -> list[tuple[str, str]]:
    """The derived numbers of ``plan`` as (label, value) rows; ``budget_usd`` (``train.budget_usd``,
    0 for none) is compared with the cost."""
    steps = f"{plan.steps:,}" if plan.steps is not None else "set by the epochs once the data is known"
    rows = [
        ("Per step", f"{plan.sequences_per_step:,} sequences x {seq_len:,} = {plan.tokens_per_step:,} tokens"),
        ("Steps", steps),
        ("Total tokens", si(plan.total_tokens) if plan.total_tokens is not None else "-"),
        (
            "Epochs over data",
            f"{plan.epochs:.2f}" if plan.epochs is not None else "data size not known (the data step finds it)",
        ),
        (
            "Tokens/param",
            f"{plan.tokens_per_param:.2f}" if plan.tokens_per_param is not None else "-",
        ),
    ]
    rows.append(
        (
            "Time",
            duration(plan.eta_s) if plan.eta_s is not None else "not measured yet: the review step's dry run (ctrl+r)",
        )
    )
    if plan.eta_s is not None:
        cost = f"${plan.cost_usd:,.2f}" if plan.cost_usd is not None else "no price per hour"
        if plan.cost_usd is not None and budget_usd and plan.cost_usd > budget_usd:
            cost += f", over the ${budget_usd:g} budget: the run stops there"
        rows.append(("Cost", cost))
    return rows
