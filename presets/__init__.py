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

#: Model families the engine can build.
FAMILIES = ("llama", "mixtral", "gpt_neox")

#: Preset keys that describe the preset rather than the model's config.
META_KEYS = ("family", "description")


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
    """The fields of preset ``name`` as a dict (``family`` always present)."""
    path = preset_path(name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PresetError(f"{path}: expected a mapping of model fields")
    family = data.get("family")
    if family not in FAMILIES:
        raise PresetError(f"{path}: family {family!r} is not supported (known: {', '.join(FAMILIES)})")
    return data
