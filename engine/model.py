"""Build the model from a preset: a Transformers ``LlamaForCausalLM`` with random weights."""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, LlamaForCausalLM

from presets import PresetError, load_preset

#: Preset keys that describe the preset rather than the model.
_META_KEYS = ("family", "description")


def model_config(preset: str, overrides: dict[str, Any] | None, vocab_size: int, *,
                 bos_token_id: int | None = None, eos_token_id: int | None = None,
                 pad_token_id: int | None = None) -> LlamaConfig:
    """The Transformers config of ``preset`` with ``overrides`` (``cfg.model``) applied on top.

    Raises PresetError for an unknown preset or an override key the model does not have."""
    fields = load_preset(preset)
    known = set(LlamaConfig().to_dict())
    for key in overrides or {}:
        if key in _META_KEYS or key not in known:
            raise PresetError(f"model.{key}: not a field of a {fields['family']} model")
    fields.update(overrides or {})
    for key in _META_KEYS:
        fields.pop(key, None)
    return LlamaConfig(vocab_size=vocab_size, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                       pad_token_id=pad_token_id, **fields)


def build_model(config: LlamaConfig) -> LlamaForCausalLM:
    """Random initialisation (seed torch first for a reproducible one)."""
    return LlamaForCausalLM(config)


def count_params(model) -> int:
    """Trainable parameters, tied weights counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def flops_per_token(config: LlamaConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters plus attention (PaLM, appendix B)."""
    n_embed = config.vocab_size * config.hidden_size
    return 6.0 * (n_params - n_embed) + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len


#: Dense bf16/fp16 tensor-core peak FLOP/s per GPU, by a substring of its name. Used for MFU only.
PEAK_FLOPS = {
    "H200": 989e12, "H100": 989e12, "GH200": 989e12, "B200": 2250e12,
    "A100": 312e12, "A10G": 125e12, "A10": 125e12, "L40S": 362e12, "L40": 181e12, "L4": 121e12,
    "RTX 4090": 165e12, "RTX 3090": 71e12, "V100": 125e12, "T4": 65e12,
}


def peak_flops(device_name: str) -> float | None:
    """Peak FLOP/s of one device named ``device_name`` (e.g. 'NVIDIA H100 80GB HBM3'), or None."""
    for key, value in PEAK_FLOPS.items():
        if key in device_name:
            return value
    return None
