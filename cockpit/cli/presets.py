"""`cockpit presets list|show`: the model preset catalog with exact parameter counts.

Counts are exact, from the preset's shape (``cockpit.checks.model_facts``, torch-free: the catalog
prints as fast as ``cockpit --help``); a test holds them equal to the model Transformers builds, on
the meta device, for every preset. Training memory: bf16 mixed precision + AdamW, 16 B/param
(fp32 weights 4 + fp32 grads 4 + AdamW moments 8), activations as a separate estimate.
"""

from __future__ import annotations

import json

import typer

from cockpit.cli.common import fail
from engine.units import nbytes

presets_app = typer.Typer(
    help="Model presets: parameters, shape and training memory.", no_args_is_help=True, rich_markup_mode=None
)

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _overrides(items: list[str]) -> dict:
    """``--set num_hidden_layers=4`` (or ``model.num_hidden_layers=4``) -> {"num_hidden_layers": 4}."""
    if not items:  # engine.config (pydantic) is slow to import: only for --set
        return {}
    from engine.config import ConfigError, parse_override

    out = {}
    for item in items:
        try:
            path, value = parse_override(item)
        except ConfigError as exc:
            fail(str(exc))
        if path[0] == "model" and len(path) > 1:
            path = path[1:]
        if len(path) != 1:
            fail(f"--set {item!r}: expected a model field, e.g. num_hidden_layers=4")
        out[path[0]] = value
    return out


def _summaries(names: list[str], overrides: dict | None = None) -> list[dict]:
    from cockpit.checks.model_facts import preset_summary
    from presets import PresetError

    try:
        return [preset_summary(name, overrides) for name in names]
    except PresetError as exc:
        fail(str(exc))


def _count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def _experts(s: dict) -> str:
    return f"{s['experts']} top{s['experts_per_token']}" if s["experts"] else "--"


def list_cmd(as_json: bool = JSON_OPTION) -> None:
    """List every preset: family, shape, total and active parameters, training memory."""
    from presets import list_presets

    summaries = _summaries(list_presets())
    if as_json:
        typer.echo(json.dumps(summaries, indent=2))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        padding=(0, 1),
        caption="params: exact, from the shape; memory: training state, bf16 mixed precision + AdamW, "
        "16 B/param (fp32 weights, grads, 2 moments), activations extra (presets show NAME)",
        caption_justify="left",
    )
    for col, justify in (
        ("preset", "left"),
        ("family", "left"),
        ("params", "right"),
        ("active", "right"),
        ("layers", "right"),
        ("hidden", "right"),
        ("heads", "right"),
        ("experts", "right"),
        ("memory", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=True)
    for s in summaries:
        table.add_row(
            s["name"],
            s["family"],
            _count(s["total_params"]),
            _count(s["active_params"]),
            str(s["layers"]),
            str(s["hidden"]),
            f"{s['heads']}/{s['kv_heads']}",
            _experts(s),
            nbytes(s["memory"]["states"]),
        )
    Console().print(table)


def show(
    name: str = typer.Argument(..., help="Preset name (cockpit presets list)."),
    as_json: bool = JSON_OPTION,
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="Override a model field, e.g. --set num_hidden_layers=4 (as `model:` in a run config); repeatable.",
    ),
) -> None:
    """One preset in detail: every count, the shape, and the training-memory breakdown."""
    from presets import PresetError, load_preset

    try:
        fields = load_preset(name)
    except PresetError as exc:
        fail(str(exc))
    model = _overrides(overrides)
    s = _summaries([name], model)[0]
    if as_json:
        typer.echo(json.dumps({**s, "fields": {**fields, **model}}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    mem = s["memory"]
    table = Table(title=f"preset {name}: {s['description']}", title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value")
    rows = [
        ("family", f"{s['family']} ({s['model_class']})"),
        ("total params", f"{s['total_params']:,}"),
        (
            "active params / token",
            f"{s['active_params']:,}"
            + (
                f"  ({s['experts'] - s['experts_per_token']} of {s['experts']} experts idle per layer)"
                if s["experts"]
                else ""
            ),
        ),
        ("layers", str(s["layers"])),
        ("hidden", str(s["hidden"])),
        ("heads (query / key-value)", f"{s['heads']} / {s['kv_heads']}"),
        ("intermediate", str(s["intermediate"])),
        ("experts", _experts(s)),
        ("vocab (for counting)", f"{s['vocab_size']:,}" + ("  tied" if s["tied_embeddings"] else "  untied")),
        ("max seq len", str(s["max_seq_len"])),
        ("train FLOPs / token", f"{s['flops_per_token']:.3g}"),
        ("memory: fp32 weights", nbytes(mem["weights"])),
        ("memory: fp32 grads", nbytes(mem["grads"])),
        ("memory: AdamW moments", nbytes(mem["optimizer"])),
        ("memory: training state", nbytes(mem["states"]) + "  (bf16 mixed precision + AdamW, 16 B/param)"),
        (
            "activations / sequence",
            nbytes(mem["activations_per_seq"]) + f"  (rough, seq {s['max_seq_len']}, no checkpointing; x micro batch)",
        ),
    ]
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


def register(app: typer.Typer) -> None:
    presets_app.command("list")(list_cmd)
    presets_app.command("show")(show)
    app.add_typer(presets_app, name="presets")
