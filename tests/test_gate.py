"""Gates: the decision rule (engine.gate), the ``gate`` config section, and the in-run gate stopping
a real tiny run that cannot improve."""

from __future__ import annotations

import json
import math

import pytest
from helpers import events_of, train_in_process

from engine.config import ConfigError, RunConfig, load_config
from engine.gate import decide, parse_improvement, read_metrics_file
from engine.protocol import Checkpoint, Eval, Log, Status
from engine.rundir import RunPaths, read_status


@pytest.mark.parametrize(("text", "share"), [("5%", 0.05), ("0.05", 0.05), (0.05, 0.05), ("-2%", -0.02), ("0", 0.0)])
def test_min_improvement_is_a_share_or_a_percentage(text, share):
    assert parse_improvement(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["5", "lots", "nan", "150%", ""])
def test_min_improvement_refuses_what_is_ambiguous_or_out_of_range(text):
    with pytest.raises(ValueError, match="improvement|%"):
        parse_improvement(text)


def test_decide_is_relative_and_lower_is_better():
    go = decide("eval_loss", 3.0, 3.3, 0.05)
    assert go.go and go.improvement == pytest.approx(0.3 / 3.3) and go.line().startswith("GO: eval_loss 3.0000")
    no_go = decide("eval_loss", 3.2, 3.3, 0.05)
    assert not no_go.go and no_go.margin < 0 and "NO-GO" in no_go.line()
    assert not decide("perplexity", 5.0, 4.0, -0.1).go and decide("perplexity", 4.3, 4.0, -0.1).go
    assert not decide("eval_loss", math.nan, 3.0, 0.0).go


def test_metrics_file_takes_eval_loss_or_perplexity(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"perplexity": math.e**2}))
    assert read_metrics_file(path)["eval_loss"] == pytest.approx(2.0)
    path.write_text(json.dumps({"loss": 1.5}))
    assert read_metrics_file(path)["perplexity"] == pytest.approx(math.exp(1.5))
    for bad, words in (("[1]", "JSON object"), ('{"eval_loss": "x"}', "finite number"), ("{", "invalid JSON")):
        path.write_text(bad)
        with pytest.raises(ValueError, match=words):
            read_metrics_file(path)


def test_gate_config_is_validated_at_load(tmp_path):
    cfg = RunConfig.model_validate({"gate": {"every": 5, "min_improvement": "2%", "at_steps": [9, 3, 3]}})
    assert cfg.gate.enabled and cfg.gate.min_improvement == pytest.approx(0.02) and cfg.gate.at_steps == [3, 9]
    assert not RunConfig().gate.enabled
    path = tmp_path / "run.yaml"
    path.write_text("gate:\n  metric: accuracy\n  min_improvment: 0.1\n  at_steps: [0]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert "gate.metric" in message and "did you mean 'gate.min_improvement'" in message and "gate.at_steps" in message


@pytest.fixture(scope="module")
def stalled_run(make_run_dir):
    """A run whose lr is too low to learn, gated every 2 steps against its own first eval."""
    run_dir = make_run_dir(
        "gate",
        {
            "train.max_steps": 8,
            "train.lr": 1e-9,
            "train.warmup_steps": 0,
            "train.eval_batches": 1,
            "train.log_every": 2,
            "gate.every": 2,
            "gate.min_improvement": "5%",
        },
    )
    assert train_in_process(run_dir) == 0
    return run_dir


def test_in_run_gate_stops_a_run_that_cannot_improve(stalled_run):
    run_dir = stalled_run
    events = events_of(run_dir)
    final = [e for e in events if isinstance(e, Status)][-1]
    assert final.state == "stopped" and final.step == 4, final
    assert final.reason.startswith("gate: NO-GO: eval_loss") and "the run's first eval (step 2)" in final.reason
    assert read_status(run_dir)["state"] == "stopped"
    assert [e.step for e in events if isinstance(e, Eval)] == [2, 4]
    saved = [e for e in events if isinstance(e, Checkpoint) and e.action == "saved"]
    assert [e.step for e in saved] == [4] and RunPaths(run_dir).checkpoint_dir(4).is_dir()
    assert any(isinstance(e, Log) and e.message.startswith("gate at step 4: NO-GO") for e in events)


def test_the_readiness_check_names_a_missing_baseline_and_nothing_held_out(tmp_path):
    from cockpit.checks.base import CheckContext
    from cockpit.checks.config import check_config

    cfg = RunConfig.model_validate(
        {"gate": {"every": 10, "baseline": "no/such/ckpt"}, "data": {"val_fraction": 0.0}}
    ).resolved(tmp_path)
    results = {r.id: r for r in check_config(CheckContext(None, cfg))}
    assert results["config.paths"].status == "fail" and "gate.baseline" in results["config.paths"].detail
    assert str(tmp_path / "no/such/ckpt") in results["config.paths"].detail
    assert results["config.intervals"].status == "fail" and "the gate" in results["config.intervals"].detail


def test_in_run_gate_against_a_baseline_checkpoint(make_run_dir, stalled_run):
    baseline = RunPaths(stalled_run).checkpoint_dir(4)
    run_dir = make_run_dir(
        "gate-baseline",
        {
            "train.max_steps": 4,
            "train.lr": 1e-9,
            "train.warmup_steps": 0,
            "train.eval_batches": 1,
            "gate.at_steps": [2],
            "gate.baseline": str(baseline),
            "gate.min_improvement": "1%",
        },
    )
    assert train_in_process(run_dir) == 0
    events = events_of(run_dir)
    final = [e for e in events if isinstance(e, Status)][-1]
    assert final.state == "stopped" and final.step == 2
    assert final.reason.startswith("gate: NO-GO") and "baseline checkpoint-4" in final.reason
    assert any(isinstance(e, Log) and e.message.startswith("gate: baseline checkpoint-4: eval_loss") for e in events)
