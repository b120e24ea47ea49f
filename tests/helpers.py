"""Plain helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cockpit.client import read_events
from engine.rundir import RunPaths


def events_of(run_dir: Path) -> list[dict]:
    """Every complete event a run has written so far."""
    return list(read_events(RunPaths(run_dir).events))


def wait_for(predicate, timeout: float = 90.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


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
    from engine.config import RunConfig, set_dotted

    data: dict[str, Any] = {}
    items = {**SMALL_RUN, "data.path": str(data_dir / "corpus.txt"),
             "tokenizer.path": str(data_dir / "tokenizer"), **(overrides or {})}
    for key, value in items.items():
        set_dotted(data, key, value)
    return RunConfig.model_validate(data)
