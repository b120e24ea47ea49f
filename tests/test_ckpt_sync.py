"""`cockpit ckpt sync` against a live run over SFTP (a real engine saving every few steps, a real
sshd on loopback serving its run directory): each checkpoint pulled once it is complete, verified,
never a half-written one; the sync killed (SIGKILL) and started again finishes without sending again
what had verified, and a pull stopped before its manifest resumes per file; the server going away
and coming back is one warning and a reconnect. Bad input exits 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import fsspec
from helpers import wait_for
from typer.testing import CliRunner

from cockpit.cli import app
from engine.checkpoint_index import MANIFEST, write_manifest
from engine.rundir import RunPaths, checkpoint_step
from engine.transfer import verify_copy

REPO = Path(__file__).resolve().parent.parent


def start_sync(url: str, dest: Path, log: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cockpit", "ckpt", "sync", url, str(dest), *extra],
            cwd=REPO,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def make_checkpoint(run: Path, step: int) -> None:
    """A small complete checkpoint of ``step`` in the run directory ``run``."""
    ckpt = RunPaths(run).checkpoint_dir(step)
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(os.urandom(20_000))
    write_manifest(ckpt, step)


def lines_about(log: Path, state: str) -> list[str]:
    """The checkpoints the sync's output says were ``state`` (pulled, resumed, already here)."""
    return re.findall(rf"^(checkpoint-\d+): {state}\b", log.read_text(), flags=re.M)


def test_sync_watch_pulls_a_live_run_and_resumes_after_a_kill(make_run_dir, start_engine, sshd_server, tmp_path):
    run_dir = make_run_dir("live", {"train.max_steps": 12, "train.save_every": 3, "train.eval_every": 0})
    dest = tmp_path / "pulled"
    url = f"{sshd_server.url}{run_dir}"
    env = {**os.environ, **sshd_server.env}
    engine = start_engine(run_dir)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_sync(url, dest, first_log, env, "--watch", "0.1")
    wait_for(lambda: lines_about(first_log, "pulled") or first.poll() is not None, timeout=120)
    first.send_signal(signal.SIGKILL)
    first.wait()
    pulled_first = lines_about(first_log, "pulled")
    assert pulled_first, first_log.read_text()

    second = start_sync(url, dest, second_log, env, "--watch", "0.1")
    assert engine.wait(timeout=120) == 0
    remote = sorted(p.name for p in RunPaths(run_dir).checkpoints.iterdir() if checkpoint_step(p.name) is not None)
    assert len(remote) == 4

    def all_named():
        text = second_log.read_text()
        return all(re.search(rf"^{name}: ", text, flags=re.M) for name in remote)

    wait_for(all_named, timeout=60)
    second.send_signal(signal.SIGINT)
    assert second.wait(timeout=30) == 0, second_log.read_text()
    out = second_log.read_text()
    assert re.search(r"^sync: \d+ checkpoint\(s\) pulled, \d+ already here; \d+ file\(s\) sent", out, flags=re.M), out

    # what verified before the kill was not sent again; every checkpoint came once, whole
    assert set(pulled_first) <= set(lines_about(second_log, "already here")), out
    assert not set(pulled_first) & set(lines_about(second_log, "pulled") + lines_about(second_log, "resumed"))
    named = re.findall(r"^(checkpoint-\d+): ", out, flags=re.M)
    assert sorted(named) == remote, out
    local = fsspec.filesystem("file")
    for name in remote:
        copy = RunPaths(dest).checkpoints / name
        assert (copy / MANIFEST).read_bytes() == (RunPaths(run_dir).checkpoints / name / MANIFEST).read_bytes()
        assert verify_copy(local, str(copy)) == []
    assert sorted(p.name for p in RunPaths(dest).checkpoints.iterdir()) == sorted([*remote, "latest"])
    assert RunPaths(dest).latest_name() == max(remote, key=checkpoint_step)
    assert RunPaths(dest).run_yaml.read_bytes() == RunPaths(run_dir).run_yaml.read_bytes()

    # a pull stopped before its manifest, one file arrived damaged: only that file is sent again
    stopped = RunPaths(dest).checkpoints / remote[1]
    (stopped / MANIFEST).unlink()
    (stopped / "config.json").write_text("{}")
    third = CliRunner().invoke(app, ["ckpt", "sync", url, str(dest)])  # sshd_server's ssh config is in os.environ
    assert third.exit_code == 0, third.output
    assert f"{remote[1]}: resumed, verified: 1 file(s) sent" in third.output
    assert "sync: 1 checkpoint(s) pulled, 3 already here; 1 file(s) sent" in third.output
    assert verify_copy(local, str(stopped)) == []


def test_bad_input_exits_2_saying_what(tmp_path, sshd_server):
    runner = CliRunner()
    closed = sshd_server.port + 1 if sshd_server.port < 65535 else sshd_server.port - 1
    (tmp_path / "a-file").write_text("x")
    cases = [
        ([f"{sshd_server.url}{tmp_path}/nope", str(tmp_path / "d")], "no such directory on 127.0.0.1"),
        ([f"{sshd_server.url}{tmp_path}", str(tmp_path / "d")], "not a run directory"),
        (
            [f"sftp://{sshd_server.user}@127.0.0.1:{closed}/x", str(tmp_path / "d")],
            f"nothing answers on 127.0.0.1:{closed}",
        ),
        ([str(tmp_path), str(tmp_path / "a-file")], "is a file"),
        ([str(tmp_path), str(tmp_path / "d"), "--watch", "0"], "--watch 0"),
    ]
    for args, message in cases:
        res = runner.invoke(app, ["ckpt", "sync", *args])
        assert res.exit_code == 2 and message in res.output, (args, res.output)


def test_watch_rides_out_a_dropped_connection(tmp_path):
    from servers import start_sshd

    (tmp_path / "sshd").mkdir()
    server = start_sshd(tmp_path / "sshd")  # its own server: this test stops it
    run, dest, log = tmp_path / "run", tmp_path / "here", tmp_path / "sync.log"
    make_checkpoint(run, 1)
    (run / "run.yaml").write_text("name: run\n")
    sync = start_sync(f"{server.url}{run}", dest, log, {**os.environ, **server.env}, "--watch", "0.1")
    try:
        wait_for(lambda: lines_about(log, "pulled"), timeout=30)
        server.stop()  # the server goes away, every connection with it
        make_checkpoint(run, 2)
        wait_for(lambda: "warning:" in log.read_text(), timeout=30)
        server = start_sshd(tmp_path / "sshd", server.port)
        wait_for(lambda: "checkpoint-2" in lines_about(log, "pulled"), timeout=30)
        sync.send_signal(signal.SIGINT)
        assert sync.wait(timeout=30) == 0
    finally:
        if sync.poll() is None:
            sync.kill()
        server.stop()
    out = log.read_text()
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert warnings and len(set(warnings)) == len(warnings), out  # said once, not once per look
    assert "connection dropped" in warnings[0] and "trying again every 0.1 s" in warnings[0]
    assert out.index("reached again") < out.index("checkpoint-2: pulled") and "sync: 2 checkpoint(s) pulled" in out
