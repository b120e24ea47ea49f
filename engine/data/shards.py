"""Prepared token shards: a token stream tokenized once, stored as flat memory-mapped files.

Layout of a shard directory::

    train_000.bin, train_001.bin, ...   raw little-endian token ids, uint16 when the vocabulary has
                                        fewer than 65,536 entries, else uint32; no header
    manifest.json                       format and version, dtype, the tokenizer's sha256 (of its
                                        tokenizer.json) and vocabulary size, seq_len, per-shard
                                        token counts (and sha256s) and the total

Every shard is written under a temporary name and renamed when complete (the one writer,
``engine.data.shard_writer``, which ``cockpit data prepare`` uses too); the manifest (its model and
check: ``engine.data.manifest``) is written last (atomically), so a directory with a manifest is
complete. Reading (``open_shards``) checks the manifest and the shard sizes, then the manifest
against the run: shards written by another tokenizer, for another sequence length, or cut short
are refused with a message that says what to do. The tokens are never copied into RAM:
``ShardTokens`` indexes the memory maps directly.

Raw documents for shards or smoke runs come from a ``.txt`` file (a document per line, paragraph
or file: ``engine.data.formats.TEXT_UNITS``) or a ``.jsonl`` file (one JSON object per line with a ``"text"`` string); every document is followed by
the tokenizer's end-of-text token.

Command line (``cockpit data prepare`` also deduplicates, filters and holds out a validation split)::

    python -m engine.data.shards --input corpus.txt --tokenizer data/tok --out data/shards --seq-len 512
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from engine.digest import file_sha256
from engine.data.lines import MAX_LINE_BYTES
from engine.data.manifest import (
    MANIFEST,
    Manifest,
    ShardEntry,
    TokenizerRef,
    inspect_shards,
    new_manifest,
    write_manifest,
)
from engine.data.shard_writer import ShardWriter, out_of_vocabulary, token_dtype
from engine.data.text import DataError, iter_documents, iter_token_chunks
from engine.data.textunits import TEXT_UNITS

#: Tokens per shard file by default (200 MB as uint16).
DEFAULT_SHARD_TOKENS = 100_000_000


# --- tokenizer identity -----------------------------------------------------------------------


def _tokenizer_json(tokenizer_dir: str | os.PathLike) -> Path:
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"{tokenizer_dir}: no tokenizer here (tokenizer.json is missing)")
    return path


def tokenizer_sha256(tokenizer_dir: str | os.PathLike) -> str:
    """The sha256 of the tokenizer's ``tokenizer.json``: what a shard directory is tied to."""
    return file_sha256(_tokenizer_json(tokenizer_dir))


def tokenizer_vocab_size(tokenizer_dir: str | os.PathLike) -> int:
    """Vocabulary size of the tokenizer, added tokens included."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_tokenizer_json(tokenizer_dir))).get_vocab_size(with_added_tokens=True)


def jsonl_to_text(path: str | os.PathLike, out: str | os.PathLike, max_line_bytes: int = MAX_LINE_BYTES) -> Path:
    """The documents of a JSONL file as a text file, one per line (newlines inside a document become
    spaces), e.g. to train a tokenizer on; DataError at a line over ``max_line_bytes``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for doc in iter_documents(path, "jsonl", max_line_bytes=max_line_bytes):
            f.write(" ".join(doc.splitlines()) + "\n")
    return out


# --- writing ----------------------------------------------------------------------------------


def write_shards(
    tokens: np.ndarray | Iterable[np.ndarray],
    out_dir: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    seq_len: int,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
) -> dict:
    """Write a token stream (one array, or an iterable of arrays written as they come) as shards in
    ``out_dir`` with the one shard writer (no document boundaries: a shard holds exactly
    ``shard_tokens``), tied to the tokenizer in ``tokenizer_dir``; returns the manifest.

    An existing shard directory is replaced: its manifest goes first, so an interrupted rewrite is
    never mistaken for a complete one."""
    out_dir = Path(out_dir)
    tokenizer = TokenizerRef(
        sha256=tokenizer_sha256(tokenizer_dir),
        vocab_size=tokenizer_vocab_size(tokenizer_dir),
        path=str(Path(tokenizer_dir).resolve()),
    )
    dtype = token_dtype(tokenizer.vocab_size)
    writer = ShardWriter(out_dir, "train", dtype, shard_tokens)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    try:
        for chunk in [tokens] if isinstance(tokens, np.ndarray) else tokens:
            chunk = np.asarray(chunk).reshape(-1)
            if (wrong := out_of_vocabulary(chunk, tokenizer.vocab_size, tokenizer_dir)) is not None:
                raise DataError(wrong)
            writer.add(chunk)
        writer.close(end_position=None)
    except BaseException:
        writer.abort()
        raise
    if not writer.shards:
        raise DataError(f"no tokens to write to {out_dir}")
    kept = {s["file"] for s in writer.shards}
    for stale in out_dir.glob("train_*.bin"):  # shards of an earlier, longer preparation
        if stale.name not in kept:
            stale.unlink()
    return write_manifest(out_dir, new_manifest(dtype.name, tokenizer, seq_len, writer.shards))


# --- reading ----------------------------------------------------------------------------------


def load_manifest(shard_dir: str | os.PathLike) -> Manifest:
    """The checked manifest of a shard directory (``engine.data.manifest.inspect_shards``: the
    manifest, and every shard file's size); DataError with its first problem."""
    summary = inspect_shards(shard_dir)
    if summary.problems:
        raise DataError(str(summary.problems[0]))
    return summary.manifest


def read_manifest(shard_dir: str | os.PathLike) -> dict:
    """``load_manifest`` as the JSON it was read from."""
    return load_manifest(shard_dir).to_json()


class ShardTokens:
    """A read-only token stream over memory-mapped shards, indexed without copying them into RAM.

    Supports ``len``, integer and integer-array indexing (returns the shard dtype) and step-1
    slicing (returns another view), which is all ``split_tokens`` and ``BatchIterator`` need."""

    def __init__(self, maps: list[np.ndarray], start: int = 0, stop: int | None = None):
        self._maps = maps
        self._offsets = np.cumsum([0] + [len(m) for m in maps])
        self._start = start
        self._stop = int(self._offsets[-1]) if stop is None else stop
        self.dtype = maps[0].dtype

    def __len__(self) -> int:
        return self._stop - self._start

    def __repr__(self) -> str:
        return f"ShardTokens({len(self):,} tokens in {len(self._maps)} shard(s), {self.dtype})"

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"token index out of range (0..{len(self) - 1})")
        idx = idx + self._start
        if len(self._maps) == 1:
            return np.asarray(self._maps[0][idx])
        out = np.empty(idx.shape, dtype=self.dtype)
        which = np.searchsorted(self._offsets, idx, side="right") - 1
        for s in np.unique(which):
            mask = which == s
            out[mask] = self._maps[s][idx[mask] - self._offsets[s]]
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("ShardTokens slices take step 1 only")
            return ShardTokens(self._maps, self._start + start, self._start + max(stop, start))
        if isinstance(key, (int, np.integer)):
            key = int(key) + (len(self) if key < 0 else 0)
            return self._gather(np.array(key)).item()
        return self._gather(key)

    def __array__(self, dtype=None, copy=None):
        out = self._gather(np.arange(len(self)))
        return out.astype(dtype) if dtype is not None else out


def _stream(maps: list[np.ndarray]) -> np.memmap | ShardTokens | None:
    """One memory map as itself, several as a ShardTokens view, none as None."""
    if not maps:
        return None
    return maps[0] if len(maps) == 1 else ShardTokens(maps)


def open_shards(
    shard_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike, seq_len: int | None = None, split: str = "train"
) -> np.memmap | ShardTokens | None:
    """The token stream of a prepared shard directory, checked against this run's tokenizer and
    ``seq_len``; raises DataError naming the directory and what to do.

    ``split`` "train" is the manifest's ``shards``; "val" its ``val_shards`` (written by
    ``cockpit data prepare``), None when it has none. One shard comes back as its ``np.memmap`` (a
    plain read-only numpy array), several as a ``ShardTokens`` view over their memory maps; neither
    reads the tokens into RAM up front."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    ours = tokenizer_sha256(tokenizer_dir)
    theirs = manifest.tokenizer.sha256
    if theirs != ours:
        raise DataError(
            f"shards in {shard_dir} were written with tokenizer sha256 {theirs[:12]}…, this run's "
            f"tokenizer in {tokenizer_dir} has {ours[:12]}…; prepare the shards again with this "
            f"tokenizer, or set tokenizer.path to the one they were written with"
        )
    if seq_len is not None and manifest.seq_len != seq_len:
        raise DataError(
            f"shards in {shard_dir} were prepared for seq_len {manifest.seq_len}, this run uses "
            f"train.seq_len {seq_len}; set train.seq_len: {manifest.seq_len} or prepare them again"
        )
    dtype = np.dtype(manifest.dtype).newbyteorder("<")
    return _stream(
        [
            np.memmap(shard_dir / s.file, dtype=dtype, mode="r", shape=(s.tokens,))
            for s in _nonempty(manifest.entries(split))
        ]
    )


def open_masks(shard_dir: str | os.PathLike, split: str = "train") -> np.memmap | ShardTokens | None:
    """The loss mask (uint8, 1 = learnt) beside the shards of ``split`` (``cockpit data prepare``
    writes one when fine-tuning records are rendered), memory-mapped; None when the shards have
    none. The manifest's check covers the mask files too."""
    shard_dir = Path(shard_dir)
    manifest = load_manifest(shard_dir)
    if not manifest.loss_mask:
        return None
    return _stream(
        [
            np.memmap(shard_dir / s.mask_file, dtype=np.uint8, mode="r", shape=(s.tokens,))
            for s in _nonempty(manifest.entries(split))
        ]
    )


def _nonempty(entries: list[ShardEntry]) -> list[ShardEntry]:
    return [s for s in entries if s.tokens]


# --- command line -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m engine.data.shards", description="Tokenize a .txt or .jsonl file into token shards."
    )
    parser.add_argument("--input", required=True, help='.txt (documents by --text-unit) or .jsonl ("text" key)')
    parser.add_argument(
        "--text-unit",
        default="auto",
        choices=TEXT_UNITS,
        help="document of a .txt: a line, a "
        "blank-line separated paragraph, the whole file, or auto (paragraph or line, by its head)",
    )
    parser.add_argument("--tokenizer", required=True, help="directory of a Hugging Face tokenizer (tokenizer.json)")
    parser.add_argument("--out", required=True, help="shard directory to write")
    parser.add_argument("--seq-len", type=int, required=True, help="sequence length the shards are for")
    parser.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, help="tokens per shard file")
    args = parser.parse_args(argv)
    from engine.data.tokenizer import load_tokenizer

    try:
        _tokenizer_json(args.tokenizer)
        tokenizer = load_tokenizer(args.tokenizer)
        manifest = write_shards(
            iter_token_chunks(args.input, tokenizer, unit=args.text_unit),
            args.out,
            args.tokenizer,
            args.seq_len,
            shard_tokens=args.shard_tokens,
        )
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {manifest['total_tokens']:,} tokens ({manifest['dtype']}) in {len(manifest['shards'])} shard(s) "
        f"to {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
