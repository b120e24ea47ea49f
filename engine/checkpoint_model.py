"""A checkpoint's model and tokenizer, loaded for use (evaluate, sample, export, serve), never for
training: the one place that turns a checkpoint directory into a Transformers model.

The weights come from ``model.safetensors`` (``use_safetensors=True``: nothing is unpickled) and,
unless told otherwise, only after the directory verifies against its manifest, so a tampered or
half-copied checkpoint is refused with the file named instead of producing quietly wrong numbers.
Nothing is looked up on a hub (``local_files_only``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoint_index import MODEL_CONFIG, WEIGHTS, read_manifest, verify_checkpoint

#: ``--dtype`` names and the torch dtypes they stand for; "auto" keeps what the checkpoint holds.
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: The short names a user may type for a dtype, and the ``DTYPES`` name each stands for.
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


class CheckpointLoadError(ValueError):
    """The directory is not a loadable checkpoint; the message names the file and what to do."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    path: Path
    step: int | None  #: the manifest's step (None without a manifest, when ``verify`` was off)
    model: Any  #: a Transformers causal LM in eval mode
    tokenizer: Any  #: its PreTrainedTokenizerFast (EOS and pad set as in training)


def dtype_name(text: str) -> str:
    """The ``DTYPES`` name ``text`` stands for ("bf16" or "BFloat16": "bfloat16"); CheckpointLoadError
    naming the choices for anything else."""
    name = DTYPE_ALIASES.get(text.strip().lower(), text.strip().lower())
    if name not in DTYPES:
        choices = ", ".join(sorted({*DTYPES, *DTYPE_ALIASES}))
        raise CheckpointLoadError(f"unknown dtype {text!r}; one of: {choices}")
    return name


def torch_dtype(name: str):
    """The torch dtype of a ``DTYPES`` name ("auto": None, i.e. as saved)."""
    import torch

    if name not in DTYPES:
        raise CheckpointLoadError(f"unknown dtype {name!r}; one of: {', '.join(DTYPES)}")
    return None if name == "auto" else getattr(torch, name)


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Transformers' own progress bars ("Loading weights") off for the block, as they were after it."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def check_checkpoint(ckpt_dir: str | os.PathLike) -> int | None:
    """The step of ``ckpt_dir`` (its manifest's) once it holds a model and every file matches its
    manifest; CheckpointLoadError naming each bad file otherwise. What every command that uses a
    checkpoint does before it reads any of its files (tokenizer included)."""
    path = Path(ckpt_dir)
    for name in (MODEL_CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise CheckpointLoadError(f"{path / name}: missing; {path} is not a complete checkpoint")
    problems = verify_checkpoint(path)
    if problems:
        raise CheckpointLoadError(f"{path}: does not match its manifest: {'; '.join(problems)} (refusing to load it)")
    return read_manifest(path).get("step")


def load_checkpoint(
    ckpt_dir: str | os.PathLike, *, dtype: str = "auto", device: str = "cpu", verify: bool = True
) -> LoadedCheckpoint:
    """The model and tokenizer of ``ckpt_dir`` in eval mode on ``device``.

    ``verify`` checks every file against the manifest first (CheckpointLoadError naming each bad file)."""
    from transformers import AutoModelForCausalLM

    from engine.data.tokenizer import load_tokenizer

    path = Path(ckpt_dir)
    step = check_checkpoint(path) if verify else None
    try:
        tokenizer = load_tokenizer(path)
    except (OSError, ValueError) as exc:
        raise CheckpointLoadError(f"{path}: no usable tokenizer ({exc})") from None
    with quiet_progress_bars():  # a caller reports its own progress
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype(dtype), use_safetensors=True, local_files_only=True
        )
    model.to(device)
    model.eval()
    return LoadedCheckpoint(path=path, step=step, model=model, tokenizer=tokenizer)
