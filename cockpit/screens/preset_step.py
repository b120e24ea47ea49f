"""The wizard's preset step: the catalog against this run and this machine, and shape overrides.

A table of every preset (``cockpit presets list``) with its parameters counted with the chosen
tokenizer's vocabulary, the training memory it needs as the draft trains it, whether that fits this
machine (the largest micro batch that does, or not even 1), and the tokens per parameter the run
gives it; under the table, the highlighted preset in words with the run's hints
(``cockpit.run_plan``), and the picked preset's shape overrides (``model.<field>``, checked as a
config's are, the error beside its field). The machine's free memory is found once, in a worker
(``cockpit.checks.memory``), and kept in the wizard's facts.

Keys: arrows move, ``enter`` picks the highlighted preset (``preset`` in the draft; the overrides
of another preset are dropped), ``tab`` reaches the override fields; the wizard's keys besides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Static

from cockpit.screens.wizard_step import WizardStep
from engine.units import nbytes, si
from presets import PresetError, list_presets

if TYPE_CHECKING:  # the readiness checks load when the step first sizes a preset, not with the app
    from cockpit.checks.memory import MemoryBudget
    from cockpit.preset_fit import PresetFit

#: The shape fields offered for editing, which every family has: (model field, label, its key in
#: ``model_facts``).
OVERRIDES = (
    ("num_hidden_layers", "Layers", "layers"),
    ("hidden_size", "Hidden", "hidden"),
    ("num_attention_heads", "Heads", "heads"),
    ("intermediate_size", "MLP", "intermediate"),
)


class BudgetFound(Message):
    """The machine's memory for training, found by the worker."""

    def __init__(self, budget: MemoryBudget) -> None:
        super().__init__()
        self.budget = budget


class VocabularyFound(Message):
    """The vocabulary of the draft's tokenizer, found by the worker."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size


def per_param(tokens_per_param: float | None) -> str:
    """Tokens per parameter in a table cell."""
    if tokens_per_param is None:
        return "?"
    if tokens_per_param >= 10:
        return f"{tokens_per_param:,.0f}"
    return f"{tokens_per_param:.2g}" if tokens_per_param >= 0.001 else "<0.001"


def fit_cell(fit: dict | None) -> Text:
    if fit is None:
        return Text("...", style="dim")
    mb = fit["largest_micro_batch"]
    if fit["fits"]:
        return Text(f"yes, mb ≤{mb}", style="green")
    return Text(f"no, mb ≤{mb}" if mb else "no, not mb 1", style="bold red")


class PresetScreen(WizardStep):
    """Step 4: pick the model."""

    STEP = "preset"

    def compose_step(self) -> ComposeResult:
        yield Static("", id="preset-intro")
        yield DataTable(id="preset-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="preset-detail")
        with Horizontal(id="preset-overrides"):
            yield Label("", id="preset-overrides-title")
            for field, label, _ in OVERRIDES:
                yield Label(label, classes="preset-field-label")
                yield Input(
                    str(self.draft.get(f"model.{field}", "")), id=f"preset-{field}", type="integer", compact=True
                )
        yield Static("", id="preset-override-error")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.names = list_presets()
        self.fits: dict[str, PresetFit | str] = {}
        """Each preset sized for the draft, or what stops it (``fit_of``), as the table shows them."""

    def on_mount(self) -> None:
        table = self.query_one("#preset-table", DataTable)
        table.add_columns("", "preset", "family", "params", "active", "memory", "fits", "tok/param")
        self.refresh_view(move_cursor=True)
        if self.facts.memory is None:
            self.find_budget()
        if self.facts.vocab_size is None:
            self.find_vocabulary()

    # --- the draft --------------------------------------------------------------------------

    @property
    def picked(self) -> str:
        return str(self.draft.get("preset") or "tiny")

    def run_config(self):
        """The draft's config for sizing (its overrides left out when they do not load)."""
        return self.draft.check().config or self.draft.set("model", None).check().config

    def fit_of(self, name: str, overrides: dict | None = None, cfg=None) -> PresetFit | str:
        """``name`` sized for the draft (with ``overrides`` for the picked one), or what stops it;
        ``cfg``: the draft's ``run_config`` when already made."""
        from cockpit.preset_fit import preset_fit

        cfg = cfg or self.run_config()
        if cfg is None:
            return "the draft does not load: fix it in the Review step"
        if overrides is None:
            overrides = dict(self.draft.get("model") or {}) if name == self.picked else {}
        try:
            return preset_fit(
                name,
                cfg,
                self.facts.memory,
                overrides=overrides,
                vocab_size=self.facts.vocab_size,
                tokens_available=self.facts.tokens_available,
            )
        except PresetError as exc:
            return str(exc)

    # --- the view ---------------------------------------------------------------------------

    def refresh_view(self, move_cursor: bool = False) -> None:
        table = self.query_one("#preset-table", DataTable)
        row = table.cursor_row
        table.clear()
        cfg = self.run_config()
        for name in self.names:
            fit = self.fits[name] = self.fit_of(name, cfg=cfg)
            mark = "●" if name == self.picked else ""
            if isinstance(fit, str):
                table.add_row(mark, name, "", "", "", "", Text("error", style="red"), "", key=name)
                continue
            tpp = fit.plan.tokens_per_param
            table.add_row(
                mark,
                name,
                fit.facts["family"],
                si(fit.params),
                si(fit.facts["active_params"]),
                nbytes(fit.fit["needed"] if fit.fit else fit.memory["total"]),
                fit_cell(fit.fit),
                per_param(tpp),
                key=name,
            )
        target = self.names.index(self.picked) if move_cursor and self.picked in self.names else row
        table.move_cursor(row=target)
        self.show_intro()
        self.show_detail(self.names[table.cursor_row] if self.names else None)
        self.show_overrides()
        picked = self.fits.get(self.picked)
        if picked is not None and not isinstance(picked, str) and self.facts.params != picked.params:
            self.found(params=picked.params)

    def show_intro(self) -> None:
        vocab = f"{self.facts.vocab_size:,}" if self.facts.vocab_size else "each preset's own"
        memory = self.facts.memory.where if self.facts.memory else "finding this machine's free memory ..."
        self.query_one("#preset-intro", Static).update(
            f"Vocabulary {vocab}; memory against {escape(memory)}. [b]enter[/b] picks the highlighted preset."
        )

    def show_detail(self, name: str | None) -> None:
        fit = self.fits.get(name) if name else None
        out = Text()
        if isinstance(fit, str) or fit is None:
            out.append(f"{name}: {fit}" if fit else "", style="red")
        else:
            f = fit.facts
            out.append(f"{name}", style="bold")
            out.append(
                f": {fit.description}. {f['layers']} layers x {f['hidden']}, {f['heads']} heads "
                f"({f['kv_heads']} kv), {fit.params:,} parameters\n"
            )
            out.append_text(self.fit_line(fit))
            out.append("\n" + self.tokens_line(fit))
            for hint in fit.plan.hints():
                out.append("\n" + hint, style="yellow")
        self.query_one("#preset-detail", Static).update(out)

    def fit_line(self, fit: PresetFit) -> Text:
        train = fit.memory
        line = f"needs ~{nbytes(fit.fit['needed'] if fit.fit else train['total'])} at micro batch {train['micro_batch_size']}"
        if fit.fit is None:
            return Text(line + " (this machine's memory: being found)", style="dim")
        mb = fit.fit["largest_micro_batch"]
        if fit.fit["fits"]:
            return Text(f"{line}: fits (micro batch up to {mb})", style="green")
        largest = f"the largest micro batch that fits is {mb}" if mb else "not even micro batch 1 fits"
        return Text(f"{line}: does not fit; {largest}", style="bold red")

    def tokens_line(self, fit: PresetFit) -> str:
        """Tokens available and trained on, per parameter of this model."""
        plan = fit.plan
        trained = (
            f"the run trains on {plan.total_tokens:,} tokens"
            if plan.total_tokens is not None
            else "the run's length depends on the data's size"
        )
        if not self.facts.tokens_available:
            return f"data: size not known yet (the Data step counts it); {trained}"
        available = self.facts.tokens_available
        epochs = f", {plan.epochs:.2g} epochs" if plan.epochs is not None else ""
        return f"data: {available:,} tokens, {available / fit.params:.2g} per parameter; {trained}{epochs}"

    def show_overrides(self) -> None:
        picked = self.fits.get(self.picked)
        self.query_one("#preset-overrides-title", Label).update(f"{self.picked}:")
        if picked is None or isinstance(picked, str):
            return
        for field, _, key in OVERRIDES:
            self.query_one(f"#preset-{field}", Input).placeholder = str(picked.facts[key])

    # --- keys and edits ---------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#preset-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_detail(event.row_key.value)

    @on(DataTable.RowSelected, "#preset-table")
    def selected(self, event: DataTable.RowSelected) -> None:
        name = event.row_key.value
        if name == self.picked:
            self.say(f"preset {name} is picked")
            return
        fit = self.fits.get(name)
        if isinstance(fit, str):
            self.say(f"[red]{escape(fit)}[/red]")
            return
        dropped = self.draft.get("model")
        self.change(self.draft.update({"preset": name, "model": None}))
        for field, _, _ in OVERRIDES:
            self.query_one(f"#preset-{field}", Input).value = ""
        self.refresh_view()
        note = f"; the overrides of the previous preset ({', '.join(dropped)}) were dropped" if dropped else ""
        verdict = "" if fit.fit is None or fit.fit["fits"] else ": it does not fit in this machine's memory"
        self.say(f"picked {name}{verdict}{note}")

    @on(Input.Changed, "#preset-overrides Input")
    def override_changed(self, event: Input.Changed) -> None:
        field = (event.input.id or "").removeprefix("preset-")
        error = self.query_one("#preset-override-error", Static)
        overrides = dict(self.draft.get("model") or {})
        text = event.value.strip()
        if not text:
            overrides.pop(field, None)
        else:
            try:
                overrides[field] = int(text)
            except ValueError:
                error.update(f"[red]model.{field}: a whole number[/red]")
                return
        fit = self.fit_of(self.picked, overrides)
        if isinstance(fit, str):
            error.update(f"[red]{escape(fit)}[/red]")
            event.input.add_class("-invalid-override")
            return
        error.update("")
        for box in self.query("#preset-overrides Input"):
            box.remove_class("-invalid-override")
        if overrides != (self.draft.get("model") or {}):
            self.change(self.draft.set("model", overrides or None))
            self.refresh_view()

    # --- the machine ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="preset-budget")
    def find_budget(self) -> None:
        from cockpit.checks.base import CheckContext
        from cockpit.checks.memory import memory_budget, target_device

        ctx = CheckContext(None)
        device, found = target_device(ctx)
        self.post_message(BudgetFound(memory_budget(ctx, device, found)))

    @work(thread=True, exclusive=True, group="preset-vocabulary", exit_on_error=False)
    def find_vocabulary(self) -> None:
        """The vocabulary the draft's run will have (its tokenizer's, or the size it trains one of at
        launch), as the memory check finds it; nothing when the draft does not load."""
        from cockpit.checks.base import CheckContext
        from cockpit.checks.memory import tokenizer_vocab_size

        cfg = self.run_config()
        if cfg is None:
            return
        vocab, _ = tokenizer_vocab_size(CheckContext(None, cfg.resolved()))
        if vocab:
            self.post_message(VocabularyFound(vocab))

    def on_vocabulary_found(self, message: VocabularyFound) -> None:
        if self.facts.vocab_size is None:
            self.found(vocab_size=message.vocab_size)
            self.refresh_view()

    def on_budget_found(self, message: BudgetFound) -> None:
        self.found(memory=message.budget)
        self.refresh_view()
