"""The model card (README.md) of an exported checkpoint, without torch: :func:`card_facts` gathers what
the run directory knows about one checkpoint (run, preset, architecture, step, tokens seen, data,
losses at that step, stored evaluations), :func:`render_card` writes it as Markdown with the YAML front
matter the Hugging Face hub reads (``library_name``, ``pipeline_tag``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.checkpoint_index import MODEL_CONFIG, list_checkpoints, read_manifest
from engine.digest import file_sha256
from engine.protocol import Event, Metrics, decode_events
from engine.rundir import RunPaths, checkpoint_step, run_dir_of

#: A data file larger than this is named with its size but not hashed (the export must not read a
#: corpus of many gigabytes just to describe it).
HASH_LIMIT_BYTES = 256 << 20
#: The model config keys the card lists under "Architecture", in order.
SHAPE_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)


@dataclass(frozen=True)
class CardFacts:
    """Everything the card says; None where the run directory does not know."""

    name: str
    """The run's id (its directory's name, as its events and ``cockpit runs`` name it), else the
    checkpoint directory's."""
    step: int | None
    """The step the checkpoint was saved at."""
    params: int | None = None
    """Parameters of the exported model."""
    dtype: str | None = None
    """The dtype of the exported weights."""
    config_name: str | None = None
    """The ``name`` of the run's config, when it has one."""
    preset: str | None = None
    """The model preset of the run."""
    architecture: dict[str, Any] = field(default_factory=dict)
    """``architectures[0]`` and the :data:`SHAPE_KEYS` of its ``config.json``."""
    tokens_seen: int | None = None
    """Training tokens consumed up to the step (the last ``metrics`` event at or before it)."""
    data: dict[str, Any] = field(default_factory=dict)
    """The training data: source, path, and the sha256 of the file or of the shards' manifest."""
    train_loss: float | None = None
    eval_loss: float | None = None
    perplexity: float | None = None
    stored_evals: list[dict[str, Any]] = field(default_factory=list)
    """Evaluations made after the fact (``runs/<run>/evals/``): dicts with ``data``, ``loss``,
    ``perplexity`` (and ``tokens`` when known)."""


def read_run_events(run_dir: Path) -> Iterator[Event]:
    """The complete, valid events of a run's events file (a torn or malformed line is skipped)."""
    try:
        f = open(RunPaths(run_dir).events, "rb")
    except OSError:
        return
    with f:
        yield from decode_events(line for line in f if line.endswith(b"\n"))


def _data_facts(cfg) -> dict[str, Any]:
    from engine.data.manifest import MANIFEST

    path = Path(cfg.data.path)
    # the file's name, not where it lay on the machine that trained (an export is shared): the sha256 names the data
    facts: dict[str, Any] = {"source": cfg.data.source, "path": path.name}
    target = path / MANIFEST if path.is_dir() else path
    try:
        if target.is_file() and target.stat().st_size <= HASH_LIMIT_BYTES:
            facts["manifest_sha256" if path.is_dir() else "sha256"] = file_sha256(target)
        elif target.is_file():
            facts["size_bytes"] = target.stat().st_size
    except OSError:
        pass
    return facts


def card_facts(
    ckpt_dir: str | os.PathLike,
    *,
    params: int | None = None,
    dtype: str | None = None,
    stored_evals: list[dict[str, Any]] | None = None,
) -> CardFacts:
    """What the run directory around ``ckpt_dir`` says about it (only the checkpoint's own files when
    it lies outside a run)."""
    ckpt_dir = Path(ckpt_dir)
    try:
        step = read_manifest(ckpt_dir).get("step")
    except ValueError:
        step = checkpoint_step(ckpt_dir.name)
    try:
        model = json.loads((ckpt_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        model = {}
    architecture = {k: model[k] for k in SHAPE_KEYS if k in model}
    if model.get("architectures"):
        architecture = {"architecture": model["architectures"][0], **architecture}
    facts: dict[str, Any] = {
        "name": ckpt_dir.name,
        "step": step,
        "params": params,
        "dtype": dtype,
        "architecture": architecture,
        "stored_evals": list(stored_evals or []),
    }
    run_dir = run_dir_of(ckpt_dir)
    if run_dir is None:
        return CardFacts(**facts)
    if stored_evals is None:  # the run's own stored evaluations of this checkpoint (cockpit ckpt eval, gate)
        from engine.eval_store import read_evals

        facts["stored_evals"] = [r.card_row() for r in read_evals(run_dir)[0] if r.step == step]
    from engine.config import ConfigError, read_run_config

    facts["name"] = run_dir.name
    try:
        cfg = read_run_config(run_dir)
        facts.update(config_name=cfg.name, preset=cfg.preset, data=_data_facts(cfg))
    except ConfigError:
        pass
    events = list(read_run_events(run_dir))
    seen = [e.tokens_seen for e in events if isinstance(e, Metrics) and step is not None and e.step <= step]
    if seen:
        facts["tokens_seen"] = seen[-1]
    record = next((r for r in list_checkpoints(run_dir, events) if r.step == step), None)
    if record is not None:
        facts.update(train_loss=record.train_loss, eval_loss=record.eval_loss, perplexity=record.perplexity)
    return CardFacts(**facts)


def _num(value: float | None, digits: int = 4) -> str:
    return "--" if value is None else f"{value:.{digits}f}"


def render_card(facts: CardFacts, load_path: str = ".") -> str:
    """The README.md of an export: YAML front matter, then the run, the model, the data, the
    metrics at the checkpoint's step, and how to load it from ``load_path``."""
    front = {"library_name": "transformers", "pipeline_tag": "text-generation", "tags": ["cockpit"]}
    step = "--" if facts.step is None else f"{facts.step:,}"
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", ""]
    lines += [f"# {facts.name} (step {step})", ""]
    lines += [f"A causal language model trained with cockpit: run `{facts.name}`, checkpoint of step {step}.", ""]
    if facts.config_name and facts.config_name != facts.name:
        lines += [f"Run config name: `{facts.config_name}`.", ""]
    lines += ["## Model", ""]
    if facts.preset:
        lines.append(f"- preset: `{facts.preset}`")
    for key, value in facts.architecture.items():
        lines.append(f"- {key.replace('_', ' ')}: `{value}`")
    if facts.params is not None:
        lines.append(f"- parameters: {facts.params:,}")
    if facts.dtype:
        lines.append(f"- weights: `{facts.dtype}` (model.safetensors)")
    lines += ["", "## Training", ""]
    lines.append(f"- step: {step}")
    if facts.tokens_seen is not None:
        lines.append(f"- tokens seen: {facts.tokens_seen:,}")
    data = facts.data
    if data:
        lines.append(f"- data: {data.get('source', '?')} `{data.get('path', '?')}`")
        for key in ("sha256", "manifest_sha256"):
            if key in data:
                lines.append(f"- data {key.replace('_', ' ')}: `{data[key]}`")
        if "size_bytes" in data:
            lines.append(f"- data size: {data['size_bytes']:,} bytes (not hashed)")
    lines += ["", "## Metrics at this step", ""]
    lines += ["| metric | value |", "|---|---|"]
    lines.append(f"| train loss | {_num(facts.train_loss)} |")
    lines.append(f"| eval loss | {_num(facts.eval_loss)} |")
    lines.append(f"| eval perplexity | {_num(facts.perplexity, 2)} |")
    if facts.stored_evals:
        lines += ["", "## Evaluations", ""]
        lines += ["| data | loss | perplexity | tokens |", "|---|---|---|---|"]
        for ev in facts.stored_evals:
            tokens = ev.get("tokens")
            lines.append(
                f"| {ev.get('data', '?')} | {_num(ev.get('loss'))} | {_num(ev.get('perplexity'), 2)} "
                f"| {'--' if tokens is None else f'{tokens:,}'} |"
            )
    lines += ["", "## How to load", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", ""]
    lines += [
        f'tokenizer = AutoTokenizer.from_pretrained("{load_path}")',
        f'model = AutoModelForCausalLM.from_pretrained("{load_path}")',
        'inputs = tokenizer("Once upon a time", return_tensors="pt")',
        "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=20)[0]))",
        "```",
        "",
    ]
    return "\n".join(lines)
