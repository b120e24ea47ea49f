"""The cockpit's full-screen app: ``make_app(run_dir)`` opens the dashboard of a run.

``q`` detaches: the app exits and the engine keeps running. When the run reaches a terminal state
the dashboard stays open on the final numbers until the user presses ``q``.

``App.return_value`` after the app exits: ``"detached"`` when the engine may still be running, or
the run's final state (``"finished"``, ``"stopped"``, ``"failed"``, ``"dead"``) when it is over.

Run directly for a quick look (the CLI's ``cockpit attach RUN`` does the same)::

    python -m cockpit.app RUN_DIR [--pid PID]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from cockpit.screens.dashboard import DashboardScreen
from engine.protocol import ENDED_STATES


class CockpitApp(App[str]):
    CSS_PATH = "app.tcss"
    TITLE = "cockpit"
    BINDINGS = [Binding("q", "detach", "Detach")]

    def __init__(self, run_dir: Path, pid: int | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.pid = pid
        self.sub_title = self.run_dir.name

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen(self.run_dir, self.pid))

    @property
    def dashboard(self) -> DashboardScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, DashboardScreen):
                return screen
        return None

    def action_detach(self) -> None:
        dashboard = self.dashboard
        result = "detached"
        if dashboard is not None:
            dashboard.stop_following()
            state = dashboard.state.state
            if state in ENDED_STATES:
                result = state
        self.exit(result)


def make_app(run_dir: Path, pid: int | None = None) -> CockpitApp:
    """The dashboard app for the run in ``run_dir`` (live or finished). ``pid``: the engine's
    process id when the caller has just launched it (``status.json`` may not exist yet)."""
    return CockpitApp(Path(run_dir), pid)


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
