"""`cockpit ckpt export CKPT OUT`: a checkpoint as a model to share (weights in a dtype, tokenizer,
generation config, model card), through ``engine.export.export_checkpoint``."""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.ckpt import CKPT_ARGUMENT, JSON_OPTION, resolve_checkpoint
from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION


def export(
    ckpt_ref: str = CKPT_ARGUMENT,
    out: Path = typer.Argument(..., help="The directory to write (must not exist, or be empty; see --force)."),
    dtype: str = typer.Option(
        "bf16", "--dtype", help="Weights dtype: bf16|fp16|fp32 (or bfloat16|float16|float32), auto = as saved."
    ),
    force: bool = typer.Option(False, "--force", help="Replace OUT when it exists and is not empty."),
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Export a checkpoint for use elsewhere: model.safetensors in DTYPE, the tokenizer, a generation
    config and a README.md model card; nothing of training. Loads with AutoModelForCausalLM."""
    import dataclasses
    import json

    _, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    # Deferred: the torch stack loads only when a checkpoint is really exported (an ignore_imports entry).
    from engine.export import CheckpointLoadError, ExportError, export_checkpoint

    def say(message: str) -> None:
        if not as_json:
            typer.echo(message, err=True)

    try:
        result = export_checkpoint(ckpt, out, dtype=dtype, force=force, progress=say)
    except (ExportError, CheckpointLoadError) as exc:
        fail(str(exc))
    except OSError as exc:  # a full disk, a read-only or forbidden directory
        fail(f"{out}: cannot write the export ({exc.strerror or exc})")
    if as_json:
        typer.echo(json.dumps({**dataclasses.asdict(result), "size_bytes": result.size_bytes}, indent=2))
        return
    from engine import units

    typer.echo(
        f"exported {ckpt} (step {result.step}) to {result.path}: {units.params(result.params)}, "
        f"{result.dtype}, {len(result.files)} files, {units.nbytes(result.size_bytes)}"
    )
