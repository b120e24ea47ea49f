"""Text file -> token stream -> deterministic shuffled batches.

A text file's documents are its lines, paragraphs or the whole file (``data.text_unit``,
``engine.data.textunits.iter_text_documents``: the same reader as ``cockpit data prepare`` and
``cockpit check``); a JSONL file's are the ``"text"`` of each line. The stream is the documents'
tokens with the end-of-text token after each. The tail ``val_fraction`` of the stream is held out. Training batches are
``(micro_batch_size, seq_len)`` windows cut from the stream at multiples of ``seq_len`` and visited
in a seeded random order per epoch; the iterator's position (epoch, index) is a small dict that a
checkpoint stores, so a run can continue exactly where it stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

# the same reader, and words, as cockpit check and cockpit data validate|prepare
from engine.data.lines import MAX_LINE_BYTES, FormatError
from engine.data.records import JSONL_SUFFIXES, iter_samples

#: Documents tokenized per batch call (bounds the memory of the intermediate encodings).
_CHUNK_DOCS = 10_000


class DataError(ValueError):
    """The training text cannot be used; the message names the file."""


# --- documents --------------------------------------------------------------------------------


def iter_documents(
    path: str | os.PathLike, kind: str | None = None, unit: str = "auto", max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[str]:
    """The documents of a ``.txt`` file (cut by ``unit``: ``line``, ``paragraph``, ``file`` or
    ``auto``, see ``engine.data.formats``) or ``.jsonl`` file (the ``"text"`` of each object);
    ``kind`` ("text" or "jsonl") overrides the suffix. Errors name ``file:line``; a line over
    ``max_line_bytes`` is one (never read whole)."""
    path = Path(path)
    kind = kind or ("jsonl" if path.suffix.lower() in JSONL_SUFFIXES else "text")
    try:
        for sample in iter_samples(path, "pretrain" if kind == "jsonl" else "text", unit, max_line_bytes):
            if not sample.ok:
                raise DataError(str(next(p for p in sample.problems if p.is_error)))
            if sample.text is not None and sample.text.strip():
                yield sample.text
    except FormatError as exc:  # not found, a directory: the words of engine.data.lines
        raise DataError(str(exc)) from None


def iter_token_chunks(
    path: str | os.PathLike,
    tokenizer,
    kind: str | None = None,
    unit: str = "auto",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[np.ndarray]:
    """The token stream of a document file in int32 chunks, end-of-text after every document."""
    eos = tokenizer.eos_token_id
    backend = tokenizer.backend_tokenizer
    docs: list[str] = []

    def flush() -> np.ndarray:
        ids: list[int] = []
        for enc in backend.encode_batch(docs, add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eos)
        docs.clear()
        return np.asarray(ids, dtype=np.int32)

    for doc in iter_documents(path, kind, unit, max_line_bytes):
        docs.append(doc)
        if len(docs) >= _CHUNK_DOCS:
            yield flush()
    if docs:
        yield flush()


def tokenize_file(
    path: str | os.PathLike,
    tokenizer,
    kind: str = "text",
    unit: str = "auto",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> np.ndarray:
    """All documents of ``path`` (``text``: cut by ``unit``; ``jsonl``: the ``"text"`` of each
    object) as one int32 token stream, with ``tokenizer.eos_token_id`` after each document;
    DataError at a line over ``max_line_bytes``."""
    parts = list(iter_token_chunks(path, tokenizer, kind, unit, max_line_bytes))
    if not parts:
        what = 'no line has a non-empty "text"' if kind == "jsonl" else "every line is empty"
        raise DataError(f"{path}: no text ({what})")
    return np.concatenate(parts)


def split_tokens(tokens: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): the last ``val_fraction`` of the stream is the validation part."""
    n_val = int(len(tokens) * val_fraction)
    return tokens[: len(tokens) - n_val], tokens[len(tokens) - n_val :]


def masked_labels(x: torch.Tensor, mask: np.ndarray | None) -> torch.Tensor:
    """Labels for inputs ``x``: ``x`` itself, or with -100 (ignored by the loss) where ``mask`` is 0."""
    if mask is None:
        return x
    import torch

    labels = x.clone()
    labels[torch.from_numpy(np.asarray(mask) == 0)] = -100
    return labels


class BatchIterator:
    """Endless iterator of ``(batch_size, seq_len)`` int64 token batches from a token stream.

    Windows start at multiples of ``seq_len``; each epoch visits all of them in the order of a
    permutation seeded with ``(seed, epoch)``. With several processes, process ``rank`` takes every
    ``world_size``-th window of that order, so the processes never share a window.

    ``mask`` (uint8, aligned with ``tokens``, 1 = learnt) makes ``take`` return labels that ignore
    (-100) the tokens it masks: the prompt of a fine-tuning record.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        batch_size: int,
        seq_len: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        mask: np.ndarray | None = None,
    ):
        if mask is not None and len(mask) != len(tokens):
            raise DataError(f"the loss mask has {len(mask):,} entries for {len(tokens):,} tokens")
        self.tokens = tokens
        self.mask = mask
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.n_windows = len(tokens) // seq_len
        if self.n_windows < world_size:
            raise DataError(
                f"the training text has {len(tokens)} tokens, fewer than "
                f"{world_size} sequence(s) of seq_len {seq_len}; use more text or a smaller seq_len"
            )
        self.epoch = 0
        self.index = 0  # next position in this epoch's order, counted over all processes
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "n_windows": self.n_windows}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        self._order = self._permutation(self.epoch)

    def _next_window(self) -> int:
        # Each call consumes world_size windows of the global order; this process keeps one.
        if self.index + self.world_size > self.n_windows:  # a partial round is skipped
            self.epoch += 1
            self.index = 0
            self._order = self._permutation(self.epoch)
        window = int(self._order[self.index + self.rank])
        self.index += self.world_size
        return window

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.take()[0]

    def take(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(input_ids, labels)``: labels are the inputs (the same tensor) without a mask,
        else a copy with -100 where the mask is 0."""
        import torch  # here, so that reading and tokenizing documents stays torch-free

        starts = np.array([self._next_window() for _ in range(self.batch_size)], dtype=np.int64) * self.seq_len
        idx = starts[:, None] + np.arange(self.seq_len)[None, :]
        x = torch.from_numpy(self.tokens[idx].astype(np.int64))
        return x, masked_labels(x, None if self.mask is None else self.mask[idx])
