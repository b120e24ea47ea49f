"""Exact resume: a run killed with SIGKILL and resumed with ``--resume latest`` logs the same
per-step losses as an uninterrupted run, over the same data positions, and ends with the same
weights; a checkpoint missing a part is refused (exit 2, one line, nothing changed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import events_of, wait_for

from engine.rundir import RunPaths, latest_checkpoint

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
N, K = 60, 10  # steps of the run, checkpoint interval
CONFIG = {
    "train.max_steps": N,
    "train.log_every": 1,
    "train.save_every": K,
    "train.warmup_steps": 5,
    "train.eval_every": K,
    "train.eval_batches": 1,
    "data.val_fraction": 0.05,
    "telemetry.enabled": False,
}


def launch(run_dir: Path, *args: str) -> subprocess.Popen:
    (run_dir / "logs").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(run_dir / "logs" / "engine.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "engine", "--run-dir", str(run_dir), *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def engine_log(run_dir: Path) -> str:
    return RunPaths(run_dir).engine_log.read_text(errors="replace")


def metrics_by_step(events: list[dict]) -> dict[int, dict]:
    return {e["step"]: e for e in events if e["type"] == "metrics"}


@pytest.fixture(scope="module")
def runs(make_run_dir):
    """Run A to the end; run B killed (SIGKILL) a few steps after a checkpoint, then resumed."""
    run_a, run_b = make_run_dir("resume-a", CONFIG), make_run_dir("resume-b", CONFIG)
    proc_a = launch(run_a)
    proc_b = launch(run_b)
    procs = [proc_a, proc_b]
    try:

        def past_a_checkpoint():
            ckpt = latest_checkpoint(run_b)
            if ckpt is None:
                return None
            k = int(ckpt.name.split("-")[1])
            steps = [e["step"] for e in events_of(run_b) if e["type"] == "metrics"]
            return steps and steps[-1] >= k + 2

        wait_for(past_a_checkpoint, timeout=120, interval=0.01)
        proc_b.send_signal(signal.SIGSTOP)  # freeze at once, then kill: as if killed right there
        proc_b.kill()
        proc_b.wait(timeout=30)
        assert proc_b.returncode == -signal.SIGKILL
        before_kill = events_of(run_b)
        k = int(latest_checkpoint(run_b).name.split("-")[1])
        assert max(metrics_by_step(before_kill)) < N, "run B ended before the kill; the test needs a slower pace"

        proc_b2 = launch(run_b, "--resume", "latest")
        procs.append(proc_b2)
        assert proc_b2.wait(timeout=150) == 0, engine_log(run_b)
        assert proc_a.wait(timeout=150) == 0, engine_log(run_a)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return run_a, run_b, k, before_kill


def test_resumed_run_logs_the_same_losses_and_data_positions(runs):
    run_a, run_b, k, before_kill = runs
    events_b = events_of(run_b)
    assert [e["seq"] for e in events_b] == list(range(len(events_b)))  # seq continues after the kill
    a = metrics_by_step(events_of(run_a))
    assert sorted(a) == list(range(1, N + 1))

    # The resumed part starts with a status naming the checkpoint.
    marker = next(i for i, e in enumerate(events_b) if i >= len(before_kill) and e["type"] == "status")
    assert events_b[marker]["state"] == "starting"
    assert events_b[marker]["reason"] == f"resumed from checkpoint-{k}" and events_b[marker]["step"] == k
    resumed = metrics_by_step(events_b[marker:])
    assert sorted(resumed) == list(range(k + 1, N + 1))
    for step, m in resumed.items():
        assert m["loss"] == pytest.approx(a[step]["loss"], abs=1e-6), step
        assert m["data_position"] == a[step]["data_position"], step  # no batch repeated or skipped
        assert m["tokens_seen"] == a[step]["tokens_seen"] and m["lr"] == pytest.approx(a[step]["lr"], rel=1e-9)
    # Before the kill, B matched A too, up to where it was killed.
    for step, m in metrics_by_step(before_kill).items():
        assert m["loss"] == pytest.approx(a[step]["loss"], abs=1e-6), step
    # Consecutive positions: each step takes exactly micro_batch_size new windows.
    positions = [a[s]["data_position"] for s in range(1, N + 1)]
    for (e0, i0), (e1, i1) in zip(positions, positions[1:]):
        assert (e1 == e0 and i1 == i0 + 8) or (e1 == e0 + 1 and i1 <= 8)
    assert events_b[-1]["type"] == "status" and events_b[-1]["state"] == "finished"

    # Evaluations after the resume score the same, and the best-eval tracker carried over.
    evals_a = {e["step"]: e for e in events_of(run_a) if e["type"] == "eval"}
    evals_b = {e["step"]: e for e in events_b[marker:] if e["type"] == "eval"}
    assert sorted(evals_b) == [s for s in sorted(evals_a) if s > k]
    for step, e in evals_b.items():
        assert e["loss"] == pytest.approx(evals_a[step]["loss"], abs=1e-6)
        assert (e["best"], e["best_step"]) == (evals_a[step]["best"], evals_a[step]["best_step"])


def test_resumed_run_ends_with_the_same_weights_and_state(runs):
    from safetensors.torch import load_file

    from engine.checkpoint import load_training_state

    run_a, run_b, _, _ = runs
    ca, cb = latest_checkpoint(run_a), latest_checkpoint(run_b)
    assert ca.name == cb.name == f"checkpoint-{N}"
    wa, wb = load_file(ca / "model.safetensors"), load_file(cb / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert (wa[key] - wb[key]).abs().max().item() <= 1e-6, key
    sa, sb = load_training_state(ca), load_training_state(cb)
    assert sa["data"] == sb["data"] and sa["tokens_seen"] == sb["tokens_seen"] == N * 8 * 64
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == N


# --- refusals ---------------------------------------------------------------------------------


def _rewrite_state(ckpt: Path, edit) -> None:
    import torch

    from engine.checkpoint import load_training_state, write_manifest

    state = load_training_state(ckpt)
    edit(state)
    torch.save(state, ckpt / "training_state.pt")
    write_manifest(ckpt, state.get("step", 0))


@pytest.mark.parametrize(
    "edit, part",
    [
        (lambda s: s["rng"].pop("numpy"), "RNG state: numpy"),
        (lambda s: s.pop("optimizer"), "optimizer state"),
        (lambda s: s.pop("scheduler"), "scheduler state"),
        (lambda s: s.pop("data"), "data position"),
        (lambda s: s.pop("tokens_seen"), "counter: tokens_seen"),
        (lambda s: s.pop("best_eval_loss"), "counter: best_eval_loss"),
        (lambda s: s.update(device_type="cuda"), "RNG state: cuda"),
    ],
)
def test_a_checkpoint_missing_a_part_is_refused_naming_it(runs, tmp_path, edit, part):
    from engine.resume import ResumeError, load_resume_point

    run_a = runs[0]
    ckpt = tmp_path / f"checkpoint-{K}"
    shutil.copytree(run_a / "checkpoints" / f"checkpoint-{K}", ckpt)
    _rewrite_state(ckpt, edit)
    with pytest.raises(ResumeError, match="lacks .*" + part.replace(":", ":")):
        load_resume_point(ckpt)


def test_a_corrupt_checkpoint_is_refused(runs, tmp_path):
    from engine.resume import ResumeError, load_resume_point

    ckpt = tmp_path / "ckpt"
    shutil.copytree(runs[0] / "checkpoints" / f"checkpoint-{K}", ckpt)
    with open(ckpt / "model.safetensors", "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\1\2\3")
    with pytest.raises(ResumeError, match="model.safetensors: sha256 differs"):
        load_resume_point(ckpt)
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(ResumeError, match=r"missing model.safetensors \(model weights\)"):
        load_resume_point(ckpt)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_engine_refuses_to_resume_with_exit_2_one_line_and_no_change(runs, tmp_path, monkeypatch, capsys):
    """``python -m engine --resume``'s refusals, through its ``main`` in this process."""
    monkeypatch.setattr(os, "environ", dict(os.environ))  # what engine.__main__ sets at import stays here
    from engine.__main__ import main

    def engine(spec: str) -> tuple[int, str]:
        rc = main(["--run-dir", str(run_dir), "--resume", spec])
        return rc, capsys.readouterr().err

    run_a = runs[0]
    run_dir = tmp_path / "refused"
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(run_a / "run.yaml", run_dir / "run.yaml")
    shutil.copytree(run_a / "checkpoints" / f"checkpoint-{K}", run_dir / "checkpoints" / f"checkpoint-{K}")
    (run_dir / "checkpoints" / "latest").write_text(f"checkpoint-{K}\n")
    _rewrite_state(run_dir / "checkpoints" / f"checkpoint-{K}", lambda s: s["rng"].pop("torch"))
    before = _snapshot(run_dir)
    for spec in ("latest", str(run_dir / "checkpoints" / f"checkpoint-{K}"), str(tmp_path / "nowhere")):
        rc, stderr = engine(spec)
        assert rc == 2, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        if spec == "latest" or spec.endswith(f"checkpoint-{K}"):
            assert "cannot resume" in lines[0] and "RNG state: torch" in lines[0]
        else:
            assert "nowhere: checkpoint directory not found" in lines[0]
        assert _snapshot(run_dir) == before
    (run_dir / "checkpoints" / "latest").unlink()
    rc, stderr = engine("latest")
    assert rc == 2 and "no checkpoint to resume from" in stderr
    assert not (run_dir / "events.jsonl").exists() and not (run_dir / "logs").exists()
