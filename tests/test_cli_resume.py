"""`cockpit run CONFIG --resume ...` as a user runs it: the run goes on in its own directory."""

import subprocess
import sys

import pytest
import yaml
from helpers import events_of, small_run_config, train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from cockpit.launch import new_run_dir, prepare_config
from engine.rundir import read_status

pytestmark = pytest.mark.slow

COCKPIT = [sys.executable, "-m", "cockpit"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, engine_data_dir):
    """A finished 20-step run with checkpoints at 10 and 20, and its config file; the resumes below go
    through `cockpit run --resume ... --headless` as a user runs them."""
    root = tmp_path_factory.mktemp("resume")
    config = root / "resume.yaml"
    config.write_text(
        small_run_config(
            engine_data_dir,
            {
                "name": "res",
                "runs_dir": str(root / "runs"),
                "train.max_steps": 20,
                "train.save_every": 10,
                "train.log_every": 1,
            },
        ).to_yaml()
    )
    config_path, cfg = prepare_config(str(config))
    run = new_run_dir(cfg, config_path)  # as `cockpit run` makes it; the engine trains in-process
    assert train_in_process(run) == 0, (run / "logs" / "engine.log").read_text()
    assert [p.name for p in (root / "runs").iterdir()] == [run.name]
    return config, run


def test_resume_latest_extends_a_finished_run_in_place(finished):
    config, run = finished
    before = events_of(run)
    out = subprocess.run(
        COCKPIT + ["run", str(config), "--resume", "latest", "--set", "train.max_steps=26", "--headless"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    steps = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("step ")]
    assert steps[0] == "21/26" and steps[-1] == "26/26"  # only the new steps are printed
    assert len(list((run.parent).iterdir())) == 1  # no new run directory
    after = events_of(run)
    assert [e["seq"] for e in after] == list(range(len(after)))  # one gapless stream across both lives
    assert after[: len(before)] == before
    assert read_status(run)["state"] == "finished" and read_status(run)["step"] == 26
    assert yaml.safe_load((run / "run.yaml").read_text())["train"]["max_steps"] == 26
    assert (run / "checkpoints" / "checkpoint-26").is_dir()


def test_resume_from_a_checkpoint_missing_a_part_exits_2_and_changes_nothing(finished, tmp_path):
    config, run = finished
    ckpt = run / "checkpoints" / "checkpoint-10"
    state = ckpt / "training_state.pt"
    saved = state.read_bytes()
    state.unlink()
    try:
        before = events_of(run)
        out = subprocess.run(
            COCKPIT + ["run", str(config), "--resume", str(ckpt), "--headless"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2, out.stdout + out.stderr
        assert "cannot resume" in out.stderr and "training_state.pt" in out.stderr
        assert events_of(run) == before
    finally:
        state.write_bytes(saved)


def test_resume_errors_name_what_is_wrong(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "demo", "--resume", "latest", "--set", f"runs_dir={tmp_path}"])
    assert result.exit_code == 2 and "no run of 'demo' with a checkpoint to resume" in result.output
    result = runner.invoke(app, ["run", "demo", "--resume", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "neither a run directory nor a checkpoint directory" in result.output
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.yaml").write_text("name: r\n")
    result = runner.invoke(app, ["run", "demo", "--resume", str(run)])
    assert result.exit_code == 2 and "no checkpoint to resume from" in result.output
