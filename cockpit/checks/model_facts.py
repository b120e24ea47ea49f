"""Model facts from the preset alone: shape and exact parameter counts, without torch or transformers.

``engine.model`` counts parameters on the meta device, which needs torch and transformers (seconds
to import); a readiness report cannot wait for that. This module reads the preset YAML, applies
``cfg.model`` overrides and the tokenizer's vocabulary size, fills in what the family's
Transformers config class defaults to, and counts parameters by formula, mirroring the modules
Transformers builds:

    llama     embed V*h; per layer q/k/v/o projections (+ biases with attention_bias), SwiGLU
              gate/up/down (+ biases with mlp_bias), two RMSNorm weights; final RMSNorm; lm_head
              V*h unless tied
    mixtral   the same attention and norms; per layer a router (E*h, no bias) and E SwiGLU experts
              (fused gate_up [E, 2i, h] and down [E, h, i], no biases)
    gpt_neox  embed V*h; per layer two LayerNorms (weight + bias), fused query_key_value (3h*h) and
              dense (h*h), biases with attention_bias (default on), MLP h->i->h with biases; final
              LayerNorm; lm_head (embed_out) V*h unless tied

A test keeps these formulas equal to ``engine.model.count_params(build_meta_model(...))`` for every
preset and for overrides (tied/untied, key-value heads, head_dim, vocabulary), through what
``cockpit presets list|show`` print (``preset_summary``).
"""

from __future__ import annotations

from typing import Any

from engine.sizing import embedding_rows, train_flops_per_token, training_memory
from presets import META_KEYS, PresetError, check_overrides, load_preset

#: What the family's Transformers config class uses for a field the preset does not set
#: (Transformers 5: LlamaConfig, MixtralConfig, GPTNeoXConfig). ``None`` means "derived"
#: (head_dim = hidden / heads; key-value heads = heads).
DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "head_dim": None,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
    },
    "mixtral": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": None,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    },
    "gpt_neox": {
        "vocab_size": 50432,
        "hidden_size": 6144,
        "intermediate_size": 24576,
        "num_hidden_layers": 44,
        "num_attention_heads": 64,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": False,
        "attention_bias": True,
    },
}


def resolved_fields(
    preset: str, overrides: dict[str, Any] | None = None, vocab_size: int | None = None
) -> dict[str, Any]:
    """The preset's fields with ``overrides`` on top, the vocabulary the run will have, and the
    family's defaults for what neither sets. Raises PresetError for an unknown preset or a key the
    family's model does not have."""
    fields = load_preset(preset)
    family = fields["family"]
    check_overrides(preset, overrides or {})
    out = dict(DEFAULTS[family])
    out.update({k: v for k, v in fields.items() if k not in META_KEYS})
    out.update(overrides or {})
    if vocab_size is not None:  # the tokenizer's vocabulary, or model.vocab_size padding beyond it
        out["vocab_size"] = embedding_rows(vocab_size, (overrides or {}).get("vocab_size"))
    out["family"] = family
    return out


def _int(fields: dict[str, Any], key: str) -> int:
    try:
        return int(fields[key])
    except (TypeError, ValueError):
        raise PresetError(f"{key}: expected an integer, got {fields[key]!r}") from None


def model_facts(cfg: Any, vocab_size: int | None = None) -> dict[str, Any]:
    """Shape and exact parameter counts of the model ``cfg`` (a RunConfig) trains.

    ``vocab_size``: the tokenizer's (None: the preset's, or ``model.vocab_size``). Keys: family,
    layers, hidden, heads, kv_heads, head_dim, q_dim, kv_dim, intermediate, experts,
    experts_per_token, vocab_size, max_position_embeddings, tied_embeddings, attention_bias,
    mlp_bias, total_params, active_params, embedding_params, layer_params (one decoder layer),
    expert_params (one expert of one layer; 0 for a dense model).
    Raises PresetError for an unknown preset."""
    return facts_from_fields(resolved_fields(cfg.preset, dict(cfg.model or {}), vocab_size))


def facts_from_fields(f: dict[str, Any]) -> dict[str, Any]:
    """``model_facts`` from resolved preset fields (``resolved_fields``)."""
    family = f["family"]
    V, h, L = _int(f, "vocab_size"), _int(f, "hidden_size"), _int(f, "num_hidden_layers")
    heads, inter = _int(f, "num_attention_heads"), _int(f, "intermediate_size")
    for key, value, least in (
        ("vocab_size", V, 1),
        ("hidden_size", h, 1),
        ("num_attention_heads", heads, 1),
        ("intermediate_size", inter, 1),
        ("num_hidden_layers", L, 0),
    ):
        if value < least:
            raise PresetError(f"{key}: must be at least {least}, got {value}")
    if family != "mixtral" and h % heads:  # as the config classes validate it
        raise PresetError(f"hidden_size ({h}) is not a multiple of num_attention_heads ({heads})")
    tied = bool(f.get("tie_word_embeddings"))
    if family == "gpt_neox":
        kv_heads, head_dim = heads, h // heads
    else:
        kv_heads = f.get("num_key_value_heads")
        kv_heads = heads if kv_heads is None else int(kv_heads)
        head_dim = f.get("head_dim")
        head_dim = h // heads if not head_dim else int(head_dim)
    q_dim, kv_dim = heads * head_dim, kv_heads * head_dim
    n_exp = _int(f, "num_local_experts") if family == "mixtral" else 0
    top_k = _int(f, "num_experts_per_tok") if n_exp else 0
    attention_bias = bool(f.get("attention_bias", False))
    mlp_bias = bool(f.get("mlp_bias", False))

    expert = 0
    if family == "gpt_neox":
        attn = h * 3 * h + h * h + (3 * h + h if attention_bias else 0)
        mlp = 2 * h * inter + inter + h
        norms = 2 * 2 * h
        final_norm = 2 * h
    else:
        attn = h * q_dim + 2 * h * kv_dim + q_dim * h
        if attention_bias and family == "llama":
            attn += q_dim + 2 * kv_dim + h
        norms = 2 * h
        final_norm = h
        if family == "mixtral":
            expert = 3 * h * inter
            mlp = n_exp * h + n_exp * expert  # router + experts
        else:
            mlp = 3 * h * inter + ((2 * inter + h) if mlp_bias else 0)
    layer = attn + mlp + norms
    embedding = V * h
    total = embedding + L * layer + final_norm + (0 if tied else V * h)
    active = total - L * expert * (n_exp - top_k)
    return {
        "family": family,
        "layers": L,
        "hidden": h,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "q_dim": q_dim,
        "kv_dim": kv_dim,
        "intermediate": inter,
        "experts": n_exp,
        "experts_per_token": top_k,
        "vocab_size": V,
        "max_position_embeddings": _int(f, "max_position_embeddings"),
        "tied_embeddings": tied,
        "attention_bias": attention_bias,
        "mlp_bias": mlp_bias,
        "total_params": total,
        "active_params": active,
        "embedding_params": embedding,
        "layer_params": layer,
        "expert_params": expert,
    }


def preset_summary(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything ``cockpit presets`` shows about one preset (with ``overrides``, as a run's
    ``model:``), counted with the preset's own vocabulary. Raises PresetError."""
    from engine.model import MODEL_CLASSES

    fields = load_preset(name)
    f = facts_from_fields(resolved_fields(name, overrides))
    seq_len = f["max_position_embeddings"]
    return {
        "name": name,
        "family": f["family"],
        "description": fields.get("description", ""),
        "model_class": MODEL_CLASSES[f["family"]],
        "layers": f["layers"],
        "hidden": f["hidden"],
        "heads": f["heads"],
        "kv_heads": f["kv_heads"],
        "intermediate": f["intermediate"],
        "experts": f["experts"],
        "experts_per_token": f["experts_per_token"],
        "vocab_size": f["vocab_size"],
        "max_seq_len": seq_len,
        "tied_embeddings": f["tied_embeddings"],
        "total_params": f["total_params"],
        "active_params": f["active_params"],
        "expert_params": f["expert_params"] * f["layers"],  # one expert of every layer
        "memory": {
            **training_memory(
                f["total_params"], f["layers"], f["hidden"], f["vocab_size"], f["experts_per_token"], seq_len
            ),
            "model": "bf16 mixed precision + AdamW: fp32 weights 4 B + fp32 grads 4 B + AdamW moments 8 B "
            "= 16 B/param; activations per sequence of max_seq_len, without checkpointing, extra",
        },
        "flops_per_token": train_flops_per_token(
            f["active_params"], f["embedding_params"], f["layers"], f["q_dim"], seq_len
        ),
    }
