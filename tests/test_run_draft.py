"""The wizard's draft config and its numbers (cockpit/run_draft.py, cockpit/run_plan.py), in-process."""

from __future__ import annotations

import pytest

from cockpit.run_draft import RunDraft
from cockpit.run_plan import plan_run
from engine.config import ConfigError, load_config


def test_set_returns_a_new_draft_and_leaves_the_old_one():
    first = RunDraft({"preset": "tiny"})
    second = first.set("train.lr", 0.001).set("train.max_steps", 50)
    assert first.values == {"preset": "tiny"}
    assert second.get("train.lr") == 0.001 and second.get("train.max_steps") == 50
    assert second.set("train.lr", None).values == {"preset": "tiny", "train": {"max_steps": 50}}


def test_problems_are_tied_to_their_keys():
    checked = RunDraft({"preset": "tiny", "train": {"lr": -1, "micro_batch_size": 0}}).check()
    assert not checked.ok
    assert "greater than 0" in checked.problem_at("train.lr")
    assert "greater than or equal to 1" in checked.problem_at("train.micro_batch_size")
    assert checked.problem_at("train.max_steps") is None
    assert checked.problem_at("train") is not None  # a section knows a field inside it is wrong


def test_an_unknown_preset_and_a_cross_field_check_are_reported():
    checked = RunDraft({"preset": "tinyy", "train": {"budget_usd": 5}}).check()
    assert "tiny" in checked.problem_at("preset")  # names the known presets
    assert "price_per_hour" in checked.problem_at("train")


def test_saved_yaml_loads_as_the_same_config(tmp_path):
    draft = RunDraft(
        {
            "name": "mine",
            "preset": "tiny",
            "data": {"source": "text", "path": str(tmp_path / "c.txt")},
            "train": {"max_steps": 40, "micro_batch_size": 4, "betas": (0.9, 0.99)},
        }
    )
    path = draft.save(tmp_path / "mine.yaml")
    loaded = load_config(path)
    assert loaded == draft.check().config
    assert loaded.train.max_steps == 40 and loaded.train.betas == (0.9, 0.99)
    assert RunDraft.from_file(path).values == RunDraft(draft.values).set("train.betas", [0.9, 0.99]).values


def test_an_invalid_draft_is_not_saved(tmp_path):
    with pytest.raises(ConfigError, match=r"bad.yaml: train.seq_len: "):
        RunDraft({"train": {"seq_len": 2}}).save(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()


def test_plan_counts_tokens_steps_and_epochs():
    cfg = (
        RunDraft(
            {
                "train": {
                    "seq_len": 128,
                    "micro_batch_size": 16,
                    "grad_accum_steps": 2,
                    "max_steps": 300,
                    "price_per_hour": 2.0,
                }
            }
        )
        .check()
        .config
    )
    plan = plan_run(cfg, nproc=2, tokens_available=1_228_800, params=1_000_000, step_s=0.5)
    assert plan.sequences_per_step == 64 and plan.tokens_per_step == 8192
    assert plan.total_tokens == 300 * 8192
    assert plan.epochs == pytest.approx(2.0)
    assert plan.tokens_per_param == pytest.approx(2.4576)
    assert plan.eta_s == 150 and plan.cost_usd == pytest.approx(150 / 3600 * 2.0)
    assert any("under-trained" in h for h in plan.hints())


def test_plan_with_epochs_takes_the_engines_step_rule():
    cfg = RunDraft({"train": {"seq_len": 100, "micro_batch_size": 3, "epochs": 6}}).check().config
    assert plan_run(cfg).steps is None  # the data's size is not known yet
    plan = plan_run(cfg, tokens_available=1050)  # 10 sequences, 3 per step: ceil(6 x 10 / 3)
    assert plan.steps == 20 and plan.epochs == pytest.approx(20 * 300 / 1050)
    assert any("passes over the data" in h for h in plan.hints())
