"""Model preset catalog: one YAML file per preset in this directory. Torch-free.

A preset names a model ``family`` and the fields of that family's Transformers config
(``hidden_size``, ``num_hidden_layers``, ...); ``description`` is for people.

Families (see ``engine.model``): ``llama`` (dense, grouped-query attention; ``LlamaConfig``),
``mixtral`` (mixture of experts, top-k routing; ``MixtralConfig``), ``gpt_neox`` (``GPTNeoXConfig``).

``vocab_size`` in a preset is the vocabulary the preset is *counted* with (``cockpit presets``);
a training run always takes the vocabulary size of its tokenizer instead.
"""

from __future__ import annotations

from pathlib import Path

import yaml

DIR = Path(__file__).resolve().parent
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built with it: the catalog loads 7x faster

#: Model families the engine can build.
FAMILIES = ("llama", "mixtral", "gpt_neox")

#: Preset keys that describe the preset rather than the model's config.
META_KEYS = ("family", "description")

_COMMON_FIELDS = (
    "_name_or_path", "architectures", "attention_dropout", "bos_token_id", "chunk_size_feed_forward", "dtype",
    "eos_token_id", "hidden_act", "hidden_size", "id2label", "initializer_range", "intermediate_size",
    "is_encoder_decoder", "label2id", "max_position_embeddings", "model_type", "num_attention_heads",
    "num_hidden_layers", "output_attentions", "output_hidden_states", "pad_token_id", "problem_type", "return_dict",
    "rope_parameters", "tie_word_embeddings", "transformers_version", "use_cache", "vocab_size",
    # rotary settings the config classes take and fold into ``rope_parameters``
    "rope_theta", "partial_rotary_factor", "rotary_pct", "rotary_emb_base",
)

#: The fields a preset or a run's ``model:`` overrides may set, per family: those of the family's
#: Transformers config class (Transformers 5 ``LlamaConfig``, ``MixtralConfig``, ``GPTNeoXConfig``;
#: a test keeps them equal), known here so that checking a key needs no torch or transformers.
FIELDS: dict[str, frozenset[str]] = {
    "llama": frozenset(_COMMON_FIELDS + ("attention_bias", "head_dim", "mlp_bias", "num_key_value_heads",
                                         "pretraining_tp", "rms_norm_eps")),
    "mixtral": frozenset(_COMMON_FIELDS + ("head_dim", "num_experts_per_tok", "num_key_value_heads",
                                           "num_local_experts", "output_router_logits", "rms_norm_eps",
                                           "router_aux_loss_coef", "router_jitter_noise", "sliding_window")),
    "gpt_neox": frozenset(_COMMON_FIELDS + ("attention_bias", "classifier_dropout", "hidden_dropout", "is_decoder",
                                            "layer_norm_eps", "use_parallel_residual")),
}


class PresetError(ValueError):
    """Unknown or malformed preset; the message names it and the known ones."""


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.stem for p in DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; raises PresetError when there is none."""
    path = DIR / f"{name}.yaml"
    if not name or "/" in name or "\\" in name or name.startswith(".") or not path.is_file():
        known = ", ".join(list_presets()) or "none"
        raise PresetError(f"unknown preset {name!r} (known: {known})")
    return path


def load_preset(name: str) -> dict:
    """The fields of preset ``name`` as a dict (``family`` always present); raises PresetError for
    an unknown preset, or one with a field its family's model does not have."""
    path = preset_path(name)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of model fields")
    family = data.get("family")
    if family not in FAMILIES:
        raise PresetError(f"{path}: family {family!r} is not supported (known: {', '.join(FAMILIES)})")
    for key in data:
        if key not in META_KEYS and key not in FIELDS[family]:
            raise PresetError(f"preset {name}: {key!r} is not a field of a {family} model")
    return data


def check_overrides(name: str, family: str, overrides: dict) -> None:
    """Raises PresetError for a key of ``overrides`` (a run's ``model:``) that is not a field of a
    ``family`` model (preset ``name``)."""
    for key in overrides:
        if key in META_KEYS or key not in FIELDS[family]:
            raise PresetError(f"model.{key}: not a field of a {family} model (preset {name})")
