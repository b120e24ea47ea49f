"""The preset catalog: every preset builds on the meta device, and `cockpit presets` shows its counts."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from cockpit.cli import app
from presets import FAMILIES, PresetError, list_presets, load_preset

EXPECTED = {
    "tiny",
    "nano",
    "dense_75m",
    "dense_175m",
    "mac_nano",
    "mac_mini",
    "expert_75m",
    "mac_base",
    "mac_plus",
    "neox_1_2b",
    "worker_9b",
}


@pytest.fixture(scope="module")
def listed() -> dict[str, dict]:
    result = CliRunner().invoke(app, ["presets", "list", "--json"])
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.output)}


def test_catalog_is_complete_and_documented(listed):
    assert set(listed) == set(list_presets())
    assert EXPECTED <= set(list_presets())
    for name in list_presets():
        fields = load_preset(name)
        assert fields["family"] in FAMILIES and fields.get("description"), name
        assert isinstance(fields.get("vocab_size"), int), name


#: (preset, model overrides, tokenizer vocabulary) beyond the presets as shipped.
OVERRIDES = [
    ("tiny", {"tie_word_embeddings": False}, None),
    ("tiny", {"num_key_value_heads": 4}, 500),
    ("nano", {"head_dim": 64}, None),
    ("nano", {"num_key_value_heads": 1, "intermediate_size": 1000}, 2048),
    ("tiny", {"attention_bias": True, "mlp_bias": True}, None),
    ("tiny", {"vocab_size": 1088}, 1000),  # padded embedding
    ("mac_nano", {"head_dim": 32, "num_key_value_heads": 7, "tie_word_embeddings": False}, 777),
    ("mac_nano", {"num_local_experts": 3, "num_experts_per_tok": 1}, None),
    ("neox_1_2b", {"attention_bias": False, "tie_word_embeddings": True, "num_hidden_layers": 2}, 1000),
]


def _shown(preset: str, overrides: dict) -> dict:
    """``cockpit presets show PRESET --json --set ...`` as a dict."""
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    result = CliRunner().invoke(app, ["presets", "show", preset, "--json", *sets])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize(
    "preset,overrides,vocab",
    [(p, {}, None) for p in list_presets()] + OVERRIDES,
    ids=lambda x: str(x) if not isinstance(x, dict) else ",".join(x) or "-",
)
def test_torch_free_figures_equal_the_meta_model(preset, overrides, vocab, listed):
    """What `presets list` and `presets show` print, and the model facts `cockpit check` sizes a run
    with, all come from formulas (no torch); here they meet the model Transformers builds."""
    import torch

    from cockpit.checks.model_facts import model_facts
    from engine.model import (
        active_params,
        build_meta_model,
        count_params,
        expert_sizes,
        flops_per_token,
        model_config,
        num_experts,
    )
    from engine.sizing import training_memory

    mcfg = model_config(preset, overrides, vocab)
    model = build_meta_model(mcfg)
    assert all(p.device == torch.device("meta") for p in model.parameters())
    total = count_params(model)
    n_exp, top_k = num_experts(mcfg)
    seq = mcfg.max_position_embeddings
    facts = model_facts(SimpleNamespace(preset=preset, model=overrides), vocab)
    assert (facts["total_params"], facts["active_params"]) == (total, active_params(model, mcfg, total))
    assert (facts["vocab_size"], facts["layers"], facts["hidden"], facts["max_position_embeddings"]) == (
        mcfg.vocab_size,
        mcfg.num_hidden_layers,
        mcfg.hidden_size,
        seq,
    )
    assert (facts["experts"], facts["experts_per_token"], facts["tied_embeddings"]) == (
        n_exp,
        top_k,
        bool(mcfg.tie_word_embeddings),
    )
    if facts["family"] != "gpt_neox":
        assert facts["kv_heads"] == mcfg.num_key_value_heads
        assert facts["head_dim"] == (getattr(mcfg, "head_dim", None) or mcfg.hidden_size // mcfg.num_attention_heads)
    if vocab is not None:  # the tokenizer's vocabulary is a run's, not the catalog's
        return
    shown = _shown(preset, overrides)
    want = {
        "model_class": type(model).__name__,
        "layers": mcfg.num_hidden_layers,
        "hidden": mcfg.hidden_size,
        "heads": mcfg.num_attention_heads,
        "kv_heads": getattr(mcfg, "num_key_value_heads", None) or mcfg.num_attention_heads,
        "intermediate": mcfg.intermediate_size,
        "experts": n_exp,
        "experts_per_token": top_k,
        "vocab_size": mcfg.vocab_size,
        "max_seq_len": seq,
        "tied_embeddings": bool(mcfg.tie_word_embeddings),
        "total_params": total,
        "active_params": active_params(model, mcfg, total),
        "expert_params": sum(expert_sizes(model, mcfg)),
        "flops_per_token": flops_per_token(mcfg, total, seq),
    }
    assert {k: shown[k] for k in want} == want
    memory = training_memory(total, mcfg.num_hidden_layers, mcfg.hidden_size, mcfg.vocab_size, top_k, seq)
    assert {k: shown["memory"][k] for k in memory} == memory and memory["states"] == 16 * total
    if not overrides:  # the catalog's row is show's, less the preset's fields
        assert listed[preset] == {k: v for k, v in shown.items() if k != "fields"}


def test_presets_list_and_show_import_neither_torch_nor_transformers():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom cockpit.cli import app\n"
        "for args in (['presets', 'list'], ['presets', 'show', 'mac_mini', '--set', 'num_hidden_layers=2']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0, args\n"
        "print('LOADED=' + ','.join(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED=\n" in out.stdout + "\n"


def test_shapes_from_the_issue(listed):
    shape = {n: (s["family"], s["layers"], s["hidden"], s["experts"]) for n, s in listed.items()}
    assert shape["dense_75m"] == ("llama", 12, 512, 0) and shape["dense_175m"] == ("llama", 16, 576, 0)
    assert shape["mac_nano"] == ("mixtral", 12, 448, 5) and shape["mac_mini"] == ("mixtral", 14, 512, 6)
    assert shape["expert_75m"] == ("mixtral", 16, 896, 6) and shape["mac_base"] == ("mixtral", 16, 640, 8)
    assert shape["mac_plus"] == ("mixtral", 18, 704, 8)
    neox = listed["neox_1_2b"]
    assert (neox["family"], neox["layers"], neox["hidden"], neox["heads"], neox["vocab_size"], neox["max_seq_len"]) == (
        "gpt_neox",
        24,
        2048,
        16,
        50257,
        2048,
    )
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
    assert {
        k: tiny[k]
        for k in (
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "intermediate_size",
            "max_position_embeddings",
            "tie_word_embeddings",
        )
    } == {
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 384,
        "max_position_embeddings": 512,
        "tie_word_embeddings": True,
    }
    assert (
        nano["hidden_size"],
        nano["num_hidden_layers"],
        nano["num_attention_heads"],
        nano["num_key_value_heads"],
        nano["intermediate_size"],
        nano["max_position_embeddings"],
    ) == (256, 6, 8, 4, 768, 1024)


def test_overrides_apply_and_the_tokenizer_vocab_wins():
    from cockpit.checks.model_facts import preset_summary
    from engine.model import build_meta_model, model_config

    cfg = model_config("mac_nano", {"num_hidden_layers": 2, "num_local_experts": 3}, vocab_size=300)
    assert (cfg.num_hidden_layers, cfg.num_local_experts, cfg.vocab_size) == (2, 3, 300)
    assert type(build_meta_model(cfg)).__name__ == "MixtralForCausalLM"
    assert model_config("neox_1_2b", {"hidden_size": 256, "num_attention_heads": 4}).hidden_size == 256
    small = preset_summary("dense_75m", {"num_hidden_layers": 2})
    assert small["layers"] == 2 and small["total_params"] < preset_summary("dense_75m")["total_params"]
    assert model_config("tiny", {"vocab_size": 320}, vocab_size=300).vocab_size == 320  # padded embedding
    with pytest.raises(
        PresetError, match=r"model.vocab_size \(256\) is smaller than the tokenizer's vocabulary \(300\)"
    ):
        model_config("tiny", {"vocab_size": 256}, vocab_size=300)
    with pytest.raises(PresetError, match="model.num_local_experts: not a field of a llama model"):
        model_config("tiny", {"num_local_experts": 4})


def test_a_small_moe_trains_one_step():
    import torch

    from engine.model import build_model, flops_per_token, model_config

    cfg = model_config(
        "mac_nano",
        {
            "num_hidden_layers": 1,
            "hidden_size": 32,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 16,
        },
        vocab_size=64,
    )
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
    result = CliRunner().invoke(
        app,
        ["presets", "show", "mac_mini", "--json", "--set", "num_hidden_layers=2", "--set", "model.num_local_experts=4"],
    )
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert (s["layers"], s["experts"]) == (2, 4) and s["fields"]["num_hidden_layers"] == 2
    bad = CliRunner().invoke(app, ["presets", "show", "tiny", "--set", "num_experts_pe=2"])
    assert bad.exit_code == 2 and "model.num_experts_pe: not a field of a llama model" in bad.output
    for bad, says in (
        ("hidden_size=abc", "model.hidden_size: 'abc' is not allowed: a positive integer (1 or more)"),
        ("num_hidden_layers=-1", "model.num_hidden_layers: -1 is not allowed: a positive integer (1 or more)"),
        ("hidden_size=130", "hidden_size (130) is not a multiple of num_attention_heads (4)"),
    ):
        typed = CliRunner().invoke(app, ["presets", "show", "tiny", "--set", bad])
        assert typed.exit_code == 2 and f"error: {says}" in typed.output and "Traceback" not in typed.output


SMALL_MODELS = {
    "mac_nano": (
        {
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 64,
            "num_local_experts": 3,
        },
        "MixtralForCausalLM",
    ),
    "neox_1_2b": (
        {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128},
        "GPTNeoXForCausalLM",
    ),
}


@pytest.mark.parametrize("preset", sorted(SMALL_MODELS))
def test_engine_trains_a_shrunk_preset_and_its_checkpoint_loads(preset, make_run_dir):
    from helpers import events_of, train_in_process
    from transformers import AutoModelForCausalLM

    fields, class_name = SMALL_MODELS[preset]
    run_dir = make_run_dir(
        preset,
        overrides={
            "preset": preset,
            "model": fields,
            "train.max_steps": 6,
            "train.warmup_steps": 1,
            "telemetry.enabled": False,
        },
    )
    rc = train_in_process(run_dir)
    assert rc == 0, (run_dir / "logs" / "engine.log").read_text()
    events = events_of(run_dir)
    assert events[-1]["state"] == "finished"
    hello = next(e for e in events if e["type"] == "hello")
    model = AutoModelForCausalLM.from_pretrained(run_dir / "checkpoints" / "checkpoint-6")
    assert type(model).__name__ == class_name and model.config.num_hidden_layers == 2
    assert hello["params"] == sum(p.numel() for p in model.parameters())
