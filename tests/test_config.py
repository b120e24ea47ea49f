"""engine.config: values that must not validate name their key and the allowed range; model
overrides are checked against the preset's family at load, torch-free; a warm-up longer than the
run is clamped (one place: ``TrainConfig.warmup``) with a note, in the engine too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError, RunConfig, TrainConfig, load_config
from presets import FIELDS, META_KEYS, list_presets, load_preset


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\n")
    return path


def refused(path: Path, item: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, [item])
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message


@pytest.mark.parametrize(
    "item,expected",
    [
        ("train.lr=.inf", "train.lr: inf is not allowed: a finite number > 0"),
        ("train.lr=.nan", "train.lr: nan is not allowed: a finite number > 0"),
        ("train.weight_decay=.nan", "train.weight_decay: nan is not allowed: a finite number >= 0"),
        ("train.min_lr_ratio=-.inf", "train.min_lr_ratio: -inf is not allowed: a finite number >= 0, <= 1"),
        ("data.val_fraction=.inf", "data.val_fraction: inf is not allowed: a finite number >= 0, < 0.5"),
        ("telemetry.interval_s=.inf", "telemetry.interval_s: inf is not allowed: a finite number > 0"),
        ("train.betas=[0.9, .nan]", "train.betas.1: nan is not allowed: a finite number"),
        ("train.betas=[2, 3]", "train.betas: each AdamW beta must be in [0, 1), got [2, 3]"),
        ("train.betas=[0.9, 1.0]", "train.betas: each AdamW beta must be in [0, 1), got [0.9, 1]"),
        ("train.betas=[-0.1, 0.9]", "train.betas: each AdamW beta must be in [0, 1)"),
    ],
)
def test_non_finite_numbers_and_betas_are_refused(config_file, item, expected):
    assert expected in refused(config_file, item)


def test_betas_at_the_edges_of_the_range_load(config_file):
    assert load_config(config_file, ["train.betas=[0, 0.999]"]).train.betas == (0.0, 0.999)


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_an_empty_config_file_is_refused(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{path}: is empty"):
        load_config(path)


def test_an_unknown_preset_is_refused_at_load(config_file):
    message = refused(config_file, "preset=huge")
    assert "preset: unknown preset 'huge'" in message and "tiny" in message and "mac_mini" in message


@pytest.mark.parametrize(
    "item,expected",
    [
        ("model.num_hidden_layers=-3", "model.num_hidden_layers: -3 is not allowed: a positive integer"),
        ("model.hidden_size=0", "model.hidden_size: 0 is not allowed: a positive integer"),
        ("model.num_attention_heads=2.5", "model.num_attention_heads: 2.5 is not allowed: a positive integer"),
        ("model.intermediate_size=true", "model.intermediate_size: True is not allowed: a positive integer"),
        ("model.head_dim=abc", "model.head_dim: 'abc' is not allowed: a positive integer"),
        ("model.rms_norm_eps=.nan", "model.rms_norm_eps: nan is not allowed: a finite number"),
        ("model.rope_theta=nan", "model.rope_theta: 'nan' is not allowed: a finite number"),
        (
            "model.rms_norm_eps=1e-5",
            "model.rms_norm_eps: '1e-5' is not allowed: a finite number (YAML read 1e-5 as text: write 1.0e-05)",
        ),
        ("model.attention_dropout=.inf", "model.attention_dropout: inf is not allowed: a finite number"),
        (
            "model.hidden_sise=64",
            "model.hidden_sise: not a field of a llama model (preset tiny); did you mean 'model.hidden_size'?",
        ),
        ("model.num_local_experts=4", "model.num_local_experts: not a field of a llama model (preset tiny)"),
        ("model.family=mixtral", "model.family: not a field of a llama model"),
    ],
)
def test_model_overrides_are_checked_against_the_family(config_file, item, expected):
    assert expected in refused(config_file, item)


def test_valid_model_overrides_load_even_when_the_preset_does_not_set_them(config_file):
    cfg = load_config(config_file, ["model.head_dim=32", "model.attention_bias=true", "model.num_hidden_layers=1"])
    assert cfg.model == {"head_dim": 32, "attention_bias": True, "num_hidden_layers": 1}
    moe = load_config(config_file, ["preset=mac_nano", "model.num_local_experts=3", "model.num_experts_per_tok=1"])
    assert moe.model["num_local_experts"] == 3


def test_config_validation_stays_torch_free(config_file):
    code = (
        "import sys\nfrom engine.config import load_config\n"
        f"load_config({str(config_file)!r}, ['model.num_hidden_layers=2', 'preset=mac_nano'])\n"
        "print(','.join(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_fields_are_fields_of_the_transformers_config_classes():
    from engine.model import config_class

    rope = {"rope_theta", "partial_rotary_factor", "rotary_pct", "rotary_emb_base"}  # folded into rope_parameters
    for family, fields in FIELDS.items():
        real = set(config_class(family)().to_dict()) | rope
        assert set(fields) <= real, (family, set(fields) - real)
    for name in list_presets():
        preset = load_preset(name)
        assert set(preset) - set(META_KEYS) <= set(FIELDS[preset["family"]]), name


# --- warm-up ----------------------------------------------------------------------------------


def test_warmup_longer_than_the_run_is_clamped_with_a_note():
    short = TrainConfig(max_steps=10, warmup_steps=30)
    assert short.warmup == 10
    assert short.warmup_note() == (
        "train.warmup_steps 30 is clamped to train.max_steps 10: the learning rate warms up over the whole run"
    )
    fits = TrainConfig(max_steps=100, warmup_steps=30)
    assert fits.warmup == 30 and fits.warmup_note() is None
    assert RunConfig.model_validate({"train": {"max_steps": 10}}).train.warmup_steps == 30  # as written


def test_the_engine_clamps_the_warmup_and_logs_it(tmp_path):
    """Trainer.build on a real (small) run: the scheduler warms up over the run's 4 steps, not 30."""
    from helpers import small_run_config

    from engine.bus import EventBus
    from engine.controls import Controls
    from engine.data.demo import generate_demo_corpus
    from engine.rundir import RunPaths
    from engine.trainer import Trainer

    generate_demo_corpus(tmp_path / "corpus.txt", samples=300, seed=1)
    cfg = small_run_config(
        tmp_path,
        {
            "train.max_steps": 4,
            "train.warmup_steps": 30,
            "tokenizer.vocab_size": 300,
            "telemetry.enabled": False,
            "events.enabled": False,
        },
    )
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    bus = EventBus(paths.root, serve=False)
    try:
        trainer = Trainer(cfg, paths, bus, Controls())
        trainer.build()
    finally:
        bus.close()
    assert cfg.train.warmup_steps == 4
    multiplier = trainer.scheduler.lr_lambdas[0]
    assert [multiplier(step) for step in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    logged = (paths.root / "events.jsonl").read_text()
    assert "train.warmup_steps 30 is clamped to train.max_steps 4" in logged
