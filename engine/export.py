"""Export one checkpoint as a model to share: the weights (safetensors, cast to a dtype), the tokenizer,
a generation config and a model card (README.md), and nothing of training (no optimizer state, no
manifest). ``AutoModelForCausalLM.from_pretrained(out)`` and ``AutoTokenizer.from_pretrained(out)``
load it.

The checkpoint is loaded through ``engine.checkpoint_model.load_checkpoint`` (verified against its
manifest first: a tampered checkpoint is refused naming the file). The export is written into a
temporary directory beside ``out`` and renamed into place when complete, so ``out`` never holds half
an export. :func:`export_checkpoint` takes plain arguments and returns plain data, so it runs in a child
process (``cockpit.offload.run_in_child``) as well as in the CLI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.checkpoint_model import CheckpointLoadError, dtype_name, load_checkpoint, quiet_progress_bars
from engine.model_card import card_facts, render_card

CARD = "README.md"  #: the model card's file name (the hub shows it)
GENERATION_CONFIG = "generation_config.json"


class ExportError(ValueError):
    """The export cannot be made as asked (the output is in the way, the checkpoint is unusable);
    the message names the path and what to do."""


@dataclass(frozen=True)
class ExportResult:
    path: str
    """The export's directory."""
    checkpoint: str
    """The checkpoint it was made from."""
    step: int | None
    dtype: str
    """The dtype of the exported weights (a ``DTYPES`` name)."""
    params: int
    files: dict[str, int]
    """Every file of the export and its size in bytes."""

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_out_dir(out: Path, ckpt: Path, force: bool) -> None:
    """Refuse an ``out`` that is a file, that holds or lies in the checkpoint, or that is not empty
    (unless ``force``)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a directory; choose another output directory")
    if _is_within(ckpt.resolve(), out.resolve()) or _is_within(out.resolve(), ckpt.resolve()):
        raise ExportError(f"{out}: holds or lies inside the checkpoint {ckpt}; export somewhere else")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ExportError(f"{out}: exists and is not empty; choose another directory or replace it with --force")


def _weights_dtype(model) -> str:
    dtype = next(model.parameters()).dtype
    return str(dtype).removeprefix("torch.")


def export_checkpoint(
    ckpt_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dtype: str = "bfloat16",
    force: bool = False,
    stored_evals: list[dict] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export ``ckpt_dir`` into ``out_dir`` with weights in ``dtype`` ("bf16", "bfloat16", "fp16",
    "fp32", "auto": as saved...). Raises ExportError for an output in the way and
    CheckpointLoadError (a ValueError too) for a checkpoint that does not verify or load."""
    say = progress or (lambda message: None)
    ckpt, out = Path(ckpt_dir), Path(out_dir)
    name = dtype_name(dtype)
    check_out_dir(out, ckpt, force)
    say(f"verifying and loading {ckpt}")
    return _export(ckpt, out, name, stored_evals, say)


def _export(ckpt: Path, out: Path, name: str, stored_evals: list[dict] | None, say: Callable[[str], None]):
    loaded = load_checkpoint(ckpt, dtype=name, verify=True)
    model, tokenizer = loaded.model, loaded.tokenizer
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-export-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        say(f"writing the weights ({_weights_dtype(model)})")
        gen = model.generation_config
        gen.eos_token_id, gen.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
        if tokenizer.bos_token_id is not None:
            gen.bos_token_id = tokenizer.bos_token_id
        with quiet_progress_bars():
            model.save_pretrained(tmp, safe_serialization=True)
        if not (tmp / GENERATION_CONFIG).is_file():
            gen.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        facts = card_facts(ckpt, params=model.num_parameters(), dtype=_weights_dtype(model), stored_evals=stored_evals)
        (tmp / CARD).write_text(render_card(facts, load_path=str(out)), encoding="utf-8")
        _shareable(tmp)
        say(f"moving the export into {out}")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    return ExportResult(
        path=str(out),
        checkpoint=str(ckpt),
        step=loaded.step,
        dtype=_weights_dtype(model),
        params=model.num_parameters(),
        files=files,
    )


def _shareable(tree: Path) -> None:
    """Every file of ``tree`` with the mode a new file gets here (0666 less the umask): the library
    that writes the weights makes them 0600, the tokenizer files 0644; an export is one thing to share."""
    umask = os.umask(0)
    os.umask(umask)
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~umask)


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` (checked empty, or ``--force``) goes only after."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".old-export-{out.name}-{os.getpid()}"
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


__all__ = ["CheckpointLoadError", "ExportError", "ExportResult", "export_checkpoint"]
