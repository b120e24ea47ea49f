"""The one shard writer: a token stream into flat shard files (``train_000.bin``, ...), for
``cockpit data prepare`` and ``python -m engine.data.shards`` alike.

A shard is written as it fills, under a temporary name, and renamed when complete (its loss mask,
if any, first), so nothing partial ever looks complete; it is recorded with its token count, sha256
and where in the inputs it ended. The caller writes the manifest (``engine.data.manifest``) last.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.atomic import AtomicFile
from engine.data.manifest import MASK_SUFFIX


def shard_name(index: int, split: str = "train") -> str:
    return f"{split}_{index:03d}.bin"


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocabulary < 65,536), else uint32."""
    return np.dtype(np.uint16) if vocab_size < 65_536 else np.dtype(np.uint32)


def out_of_vocabulary(tokens: np.ndarray, vocab_size: int, tokenizer_dir) -> str | None:
    """What is wrong when a token id of ``tokens`` is not an id of the tokenizer in ``tokenizer_dir``
    (negative, or ``vocab_size`` or more), else None."""
    if not tokens.size:
        return None
    low, high = int(tokens.min()), int(tokens.max())
    if low >= 0 and high < vocab_size:
        return None
    bad = high if high >= vocab_size else low
    return f"token id {bad} is outside the vocabulary of the tokenizer in {tokenizer_dir} ({vocab_size} entries)"


class ShardWriter:
    """Token shards of one split, closed at document boundaries (or, for a stream without them, at
    exactly ``shard_tokens``); each written under a temporary name, fsynced and renamed, and
    recorded in ``shards`` with its sha256 and where in the inputs it ended. With ``masks``, every
    shard has a uint8 loss mask beside it (``train_000.mask.bin``). ``done``: the entries of shards
    an interrupted run finished, kept and counted."""

    def __init__(
        self,
        out: Path,
        split: str,
        dtype: np.dtype,
        shard_tokens: int,
        done: list[dict] | None = None,
        on_shard: Callable[[], None] | None = None,
        masks: bool = False,
    ):
        if shard_tokens < 1:
            raise ValueError("shard_tokens must be positive")
        self.out, self.split, self.dtype, self.shard_tokens = Path(out), split, dtype.newbyteorder("<"), shard_tokens
        self.shards: list[dict] = list(done or [])
        self.on_shard = on_shard
        self.masks = masks
        self._file: AtomicFile | None = None
        self._mask: AtomicFile | None = None
        self._digest = hashlib.sha256()
        self._mask_digest = hashlib.sha256()
        self._n = 0

    @property
    def tokens(self) -> int:
        return sum(s["tokens"] for s in self.shards) + self._n

    def add(
        self,
        tokens: np.ndarray,
        doc_ends: np.ndarray | None = None,
        positions: list[int] | None = None,
        mask: np.ndarray | None = None,
    ) -> None:
        """Append documents: ``tokens`` of all of them, ``doc_ends`` the cumulative token count at
        the end of each (None: no boundaries, a shard closes at ``shard_tokens``), ``positions``
        their input positions, ``mask`` their loss mask (with ``masks``; None: every token is learnt)."""
        if self.masks and mask is None:
            mask = np.ones(len(tokens), dtype=np.uint8)
        start = 0
        while start < len(tokens):
            need = self.shard_tokens - self._n
            if doc_ends is None:
                i, end = None, min(start + need, len(tokens))
                closes = end - start == need
            else:  # the first document whose end reaches the shard size closes the shard
                i = int(np.searchsorted(doc_ends, start + need, side="left"))
                closes = i < len(doc_ends)
                end = int(doc_ends[i]) if closes else len(tokens)
            self._write(tokens[start:end], mask[start:end] if self.masks else None)
            if not closes:
                return
            self.close(end_position=None if i is None or positions is None else positions[i] + 1)
            start = end

    def _write(self, tokens: np.ndarray, mask: np.ndarray | None) -> None:
        if self._file is None:
            name = shard_name(len(self.shards), self.split)
            self._file = AtomicFile(self.out / name)
            if self.masks:
                self._mask = AtomicFile(self.out / (name.removesuffix(".bin") + MASK_SUFFIX))
        data = tokens.astype(self.dtype, copy=False).tobytes()
        self._digest.update(data)
        self._file.file.write(data)
        if self._mask is not None:
            data = mask.astype(np.uint8, copy=False).tobytes()
            self._mask_digest.update(data)
            self._mask.file.write(data)
        self._n += len(tokens)

    def close(self, end_position: int | None) -> None:
        """Complete the current shard (if it has tokens): its mask first, so that a shard file present
        means its mask is too."""
        if not self._n:
            return
        entry = {
            "file": self._file.path.name,
            "tokens": self._n,
            "sha256": self._digest.hexdigest(),
            "end_position": end_position,
        }
        if self._mask is not None:
            self._mask.commit()
            entry.update(mask_file=self._mask.path.name, mask_sha256=self._mask_digest.hexdigest())
        self._file.commit()
        self.shards.append(entry)
        self._file = self._mask = None
        self._digest, self._mask_digest, self._n = hashlib.sha256(), hashlib.sha256(), 0
        if self.on_shard is not None:
            self.on_shard()

    def abort(self) -> None:
        """Drop the shard being written (its temporary files); the finished ones stay."""
        for part in (self._mask, self._file):
            if part is not None:
                part.abort()
        self._file = self._mask = None
        self._digest, self._mask_digest, self._n = hashlib.sha256(), hashlib.sha256(), 0
