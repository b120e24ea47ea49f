"""The CLI through Typer's CliRunner: help, bad input (exit 2, clear message), runs listing."""

import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from cockpit.cli import app
from engine.protocol import encode, make_event

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "attach", "runs", "stop"):
        assert command in result.output


def test_import_cockpit_cli_does_not_import_torch():
    code = (
        "import sys, cockpit.cli, cockpit.client, cockpit.launch, cockpit.headless; "
        "print(','.join(m for m in ('torch', 'transformers', 'accelerate', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_does_not_import_torch_or_textual():
    code = (
        "import sys\nfrom cockpit.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED=' + ','.join(m for m in ('torch', 'textual', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED=\n" in out.stdout + "\n"


def test_run_missing_config_file_exits_2(tmp_path):
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml"), "--detach"])
    assert result.exit_code == 2
    assert "nope.yaml: config file not found" in result.output


def test_run_unknown_shipped_config_name_exits_2():
    result = runner.invoke(app, ["run", "no-such-config", "--detach"])
    assert result.exit_code == 2
    assert "no shipped config of that name" in result.output and "demo" in result.output


def test_run_unknown_key_suggests_the_right_one(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  max_step: 10\n")
    result = runner.invoke(app, ["run", str(cfg), "--detach"])
    assert result.exit_code == 2
    assert "unknown key 'train.max_step'" in result.output
    assert "did you mean 'train.max_steps'" in result.output
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_run_invalid_yaml_names_the_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  lr: [1,\n")
    result = runner.invoke(app, ["run", str(cfg), "--detach"])
    assert result.exit_code == 2
    assert f"{cfg}:" in result.output and "invalid YAML" in result.output


def test_run_bad_value_names_the_key(tmp_path):
    result = runner.invoke(app, ["run", "demo", "--detach", "--set", "train.max_steps=-3"])
    assert result.exit_code == 2
    assert "train.max_steps" in result.output and "greater than or equal to 1" in result.output


def test_run_bad_set_syntax(tmp_path):
    result = runner.invoke(app, ["run", "demo", "--detach", "--set", "train.lr"])
    assert result.exit_code == 2
    assert "expected key=value" in result.output


def test_run_refuses_an_existing_run_dir(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.yaml").write_text("name: x\n")
    result = runner.invoke(app, ["run", "demo", "--detach", "--run-dir", str(run_dir)])
    assert result.exit_code == 2
    assert "already holds a run" in result.output
    assert (run_dir / "run.yaml").read_text() == "name: x\n"  # untouched


def test_headless_and_detach_exclude_each_other():
    result = runner.invoke(app, ["run", "demo", "--detach", "--headless"])
    assert result.exit_code == 2


def _fake_finished_run(root, name, state="finished", step=40, loss=1.25):
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.yaml").write_text("name: x\n")
    events = [
        make_event(
            "hello",
            name,
            0,
            ts=1.0,
            protocol=1,
            config={},
            preset="tiny",
            params=1000,
            world_size=1,
            device="cpu",
            pid=1,
            max_steps=step,
            tokens_per_step=64,
        ),
        make_event(
            "metrics",
            name,
            1,
            ts=2.0,
            step=step,
            loss=loss,
            lr=1e-3,
            tokens_per_s=10.0,
            tokens_seen=100,
            step_time_s=0.1,
            elapsed_s=1.0,
        ),
        make_event("status", name, 2, ts=3.0, state=state, step=step),
    ]
    (run / "events.jsonl").write_bytes(b"".join(encode(e) for e in events))
    (run / "status.json").write_text(
        json.dumps(
            {
                "run": name,
                "pid": 999999999,
                "state": state,
                "step": step,
                "max_steps": step,
                "loss": loss,
                "last_checkpoint": f"checkpoints/checkpoint-{step}",
                "heartbeat": time.time(),
            }
        )
    )
    return run


def test_runs_lists_state_step_loss_checkpoint(tmp_path):
    _fake_finished_run(tmp_path, "alpha", "finished", 40, 1.25)
    _fake_finished_run(tmp_path, "beta", "running", 7, 3.5)  # its pid is gone: it died
    result = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["alpha"]["state"] == "finished" and rows["alpha"]["step"] == 40 and rows["alpha"]["loss"] == 1.25
    assert rows["alpha"]["last_checkpoint"] == "checkpoints/checkpoint-40"
    assert rows["beta"]["state"] == "dead"
    table = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert table.exit_code == 0 and "alpha" in table.output and "checkpoint-40" in table.output


def test_runs_empty_directory(tmp_path):
    result = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0 and "no runs" in result.output


@pytest.mark.parametrize("command", ["attach", "stop"])
def test_unknown_run_exits_2(tmp_path, command):
    result = runner.invoke(app, [command, "ghost", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "ghost: no such run" in result.output


def test_stop_a_finished_run_says_the_engine_is_not_running(tmp_path):
    _fake_finished_run(tmp_path, "alpha")
    result = runner.invoke(app, ["stop", "alpha", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "engine is not running" in result.output


def test_cross_field_error_names_both_keys(tmp_path):
    result = runner.invoke(
        app, ["run", "demo", "--detach", "--set", "train.budget_usd=5", "--set", f"runs_dir={tmp_path / 'runs'}"]
    )
    assert result.exit_code == 2
    assert "demo.yaml: train: train.budget_usd needs train.price_per_hour" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["demo", "production"])
def test_shipped_configs_validate(name):
    from cockpit.launch import prepare_config

    _, cfg = prepare_config(name)
    assert cfg.data.path.is_absolute()


def test_nonfinite_off_survives_yaml(tmp_path):
    """YAML 1.1 reads a bare `off` as false; `train.nonfinite: off` must still mean "off"."""
    from engine.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  nonfinite: off\n")
    assert load_config(path).train.nonfinite == "off"
    assert load_config(path, ["train.nonfinite=skip"]).train.nonfinite == "skip"
