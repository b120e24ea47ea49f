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
  sshd_server       (session) a real OpenSSH sshd on 127.0.0.1 with a throwaway key (sftp:// tests)
  s3_server         (session) moto's S3-compatible server on loopback (s3:// tests)
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


@pytest.fixture(scope="session")
def chat_checkpoint(tmp_path_factory) -> Path:
    """The checkpoint of a two-step tiny run whose tokenizer has the ChatML tokens and chat template
    (as `cockpit tokenizer train` makes it), for the generation and serving tests: an untrained model,
    but a real one, loaded through the real loader."""
    from helpers import small_run_config, train_in_process

    from engine.data.demo import demo_lines
    from engine.data.tokenizer import CHAT_TEMPLATE, CHAT_TOKENS, train_tokenizer
    from engine.rundir import latest_checkpoint

    base = tmp_path_factory.mktemp("chat-run")
    lines = demo_lines(300, 7)
    (base / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    train_tokenizer(None, base / "tok", 384, texts=lines, extra_special_tokens=CHAT_TOKENS, chat_template=CHAT_TEMPLATE)
    overrides = {
        "data.source": "text",
        "data.path": str(base / "corpus.txt"),
        "tokenizer.path": str(base / "tok"),
        "train.max_steps": 2,
        "train.save_every": 2,
        "train.eval_every": 0,
    }
    run_dir = base / "chat"
    run_dir.mkdir()
    (run_dir / "run.yaml").write_text(small_run_config(base, overrides).resolved(base).to_yaml(), encoding="utf-8")
    assert train_in_process(run_dir) == 0
    ckpt = latest_checkpoint(run_dir)
    assert ckpt is not None
    return ckpt


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory):
    """A real OpenSSH sshd on 127.0.0.1 with a throwaway key pair (tests/servers.py): ``.url`` is
    ``sftp://USER@127.0.0.1:PORT``; its ssh client config (``COCKPIT_SSH_CONFIG``) is set in this
    process's environment for the session and in ``.env`` for subprocesses."""
    from servers import start_sshd

    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    yield server
    _restore_env(saved)
    server.proc.terminate()
    server.proc.wait(10)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server on loopback (tests/servers.py), reached through the ``AWS_*``
    environment (``AWS_ENDPOINT_URL``), set in this process for the session and in ``.env``."""
    from servers import start_s3

    server = start_s3()
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    yield server
    _restore_env(saved)
    server.server.stop()


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
