"""The cockpit's full-screen app: the home of runs, the new-run wizard, a run's dashboard and its
checkpoint viewer (``v`` on the home's selected run or on a dashboard).

``make_app()`` opens the home (the runs under ``./runs``; with none, the wizard directly);
``make_app(run_dir)`` opens the dashboard of one run. ``q`` leaves the app: a running engine keeps
training. When a run reaches a terminal state its dashboard stays open on the final numbers.

The app holds the wizard's one ``WizardState``; the step screens post ``DraftChanged``,
``FactsFound``, ``Navigate`` and ``SaveRequested`` up to it, and it opens the step asked for;
the launch step's ``RunLaunched`` opens the new run's dashboard.

``App.return_value`` after the app exits: ``"detached"`` when the engine of the run shown may
still be running, or the run's final state (``"finished"``, ``"stopped"``, ``"failed"``, ``"dead"``)
when it is over; None when no run was shown.

Run directly for a quick look (the CLI's ``cockpit attach RUN`` does the same)::

    python -m cockpit.app RUN_DIR [--pid PID]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from cockpit.client import iter_runs
from cockpit.screens.checklist import ChecklistScreen
from cockpit.screens.checkpoint_viewer import CheckpointViewerScreen
from cockpit.screens.dashboard import DashboardScreen, OpenCheckpoints
from cockpit.screens.data_step import DataScreen
from cockpit.screens.home import HomeScreen, NewRun, OpenRun
from cockpit.screens.launch_step import LaunchScreen, RunLaunched
from cockpit.screens.preset_step import PresetScreen
from cockpit.screens.review import ReviewScreen
from cockpit.screens.save_draft import SaveDraftScreen
from cockpit.screens.tokenizer_step import TokenizerScreen
from cockpit.screens.wizard_step import DraftChanged, FactsFound, Navigate, SaveRequested, WizardStep
from cockpit.wizard import WizardState
from engine.protocol import ENDED_STATES

#: The screen of each wizard step.
STEP_SCREENS: dict[str, type[WizardStep]] = {
    "checklist": ChecklistScreen,
    "data": DataScreen,
    "tokenizer": TokenizerScreen,
    "preset": PresetScreen,
    "review": ReviewScreen,
    "launch": LaunchScreen,
}


class CockpitApp(App[str | None]):
    CSS_PATH = "app.tcss"
    TITLE = "cockpit"
    BINDINGS = [Binding("q", "quit_app", "Quit")]

    def __init__(
        self,
        run_dir: Path | None = None,
        pid: int | None = None,
        *,
        runs_dir: Path = Path("runs"),
        wizard: WizardState | None = None,
        checkpoints: bool = False,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        #: Open on the checkpoint viewer of ``run_dir`` rather than its dashboard.
        self.open_on_checkpoints = checkpoints
        self.pid = pid
        self.runs_dir = Path(runs_dir)
        #: Open on the wizard (a state was given) rather than the home.
        self.open_on_wizard = wizard is not None
        self.wizard = wizard or WizardState()
        if self.run_dir is not None:
            self.sub_title = self.run_dir.name

    def on_mount(self) -> None:
        if self.run_dir is not None and self.open_on_checkpoints:
            self.push_screen(CheckpointViewerScreen(self.run_dir))
        elif self.run_dir is not None:
            self.push_screen(DashboardScreen(self.run_dir, self.pid))
        elif not self.open_on_wizard and iter_runs(self.runs_dir):
            self.push_screen(HomeScreen(self.runs_dir))
        else:
            self.push_screen(self.step_screen())

    # --- the wizard -------------------------------------------------------------------------

    def step_screen(self) -> WizardStep:
        screen = STEP_SCREENS[self.wizard.current.key]
        if screen is LaunchScreen:  # it writes the draft where ctrl+s saved it
            return LaunchScreen(self.wizard.draft, self.wizard.facts, saved_to=self.wizard.saved_to)
        return screen(self.wizard.draft, self.wizard.facts)

    def start_wizard(self, wizard: WizardState | None = None) -> None:
        self.wizard = wizard or WizardState()
        self.push_screen(self.step_screen())

    def on_draft_changed(self, message: DraftChanged) -> None:
        self.wizard = self.wizard.with_draft(message.draft)

    def on_facts_found(self, message: FactsFound) -> None:
        self.wizard = self.wizard.with_facts(**message.facts)

    def on_navigate(self, message: Navigate) -> None:
        if message.target == "home":
            self.go_home()
            return
        moved = self.wizard.go(message.target)
        if moved.step != self.wizard.step:
            self.wizard = moved
            self.switch_screen(self.step_screen())

    def on_save_requested(self, _: SaveRequested) -> None:
        name = self.wizard.draft.get("name") or "run"
        default = self.wizard.saved_to or Path(f"{name}.yaml")

        def saved(path: Path | None) -> None:
            if path is not None:
                self.wizard = self.wizard.saved(path)
                if isinstance(self.screen, LaunchScreen):  # it launches what was just saved
                    self.screen.show_saved(path)
                self.notify(f"Saved {path}: run it with `cockpit run {path}`.", title="Saved")

        self.push_screen(SaveDraftScreen(self.wizard.draft, default), saved)

    def on_run_launched(self, message: RunLaunched) -> None:
        self.wizard = self.wizard.saved(message.config_path)
        self.open_run(message.run_dir, message.pid)

    # --- runs -------------------------------------------------------------------------------

    def on_new_run(self, _: NewRun) -> None:
        self.start_wizard()

    def on_open_run(self, message: OpenRun) -> None:
        self.open_run(message.run_dir)

    def on_open_checkpoints(self, message: OpenCheckpoints) -> None:
        self.push_screen(CheckpointViewerScreen(message.run_dir))

    def go_home(self) -> None:
        """Back to the list of runs (a new home when the app opened on the wizard)."""
        while len(self.screen_stack) > 2 and not isinstance(self.screen, HomeScreen):
            self.pop_screen()
        if not isinstance(self.screen, HomeScreen):
            self.switch_screen(HomeScreen(self.runs_dir))

    def open_run(self, run_dir: Path, pid: int | None = None) -> None:
        """The dashboard of ``run_dir`` in place of the current screen (the wizard's launch, the home)."""
        self.run_dir, self.pid = Path(run_dir), pid
        self.sub_title = self.run_dir.name
        self.push_screen(DashboardScreen(self.run_dir, pid))

    @property
    def dashboard(self) -> DashboardScreen | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, DashboardScreen):
                return screen
        return None

    def action_quit_app(self) -> None:
        """Leave the app; the engine of the run shown keeps training."""
        dashboard = self.dashboard
        result = None
        if dashboard is not None:
            dashboard.stop_following()
            state = dashboard.state.state
            result = state if state in ENDED_STATES else "detached"
        self.exit(result)


def make_app(
    run_dir: Path | None = None, pid: int | None = None, *, runs_dir: Path = Path("runs"), checkpoints: bool = False
) -> CockpitApp:
    """The app: the dashboard of ``run_dir`` (live or finished; its checkpoint viewer with
    ``checkpoints``), or without one the home of the runs under ``runs_dir`` (the wizard when there
    are none). ``pid``: the engine's process id when the caller has just launched it (``status.json``
    may not exist yet)."""
    return CockpitApp(run_dir, pid, runs_dir=runs_dir, checkpoints=checkpoints)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cockpit.app", description="Open the dashboard of a run directory.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--pid", type=int, default=None, help="engine process id, when just launched")
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        print(f"cockpit: {args.run_dir}: no such run directory", file=sys.stderr)
        return 2
    result = make_app(args.run_dir, args.pid).run()
    if result == "detached":
        print(f"Detached from {args.run_dir.name}; the engine keeps running.")
    elif result:
        print(f"{args.run_dir.name}: {result}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
