"""Evaluating a finished checkpoint: ``cockpit ckpt eval``, ``cockpit ckpt gate`` and the viewer.

    record = evaluate_checkpoint("runs/r/checkpoints/checkpoint-12")               # held-out split
    record = evaluate_checkpoint(ckpt, "notes.txt", batches=4)                    # a file
    record.loss, record.perplexity, record.tokens                                  # engine.eval_store.StoredEval

Nothing is re-implemented: the model comes from ``engine.checkpoint_model.load_checkpoint`` (the one
loader, verified against the manifest), the loss from ``engine.evaluate.evaluate`` (the engine's
own held-out evaluation), and the data from the engine's data code:

- ``data=None``: the run's held-out split (``engine.build.prepare_data`` and ``split_data``), its
  first ``train.eval_batches`` batches by default: the very windows the run's ``eval`` events
  scored, so the numbers match them;
- a run directory: that run's held-out split (a gate scores a baseline on the candidate's data);
- a .txt or .jsonl file: prepared as ``cockpit data prepare`` would (``engine.data.prepare``, with
  no deduplication, filters or split), so chat and instruction records get the training loss mask;
  every window by default;
- a prepared shard directory: its validation split (else its training shards), with its mask.

Windows are the run's ``train.seq_len`` (outside a run: the model's context, at most 1024) and
batches its ``micro_batch_size`` (else 8). Perplexity is ``exp(loss)``. The result is stored in
the run's ``evals/`` (``engine.eval_store``) when the checkpoint belongs to a run. Plain arguments
and a picklable result, so the viewer can run it in a child process (``cockpit.offload``).

Mistakes a user can make raise ``ValueError`` subclasses whose message names the file (line) and
what to do: ``CheckpointLoadError``, ``DataError``, ``PrepareError``, ``ConfigError``,
:class:`CheckpointEvalError`.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.digest import file_sha256
from engine.eval_store import HELD_OUT, EvalData, StoredEval, store_eval
from engine.rundir import RunPaths, run_dir_of

#: Window length outside a run (capped by the model's context) and batch size outside a run.
DEFAULT_SEQ_LEN = 1024
DEFAULT_BATCH_SIZE = 8


class CheckpointEvalError(ValueError):
    """The data or the checkpoint cannot be evaluated; the message says why and what to do."""


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions of a mistake a user can make here (their messages name the file and what to do)."""
    from engine.checkpoint_model import CheckpointLoadError
    from engine.config import ConfigError
    from engine.data.sources import PrepareError
    from engine.data.text import DataError
    from engine.evaluate import NoHeldOutData

    return (CheckpointEvalError, CheckpointLoadError, ConfigError, DataError, PrepareError, NoHeldOutData)


def held_out_split(run_dir: Path, ckpt_dir: Path):
    """(tokens, mask, config) of the held-out split of ``run_dir``, tokenized with the checkpoint's
    tokenizer (the run's own when it is the same file, so the demo's token cache is used)."""
    from engine.build import prepare_data, split_data
    from engine.config import read_run_config
    from engine.data.shards import tokenizer_sha256
    from engine.data.tokenizer import has_tokenizer

    cfg = read_run_config(run_dir)
    same = has_tokenizer(cfg.tokenizer.path) and tokenizer_sha256(cfg.tokenizer.path) == tokenizer_sha256(ckpt_dir)
    if not same:  # never train a tokenizer here: use the one the checkpoint was trained with
        cfg = cfg.model_copy(deep=True)
        cfg.tokenizer.path = ckpt_dir
        if cfg.data.source == "demo":  # tokenized as text, without the cache (keyed by the tokenizer's files)
            cfg.data.source = "text"
    _, tokens, held_out = prepare_data(cfg, lambda *a, **k: None)
    _, val_tokens, _, val_mask = split_data(cfg, tokens, held_out)
    return val_tokens, val_mask, cfg


def _file_tokens(path: Path, ckpt_dir: Path, seq_len: int):
    """(tokens, mask) of a .txt/.jsonl file, through the shard preparation (same rendering and mask)."""
    from engine.data.prepare import PrepareSettings, prepare
    from engine.data.quality import QualityRules
    from engine.data.shards import open_masks, open_shards

    keep_all = QualityRules(
        min_words=0, max_words=None, max_symbol_ratio=None, max_dup_ngram_fraction=None, max_top_bigram_fraction=None
    )
    settings = PrepareSettings(
        seq_len=seq_len, val_fraction=0.0, near_dedup_threshold=None, exact_dedup=False, rules=keep_all
    )
    with tempfile.TemporaryDirectory(prefix=".cockpit-eval-") as tmp:
        prepare([path], ckpt_dir, tmp, settings)
        tokens = np.array(open_shards(tmp, ckpt_dir))
        mask = open_masks(tmp)
        return tokens, (None if mask is None else np.array(mask))


def _shard_tokens(path: Path, ckpt_dir: Path):
    """(tokens, mask, split) of a shard directory: its validation split, else its training shards."""
    from engine.data.shards import open_masks, open_shards

    for split in ("val", "train"):
        tokens = open_shards(path, ckpt_dir, split=split)
        if tokens is not None and len(tokens):
            return tokens, open_masks(path, split), split
    raise CheckpointEvalError(f"{path}: the shard directory holds no tokens")


def load_eval_data(data: str | os.PathLike | None, ckpt_dir: Path, run_dir: Path | None, seq_len: int):
    """(tokens, mask, EvalData without windows, default batches or None for all) of ``data``."""
    from engine.checkpoint_index import WEIGHTS
    from engine.data.manifest import MANIFEST as SHARDS_MANIFEST

    if data is None:
        if run_dir is None:
            raise CheckpointEvalError(
                f"{ckpt_dir}: not inside a run directory, so there is no held-out split; give --data FILE"
            )
        data = run_dir
    path = Path(data)
    if path.is_dir() and RunPaths(path).is_run_dir():
        tokens, mask, cfg = held_out_split(path, ckpt_dir)
        ident = {"kind": HELD_OUT, "path": str(path.resolve())}
        return tokens, mask, ident, cfg.train.eval_batches
    if path.is_dir() and (path / WEIGHTS).is_file():
        raise CheckpointEvalError(f"{path}: a checkpoint, not data; give a .txt or .jsonl file or a shard directory")
    if path.is_dir() and (path / SHARDS_MANIFEST).is_file():
        tokens, mask, split = _shard_tokens(path, ckpt_dir)
        ident = {
            "kind": "shards",
            "path": str(path.resolve()),
            "sha256": file_sha256(path / SHARDS_MANIFEST),
            "split": split,
        }
        return tokens, mask, ident, None
    if path.is_dir():
        raise CheckpointEvalError(
            f"{path}: a directory that is neither a run nor prepared shards (no run.yaml, no {SHARDS_MANIFEST}); "
            "give a .txt or .jsonl file, a shard directory or a run directory"
        )
    if not path.exists():
        raise CheckpointEvalError(f"{path}: data file not found")
    tokens, mask = _file_tokens(path, ckpt_dir, seq_len)
    ident = {"kind": "file", "path": str(path.resolve()), "sha256": file_sha256(path)}
    return tokens, mask, ident, None


def _window_settings(run_dir: Path | None, ckpt: Path) -> tuple[int, int]:
    """(seq_len, batch size): the run's, else the model's context (capped) and the default."""
    if run_dir is not None:
        from engine.config import read_run_config

        train = read_run_config(run_dir).train
        return train.seq_len, train.micro_batch_size
    import json

    from engine.checkpoint_index import MODEL_CONFIG

    try:
        context = int(json.loads((ckpt / MODEL_CONFIG).read_text(encoding="utf-8"))["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        context = DEFAULT_SEQ_LEN
    return min(context, DEFAULT_SEQ_LEN), DEFAULT_BATCH_SIZE


def evaluate_checkpoint(
    ckpt_dir: str | os.PathLike,
    data: str | os.PathLike | None = None,
    batches: int | None = None,
    *,
    progress: Callable[[tuple[int, int]], None] | None = None,
    device: str | None = None,
    made_by: str = "ckpt eval",
    store: bool = True,
) -> StoredEval:
    """Score the checkpoint ``ckpt_dir`` on ``data`` (see the module docstring): the first
    ``batches`` batches (default: the run's ``train.eval_batches`` on the held-out split, all of a
    file or shards). ``progress((done, total))`` counts windows, one picklable value per batch, so
    ``cockpit.offload.run_in_child(evaluate_checkpoint, (ckpt, data, batches), ...)`` runs it as it
    is. Stores the record in the run's ``evals/`` when ``store`` and the checkpoint is inside a run."""
    import torch

    from engine.checkpoint_model import check_checkpoint, load_checkpoint
    from engine.evaluate import NoHeldOutData, eval_windows, evaluate, scored_tokens

    t0 = time.perf_counter()
    ckpt = Path(ckpt_dir)
    if not ckpt.is_dir():
        raise CheckpointEvalError(f"{ckpt}: not a checkpoint directory")
    if batches is not None and batches < 1:
        raise CheckpointEvalError(f"--batches must be at least 1, got {batches}")
    step = check_checkpoint(ckpt)  # every file against the manifest before any is read (the tokenizer's too)
    run_dir = run_dir_of(ckpt)
    seq_len, batch_size = _window_settings(run_dir, ckpt)
    tokens, mask, ident, default_batches = load_eval_data(data, ckpt, run_dir, seq_len)  # bad data: before the load
    n_batches = batches or default_batches or -(-(len(tokens) // seq_len) // batch_size)
    try:
        n_windows = len(eval_windows(tokens, seq_len, n_batches * batch_size))
    except NoHeldOutData:
        raise CheckpointEvalError(
            f"{ident.get('path')}: {len(tokens):,} tokens, fewer than one window of {seq_len} "
            f"(the run's train.seq_len); give more text"
        ) from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_checkpoint(ckpt, device=device, verify=False)  # verified above
    loss = evaluate(
        loaded.model,
        tokens,
        seq_len=seq_len,
        batch_size=batch_size,
        n_batches=n_batches,
        device=device,
        val_mask=mask,
        progress=None if progress is None else lambda done, total: progress((done, total)),
    )
    paths = RunPaths(run_dir) if run_dir is not None else None
    record = StoredEval.new(
        step=step,
        loss=loss,
        checkpoint=paths.relative(ckpt.resolve()) if paths else str(ckpt.resolve()),
        data=EvalData(**ident, seq_len=seq_len, windows=n_windows),
        tokens=scored_tokens(tokens, seq_len, n_windows, mask),
        elapsed_s=time.perf_counter() - t0,
        made_by=made_by,
        device=str(device),
    )
    if store and run_dir is not None:
        store_eval(run_dir, record)
    return record


def gate_baseline_loss(baseline: Path, val_tokens, val_mask, train, accelerator) -> float:
    """The in-run gate's baseline loss (``gate.baseline``): a METRICS.json file's ``eval_loss``, or
    a checkpoint's loss on this run's held-out windows (every process takes part, as in the run's
    own evaluations). ConfigError naming ``gate.baseline`` when it cannot be used."""
    from engine.checkpoint_model import CheckpointLoadError, load_checkpoint
    from engine.config import ConfigError
    from engine.evaluate import evaluate
    from engine.gate import read_metrics_file

    if baseline.is_file():
        try:
            return read_metrics_file(baseline)["eval_loss"]
        except ValueError as exc:
            raise ConfigError(f"gate.baseline: {exc}") from None
    if not baseline.is_dir():
        raise ConfigError(f"gate.baseline: {baseline}: not found (a checkpoint directory or a METRICS.json file)")
    try:
        loaded = load_checkpoint(baseline, device=str(accelerator.device))
    except CheckpointLoadError as exc:
        raise ConfigError(f"gate.baseline: {exc}") from None
    return evaluate(
        loaded.model,
        val_tokens,
        seq_len=train.seq_len,
        batch_size=train.micro_batch_size,
        n_batches=train.eval_batches,
        device=accelerator.device,
        accelerator=accelerator,
        val_mask=val_mask,
    )
