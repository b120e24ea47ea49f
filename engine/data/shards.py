"""Prepared token shards: a token stream tokenized once, stored as flat memory-mapped files.

Layout of a shard directory::

    train_000.bin, train_001.bin, ...   raw little-endian token ids, uint16 when the vocabulary has
                                        fewer than 65,536 entries, else uint32; no header
    manifest.json                       format and version, dtype, the tokenizer's sha256 (of its
                                        tokenizer.json) and vocabulary size, seq_len, per-shard
                                        token counts and the total

Every shard is written under a temporary name and renamed when complete; the manifest is written
last (atomically), so a directory with a manifest is complete. Reading (``open_shards``) checks the
manifest against the run: shards written by another tokenizer, for another sequence length, or
cut short are refused with a message that says what to do. The tokens are never copied into RAM:
``ShardTokens`` indexes the memory maps directly.

Raw documents for shards or smoke runs come from a ``.txt`` file (a document per line, paragraph
or file: ``engine.data.formats.TEXT_UNITS``) or a ``.jsonl`` file (one JSON object per line with a ``"text"`` string); every document is followed by
the tokenizer's end-of-text token.

Command line (``cockpit data prepare`` also deduplicates, filters and holds out a validation split)::

    python -m engine.data.shards --input corpus.txt --tokenizer data/tok --out data/shards --seq-len 512
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from engine.atomic import AtomicFile, atomic_write_text
from engine.data.formats import TEXT_UNITS
from engine.data.text import DataError, iter_documents, iter_token_chunks

FORMAT = "cockpit-token-shards"
VERSION = 1
MANIFEST = "manifest.json"
#: Tokens per shard file by default (200 MB as uint16).
DEFAULT_SHARD_TOKENS = 100_000_000
#: Documents tokenized per batch call.


# --- tokenizer identity -----------------------------------------------------------------------

def _tokenizer_json(tokenizer_dir: str | os.PathLike) -> Path:
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise DataError(f"{tokenizer_dir}: no tokenizer here (tokenizer.json is missing)")
    return path


def tokenizer_sha256(tokenizer_dir: str | os.PathLike) -> str:
    """The sha256 of the tokenizer's ``tokenizer.json``: what a shard directory is tied to."""
    return hashlib.sha256(_tokenizer_json(tokenizer_dir).read_bytes()).hexdigest()


def tokenizer_vocab_size(tokenizer_dir: str | os.PathLike) -> int:
    """Vocabulary size of the tokenizer, added tokens included."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_tokenizer_json(tokenizer_dir))).get_vocab_size(with_added_tokens=True)


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (vocabulary < 65,536), else uint32."""
    return np.dtype(np.uint16) if vocab_size < 65_536 else np.dtype(np.uint32)


def jsonl_to_text(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The documents of a JSONL file as a text file, one per line (newlines inside a document become
    spaces), e.g. to train a tokenizer on."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for doc in iter_documents(path, "jsonl"):
            f.write(" ".join(doc.splitlines()) + "\n")
    return out


# --- writing ----------------------------------------------------------------------------------

def shard_name(index: int, split: str = "train") -> str:
    return f"{split}_{index:03d}.bin"


def atomic_write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (fsynced)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_shards(tokens: np.ndarray | Iterable[np.ndarray], out_dir: str | os.PathLike,
                 tokenizer_dir: str | os.PathLike, seq_len: int,
                 shard_tokens: int = DEFAULT_SHARD_TOKENS) -> dict:
    """Write a token stream (one array, or an iterable of arrays written as they come) as shards in
    ``out_dir``, tied to the tokenizer in ``tokenizer_dir``; returns the manifest.

    An existing shard directory is replaced: its manifest goes first, so an interrupted rewrite is
    never mistaken for a complete one."""
    if shard_tokens < 1:
        raise ValueError("shard_tokens must be positive")
    out_dir = Path(out_dir)
    digest = tokenizer_sha256(tokenizer_dir)
    vocab = tokenizer_vocab_size(tokenizer_dir)
    dtype = token_dtype(vocab)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    chunks = [tokens] if isinstance(tokens, np.ndarray) else tokens

    counts: list[int] = []
    state: dict = {"f": None, "n": 0}

    def close_shard() -> None:
        if state["f"] is None:
            return
        state["f"].commit()
        counts.append(state["n"])
        state.update(f=None, n=0)

    try:
        for chunk in chunks:
            chunk = np.asarray(chunk).reshape(-1)
            if chunk.size and (chunk.min() < 0 or chunk.max() >= vocab):
                bad = int(chunk.max() if chunk.max() >= vocab else chunk.min())
                raise DataError(f"token id {bad} is outside the vocabulary of the tokenizer in {tokenizer_dir} "
                                f"({vocab} entries)")
            chunk = chunk.astype(dtype.newbyteorder("<"), copy=False)
            while chunk.size:
                if state["f"] is None:
                    state["f"] = AtomicFile(out_dir / shard_name(len(counts)))
                take = min(shard_tokens - state["n"], chunk.size)
                state["f"].file.write(chunk[:take].tobytes())
                state["n"] += take
                chunk = chunk[take:]
                if state["n"] == shard_tokens:
                    close_shard()
        close_shard()
    except BaseException:
        if state["f"] is not None:
            state["f"].abort()
        raise
    if not counts:
        raise DataError(f"no tokens to write to {out_dir}")
    for stale in out_dir.glob("train_*.bin"):  # shards of an earlier, longer preparation
        if stale.name not in {shard_name(i) for i in range(len(counts))}:
            stale.unlink()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype.name,
        "tokenizer": {"sha256": digest, "vocab_size": vocab, "path": str(Path(tokenizer_dir).resolve())},
        "seq_len": seq_len,
        "shards": [{"file": shard_name(i), "tokens": n} for i, n in enumerate(counts)],
        "total_tokens": sum(counts),
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


# --- reading ----------------------------------------------------------------------------------

def read_manifest(shard_dir: str | os.PathLike) -> dict:
    """The manifest of a shard directory, checked for shape; DataError when missing or malformed."""
    shard_dir = Path(shard_dir)
    path = shard_dir / MANIFEST
    if not shard_dir.is_dir():
        raise DataError(f"{shard_dir}: shard directory not found (prepare it with `cockpit data prepare`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{shard_dir}: no {MANIFEST}; not a prepared shard directory, or its preparation "
                        f"did not finish (prepare it again)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise DataError(f"{path}: format version {manifest.get('version')!r}, this engine reads version {VERSION}")
    try:
        np.dtype(manifest["dtype"])
        manifest["tokenizer"]["sha256"], int(manifest["seq_len"])
        for shard in manifest["shards"]:
            shard["file"], int(shard["tokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
    return manifest


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


def _split_entries(manifest: dict, split: str) -> list[dict]:
    """The manifest's shard entries of ``split``: "train" (``shards``) or "val" (``val_shards``)."""
    return manifest["shards"] if split == "train" else manifest.get("val_shards") or []


def _stream(maps: list[np.ndarray]) -> np.memmap | ShardTokens | None:
    """One memory map as itself, several as a ShardTokens view, none as None."""
    if not maps:
        return None
    return maps[0] if len(maps) == 1 else ShardTokens(maps)


def open_shards(shard_dir: str | os.PathLike, tokenizer_dir: str | os.PathLike,
                seq_len: int | None = None, split: str = "train") -> np.memmap | ShardTokens | None:
    """The token stream of a prepared shard directory, checked against this run's tokenizer and
    ``seq_len``; raises DataError naming the directory and what to do.

    ``split`` "train" is the manifest's ``shards``; "val" its ``val_shards`` (written by
    ``cockpit data prepare``), None when it has none. One shard comes back as its ``np.memmap`` (a
    plain read-only numpy array), several as a ``ShardTokens`` view over their memory maps; neither
    reads the tokens into RAM up front."""
    shard_dir = Path(shard_dir)
    manifest = read_manifest(shard_dir)
    ours = tokenizer_sha256(tokenizer_dir)
    theirs = manifest["tokenizer"]["sha256"]
    if theirs != ours:
        raise DataError(f"shards in {shard_dir} were written with tokenizer sha256 {theirs[:12]}…, this run's "
                        f"tokenizer in {tokenizer_dir} has {ours[:12]}…; prepare the shards again with this "
                        f"tokenizer, or set tokenizer.path to the one they were written with")
    if seq_len is not None and int(manifest["seq_len"]) != seq_len:
        raise DataError(f"shards in {shard_dir} were prepared for seq_len {manifest['seq_len']}, this run uses "
                        f"train.seq_len {seq_len}; set train.seq_len: {manifest['seq_len']} or prepare them again")
    dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
    maps = []
    for shard in _split_entries(manifest, split):
        path = shard_dir / shard["file"]
        n = int(shard["tokens"])
        expected = n * dtype.itemsize
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError(f"{path}: shard missing (listed in {MANIFEST}); prepare the shards again") from None
        if size != expected:
            raise DataError(f"{path}: {size:,} bytes, but {MANIFEST} says {n:,} tokens x {dtype.itemsize} B = "
                            f"{expected:,} bytes; the shard is truncated or damaged, prepare the shards again")
        if n:
            maps.append(np.memmap(path, dtype=dtype, mode="r", shape=(n,)))
    if not maps and split == "train":
        raise DataError(f"{shard_dir}: the shards hold no tokens")
    return _stream(maps)


def open_masks(shard_dir: str | os.PathLike, split: str = "train") -> np.memmap | ShardTokens | None:
    """The loss mask (uint8, 1 = learnt) beside the shards of ``split`` (``cockpit data prepare``
    writes one when fine-tuning records are rendered), memory-mapped; None when the shards have
    none. Call it after ``open_shards`` checked the manifest."""
    shard_dir = Path(shard_dir)
    manifest = read_manifest(shard_dir)
    if not manifest.get("loss_mask"):
        return None
    maps = []
    for shard in _split_entries(manifest, split):
        n = int(shard["tokens"])
        path = shard_dir / str(shard.get("mask_file"))
        if not shard.get("mask_file") or not path.is_file() or path.stat().st_size != n:
            raise DataError(f"{path}: loss mask missing or not {n:,} bytes (listed in {MANIFEST}); "
                            "prepare the shards again")
        if n:
            maps.append(np.memmap(path, dtype=np.uint8, mode="r", shape=(n,)))
    return _stream(maps)


# --- command line -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m engine.data.shards",
                                     description="Tokenize a .txt or .jsonl file into token shards.")
    parser.add_argument("--input", required=True, help=".txt (documents by --text-unit) or .jsonl (\"text\" key)")
    parser.add_argument("--text-unit", default="auto", choices=TEXT_UNITS, help="document of a .txt: a line, a "
                        "blank-line separated paragraph, the whole file, or auto (paragraph or line, by its head)")
    parser.add_argument("--tokenizer", required=True, help="directory of a Hugging Face tokenizer (tokenizer.json)")
    parser.add_argument("--out", required=True, help="shard directory to write")
    parser.add_argument("--seq-len", type=int, required=True, help="sequence length the shards are for")
    parser.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS, help="tokens per shard file")
    args = parser.parse_args(argv)
    from engine.data.tokenizer import load_tokenizer

    try:
        _tokenizer_json(args.tokenizer)
        tokenizer = load_tokenizer(args.tokenizer)
        manifest = write_shards(iter_token_chunks(args.input, tokenizer, unit=args.text_unit), args.out, args.tokenizer, args.seq_len,
                                shard_tokens=args.shard_tokens)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['total_tokens']:,} tokens ({manifest['dtype']}) in {len(manifest['shards'])} shard(s) "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
