"""Background uploads (engine/uploads.py, engine/upload_queue.py, config ``upload``) and `cockpit ckpt
upload`, against the real engine and real file:// targets under tmp_path.

One in-process run serves most tests: two targets, ``good`` and ``flaky``; ``flaky`` is a regular
file at first (its directories cannot be made: unreachable), and becomes reachable when the engine
says it kept a checkpoint for it, so retention, the retry at the next save and the pruning once
verified all happen in one short run.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from helpers import events_of, wait_for
from typer.testing import CliRunner

from cockpit.cli import app
from engine.transfer import open_url, verify_copy
from engine.upload_queue import UploadQueue
from engine.uploads import remote_dir

runner = CliRunner()
SECRET = "sekrit-4f1d9c2b7e"  # in the engine's environment, as s3fs would read it


def uploads_of(run_dir: Path) -> list[dict]:
    return [e for e in events_of(run_dir) if e["type"] == "upload"]


def remote_problems(target: str, run_id: str, step: int) -> list[str]:
    fs, root = open_url(target)
    return verify_copy(fs, remote_dir(root, run_id, f"checkpoints/checkpoint-{step}"))


@pytest.fixture(scope="module")
def uploaded_run(make_run_dir, tmp_path_factory):
    """A finished run with targets [good, flaky] (flaky unreachable until a copy to it failed and a
    checkpoint was kept for it: the upload thread runs at nice 19, so on a busy machine the failure may
    come before or after the first save that would prune)."""
    from helpers import train_in_process

    base = tmp_path_factory.mktemp("uploads")
    good, flaky = base / "good", base / "flaky"
    flaky.write_text("a file where the target's directory should be\n")
    targets = [f"file://{good}", f"file://{flaky}/copies"]
    run_dir = make_run_dir(
        "up",
        {
            "train.max_steps": 20,
            "train.save_every": 5,
            "train.save_total_limit": 1,
            "upload.targets": targets,
            "upload.retries": 0,
            "upload.stop_wait_s": 60,
        },
    )
    done = threading.Event()

    def unblock() -> None:  # the target comes back once a copy to it failed and the engine kept a checkpoint for it
        while not done.is_set():
            events = events_of(run_dir)
            kept = any(e["type"] == "log" and e["message"].startswith("kept ") for e in events)
            failed = any(e["type"] == "upload" and e["action"] == "failed" for e in events)
            if kept and failed:
                flaky.unlink()
                return
            done.wait(0.05)

    watcher = threading.Thread(target=unblock, daemon=True)
    watcher.start()
    try:
        code = train_in_process(run_dir, env={"AWS_SECRET_ACCESS_KEY": SECRET})
    finally:
        done.set()
        watcher.join()
    assert code == 0, (run_dir / "logs" / "engine.log").read_text()
    return run_dir, targets, base


def test_every_checkpoint_is_uploaded_verified_with_its_events_in_order(uploaded_run):
    run_dir, targets, _ = uploaded_run
    run_id = run_dir.name
    for target in targets:
        for step in (5, 10, 15, 20):
            assert remote_problems(target, run_id, step) == [], (target, step)
    events = uploads_of(run_dir)
    good = [e for e in events if e["target"] == targets[0]]
    for step in (5, 10, 15, 20):
        mine = [e["action"] for e in good if e["path"] == f"checkpoints/checkpoint-{step}"]
        assert mine[0] == "queued" and mine[-1] == "done" and set(mine[1:-1]) <= {"progress"}, mine
    last = [e for e in good if e["action"] == "done"][-1]
    assert last["bytes_done"] == last["bytes_total"] > 0
    states = {(e.step, e.target): e.state for e in UploadQueue(_paths(run_dir)).entries()}
    assert set(states.values()) == {"done"} and len(states) == 8
    # a secret of the environment appears nowhere in the run directory or the copies
    for root in (run_dir, *(Path(open_url(t)[1]) for t in targets)):
        for path in root.rglob("*"):
            assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    # the terminal status comes after the last upload event
    types = [e["type"] for e in events_of(run_dir)]
    assert types.index("upload") < len(types) - 1 and events_of(run_dir)[-1]["state"] == "finished"


def test_retention_keeps_an_unverified_checkpoint_and_prunes_it_once_verified(uploaded_run):
    run_dir, targets, _ = uploaded_run
    events = events_of(run_dir)
    flaky = targets[1]
    failed = [i for i, e in enumerate(events) if e["type"] == "upload" and e["action"] == "failed"]
    assert failed and all(events[i]["target"] == flaky for i in failed)
    assert "NotADirectoryError" in events[failed[0]]["error"] or "Not a directory" in events[failed[0]]["error"]
    kept = [i for i, e in enumerate(events) if e["type"] == "log" and e["message"].startswith("kept ")]
    assert kept and "not verified yet at " in events[kept[0]]["message"] and flaky in events[kept[0]]["message"]
    step = int(events[kept[0]]["message"].split()[1].rsplit("-", 1)[1])
    path = f"checkpoints/checkpoint-{step}"
    verified = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "upload" and e["action"] == "done" and e["path"] == path and e["target"] == flaky
    )
    pruned = next(
        i for i, e in enumerate(events) if e["type"] == "checkpoint" and e["action"] == "pruned" and e["path"] == path
    )
    assert max(failed[0], kept[0]) < verified < pruned  # deleted only after its copy verified
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*")) == ["checkpoint-20"]


def test_ckpt_upload_detects_a_corrupted_copy_and_sends_it_again(uploaded_run):
    run_dir, targets, _ = uploaded_run
    fs, root = open_url(targets[0])
    weights = Path(remote_dir(root, run_dir.name, "checkpoints/checkpoint-20")) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert remote_problems(targets[0], run_dir.name, 20) == ["model.safetensors: sha256 differs from the manifest"]

    result = runner.invoke(app, ["ckpt", "upload", str(run_dir), "20", "--to", targets[0]])
    assert result.exit_code == 0, result.output
    assert "1 file(s) sent" in result.output and "1 upload(s) verified, 0 failed" in result.output
    assert remote_problems(targets[0], run_dir.name, 20) == []
    assert uploads_of(run_dir)[-1]["action"] == "done"


def test_ckpt_upload_of_a_finished_run_to_another_target(uploaded_run, tmp_path):
    run_dir, _, _ = uploaded_run
    target = f"file://{tmp_path}/elsewhere"
    result = runner.invoke(app, ["ckpt", "upload", str(run_dir), "--to", target])
    assert result.exit_code == 0, result.output
    assert "checkpoints/checkpoint-20 -> " + target + ": done" in result.output
    assert remote_problems(target, run_dir.name, 20) == []
    seqs = [e["seq"] for e in events_of(run_dir)]
    assert seqs == list(range(len(seqs)))  # appended through the event log: gapless
    again = runner.invoke(app, ["ckpt", "upload", str(run_dir), "--to", target])
    assert again.exit_code == 0 and "nothing to upload" in again.output

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    bad = runner.invoke(app, ["ckpt", "upload", str(run_dir), "--to", f"file://{blocker}/x", "--retries", "0"])
    assert bad.exit_code == 1
    assert "failed: checkpoints/checkpoint-20 -> file://" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "sftp://me:hunter2@host/x"], "holds a password or token"),
        (["--to", "s3://bucket/x?X-Amz-Signature=abc"], "query string"),
        (["7"], "no complete checkpoint of step 7"),
        (["20", "--all"], "not both"),
    ],
)
def test_ckpt_upload_refuses_bad_input(uploaded_run, args, message):
    run_dir = uploaded_run[0]
    result = runner.invoke(app, ["ckpt", "upload", str(run_dir), *args])
    assert result.exit_code == 2 and message in result.output
    assert "hunter2" not in result.output


def test_config_refuses_a_target_with_credentials(tmp_path):
    from engine.config import ConfigError, load_config

    path = tmp_path / "run.yaml"
    path.write_text("upload:\n  targets: ['sftp://me:hunter2@host/backups']\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "upload.targets" in str(err.value) and "ssh agent" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_engine_killed_mid_upload_resumes_without_resending_verified_files(make_run_dir, start_engine, tmp_path):
    """The first copy blocks on a FIFO where its weights go (a target that stops answering); the engine
    is killed there, and started again (resumed, in this process) it sends only what was not verified."""
    remote = tmp_path / "remote"
    run_dir = make_run_dir(
        "killed", {"train.max_steps": 10, "train.save_every": 5, "upload.targets": [f"file://{remote}"]}
    )
    ckpt = remote / run_dir.name / "checkpoints" / "checkpoint-5"
    ckpt.mkdir(parents=True)
    os.mkfifo(ckpt / "model.safetensors.part")  # opening it to write blocks until someone reads

    proc = start_engine(run_dir)

    def mid_upload():
        return any(e["action"] == "progress" and e["path"].endswith("checkpoint-5") for e in uploads_of(run_dir))

    # training ends and the engine waits for its uploads; the first is stuck at the weights
    wait_for(lambda: "waiting up to" in (run_dir / "logs" / "engine.log").read_text(), timeout=120)
    assert mid_upload()
    sent_before = {p.name: p.stat().st_mtime_ns for p in ckpt.iterdir() if not p.name.endswith(".part")}
    assert "config.json" in sent_before  # sorted before model.safetensors: sent and verified already
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    states = {e["step"]: e["state"] for e in json.loads((run_dir / "uploads" / "queue.json").read_text())["entries"]}
    assert states[5] == "uploading"
    (ckpt / "model.safetensors.part").unlink()

    from helpers import train_in_process

    assert train_in_process(run_dir, resume="latest") == 0, (run_dir / "logs" / "engine.log").read_text()
    for step in (5, 10):
        assert remote_problems(f"file://{remote}", run_dir.name, step) == []
    for name, mtime in sent_before.items():
        assert (ckpt / name).stat().st_mtime_ns == mtime, f"{name} was sent again"
    log = (run_dir / "logs" / "engine.log").read_text()
    assert "already there intact" in log


def _paths(run_dir: Path):
    from engine.rundir import RunPaths

    return RunPaths(run_dir)


def test_finish_stops_waiting_after_stop_wait_and_says_what_is_left(uploaded_run, tmp_path):
    """The end of a run with a target that keeps failing: the wait is bounded (a backoff is cut short),
    the copy left stays queued for the next start, and a log line says how to finish it."""
    import shutil
    import time

    from engine.rundir import RunPaths
    from engine.uploads import Uploader

    run_dir = tmp_path / "copy"
    shutil.copytree(uploaded_run[0] / "checkpoints" / "checkpoint-20", run_dir / "checkpoints" / "checkpoint-20")
    (tmp_path / "blocker").write_text("")
    target = f"file://{tmp_path}/blocker/x"
    said: list[tuple[str, dict]] = []
    uploader = Uploader(RunPaths(run_dir), [target], 50, lambda t, **p: said.append((t, p)), base_delay=10)
    uploader.start()
    t0 = time.monotonic()
    left = uploader.finish(0.3)
    assert time.monotonic() - t0 < 3
    assert left == [f"checkpoints/checkpoint-20 -> {target}"]
    lines = [p["message"] for t, p in said if t == "log"]
    assert any("try 2 of 51" in m for m in lines), lines  # retried with backoff before it
    assert any(m.startswith("1 checkpoint upload(s) left") and "`cockpit ckpt upload " in m for m in lines), lines
    assert UploadQueue(RunPaths(run_dir)).get(20, target).state == "queued"  # the next start carries on


def test_ckpt_upload_refuses_a_live_run(uploaded_run):
    from engine.rundir import RunLock

    run_dir = uploaded_run[0]
    lock = RunLock(run_dir)  # what a live engine holds
    try:
        result = runner.invoke(app, ["ckpt", "upload", str(run_dir)])
    finally:
        lock.release()
    assert result.exit_code == 2 and "the run is live" in result.output and "its engine uploads" in result.output


def test_the_engine_uploads_to_a_real_sftp_server_and_s3_and_no_secret_reaches_the_run(
    make_run_dir, sshd_server, s3_server, tmp_path
):
    """Background uploads through the real protocols: OpenSSH's sftp on loopback (key from the ssh
    config) and an S3-compatible server (credentials from AWS_* in the environment, as a user sets
    them); the secret key the S3 client used is nowhere in the run directory."""
    import fsspec
    from helpers import train_in_process

    fsspec.filesystem("s3", skip_instance_cache=True).mkdir("cockpit-uploads")
    sftp_root = tmp_path / "sftp-copies"
    targets = [f"{sshd_server.url}{sftp_root}", "s3://cockpit-uploads/runs"]
    run_dir = make_run_dir(
        "remote-up", {"train.max_steps": 6, "train.save_every": 3, "upload.targets": targets, "upload.retries": 1}
    )
    assert train_in_process(run_dir) == 0, (run_dir / "logs" / "engine.log").read_text()
    for target in targets:
        for step in (3, 6):
            assert remote_problems(target, run_dir.name, step) == [], (target, step)
    done = {(e["target"], e["path"]) for e in uploads_of(run_dir) if e["action"] == "done"}
    assert len(done) == 4
    secret = s3_server.env["AWS_SECRET_ACCESS_KEY"].encode()
    for path in run_dir.rglob("*"):
        assert not path.is_file() or secret not in path.read_bytes(), path
