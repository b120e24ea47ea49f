"""End to end in a real terminal: the dashboard in tmux, read back with capture-pane, left with q."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest
from tui_helpers import REPO, finished_run

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")


class Tmux:
    """A private tmux server (its own socket), so the test never touches the user's sessions."""

    def __init__(self) -> None:
        self.socket = f"cockpit-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str, check: bool = True) -> str:
        # The server passes its environment on to the pane; COLUMNS/LINES (pytest may set them)
        # would override the real terminal size there.
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        result = subprocess.run(
            [TMUX, "-L", self.socket, "-f", "/dev/null", *args], capture_output=True, text=True, timeout=10, env=env
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def capture(self, target: str) -> str:
        return self("capture-pane", "-p", "-t", target)

    def wait_for(self, target: str, predicate, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.capture(target)
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{screen}")

    def kill(self) -> None:
        self("kill-server", check=False)


def test_dashboard_in_a_real_terminal(tmp_path):
    run = finished_run(tmp_path / "tmux-run")
    tmux = Tmux()
    command = (
        f"cd {shlex.quote(str(REPO))} && {shlex.quote(sys.executable)} -m cockpit.app "
        f"{shlex.quote(str(run))}; echo COCKPIT-EXIT=$?; sleep 30"
    )
    tmux("new-session", "-d", "-s", "cockpit", "-x", "120", "-y", "36", command)
    try:
        expected = (
            "tmux-run",
            "FINISHED",
            "Step 300 / 300",
            "2.072",
            "checkpoint-300",
            "Loss",
            "Progress",
            "Checkpoints",
            "Log",
            "Detach",
        )
        # Waiting for all of them at once: a capture can catch a frame half drawn.
        screen = tmux.wait_for(
            "cockpit", lambda s: all(e in s for e in expected), 30, "the dashboard of the finished run"
        )
        lines = screen.splitlines()
        assert len(lines) >= 35 and max(len(line) for line in lines) > 100, "not drawn at 120x36"
        tmux("send-keys", "-t", "cockpit", "q")
        screen = tmux.wait_for("cockpit", lambda s: "COCKPIT-EXIT=" in s, 15, "the app to exit")
        assert "COCKPIT-EXIT=0" in screen
        assert "tmux-run: finished." in screen
    finally:
        tmux.kill()


def _engine_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its (gone) parent counts as gone
        return f.read().split(")")[-1].split()[0] == "Z"


def test_wizard_launches_the_demo_and_the_home_lists_it(tmp_path):
    """The acceptance of the wizard: `cockpit` in a directory with no runs opens the wizard; the demo,
    shortened to 20 steps on the review, launches from the last step; its dashboard shows; `q`; and
    `cockpit` again lists the run on the home."""
    from engine.rundir import read_status

    work = tmp_path / "empty"
    work.mkdir()
    bin_dir = os.path.dirname(sys.executable)
    tmux = Tmux()
    command = (
        f"cd {shlex.quote(str(work))} && export PATH={shlex.quote(bin_dir)}:$PATH && "
        "cockpit; echo FIRST-EXIT=$?; cockpit; echo SECOND-EXIT=$?; sleep 30"
    )
    tmux("new-session", "-d", "-s", "wizard", "-x", "120", "-y", "40", command)
    run_dir = None
    try:
        tmux.wait_for("wizard", lambda s: "1 Checklist" in s and "Next" in s, 30, "the wizard")
        for title in ("2 Data", "3 Tokenizer", "4 Preset", "5 Review"):
            tmux("send-keys", "-t", "wizard", "C-n")
            tmux.wait_for("wizard", lambda s, t=title: t in s, 10, f"the step {title}")
        # the memory estimate comes after the form is mounted and focused: keys typed then land in it
        tmux.wait_for("wizard", lambda s: "Learning rate" in s and "Memory needs" in s, 20, "the review form")
        # run name -> micro batch -> accumulation -> learning rate -> steps; typed at a person's pace
        # (a burst of keys reaches the old field before a tab's focus change is done)
        for key in ("Tab", "Tab", "Tab", "Tab", "Home", "C-k", "2", "0"):
            tmux("send-keys", "-t", "wizard", key)
            time.sleep(0.2)
        tmux.wait_for("wizard", lambda s: "Total tokens     41k" in s, 10, "the steps edited to 20")
        tmux("send-keys", "-t", "wizard", "C-n")
        tmux.wait_for("wizard", lambda s: "Launch (l)" in s and "Steps            20" in s, 10, "the launch step")
        tmux("send-keys", "-t", "wizard", "l")
        screen = tmux.wait_for("wizard", lambda s: "demo-" in s and "Loss" in s, 60, "the run's dashboard")
        runs = list((work / "runs").iterdir())
        assert len(runs) == 1 and (work / "demo.yaml").is_file()
        run_dir = runs[0]
        tmux("send-keys", "-t", "wizard", "q")
        tmux.wait_for("wizard", lambda s: "FIRST-EXIT=0" in s, 15, "the app to exit")
        screen = tmux.wait_for("wizard", lambda s: "Runs in runs" in s and run_dir.name in s, 30, "the home")
        row = next(line for line in screen.splitlines() if run_dir.name in line)
        assert any(state in row for state in ("running", "starting", "finished")), row
        tmux("send-keys", "-t", "wizard", "q")
        tmux.wait_for("wizard", lambda s: "SECOND-EXIT=0" in s, 15, "the app to exit again")
    finally:
        tmux.kill()
        if run_dir is not None:  # stop the engine: nothing is left running
            pid = read_status(run_dir).get("pid")
            subprocess.run(
                [os.path.join(bin_dir, "cockpit"), "stop", str(run_dir)], cwd=work, capture_output=True, timeout=30
            )
            deadline = time.monotonic() + 30
            while pid and not _engine_gone(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid and not _engine_gone(pid):
                os.kill(pid, 9)
