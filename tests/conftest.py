"""Shared helpers for engine tests: small run directories and engine subprocesses.

Fixtures:
  engine_data_dir   (session) one directory for the demo corpus and tokenizer of every small run,
                    so only the first engine of a session generates them
  make_run_dir      (session) factory: make_run_dir(name="run", overrides={"train.max_steps": 50})
                    -> a fresh run directory holding run.yaml for a small, fast CPU run
  start_engine      (session) factory: start_engine(run_dir) -> subprocess.Popen of
                    `python -m engine --run-dir run_dir`, output in run_dir/logs/engine.log; every
                    process still running at the end of the session is killed; only for tests where
                    the process is the point (signals, kill, the socket, launch, the lock, several
                    processes): anything else trains in-process with helpers.train_in_process(run_dir)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

from helpers import small_run_config  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="session")
def engine_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-data")


@pytest.fixture(scope="session")
def make_run_dir(tmp_path_factory, engine_data_dir):
    def make(name: str = "run", overrides: dict[str, Any] | None = None) -> Path:
        base = tmp_path_factory.mktemp(f"engine-{name}")
        run_dir = base / name
        run_dir.mkdir()
        cfg = small_run_config(engine_data_dir, overrides).resolved(base)
        (run_dir / "run.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
        return run_dir

    return make


@pytest.fixture(scope="session")
def start_engine():
    procs: list[subprocess.Popen] = []

    def start(run_dir: Path) -> subprocess.Popen:
        (run_dir / "logs").mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with open(run_dir / "logs" / "engine.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
