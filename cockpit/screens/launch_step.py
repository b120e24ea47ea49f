"""The wizard's launch step: what will start, and the key that starts it.

Shows the config file the draft is written to (where ``ctrl+s`` saved it, else ``<name>.yaml`` in
the working directory, never over a file the wizard did not write), the run directory that will be
created, the preset, the steps, and the time and cost when a dry run measured them. ``l`` (or the
button) writes the file and starts the engine through ``cockpit.launch.start_run``, exactly as
``cockpit run FILE`` does, in a worker; a refusal (the preflight's one line) shows here and leaves
no run directory and no new file behind. On success ``RunLaunched`` goes up and the app opens the
run's dashboard.

Keys: ``l`` launch, and the wizard's ``escape`` back, ``ctrl+s`` save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Button, Static

from cockpit.review_form import plan_lines
from cockpit.run_plan import plan_run
from cockpit.screens.wizard_step import WizardStep
from engine.config import ConfigError


class RunLaunched(Message):
    """The engine of a new run started: the app opens its dashboard."""

    def __init__(self, run_dir: Path, pid: int, config_path: Path) -> None:
        super().__init__()
        self.run_dir, self.pid, self.config_path = run_dir, pid, config_path


class LaunchFailed(Message):
    """The launch was refused; ``error`` says why, naming the file and key."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


def config_file_for(name: str, saved_to: Path | None, cwd: Path | None = None) -> Path:
    """Where the launch writes the draft: where it was saved, else the first of ``<name>.yaml``,
    ``<name>-2.yaml``, ... in ``cwd`` that does not exist yet."""
    if saved_to is not None:
        return saved_to
    cwd = cwd or Path()
    path, n = cwd / f"{name}.yaml", 2
    while path.exists():
        path, n = cwd / f"{name}-{n}.yaml", n + 1
    return path


class LaunchScreen(WizardStep):
    STEP = "launch"
    BINDINGS = [Binding("l", "launch", "Launch")]

    def __init__(self, *args: Any, saved_to: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.saved_to = saved_to
        self.launching = False

    @property
    def config_path(self) -> Path:
        return config_file_for(self.draft.get("name") or "run", self.saved_to)

    def compose_step(self) -> ComposeResult:
        yield Static(self._summary(), id="launch-summary")
        yield Static("", id="launch-error")
        yield Button("Launch (l)", id="launch-go", variant="success", disabled=not self.draft.check().ok)

    def _summary(self) -> Table | Text:
        check = self.draft.check()
        if not check.ok:
            lines = [f"{p.key or 'config'}: {p.message}" for p in check.problems]
            return Text("\n".join(["The config has problems; go back to the review (escape):", *lines]), style="red")
        cfg = check.config
        facts = self.facts
        plan = plan_run(cfg, tokens_available=facts.tokens_available, params=facts.params, step_s=facts.step_s)
        name = cfg.name or self.config_path.stem
        saved = " (saved)" if self.saved_to is not None else " (written at launch)"
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_row("Config file", f"{self.config_path}{saved}")
        table.add_row("Run directory", f"{cfg.runs_dir}/{name}-<date>-<time> (created at launch)")
        table.add_row("Preset", cfg.preset)
        table.add_row("Data", f"{cfg.data.source}: {cfg.data.path}")
        table.add_row("Tokenizer", str(cfg.tokenizer.path))
        for label, value in plan_lines(plan, cfg.train.seq_len, cfg.train.budget_usd):
            table.add_row(label, value)
        table.add_row("", "")
        table.add_row("Same as", f"cockpit run {self.config_path}")
        return table

    def show_saved(self, path: Path) -> None:
        """The draft was saved to ``path`` (``ctrl+s``): the launch writes it there."""
        self.saved_to = path
        self.query_one("#launch-summary", Static).update(self._summary())

    # --- launching --------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch-go":
            event.stop()
            self.action_launch()

    def action_launch(self) -> None:
        if self.launching:
            return
        if not self.draft.check().ok:
            self._show_error("the config has problems: go back to the review (escape) and fix them")
            return
        self.launching = True
        self.query_one("#launch-go", Button).disabled = True
        self.query_one("#launch-error", Static).update("")
        self.say("Launching: checking the config, data and tokenizer, then starting the engine...")
        self._launch(self.config_path)

    @work(thread=True, exclusive=True, group="launch")
    def _launch(self, path: Path) -> None:
        from cockpit.launch import start_run

        created = not path.exists()
        try:
            self.draft.save(path)
            launched = start_run(path)
        except (ConfigError, OSError) as exc:
            if created:
                path.unlink(missing_ok=True)  # a refused launch leaves no file it made
            self.post_message(LaunchFailed(str(exc)))
            return
        self.post_message(RunLaunched(launched.run_dir, launched.pid, path))

    def on_launch_failed(self, message: LaunchFailed) -> None:
        message.stop()
        self.launching = False
        self.query_one("#launch-go", Button).disabled = False
        self._show_error(message.error)

    def _show_error(self, error: str) -> None:
        self.query_one("#launch-error", Static).update(Text(f"error: {error}", style="red"))
        self.say("[red]Not launched.[/red] Fix what is named above, then press l again.")

    def on_run_launched(self, message: RunLaunched) -> None:
        self.launching = False
        self.say(f"Launched {message.run_dir.name} (engine pid {message.pid}).")
