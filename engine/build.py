"""Building a run before its first step: Accelerator, data and tokenizer, model and optimizer.

    make_accelerator(cfg)                   threads, precision, strategy (DDP or FSDP), seed
    load_data(cfg, accelerator, info)       tokenizer, training and held-out tokens (+ loss masks), batches
      prepare_data(cfg, info)               tokenizer (trained when missing), token stream, held-out stream
      split_data(cfg, tokens, held_out)     training and held-out tokens (+ loss masks)
    settle_schedule(train, n_windows, ...)  max_steps from train.epochs; a warm-up no longer than the run
    build_model_and_optimizer(...)          the Transformers model, AdamW and its schedule, prepared
    configure_model(...)                    gradient checkpointing, torch.compile

``engine.trainer.Trainer.build`` calls them in this order; each returns what it made, and the
Trainer keeps it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from engine.config import ConfigError, RunConfig, TrainConfig
from engine.data.demo import generate_demo_corpus
from engine.data.lines import first_long_line
from engine.data.text import BatchIterator, DataError, iter_documents, split_tokens, tokenize_file
from engine.data.token_cache import cached_tokens
from engine.data.tokenizer import has_tokenizer, load_tokenizer, train_tokenizer
from engine.distributed import accelerator_plugins, world_size
from engine.model import build_model, count_params, run_model_config
from engine.optim import build_optimizer, build_scheduler, can_skip_on_device
from engine.sizing import steps_for_epochs

#: ``info(message, level="info")``: a ``log`` event and a line in engine.log (``Trainer.info``).
Info = Callable[..., None]


@dataclass
class TrainingData:
    """What the loop reads: the tokenizer, the token streams and the batches drawn from them."""

    tokenizer: Any
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    train_mask: np.ndarray | None  # fine-tuning shards: 1 where a token is learnt
    val_mask: np.ndarray | None
    batches: BatchIterator


@dataclass
class BuiltModel:
    """The model and what trains it, prepared by Accelerate (the scheduler stays unprepared)."""

    config: Any  # the Transformers config
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    n_params: int
    skip_on_device: bool  # the optimizer skips a non-finite step on the device (fused AdamW)


def make_accelerator(cfg: RunConfig) -> Accelerator:
    """The Accelerator of ``train.precision`` and ``distributed``; CPU when there is no CUDA. Seeds."""
    train = cfg.train
    if train.threads > 0:
        torch.set_num_threads(train.threads)
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[train.precision]
    cuda = torch.cuda.is_available()
    acc = Accelerator(cpu=not cuda, mixed_precision=mixed, **accelerator_plugins(cfg.distributed, world_size(), cuda))
    set_seed(train.seed)
    return acc


def device_description(accelerator: Accelerator) -> str:
    device = accelerator.device
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return str(device.type)


def load_data(cfg: RunConfig, acc: Accelerator, info: Info) -> TrainingData:
    """Tokenizer and token streams (the main process first: it trains the tokenizer or fills the
    cache the others read), split into training and held-out, and this process's batches."""
    train = cfg.train
    with acc.main_process_first():
        tokenizer, tokens, held_out = prepare_data(cfg, info)
    train_tokens, val_tokens, train_mask, val_mask = split_data(cfg, tokens, held_out)
    if train_mask is not None:
        info(
            f"loss mask: {int(np.count_nonzero(np.asarray(train_mask))):,} of "
            f"{len(train_mask):,} training tokens are learnt (the rest is prompt)"
        )
    batches = BatchIterator(
        train_tokens,
        train.micro_batch_size,
        train.seq_len,
        train.seed,
        rank=acc.process_index,
        world_size=acc.num_processes,
        mask=train_mask,
    )
    info(
        f"data: {len(train_tokens) + len(val_tokens):,} tokens, {len(train_tokens):,} for "
        f"training ({batches.n_windows:,} sequences of {train.seq_len}), {len(val_tokens):,} held out"
        + (" (the shards' validation split)" if held_out is not None else "")
    )
    return TrainingData(tokenizer, train_tokens, val_tokens, train_mask, val_mask, batches)


def split_data(cfg: RunConfig, tokens, held_out):
    """(train tokens, held-out tokens, train mask, held-out mask) of the stream ``prepare_data``
    returned: the tail ``data.val_fraction`` held out, or the shards' validation split; the masks
    are None unless the shards carry a fine-tuning loss mask. ``cockpit ckpt eval`` scores the same
    held-out windows through it."""
    train_mask = val_mask = None
    if cfg.data.source == "shards":  # fine-tuning shards: learn only what the assistant says
        from engine.data.shards import open_masks

        train_mask, val_mask = open_masks(cfg.data.path, "train"), open_masks(cfg.data.path, "val")
    if held_out is None:  # the tail of the stream is held out, and the tail of its mask
        train_tokens, val_tokens = split_tokens(tokens, cfg.data.val_fraction)
        if train_mask is not None:
            train_mask, val_mask = split_tokens(train_mask, cfg.data.val_fraction)
    else:  # the validation split prepared with the shards
        train_tokens, val_tokens = tokens, held_out
    return train_tokens, val_tokens, train_mask, val_mask


def prepare_data(cfg: RunConfig, info: Info):
    """Tokenizer (trained when missing, except for shards), token stream and held-out stream: a
    file tokenized in memory (demo, text, jsonl; held out: None, the tail is split off) or
    prepared shards memory-mapped (shards; held out: their validation shards, if any)."""
    data, tok_cfg = cfg.data, cfg.tokenizer
    if data.source == "shards":
        from engine.data.shards import open_shards

        if not has_tokenizer(tok_cfg.path):
            raise DataError(
                f"{tok_cfg.path}: no tokenizer (tokenizer.json); shards are read with the "
                f"tokenizer they were written with, set tokenizer.path to it"
            )
        tokens = open_shards(data.path, tok_cfg.path, cfg.train.seq_len)
        held_out = open_shards(data.path, tok_cfg.path, cfg.train.seq_len, split="val")
        info(
            f"shards: {len(tokens):,} tokens ({tokens.dtype}) memory-mapped from {data.path}"
            + (f", {len(held_out):,} in validation shards" if held_out is not None else "")
        )
        return load_tokenizer(tok_cfg.path), tokens, held_out
    if data.source == "demo" and not data.path.exists():
        generate_demo_corpus(data.path, data.demo.samples, data.demo.seed)
        info(f"generated demo corpus: {data.demo.samples:,} lines in {data.path}")
    if not data.path.is_file():
        raise DataError(f"{data.path}: training {'JSONL' if data.source == 'jsonl' else 'text'} not found")
    kind = "jsonl" if data.source == "jsonl" else "text"
    limit = data.max_line_bytes
    if not has_tokenizer(tok_cfg.path):
        # no tokenizer learnt from nothing
        if next(iter_documents(data.path, kind, data.text_unit, limit), None) is None:
            raise DataError(f"{data.path}: no text to train the tokenizer on (no non-empty document)")
        t0 = time.perf_counter()
        if data.source == "jsonl":  # the tokenizer learns from the documents, not the JSON around them
            from engine.data.shards import jsonl_to_text

            corpus = tok_cfg.path.parent / f".{tok_cfg.path.name}.corpus-{os.getpid()}.txt"
            try:
                train_tokenizer(jsonl_to_text(data.path, corpus, limit), tok_cfg.path, tok_cfg.vocab_size)
            finally:
                corpus.unlink(missing_ok=True)
        else:
            # the trainer reads the file itself, a line at a time whole: no line over the limit first
            if (long := first_long_line(data.path, limit)) is not None:
                raise DataError(str(long))
            train_tokenizer(data.path, tok_cfg.path, tok_cfg.vocab_size)
        tokenizer = load_tokenizer(tok_cfg.path)
        info(
            f"trained tokenizer: {len(tokenizer):,} tokens (asked for {tok_cfg.vocab_size:,}) on "
            f"{data.path.name} in {time.perf_counter() - t0:.1f}s, saved to {tok_cfg.path}"
        )
    tokenizer = load_tokenizer(tok_cfg.path)
    if data.source == "demo":  # tokenized once, then read from its cache in the data directory
        tokens = cached_tokens(data.path, tok_cfg.path, tokenizer, unit=data.text_unit, max_line_bytes=limit)
        return tokenizer, tokens, None
    return tokenizer, tokenize_file(data.path, tokenizer, kind, data.text_unit, limit), None


def settle_schedule(train: TrainConfig, n_windows: int, processes: int, info: Info) -> None:
    """Set ``train.max_steps`` from ``train.epochs`` (when given), then shorten a warm-up longer
    than the run (a run shorter than its warm-up warms up over all its steps). Changes ``train``."""
    if train.epochs:
        per_step = train.micro_batch_size * train.grad_accum_steps * processes
        steps = steps_for_epochs(train.epochs, n_windows, per_step)
        train.max_steps = steps
        info(f"{train.epochs:g} epoch(s) of {n_windows:,} sequences, {per_step:,} per step: {steps:,} steps")
    note = train.warmup_note()
    if note is not None:
        info(note)
        train.warmup_steps = train.warmup


def build_model_and_optimizer(
    cfg: RunConfig, tokenizer, acc: Accelerator, before_model: Callable[[Any], None] | None = None
) -> BuiltModel:
    """The preset's model for ``tokenizer``'s vocabulary (its initial weights from ``train.seed``
    only), AdamW and the learning-rate schedule. ``before_model`` is called with the model config
    just before the model is built (the dry run takes its memory baseline there)."""
    train = cfg.train
    config = run_model_config(cfg, tokenizer)
    if train.seq_len > config.max_position_embeddings:
        raise ConfigError(
            f"train.seq_len ({train.seq_len}) is longer than the model's max_position_embeddings "
            f"({config.max_position_embeddings}); lower it or set model.max_position_embeddings"
        )
    if before_model is not None:
        before_model(config)
    set_seed(train.seed)  # the initial weights depend on the seed only, not on the data steps before
    model = build_model(config)
    n_params = count_params(model)
    optimizer = build_optimizer(model, train)
    scheduler = build_scheduler(optimizer, train)
    # The scheduler stays unprepared: it is stepped once per optimizer step, whatever the
    # number of processes (data sharding is done by BatchIterator, not by Accelerate).
    model, optimizer = acc.prepare(model, optimizer)
    return BuiltModel(config, model, optimizer, scheduler, n_params, can_skip_on_device(optimizer))


def configure_model(model: torch.nn.Module, train: TrainConfig, info: Info) -> None:
    """Model options applied after build: gradient checkpointing, torch.compile (``model``: unwrapped)."""
    if train.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # Transformers 5 renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        info("gradient checkpointing on: activations are recomputed in the backward pass")
    if train.compile:
        model.compile()  # in place: same module, same state_dict keys
        info("torch.compile on: the first step waits for the compilation")
