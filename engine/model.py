"""Build the model from a preset: a Transformers causal LM with random weights.

Families map to Transformers config classes; the model itself always comes from
``AutoModelForCausalLM.from_config`` (no hand-written transformer):

    llama     LlamaConfig     dense, grouped-query attention, SwiGLU MLP
    mixtral   MixtralConfig   the same attention, a top-k routed mixture of SwiGLU experts per layer
    gpt_neox  GPTNeoXConfig   GPT-NeoX / Pythia: parallel attention + GELU MLP, biases, LayerNorm

``build_meta_model`` builds a model on the meta device (shapes only, no memory) and ``count_params``
/ ``active_params`` count it: the model's own counts, which a test holds the torch-free formulas of
``cockpit.checks.model_facts`` (what ``cockpit presets`` and ``cockpit check`` show) equal to.
This module imports neither torch nor transformers at import time; the arithmetic of sizes (FLOPs,
memory, the embedding's rows) lives in ``engine.sizing``.
"""

from __future__ import annotations

from typing import Any

from engine.sizing import embedding_rows, embedding_too_small, train_flops_per_token
from presets import META_KEYS, PresetError, check_overrides, load_preset

#: family -> name of its Transformers config class.
CONFIG_CLASSES = {"llama": "LlamaConfig", "mixtral": "MixtralConfig", "gpt_neox": "GPTNeoXConfig"}
#: family -> the class ``AutoModelForCausalLM.from_config`` builds for it.
MODEL_CLASSES = {"llama": "LlamaForCausalLM", "mixtral": "MixtralForCausalLM", "gpt_neox": "GPTNeoXForCausalLM"}


def config_class(family: str):
    import transformers

    try:
        return getattr(transformers, CONFIG_CLASSES[family])
    except KeyError:
        raise PresetError(f"family {family!r} is not supported (known: {', '.join(CONFIG_CLASSES)})") from None


def model_config(
    preset: str,
    overrides: dict[str, Any] | None = None,
    vocab_size: int | None = None,
    *,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
):
    """The Transformers config of ``preset`` with ``overrides`` (``cfg.model``) applied on top.

    ``vocab_size`` (the tokenizer's, for training) replaces the preset's; without it the preset's
    ``vocab_size`` is used (for counting). An explicit ``vocab_size`` override pads the embedding
    beyond the tokenizer's (never below it). Raises PresetError for an unknown preset or a key the
    model family does not have (``presets.FIELDS``)."""
    fields = load_preset(preset)
    family = fields["family"]
    check_overrides(preset, overrides or {})
    cls = config_class(family)
    fields.update(overrides or {})
    for key in META_KEYS:
        fields.pop(key, None)
    if vocab_size is not None:
        padded = (overrides or {}).get("vocab_size")
        problem = embedding_too_small(vocab_size, padded)
        if problem:
            raise PresetError(problem)
        fields["vocab_size"] = embedding_rows(vocab_size, padded)
    try:
        return cls(bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id, **fields)
    except Exception as exc:  # the config class's own validation: a wrong type or an inconsistent value
        detail = str(exc).strip().replace("\n", " ")
        raise PresetError(f"preset {preset} with model overrides {dict(overrides or {})}: {detail}") from None


def run_model_config(cfg: Any, tokenizer: Any):
    """The Transformers config a run (``engine.config.RunConfig``) trains: its preset and ``model:``
    overrides, sized for ``tokenizer``'s vocabulary, with its special token ids."""
    return model_config(
        cfg.preset,
        cfg.model,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def family_of(config) -> str:
    for family, name in CONFIG_CLASSES.items():
        if type(config).__name__ == name:
            return family
    return config.model_type


def build_model(config):
    """Random initialisation (seed torch first for a reproducible one)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config)


def build_meta_model(config):
    """The model on the meta device: shapes only, no memory, no initialisation."""
    import torch

    with torch.device("meta"):
        try:
            return build_model(config)
        except (ValueError, TypeError, AssertionError, RuntimeError) as exc:  # inconsistent shapes
            raise PresetError(f"cannot build a {family_of(config)} model from this config: {exc}") from None


def count_params(model) -> int:
    """Trainable parameters, tied weights counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def num_experts(config) -> tuple[int, int]:
    """(experts per layer, experts per token); (0, 0) for a dense model."""
    experts = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", None) or 0
    top_k = getattr(config, "num_experts_per_tok", None) or 0
    return int(experts), int(top_k) if experts else 0


def expert_sizes(model, config) -> list[int]:
    """Parameters of one expert, per MoE layer, read off ``model`` (meta or real).

    Works for fused expert modules (one ``[num_experts, ...]`` tensor per projection, Transformers 5)
    and for a ``ModuleList`` of experts."""
    import torch

    n_exp, _ = num_experts(config)
    if not n_exp:
        return []
    sizes = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] != "experts":
            continue
        if isinstance(module, torch.nn.ModuleList):
            sizes.append(sum(p.numel() for p in module[0].parameters()))
            continue
        per = 0
        for pname, p in module.named_parameters():
            if p.dim() == 0 or p.shape[0] != n_exp:
                raise ValueError(f"{name}.{pname}: not stacked over {n_exp} experts ({tuple(p.shape)})")
            per += p.numel() // n_exp
        sizes.append(per)
    return sizes


def active_params(model, config, total: int | None = None) -> int:
    """Parameters one token passes through: the total minus the experts the router does not pick."""
    total = count_params(model) if total is None else total
    n_exp, top_k = num_experts(config)
    return total - sum(size * (n_exp - top_k) for size in expert_sizes(model, config))


def _inactive_params_formula(config) -> int:
    """Unused expert parameters per token from the config alone (SwiGLU experts: 3 matrices).
    Kept equal to the meta-model count by a test; used where no model is at hand."""
    n_exp, top_k = num_experts(config)
    if not n_exp:
        return 0
    per_expert = 3 * config.hidden_size * config.intermediate_size
    return per_expert * (n_exp - top_k) * config.num_hidden_layers


def flops_per_token(config, n_params: int, seq_len: int) -> float:
    """``train_flops_per_token`` of the model ``config`` describes, ``n_params`` in total."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return train_flops_per_token(
        n_params - _inactive_params_formula(config),
        config.vocab_size * config.hidden_size,
        config.num_hidden_layers,
        heads * head_dim,
        seq_len,
    )


#: Dense bf16/fp16 tensor-core peak FLOP/s per GPU, by a substring of its name. Used for MFU only.
PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "GH200": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
    "A10G": 125e12,
    "A10": 125e12,
    "L40S": 362e12,
    "L40": 181e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 3090": 71e12,
    "V100": 125e12,
    "T4": 65e12,
}


def peak_flops(device_name: str) -> float | None:
    """Peak FLOP/s of one device named ``device_name`` (e.g. 'NVIDIA H100 80GB HBM3'), or None."""
    for key, value in PEAK_FLOPS.items():
        if key in device_name:
            return value
    return None
