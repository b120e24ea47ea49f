"""The wizard's review step: the resolved config as an editable form, and what it means in numbers.

Each field edits one config key of the draft (``cockpit.review_form.FIELDS``); a value the config
refuses is shown in red beside its field, from the draft's own check. Beside the form, the derived
numbers follow every keystroke (``cockpit.run_plan``: tokens per step, steps, total tokens, epochs
over the data, tokens per parameter and its hints); the memory fit (``cockpit.checks.memory``) is
estimated in a worker a moment after the typing stops; a dry run on demand (the real engine for a
few steps, ``cockpit.checks.dry_run``) measures the step time, which gives the ETA and the cost.

Keys: ``tab``/``shift+tab`` move between fields, ``ctrl+r`` dry run (again: cancel it), and the wizard's ``ctrl+n``
next (launch), ``escape`` back, ``ctrl+s`` save the YAML.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static

from cockpit.review_form import FIELDS, FormField, default_of, parse_entry, plan_lines, shown
from cockpit.run_draft import DraftCheck
from cockpit.run_plan import RunPlan, plan_run
from cockpit.screens.wizard_step import WizardStep
from engine.units import nbytes

#: Seconds of no typing before the memory estimate runs again.
MEMORY_DEBOUNCE_S = 0.3
#: Status colours of a check result.
STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


class MemoryEstimated(Message):
    """The memory check of the draft finished: its fit result and the model's parameters."""

    def __init__(self, status: str, text: str, params: int | None) -> None:
        super().__init__()
        self.status, self.text, self.params = status, text, params


class DryRunDone(Message):
    """The dry run finished: what ``run_dry_run`` returned."""

    def __init__(self, measured: dict[str, Any]) -> None:
        super().__init__()
        self.measured = measured


class ReviewScreen(WizardStep):
    STEP = "review"
    BINDINGS = [Binding("ctrl+r", "dry_run", "Dry run / cancel", priority=True)]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._memory_timer: Timer | None = None
        self.memory: tuple[str, str] = ("skip", "estimating...")
        """The memory verdict shown: a check status and its text ("estimating..." until the first)."""
        self._dry_run: tuple[str, str] | None = None
        self._dry_run_cancel: threading.Event | None = None
        self.plan: RunPlan | None = None
        """The derived numbers of the draft as shown (None while a value is refused)."""

    def compose_step(self) -> ComposeResult:
        with Horizontal(id="review-body"):
            with VerticalScroll(id="review-form", can_focus=False):  # tab goes field to field
                for field in FIELDS:
                    with Horizontal(classes="review-row"):
                        yield Label(field.label, classes="review-label")
                        yield self._entry(field)
                        yield Static("", id=f"review-{field.slug}-problem", classes="review-problem")
            with Vertical(id="review-derived"):
                yield Static("", id="review-plan")
                yield Static("", id="review-memory")
                yield Static("", id="review-dry-run")

    def _entry(self, field: FormField) -> Input | Select:
        value = self.draft.get(field.key)
        if field.kind == "choice":
            return Select(
                [(choice, choice) for choice in field.choices],
                value=value if value in field.choices else field.choices[0],
                allow_blank=False,
                compact=True,
                id=f"review-{field.slug}",
                classes="review-entry",
            )
        default = default_of(field.key)
        return Input(
            shown(value),
            placeholder=f"{shown(default)} (default)" if default is not None else "",
            compact=True,
            id=f"review-{field.slug}",
            classes="review-entry",
        )

    def on_mount(self) -> None:
        self.query_one(".review-entry").focus()
        self.refresh_derived()

    # --- editing ----------------------------------------------------------------------------

    def _field_of(self, widget_id: str | None) -> FormField | None:
        return next((f for f in FIELDS if f"review-{f.slug}" == widget_id), None)

    def on_input_changed(self, event: Input.Changed) -> None:
        field = self._field_of(event.input.id)
        if field is not None:
            event.stop()
            self.edit(field, event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        field = self._field_of(event.select.id)
        current = self.draft.get(field.key, field.choices[0]) if field is not None else None
        if field is not None and isinstance(event.value, str) and event.value != current:
            event.stop()
            self.edit(field, event.value)

    def edit(self, field: FormField, text: str) -> None:
        """Set the field's key from the typed ``text`` (empty: back to the default)."""
        draft = self.draft.set(field.key, parse_entry(text, field.kind))
        if draft != self.draft:
            self.change(draft)
            if self._dry_run_cancel is not None:  # it measures the config before this edit
                self._dry_run_cancel.set()
            self._dry_run = None  # measured for another config
            self.refresh_derived()

    # --- derived numbers --------------------------------------------------------------------

    def refresh_derived(self) -> None:
        """Problems beside their fields, the plan, and (debounced) the memory estimate."""
        check = self.draft.check()
        for field in FIELDS:
            problem = check.problem_at(field.key)
            widget = self.query_one(f"#review-{field.slug}-problem", Static)
            widget.update(Text(problem or "", style="red"))
            widget.display = problem is not None
        self.query_one("#review-plan", Static).update(self._plan_table(check))
        if not check.ok:
            self.memory = ("skip", "estimated once the values are valid")
        self._show_memory()
        if self._memory_timer is not None:
            self._memory_timer.stop()
        if check.ok:
            self._memory_timer = self.set_timer(MEMORY_DEBOUNCE_S, lambda: self._estimate_memory(check.config))

    def _plan_table(self, check: DraftCheck) -> Table | Text:
        self.plan = None
        if not check.ok:
            across = [p.message for p in check.problems if p.key == ""]
            return Text("\n".join(["Fix the values marked in red to see the numbers.", *across]), style="yellow")
        cfg = check.config
        facts = self.facts
        plan = self.plan = plan_run(
            cfg, tokens_available=facts.tokens_available, params=facts.params, step_s=facts.step_s
        )
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for label, value in plan_lines(plan, cfg.train.seq_len, cfg.train.budget_usd):
            table.add_row(label, value)
        for hint in plan.hints():
            table.add_row(Text("Hint", style="yellow"), Text(hint, style="yellow"))
        return table

    def _show_memory(self) -> None:
        status, text = self.memory
        line = Text.assemble(("Memory ", "bold"), (text, STATUS_STYLE.get(status, "")))
        self.query_one("#review-memory", Static).update(line)
        dry = self.query_one("#review-dry-run", Static)
        if self._dry_run is None:
            dry.update(Text("Dry run: ctrl+r runs the real engine for a few steps", style="dim"))
        else:
            status, text = self._dry_run
            dry.update(Text.assemble(("Dry run ", "bold"), (text, STATUS_STYLE.get(status, ""))))

    @work(thread=True, exclusive=True, group="review-memory")
    def _estimate_memory(self, cfg: Any) -> None:
        from cockpit.checks.base import CheckContext
        from cockpit.checks.memory import check_memory

        vocab = self.facts.vocab_size
        ctx = CheckContext(None, cfg.resolved(), tokenizer={"vocab_size": vocab} if vocab else None)
        try:
            results = {r.id: r for r in check_memory(ctx)}
        except Exception as exc:  # a broken estimate is a line on the screen, never a crash
            self.post_message(MemoryEstimated("warn", f"no estimate: {exc}", None))
            return
        params = (ctx.model or {}).get("total_params")
        fit = results.get("memory.fit") or results.get("memory.model")
        if fit is None:
            self.post_message(MemoryEstimated("skip", "no estimate", params))
            return
        self.post_message(MemoryEstimated(fit.status, _fit_text(fit), params))

    def on_memory_estimated(self, message: MemoryEstimated) -> None:
        message.stop()
        self.memory = (message.status, message.text)
        if message.params and message.params != self.facts.params:
            self.found(params=message.params)
            self.query_one("#review-plan", Static).update(self._plan_table(self.draft.check()))
        self._show_memory()

    # --- the dry run ------------------------------------------------------------------------

    def action_dry_run(self) -> None:
        """Start a dry run, or cancel the one running (its engine process is killed)."""
        if self._dry_run_cancel is not None:
            self._dry_run_cancel.set()
            self.say("Cancelling the dry run...")
            return
        check = self.draft.check()
        if not check.ok:
            self.say("[red]The dry run needs a valid config: fix the values marked in red.[/red]")
            return
        if self.memory[0] == "fail":
            self.say("[red]Not run: the memory estimate says this run does not fit.[/red]")
            return
        self._dry_run = ("skip", "running a few steps of the real engine... (ctrl+r cancels)")
        self._show_memory()
        self.say("Dry run: building the model and timing a few optimizer steps...")
        self._dry_run_cancel = threading.Event()
        self._run_dry_run(check.config, self._dry_run_cancel)

    def on_unmount(self) -> None:
        if self._dry_run_cancel is not None:  # leaving the step: nothing keeps running for it
            self._dry_run_cancel.set()

    @work(thread=True, exclusive=True, group="review-dry-run")
    def _run_dry_run(self, cfg: Any, cancel: threading.Event) -> None:
        from cockpit.checks.dry_run import run_dry_run

        try:
            measured = run_dry_run(cfg.resolved(), cancel=cancel)
        except Exception as exc:  # e.g. the temporary directory could not be made
            measured = {"ok": False, "error": str(exc)}
        self.post_message(DryRunDone(measured))

    def on_dry_run_done(self, message: DryRunDone) -> None:
        message.stop()
        measured = message.measured
        self._dry_run_cancel = None
        if measured.get("kind") == "cancelled":
            self._dry_run = None
            self.say("Dry run cancelled.")
        elif not measured.get("ok"):
            self._dry_run = ("fail", f"failed: {measured.get('error')}")
            self.say("[red]The dry run failed; see beside the numbers.[/red]")
        else:
            step_s = float(measured["step_s"])
            self._dry_run = ("ok", f"{step_s:.3f} s per step on {measured.get('device', '?')}")
            self.found(step_s=step_s)
            self.say("Dry run done: the time and the cost use the measured step time.")
        self.query_one("#review-plan", Static).update(self._plan_table(self.draft.check()))
        self._show_memory()


def _fit_text(fit: Any) -> str:
    """The memory verdict without the machine's free memory (that changes from second to second):
    what training needs, and on a failure what to change."""
    data = fit.data
    if fit.id != "memory.fit":
        return fit.detail
    where = "on the GPU" if data.get("device") == "cuda" else "on the CPU"
    need = data.get("needed")
    if fit.status == "ok":
        return f"needs ~{nbytes(need)} {where}: fits"
    verdict = "tight" if fit.status == "warn" else "does not fit"
    largest = data.get("largest_micro_batch")
    text = f"needs ~{nbytes(need)} {where}: {verdict} (largest micro batch ~{largest})"
    return f"{text}; {fit.fix}" if fit.fix else text
