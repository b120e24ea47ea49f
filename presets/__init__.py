"""Model preset catalog: one YAML file per preset in this directory. Torch-free.

A preset names a model ``family`` and the fields of that family's Transformers config
(``hidden_size``, ``num_hidden_layers``, ...); ``description`` is for people.

Families (see ``engine.model``): ``llama`` (dense, grouped-query attention; ``LlamaConfig``),
``mixtral`` (mixture of experts, top-k routing; ``MixtralConfig``), ``gpt_neox`` (``GPTNeoXConfig``).

``vocab_size`` in a preset is the vocabulary the preset is *counted* with (``cockpit presets``);
a training run always takes the vocabulary size of its tokenizer instead.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import yaml

DIR = Path(__file__).resolve().parent
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built with it: the catalog loads 7x faster

#: Model families the engine can build.
FAMILIES = ("llama", "mixtral", "gpt_neox")

#: Preset keys that describe the preset rather than the model's config.
META_KEYS = ("family", "description")

#: Model fields that are sizes or counts: positive integers whichever family has them.
COUNT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "max_position_embeddings",
    "num_local_experts",
    "num_experts_per_tok",
)

_COMMON = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "hidden_act",
    "initializer_range",
    "attention_dropout",
    "tie_word_embeddings",
    "use_cache",
    "rope_parameters",
)
_LLAMA_ATTENTION = ("num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "partial_rotary_factor")
#: The model fields a preset or a run's ``model:`` may set, per family: the fields of the family's
#: Transformers config class (a test keeps them so) less the generic ones (output flags, labels,
#: token ids, which the engine sets from the tokenizer). Torch-free, so a config is checked at load.
FIELDS: dict[str, tuple[str, ...]] = {
    "llama": (*_COMMON, *_LLAMA_ATTENTION, "attention_bias", "mlp_bias", "pretraining_tp"),
    "mixtral": (
        *_COMMON,
        *_LLAMA_ATTENTION,
        "num_local_experts",
        "num_experts_per_tok",
        "output_router_logits",
        "router_aux_loss_coef",
        "router_jitter_noise",
        "sliding_window",
    ),
    "gpt_neox": (
        *_COMMON,
        "attention_bias",
        "hidden_dropout",
        "classifier_dropout",
        "layer_norm_eps",
        "use_parallel_residual",
        "rotary_pct",
        "rotary_emb_base",
    ),
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


def _as_text_hint(value) -> str:
    """How to write a number YAML read as text (``1e-5``: YAML 1.1 wants a dot, ``1.0e-5``)."""
    try:
        number = float(value) if isinstance(value, str) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number):
        return ""
    mantissa, _, exponent = repr(number).partition("e")
    written = (mantissa if "." in mantissa else f"{mantissa}.0") + (f"e{exponent}" if exponent else "")
    return f" (YAML read {value} as text: write {written})"


def check_overrides(name: str, overrides: dict) -> None:
    """Check a run's ``model:`` overrides against preset ``name``, torch-free (at config load): each
    key is a field of the preset's family (``FIELDS``; "did you mean" for a near miss), sizes and
    counts (``COUNT_FIELDS``) are positive integers, and numbers (a float, or a field the preset
    gives a float) are finite numbers. Raises PresetError naming ``model.<key>``."""
    fields = load_preset(name)
    family = fields["family"]
    for key, value in overrides.items():
        if key not in FIELDS[family]:
            close = difflib.get_close_matches(key, FIELDS[family], n=1)
            hint = (
                f"; did you mean 'model.{close[0]}'?"
                if close
                else f"; a {family} model has {', '.join(sorted(FIELDS[family]))}"
            )
            raise PresetError(f"model.{key}: not a field of a {family} model (preset {name}){hint}")
        if key in COUNT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PresetError(f"model.{key}: {value!r} is not allowed: a positive integer (1 or more)")
        elif isinstance(value, float) or isinstance(fields.get(key), float):  # a number in the preset stays one
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PresetError(f"model.{key}: {value!r} is not allowed: a finite number" + _as_text_hint(value))
