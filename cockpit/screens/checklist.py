"""The wizard's first step: the readiness checks of the draft, each row filling in as its check ends.

The draft is validated (``RunDraft.check``), its paths resolved against the working directory, and
the checks of ``cockpit check`` (all but the dry run, which the review step runs on demand) run one
at a time in a thread worker that posts each check's results as it finishes. Rows start pending
and turn ok / warn / fail / skip; blocking failures come first, with their fix. A draft that does
not validate shows its problems as failed rows (the machine checks still run).

Keys: ``up``/``down`` select a row (its full detail and fix show below the table), ``f`` applies the
selected row's safe fix (go to the tokenizer or data step, create the output directory, ...),
``r`` runs the checks again; plus the wizard's ``ctrl+n``, ``escape``, ``ctrl+s``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.worker import get_current_worker

from cockpit.run_draft import RunDraft
from cockpit.screens.wizard_step import Navigate, WizardStep
from cockpit.wizard import WizardFacts

if TYPE_CHECKING:
    from cockpit.checks import Check
    from cockpit.checks.base import CheckContext, CheckResult


def wizard_checks() -> tuple[Check, ...]:
    """The checks the checklist runs, in order: ``cockpit check``'s without the dry run (which the
    review step runs on demand). The checks are imported when the checklist first runs, not with
    the app."""
    from cockpit.checks import CHECKS, section_of

    return tuple(check for check in CHECKS if section_of(check) != "dry_run")


#: Width of the table's Check column.
CHECK_WIDTH = 26


class ChecksDone(Message):
    """One check of run ``run`` finished with ``results``."""

    def __init__(self, run: int, index: int, results: list[CheckResult]) -> None:
        super().__init__()
        self.run = run
        self.index = index
        self.results = results


@dataclass(frozen=True)
class SafeFix:
    """What ``f`` does for a row: go to a step, or create a directory."""

    label: str
    """What the detail pane says the key does."""
    step: str | None = None
    """The wizard step to go to."""
    mkdir: Path | None = None
    """The directory to create."""


def draft_context(draft: RunDraft) -> tuple[CheckContext, list[CheckResult]]:
    """The context the checks get for ``draft`` (paths resolved against the cwd) and the results of
    validating it: one ``config.load`` row, or one failed row per problem."""
    from cockpit.checks.base import CheckContext, result

    checked = draft.check()
    if not checked.ok:
        fix = "edit the value in the review step (every key is documented in engine/config.py)"
        rows = [result("config.load", "Config", "fail", problem.line("draft"), fix) for problem in checked.problems]
        return CheckContext(config_path=None), rows
    cfg = checked.config.resolved()
    return CheckContext(config_path=None, cfg=cfg), [result("config.load", "Config", "ok", "the draft is valid")]


def safe_fix(row: CheckResult, cfg) -> SafeFix | None:
    """The fix ``f`` applies to ``row`` (a check result on the config ``cfg``, or None), if there is
    a safe one."""
    if row.id == "machine.output" and cfg is not None and not Path(cfg.runs_dir).exists():
        return SafeFix(f"create the output directory {cfg.runs_dir}", mkdir=Path(cfg.runs_dir))
    if row.status not in ("warn", "fail"):
        return None
    if row.section == "tokenizer" or (row.id == "config.paths" and "tokenizer.path" in row.detail):
        return SafeFix("go to the tokenizer step", step="tokenizer")
    if row.section == "dataset" or (row.id == "config.paths" and "data.path" in row.detail):
        return SafeFix("go to the data step", step="data")
    if row.section == "memory" or row.id == "config.preset":
        return SafeFix("go to the preset step", step="preset")
    if row.section == "config":
        return SafeFix("go to the review step", step="review")
    return None


def ordered(results: list[CheckResult]) -> list[CheckResult]:
    """Blocking failures first, then the rest by section (run order within a section)."""
    from cockpit.checks.base import SECTIONS

    order = {s: i for i, s in enumerate(SECTIONS)}
    return sorted(results, key=lambda r: (not (r.blocking and r.status == "fail"), order.get(r.section, len(order))))


class ChecklistScreen(WizardStep):
    """Step 1: is the draft ready to run? The readiness checks, live."""

    STEP = "checklist"
    BINDINGS = [
        Binding("f", "fix", "Apply fix"),
        Binding("r", "rerun", "Re-run"),
    ]

    def __init__(
        self, draft: RunDraft, facts: WizardFacts = WizardFacts(), checks: tuple[Check, ...] | None = None
    ) -> None:
        super().__init__(draft, facts)
        self.checks = checks
        """The checks run (``wizard_checks()`` when None; fewer where only some apply)."""
        self.pending: dict[int, str] = {}
        """The section title of each check that will run, by index (its row until it finishes)."""
        self.results: dict[int, list[CheckResult]] = {}
        """The results of each finished check, by its index in ``checks``."""
        self.first: list[CheckResult] = []
        """The draft's validation rows."""
        self.cfg = None
        """The resolved config the checks ran on (None when the draft does not validate)."""
        self.run = 0
        """Which run of the checks the rows show (``r`` starts another)."""
        self.rows: list[CheckResult] = []

    def compose_step(self) -> ComposeResult:
        yield Static("", id="check-verdict")
        yield DataTable(id="check-table", cursor_type="row")
        yield Static("", id="check-detail")

    def on_mount(self) -> None:
        self.action_rerun()

    # --- running ----------------------------------------------------------------------------

    def action_rerun(self) -> None:
        from cockpit.checks import WITHOUT_CONFIG, section_of
        from cockpit.checks.base import SECTION_TITLES

        if self.checks is None:
            self.checks = wizard_checks()
        self.run += 1
        self.results = {}
        ctx, self.first = draft_context(self.draft)
        self.cfg = ctx.cfg
        self.pending = {
            index: SECTION_TITLES.get(section_of(check), section_of(check))
            for index, check in enumerate(self.checks)
            if ctx.cfg is not None or check in WITHOUT_CONFIG
        }
        self.refresh_rows()
        self.say("running the readiness checks…")
        self.run_all(self.run, ctx)

    @work(thread=True, exclusive=True, group="checks")
    def run_all(self, run: int, ctx: CheckContext) -> None:
        from cockpit.checks import run_check

        worker = get_current_worker()
        for index, check in enumerate(self.checks):
            if worker.is_cancelled:
                return
            self.post_message(ChecksDone(run, index, run_check(check, ctx)))

    def on_checks_done(self, message: ChecksDone) -> None:
        if message.run != self.run:
            return  # a run that ``r`` replaced
        self.results[message.index] = message.results
        self.refresh_rows()
        if len(self.results) == len(self.checks):
            blocking = sum(r.blocking and r.status == "fail" for r in self.rows)
            self.say(
                f"{blocking} blocking problem(s): select one and press f to fix it, or r to check again"
                if blocking
                else "ready: ctrl+n goes on to the data"
            )

    # --- the table --------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.checks is not None and len(self.results) == len(self.checks)

    def refresh_rows(self) -> None:
        from cockpit.checks.base import STATUS_STYLE

        found = [r for i in sorted(self.results) for r in self.results[i]]
        self.rows = ordered(self.first + found)
        table = self.query_one("#check-table", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        detail_width = max(20, table.size.width - CHECK_WIDTH - 8)
        table.add_column(" ", width=1)
        table.add_column("Check", width=CHECK_WIDTH)
        table.add_column("Detail", width=detail_width)
        for row in self.rows:
            mark, color = STATUS_STYLE[row.status]
            title = Text(row_title(row), no_wrap=True, overflow="ellipsis")
            if row.status != "ok":
                title.stylize(color)
            detail = shown(row.detail).splitlines()[0] if row.detail else ""
            table.add_row(Text(mark, style=color), title, Text(detail, no_wrap=True, overflow="ellipsis"))
        for index, title in self.pending.items():
            if index not in self.results:
                table.add_row(Text("…", style="dim"), Text(title, style="dim"), Text("pending", style="dim"))
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))
        self.show_selected()
        blocking = [r for r in self.rows if r.blocking and r.status == "fail"]
        verdict = self.query_one("#check-verdict", Static)
        if blocking:
            verdict.update(Text(f"NOT READY: {len(blocking)} blocking problem(s)", style="bold red"))
        elif self.done:
            verdict.update(Text("READY: every blocking check passed", style="bold green"))
        else:
            verdict.update(Text(f"checking… {len(self.results)}/{len(self.pending)}", style="bold"))

    @property
    def selected(self) -> CheckResult | None:
        row = self.query_one("#check-table", DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def on_resize(self) -> None:
        self.refresh_rows()

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self.show_selected()

    def show_selected(self) -> None:
        row = self.selected
        text = Text()
        if row is not None:
            text.append(shown(row.detail))
            if row.fix and row.status in ("warn", "fail"):
                text.append(f"\n→ {shown(row.fix)}", style="dim")
            fix = safe_fix(row, self.cfg)
            if fix is not None:
                text.append(f"\nf: {shown(fix.label)}", style="bold")
        self.query_one("#check-detail", Static).update(text)

    # --- fixes ------------------------------------------------------------------------------

    def action_fix(self) -> None:
        row = self.selected
        fix = safe_fix(row, self.cfg) if row is not None else None
        if fix is None:
            self.say("no safe fix for this row: its detail says what to do")
            return
        if fix.step is not None:
            self.post_message(Navigate(fix.step))
            return
        try:
            fix.mkdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.say(f"error: {fix.mkdir}: cannot create it ({exc.strerror}); set runs_dir to a writable directory")
            return
        self.action_rerun()


def row_title(row: CheckResult) -> str:
    """``Dataset · Lines``; just ``Tokenizer`` when the title is the section's."""
    from cockpit.checks.base import SECTION_TITLES

    section = SECTION_TITLES.get(row.section, row.section)
    return section if row.title == section else f"{section} · {row.title}"


def shown(text: str) -> str:
    """``text`` with paths under the working directory made relative (the table is narrow)."""
    return text.replace(os.getcwd() + os.sep, "")
