"""The preset catalog: every preset builds on the meta device, and `cockpit presets` shows its counts."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cockpit.cli import app
from presets import FAMILIES, PresetError, list_presets, load_preset

EXPECTED = {"tiny", "nano", "dense_75m", "dense_175m", "mac_nano", "mac_mini", "expert_75m", "mac_base",
            "mac_plus", "neox_1_2b", "worker_9b"}


@pytest.fixture(scope="module")
def listed() -> dict[str, dict]:
    result = CliRunner().invoke(app, ["presets", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.output)}


def test_catalog_is_complete_and_documented():
    assert EXPECTED <= set(list_presets())
    for name in list_presets():
        fields = load_preset(name)
        assert fields["family"] in FAMILIES and fields.get("description"), name
        assert isinstance(fields.get("vocab_size"), int), name


def test_every_preset_builds_on_meta_and_counts_match_the_listing(listed):
    import torch

    from engine.model import active_params, build_meta_model, count_params, model_config

    assert set(listed) == set(list_presets())
    for name in list_presets():
        config = model_config(name, None)
        model = build_meta_model(config)
        assert all(p.device == torch.device("meta") for p in model.parameters()), name
        total = count_params(model)
        assert listed[name]["total_params"] == total, name
        assert listed[name]["active_params"] == active_params(model, config), name
        s = listed[name]
        assert (s["layers"], s["hidden"]) == (config.num_hidden_layers, config.hidden_size)
        assert s["memory"]["states"] == 16 * total


def test_shapes_from_the_issue(listed):
    shape = {n: (s["family"], s["layers"], s["hidden"], s["experts"]) for n, s in listed.items()}
    assert shape["dense_75m"] == ("llama", 12, 512, 0) and shape["dense_175m"] == ("llama", 16, 576, 0)
    assert shape["mac_nano"] == ("mixtral", 12, 448, 5) and shape["mac_mini"] == ("mixtral", 14, 512, 6)
    assert shape["expert_75m"] == ("mixtral", 16, 896, 6) and shape["mac_base"] == ("mixtral", 16, 640, 8)
    assert shape["mac_plus"] == ("mixtral", 18, 704, 8)
    neox = listed["neox_1_2b"]
    assert (neox["family"], neox["layers"], neox["hidden"], neox["heads"], neox["vocab_size"], neox["max_seq_len"]) \
        == ("gpt_neox", 24, 2048, 16, 50257, 2048)
    assert neox["model_class"] == "GPTNeoXForCausalLM"
    w = listed["worker_9b"]
    assert 8.5e9 < w["total_params"] < 9.5e9 and w["kv_heads"] < w["heads"]
    assert 70e6 < listed["dense_75m"]["total_params"] < 80e6
    assert 165e6 < listed["dense_175m"]["total_params"] < 185e6


def test_moe_active_is_total_minus_idle_experts(listed):
    from engine.model import _inactive_params_formula, model_config

    for name, s in listed.items():
        if s["family"] == "mixtral":
            assert s["experts_per_token"] == 2 and s["active_params"] < s["total_params"], name
            idle = s["expert_params"] // s["layers"] * (s["experts"] - 2) * s["layers"]
            assert s["total_params"] - s["active_params"] == idle
            # flops_per_token's config-only count agrees with the meta model's
            assert _inactive_params_formula(model_config(name, None)) == idle
        else:
            assert s["active_params"] == s["total_params"], name


def test_tiny_and_nano_unchanged():
    tiny, nano = load_preset("tiny"), load_preset("nano")
    assert {k: tiny[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                 "intermediate_size", "max_position_embeddings", "tie_word_embeddings")} \
        == {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 384, "max_position_embeddings": 512, "tie_word_embeddings": True}
    assert (nano["hidden_size"], nano["num_hidden_layers"], nano["num_attention_heads"], nano["num_key_value_heads"],
            nano["intermediate_size"], nano["max_position_embeddings"]) == (256, 6, 8, 4, 768, 1024)


def test_overrides_apply_and_the_tokenizer_vocab_wins():
    from engine.model import build_meta_model, count_params, model_config, preset_summary

    cfg = model_config("mac_nano", {"num_hidden_layers": 2, "num_local_experts": 3}, vocab_size=300)
    assert (cfg.num_hidden_layers, cfg.num_local_experts, cfg.vocab_size) == (2, 3, 300)
    assert type(build_meta_model(cfg)).__name__ == "MixtralForCausalLM"
    assert model_config("neox_1_2b", {"hidden_size": 256, "num_attention_heads": 4}).hidden_size == 256
    small = preset_summary("dense_75m", {"num_hidden_layers": 2})
    assert small["layers"] == 2 and small["total_params"] < preset_summary("dense_75m")["total_params"]
    assert count_params(build_meta_model(model_config("tiny", None))) == preset_summary("tiny")["total_params"]
    assert model_config("tiny", {"vocab_size": 320}, vocab_size=300).vocab_size == 320  # padded embedding
    with pytest.raises(PresetError, match=r"model.vocab_size \(256\) is smaller than the tokenizer's vocabulary \(300\)"):
        model_config("tiny", {"vocab_size": 256}, vocab_size=300)
    with pytest.raises(PresetError, match="model.num_local_experts: not a field of a llama model"):
        model_config("tiny", {"num_local_experts": 4})


def test_a_small_moe_trains_one_step():
    import torch

    from engine.model import build_model, flops_per_token, model_config

    cfg = model_config("mac_nano", {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
                                    "num_key_value_heads": 1, "intermediate_size": 16}, vocab_size=64)
    model = build_model(cfg)
    x = torch.randint(0, 64, (2, 8))
    model(input_ids=x, labels=x).loss.backward()
    assert flops_per_token(cfg, sum(p.numel() for p in model.parameters()), 8) > 0


def test_unknown_preset_exits_2_naming_the_known_ones():
    result = CliRunner().invoke(app, ["presets", "show", "huge"])
    assert result.exit_code == 2
    assert "unknown preset 'huge'" in result.output and "mac_mini" in result.output and "worker_9b" in result.output


def test_show_prints_counts_and_memory():
    result = CliRunner().invoke(app, ["presets", "show", "mac_mini"])
    assert result.exit_code == 0, result.output
    assert "active params" in result.output and "AdamW" in result.output
    shown = json.loads(CliRunner().invoke(app, ["presets", "show", "tiny", "--json"]).output)
    assert shown["fields"]["family"] == "llama" and shown["total_params"] > 0


def test_show_applies_overrides_like_a_run_config():
    result = CliRunner().invoke(app, ["presets", "show", "mac_mini", "--json", "--set", "num_hidden_layers=2",
                                      "--set", "model.num_local_experts=4"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert (s["layers"], s["experts"]) == (2, 4) and s["fields"]["num_hidden_layers"] == 2
    bad = CliRunner().invoke(app, ["presets", "show", "tiny", "--set", "num_experts_pe=2"])
    assert bad.exit_code == 2 and "model.num_experts_pe: not a field of a llama model" in bad.output
    typed = CliRunner().invoke(app, ["presets", "show", "tiny", "--set", "hidden_size=abc"])
    assert typed.exit_code == 2 and "hidden_size" in typed.output and "Traceback" not in typed.output


SMALL_MODELS = {
    "mac_nano": ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 64, "num_local_experts": 3}, "MixtralForCausalLM"),
    "neox_1_2b": ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128},
                  "GPTNeoXForCausalLM"),
}


@pytest.mark.parametrize("preset", sorted(SMALL_MODELS))
def test_engine_trains_a_shrunk_preset_and_its_checkpoint_loads(preset, make_run_dir, start_engine):
    from transformers import AutoModelForCausalLM

    from helpers import events_of

    fields, class_name = SMALL_MODELS[preset]
    run_dir = make_run_dir(preset, overrides={"preset": preset, "model": fields, "train.max_steps": 6,
                                              "train.warmup_steps": 1, "telemetry.enabled": False})
    rc = start_engine(run_dir).wait(timeout=150)
    assert rc == 0, (run_dir / "logs" / "engine.log").read_text()
    events = events_of(run_dir)
    assert events[-1]["state"] == "finished"
    hello = next(e for e in events if e["type"] == "hello")
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "checkpoint-6")
    assert type(model).__name__ == class_name and model.config.num_hidden_layers == 2
    assert hello["params"] == sum(p.numel() for p in model.parameters())
