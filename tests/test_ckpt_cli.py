"""`cockpit ckpt list|show|verify` on the real checkpoints of one tiny run trained in-process."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from cockpit.client import read_events
from engine.protocol import Checkpoint, Eval, Metrics
from engine.rundir import RunPaths

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(make_run_dir):
    run_dir = make_run_dir(
        "ckpt",
        {"train.max_steps": 12, "train.save_every": 5, "train.eval_every": 5, "train.log_every": 1},
    )
    assert train_in_process(run_dir) == 0
    return run_dir


def _events(run_dir):
    return list(read_events(RunPaths(run_dir).events))


def test_ckpt_help_lists_its_commands():
    result = runner.invoke(app, ["ckpt", "--help"])
    assert result.exit_code == 0
    for command in ("list", "show", "verify", "compare"):
        assert command in result.output


def test_list_json_matches_the_events_and_the_directories(run_dir):
    result = runner.invoke(app, ["ckpt", "list", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.output)
    events = _events(run_dir)
    saved = {e.step: e for e in events if isinstance(e, Checkpoint) and e.action == "saved"}
    evals = {e.step: e for e in events if isinstance(e, Eval)}
    losses = {e.step: e.loss for e in events if isinstance(e, Metrics)}
    assert [r["step"] for r in records] == sorted(saved) and len(records) >= 2
    for r in records:
        assert r["directory"] == saved[r["step"]].path
        assert r["reason"] == saved[r["step"]].reason
        assert r["train_loss"] == losses[max(s for s in losses if s <= r["step"])]
        ev = evals.get(r["step"])
        assert (r["eval_loss"], r["perplexity"]) == ((ev.loss, ev.perplexity) if ev else (None, None))
        assert r["complete"] and r["size_bytes"] == sum(
            p.stat().st_size for p in (run_dir / r["directory"]).rglob("*") if p.is_file()
        )
    assert [r["latest"] for r in records] == [
        r["directory"] == "checkpoints/" + RunPaths(run_dir).latest_name() for r in records
    ]
    assert sum(r["latest"] for r in records) == 1
    with_eval = [r for r in records if r["eval_loss"] is not None]
    assert len(with_eval) >= 2
    best = min(with_eval, key=lambda r: r["eval_loss"])
    assert [r["step"] for r in records if r["best"]] == [best["step"]]


def test_list_table_shows_every_checkpoint(run_dir):
    result = runner.invoke(app, ["ckpt", "list", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0, result.output
    saved = [e for e in _events(run_dir) if isinstance(e, Checkpoint) and e.action == "saved"]
    rows = [line.split() for line in result.output.splitlines()]
    for e in saved:
        assert [str(e.step), e.reason] in [row[:2] for row in rows]
    assert "latest" in result.output and "best" in result.output


def test_show_json_lists_the_manifest_files(run_dir):
    paths = RunPaths(run_dir)
    latest = paths.checkpoints / paths.latest_name()
    manifest = json.loads((latest / "manifest.json").read_text())
    for ref in (str(latest), f"{run_dir}:{manifest['step']}", str(run_dir)):
        result = runner.invoke(app, ["ckpt", "show", ref, "--json"])
        assert result.exit_code == 0, result.output
        info = json.loads(result.output)
        assert info["step"] == manifest["step"]
        assert {f["path"]: (f["size"], f["sha256"]) for f in info["files"]} == {
            rel: (m["size"], m["sha256"]) for rel, m in manifest["files"].items()
        }
        assert info["checkpoint"]["step"] == manifest["step"] and info["checkpoint"]["latest"]
        model = json.loads((latest / "config.json").read_text())
        assert info["config"]["hidden_size"] == model["hidden_size"] == 64
        assert info["config"]["max_steps"] == 12


def test_verify_ok_then_a_flipped_byte_fails_naming_the_file(run_dir, tmp_path):
    paths = RunPaths(run_dir)
    latest = paths.checkpoints / paths.latest_name()
    result = runner.invoke(app, ["ckpt", "verify", str(latest)])
    n = len(json.loads((latest / "manifest.json").read_text())["files"])
    assert result.exit_code == 0 and result.output.startswith(f"ok: {n} files match")
    copy = tmp_path / latest.name
    shutil.copytree(latest, copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    (copy / "tokenizer.json").unlink()
    result = runner.invoke(app, ["ckpt", "verify", str(copy)])
    assert result.exit_code == 1
    assert "model.safetensors: sha256 differs" in result.output and "tokenizer.json: missing" in result.output
    assert "config.json" not in result.output
    (copy / "manifest.json").unlink()
    result = runner.invoke(app, ["ckpt", "verify", str(copy)])
    assert result.exit_code == 1 and f"{copy / 'manifest.json'}: unreadable" in result.output


def test_resume_still_finds_verify_in_engine_checkpoint():
    import engine.checkpoint
    import engine.checkpoint_index

    assert engine.checkpoint.verify_checkpoint is engine.checkpoint_index.verify_checkpoint


@pytest.mark.parametrize("kind", ["missing", "plain dir", "no step"])
def test_bad_checkpoint_reference_is_exit_2(run_dir, tmp_path, kind):
    ref = {
        "missing": str(tmp_path / "nope"),
        "plain dir": str(tmp_path),
        "no step": f"{run_dir}:999",
    }[kind]
    result = runner.invoke(app, ["ckpt", "verify", ref])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and ref.split(":")[0] in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    expected = {
        "missing": "no such checkpoint",
        "plain dir": "not a checkpoint directory",
        "no step": "no checkpoint of step 999",
    }
    assert expected[kind] in result.output


def _compare(*args):
    result = runner.invoke(app, ["ckpt", "compare", *args], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result


def test_compare_json_deltas_equal_the_events(run_dir):
    events = _events(run_dir)
    evals = {e.step: e for e in events if isinstance(e, Eval)}
    losses = {e.step: e.loss for e in events if isinstance(e, Metrics)}
    a, b = sorted(evals)[:2]
    info = json.loads(_compare(f"{run_dir}:{a}", f"{run_dir}:{b}", "--json").output)
    assert (info["a"]["step"], info["b"]["step"]) == (a, b)
    expected = {
        "train_loss": (losses[a], losses[b]),
        "eval_loss": (evals[a].loss, evals[b].loss),
        "perplexity": (evals[a].perplexity, evals[b].perplexity),
    }
    for name, (va, vb) in expected.items():
        assert info["metrics"][name] == {"a": va, "b": vb, "delta": vb - va}
    sizes = [
        sum(p.stat().st_size for p in RunPaths(run_dir).checkpoint_dir(s).rglob("*") if p.is_file()) for s in (a, b)
    ]
    assert info["size"] == {"a": sizes[0], "b": sizes[1], "delta": sizes[1] - sizes[0]}
    assert info["config"] == {} and info["model_config"] == {}


def test_compare_across_runs_lists_exactly_the_changed_key(run_dir, tmp_path):
    import yaml

    other = tmp_path / "other-run"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("*.sock"))
    run_yaml = RunPaths(other).run_yaml
    data = yaml.safe_load(run_yaml.read_text())
    old_lr = data["train"]["lr"]
    data["train"]["lr"] = old_lr * 2
    run_yaml.write_text(yaml.safe_dump(data))
    latest = RunPaths(run_dir).latest_name()
    info = json.loads(_compare(str(run_dir), str(other), "--json").output)
    assert info["config"] == {"train.lr": [old_lr, old_lr * 2]}
    assert info["model_config"] == {} and info["size"]["delta"] == 0
    assert info["a"]["path"].endswith(latest) and info["b"]["run"] == str(other)
    assert all(m["delta"] == 0 for m in info["metrics"].values() if m["a"] is not None)
    output = _compare(str(run_dir), str(other)).output
    assert f"train.lr: {old_lr!r} -> {old_lr * 2!r}" in output and "run.yaml: 1 key differs" in output
    assert "config.json: no differences" in output


@pytest.mark.parametrize("side", [0, 1])
def test_compare_missing_checkpoint_is_exit_2(run_dir, side):
    refs = [str(run_dir), str(run_dir)]
    refs[side] = f"{run_dir}:999"
    result = runner.invoke(app, ["ckpt", "compare", *refs])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "no checkpoint of step 999" in result.output and "Traceback" not in result.output
