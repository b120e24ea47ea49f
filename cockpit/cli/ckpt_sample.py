"""`cockpit ckpt sample`: generate text from a checkpoint, streamed to the terminal as it is made.

The checkpoint is loaded through ``engine.checkpoint_model.load_checkpoint`` (verified against its
manifest) and the text made by ``engine.generation`` (the one generation loop, shared with `cockpit
serve`); both import torch, so only inside the command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cockpit.cli.ckpt import CKPT_ARGUMENT, resolve_checkpoint
from cockpit.cli.common import fail
from cockpit.cli.runs import RUNS_DIR_OPTION

DTYPE_OPTION = typer.Option("auto", "--dtype", help="Weights' dtype: auto (as saved), bf16, fp16, fp32.")
DEVICE_OPTION = typer.Option(
    "auto", "--device", help="Where to run the model: auto (cuda when there is one), cpu, cuda."
)


def sample(
    ckpt_ref: str = CKPT_ARGUMENT,
    prompt: str = typer.Option(..., "--prompt", "-p", help="The text to continue (with --chat: the user's message)."),
    chat: bool = typer.Option(False, "--chat", help="Send the prompt as a user message through the chat template."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", "-n", help="The most tokens to generate."),
    temperature: float = typer.Option(0.0, "--temperature", "-t", help="0 is greedy (deterministic); >0 samples."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling: keep the most likely tokens up to this mass."),
    top_k: int = typer.Option(0, "--top-k", help="Sample among the k most likely tokens only (0: all)."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="Above 1 repeats less (1: off)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed of the sampler, to reproduce a sampled output."),
    stop: list[str] = typer.Option([], "--stop", help="End the output at this string (repeatable, at most 4)."),
    json_schema: Path | None = typer.Option(
        None, "--json-schema", help="A JSON schema file: the output is constrained to JSON valid against it."
    ),
    dtype: str = DTYPE_OPTION,
    device: str = DEVICE_OPTION,
    runs_dir: Path = RUNS_DIR_OPTION,
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (text, token counts, finish reason) instead of streaming."
    ),
) -> None:
    """Generate text from a checkpoint, streamed as it is made (--json: one object at the end)."""
    import json
    import sys

    from engine.generation import GenerationError, GenerationSettings, prompt_text, resolve_device, stream

    _, ckpt = resolve_checkpoint(ckpt_ref, runs_dir)
    try:
        settings = GenerationSettings.parse(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repetition_penalty=repetition_penalty,
            seed=seed,
            stop=stop,
        )
        schema = None
        if json_schema is not None:
            from engine.json_constraint import read_schema

            schema = read_schema(json_schema)
        where = resolve_device(device)
    except GenerationError as exc:
        fail(_as_options(str(exc)))
    loaded = load_or_exit(ckpt, dtype, where)
    try:
        text = prompt_text(loaded.tokenizer, messages=[{"role": "user", "content": prompt}]) if chat else prompt
        run = stream(loaded, text, settings, schema)
        if as_json:
            for _ in run:
                pass
        else:
            for piece in run:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            sys.stdout.flush()
    except GenerationError as exc:
        fail(str(exc))
    out = run.result
    assert out is not None
    if as_json:
        info = {"checkpoint": str(ckpt), "step": loaded.step, "prompt": text, **vars(out)}
        typer.echo(json.dumps(info, indent=2))
        return
    from engine import units

    speed = units.rate(out.completion_tokens / out.seconds) if out.seconds > 0 else units.DASH
    typer.echo(
        f"[{out.prompt_tokens} prompt + {out.completion_tokens} generated tokens, finish {out.finish_reason},"
        f" {out.seconds:.2f}s, {speed}]",
        err=True,
    )


def _as_options(message: str) -> str:
    """A settings problem named by its option (``max_new_tokens: ...`` -> ``--max-new-tokens: ...``)."""
    import re

    from engine.generation import GenerationSettings

    names = "|".join(GenerationSettings.model_fields)
    return re.sub(rf"\b({names})(\.\d+)?:", lambda m: f"--{m.group(1).replace('_', '-')}:", message)


def load_or_exit(ckpt: Path, dtype: str, device: str):
    """The checkpoint loaded (``engine.checkpoint_model.load_checkpoint``, verified); a bad dtype or
    checkpoint ends the command with ``error: ...``."""
    from engine.checkpoint_model import CheckpointLoadError, dtype_name, load_checkpoint

    try:
        return load_checkpoint(ckpt, dtype=dtype_name(dtype), device=device)
    except CheckpointLoadError as exc:
        fail(str(exc))
