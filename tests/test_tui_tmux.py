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
