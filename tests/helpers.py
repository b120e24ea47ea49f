"""Plain helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from cockpit.client import read_events
from engine import protocol as P
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


class RefusingSocket:
    """A real Unix socket at ``path`` (a run's ``engine.sock``) that answers every subscribe with an
    error reply, as an engine serving all the viewers it would did before it made room for new ones.
    ``refused``: how many subscribe requests it has turned away. Use as a context manager."""

    def __init__(self, path: Path, error: str = "too many viewers (32); close one and subscribe again"):
        self.path = Path(path)
        self.error = error
        self.refused = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with P.socket_address(self.path) as addr:
            self._server.bind(addr)
        self._server.listen()
        self._server.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="refusing-socket", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2.0)
                buf = b""
                try:
                    while b"\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    if b"\n" in buf:
                        cmd = json.loads(buf.split(b"\n", 1)[0])
                        conn.sendall(P.encode(P.make_reply(cmd.get("id"), False, cmd.get("cmd"), self.error)))
                        self.refused += 1
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> RefusingSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def train_in_process(run_dir: Path, env: dict[str, str] | None = None, resume: str | None = None) -> int:
    """Train the run of ``run_dir/run.yaml`` in this process and return the engine's exit code.

    The same engine as ``python -m engine --run-dir run_dir`` (``engine.train.run``), without the
    process around it: no run-directory lock, and a ``Controls`` whose signal handlers are not
    installed. Its output goes to ``logs/engine.log`` as the subprocess's does. ``env`` is set for the
    run only; ``resume``: ``latest`` or a checkpoint path, as ``--resume``. torch's thread count and Accelerate's singleton
    state are restored afterwards, so runs do not leak into each other or into other tests."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from engine.config import read_run_config
    from engine.controls import Controls
    from engine.train import run

    cfg = read_run_config(run_dir)
    log_path = RunPaths(run_dir).engine_log
    log_path.parent.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    with (
        pytest.MonkeyPatch.context() as mp,
        open(log_path, "a", encoding="utf-8") as log,
        redirect_stdout(log),
        redirect_stderr(log),
    ):
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        try:
            point = None
            if resume is not None:
                from engine.resume import load_resume_point, resolve_checkpoint

                point = load_resume_point(resolve_checkpoint(run_dir, resume))
            return run(run_dir, cfg, Controls(), resume=point)
        finally:
            torch.set_num_threads(threads)
            AcceleratorState._reset_state(reset_partial_state=True)
            GradientState._reset_state()


#: A run that trains in a few seconds on one CPU core: a 2-layer, 64-wide Llama on a small demo
#: corpus. Dotted keys as in ``cockpit run --set``.
SMALL_RUN: dict[str, Any] = {
    "name": "test",
    "preset": "tiny",
    "model": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 192,
    },
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
    items = {
        **SMALL_RUN,
        "data.path": str(data_dir / "corpus.txt"),
        "tokenizer.path": str(data_dir / "tokenizer"),
        **(overrides or {}),
    }
    for key, value in items.items():
        set_dotted(data, key, value)
    return RunConfig.model_validate(data)
