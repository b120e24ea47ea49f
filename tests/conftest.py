"""Shared helpers for engine tests: small run directories and engine subprocesses.

Fixtures:
  engine_data_dir   (session) one directory for the demo corpus and tokenizer of every small run,
                    so only the first engine of a session generates them
  make_run_dir      (session) factory: make_run_dir(name="run", overrides={"train.max_steps": 50})
                    -> a fresh run directory holding run.yaml for a small, fast CPU run
  start_engine      (session) factory: start_engine(run_dir) -> subprocess.Popen of
                    `python -m engine --run-dir run_dir`, output in run_dir/logs/engine.log; every
                    process still running at the end of the session is killed
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent

#: A run that trains in a few seconds on one CPU core: a 2-layer, 64-wide Llama on a small demo
#: corpus. Dotted keys as in ``cockpit run --set``.
SMALL_RUN: dict[str, Any] = {
    "name": "test",
    "preset": "tiny",
    "model": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 192},
    "data.demo.samples": 2000,
    "data.demo.seed": 7,
    "tokenizer.vocab_size": 384,
    "train.seq_len": 64,
    "train.micro_batch_size": 8,
    "train.max_steps": 30,
    "train.warmup_steps": 5,
    "train.lr": 0.005,
    "train.log_every": 5,
    "train.save_every": 0,
    "train.threads": 1,
    "telemetry.interval_s": 0.5,
}


def small_run_config(data_dir: Path, overrides: dict[str, Any] | None = None):
    """The RunConfig of SMALL_RUN with ``overrides`` (dotted keys) applied, data in ``data_dir``."""
    from engine.config import RunConfig

    data: dict[str, Any] = {}
    items = {**SMALL_RUN, "data.path": str(data_dir / "corpus.txt"),
             "tokenizer.path": str(data_dir / "tokenizer"), **(overrides or {})}
    for key, value in items.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return RunConfig.model_validate(data)


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
            proc = subprocess.Popen([sys.executable, "-m", "engine", "--run-dir", str(run_dir)], cwd=REPO,
                                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
