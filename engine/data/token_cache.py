"""The demo corpus's token stream, cached next to the corpus so that a launch does not tokenize it again.

``cached_tokens`` returns exactly what ``tokenize_file`` returns. The cache is
``<data dir>/.<corpus name>.tokens-<key>.npy``, keyed by the sha256 of the corpus, of every file of
the tokenizer, of the tokenizer's end-of-text id, of the text kind and of the document unit: editing the corpus or
training another tokenizer tokenizes afresh (and replaces the stale cache). It lives in the data
directory, never in a run directory; it is written atomically, and one that cannot be read or
written is no error (the corpus is tokenized as without a cache).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from engine.digest import file_sha256
from engine.atomic import atomic_open
from engine.data.lines import MAX_LINE_BYTES
from engine.data.text import tokenize_file

log = logging.getLogger(__name__)

#: Part of the key: bump it when the token stream's layout changes.
FORMAT = 1


def cache_key(corpus: Path, tokenizer_path: Path, eos_token_id: int, kind: str = "text", unit: str = "auto") -> str:
    """sha256 over the corpus, each file of the tokenizer (a directory, or its tokenizer.json), the
    end-of-text id appended after each document, the text kind and the document unit."""
    files = sorted(p for p in tokenizer_path.iterdir() if p.is_file()) if tokenizer_path.is_dir() else [tokenizer_path]
    h = hashlib.sha256(f"tokens v{FORMAT} kind={kind} unit={unit} eos={eos_token_id}\n".encode())
    h.update(f"corpus {file_sha256(corpus)}\n".encode())
    for p in files:
        h.update(f"tokenizer {p.name} {file_sha256(p)}\n".encode())
    return h.hexdigest()


def cache_path(corpus: Path, key: str) -> Path:
    return corpus.parent / f".{corpus.name}.tokens-{key[:16]}.npy"


def _load(path: Path) -> np.ndarray | None:
    try:
        tokens = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:  # truncated or not an array: tokenize again
        log.warning("token cache %s unreadable (%s); tokenizing afresh", path, exc)
        return None
    return tokens if tokens.ndim == 1 and tokens.dtype == np.int32 and len(tokens) else None


def _store(path: Path, tokens: np.ndarray, corpus: Path) -> None:
    try:
        with atomic_open(path, "wb", fsync=False) as f:
            np.save(f, tokens, allow_pickle=False)
        for stale in corpus.parent.glob(f".{corpus.name}.tokens-*.npy"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError as exc:  # a read-only data directory: no cache, nothing else changes
        log.warning("cannot cache the tokens of %s in %s: %s", corpus, path.parent, exc)


def cached_tokens(
    corpus: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    tokenizer,
    kind: str = "text",
    unit: str = "auto",
    max_line_bytes: int = MAX_LINE_BYTES,
) -> np.ndarray:
    """``tokenize_file(corpus, tokenizer, kind, unit, max_line_bytes)``, from the cache when the
    corpus, the tokenizer (saved at ``tokenizer_path``) and the unit are those it was made from;
    otherwise tokenized and cached (the line limit is not part of the key: a corpus that passes it
    gives the same tokens under any limit)."""
    corpus, tokenizer_path = Path(corpus), Path(tokenizer_path)
    path = cache_path(corpus, cache_key(corpus, tokenizer_path, tokenizer.eos_token_id, kind, unit))
    tokens = _load(path)
    if tokens is None:
        tokens = tokenize_file(corpus, tokenizer, kind, unit, max_line_bytes)
        _store(path, tokens, corpus)
    return tokens
