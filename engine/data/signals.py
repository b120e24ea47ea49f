"""Per-document signals of a batch of texts, computed together with numpy: word counts, symbol
ratio, repetition, exact-duplicate keys and MinHash signatures.

Torch-free. Everything is computed on the lower-cased UTF-8 bytes of a whole batch in one buffer,
so the cost per document is a share of a few numpy operations over thousands of documents rather
than a Python loop over its words:

- words are the runs of bytes between ASCII whitespace, language-agnostic;
- a word's hash comes from its length and its first and last 8 bytes (``word_hashes``), a word
  n-gram's ("shingle", ``SHINGLE_WORDS`` words) from its words' hashes rotated by position, both
  mixed by SplitMix64's finaliser: O(words) in all;
- the MinHash signature is one-permutation hashing (Li, Owen & Zhang 2012) with rotation
  densification (Shrivastava & Li 2014): each shingle's hash picks one of ``num_perm`` buckets and
  the bucket keeps the smallest value, so a signature costs O(shingles) instead of
  O(shingles x num_perm); two documents' signatures agree in a fraction of their positions that
  estimates the Jaccard similarity of their shingle sets;
- ``exact_keys`` hash a document's sequence of words (a polynomial over the word hashes), so texts
  that differ only in case or spacing are exact duplicates; ``split_draws`` maps them to [0, 1)
  (a document is held out for validation by its content).

Repetition signals follow Gopher's (Rae et al. 2021) in spirit: ``dup_ngram_fraction`` is the
fraction of a document's word 5-grams that repeat an earlier one of the same document, and
``top_bigram_fraction`` the share of its most frequent word 2-gram among its 2-grams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Words per shingle of the MinHash signature and of ``dup_ngram_fraction``.
SHINGLE_WORDS = 5
_MASK = (1 << 64) - 1
#: ASCII whitespace: what separates words.
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20]] = True
#: ASCII bytes that are neither letters, digits nor whitespace. Non-ASCII bytes count as letters, so
#: the ratio means the same in every script.
_SYMBOL = np.zeros(256, dtype=bool)
_SYMBOL[[c for c in range(0x21, 0x7F) if not chr(c).isalnum()]] = True


def split_draws(keys: np.ndarray) -> np.ndarray:
    """``exact_keys`` as numbers in [0, 1): a document whose draw is below ``val_fraction`` is held
    out, so the same text always lands on the same side."""
    return (_mix(keys ^ np.uint64(0x5851F42D4C957F2D)) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


@dataclass
class BatchSignals:
    """Signals of ``n`` documents, one entry per document (arrays of length ``n``)."""

    n_bytes: np.ndarray
    """UTF-8 bytes of the normalised text."""
    n_words: np.ndarray
    symbol_ratio: np.ndarray
    """ASCII symbol bytes (not letters, digits or spaces) per non-space byte."""
    dup_ngram_fraction: np.ndarray
    """Word 5-grams that repeat an earlier 5-gram of the same document, per 5-gram (0 below 5 words)."""
    top_bigram_fraction: np.ndarray
    """Occurrences of the most frequent word 2-gram per 2-gram (0 below 2 words)."""
    exact_keys: np.ndarray
    """uint64 key of the sequence of words (lower case, any spacing): equal texts, equal keys."""
    signatures: np.ndarray | None
    """``(n, num_perm)`` uint32 MinHash signatures, or None when not asked for."""


def word_hashes(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every word ``buf[starts[i]:ends[i]]``, from its length and its first and
    last 8 bytes (read as unaligned 64-bit loads): O(words), not O(bytes). Two words that differ
    only strictly inside their first and last 8 bytes collide, which costs near-duplicate
    detection nothing."""
    padded = np.concatenate([buf, np.zeros(8, dtype=np.uint8)])
    windows = np.ndarray(shape=(len(buf) + 1,), dtype="<u8", buffer=padded.data, strides=(1,))
    length = (ends - starts).astype(np.uint64)
    short = length < 8
    keep = np.where(
        short, (np.uint64(1) << (np.minimum(length, np.uint64(7)) * np.uint64(8))) - np.uint64(1), np.uint64(_MASK)
    )
    first = windows[starts] & keep
    last = windows[np.maximum(ends - 8, starts)] & keep
    with np.errstate(over="ignore"):
        return _mix(first ^ _mix(last + length * np.uint64(0x9E3779B97F4A7C15)))


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    r %= 64
    return x if r == 0 else (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _group_counts(doc: np.ndarray, keys: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per document: how many of its ``keys`` repeat an earlier equal key, and the count of its most
    frequent key. One sort of (document, top 44 bits of the key) packed in 64 bits."""
    repeats = np.zeros(n_docs, dtype=np.int64)
    top = np.zeros(n_docs, dtype=np.int64)
    if not len(keys):
        return repeats, top
    shift = max(1, int(n_docs).bit_length())
    packed = np.sort((doc.astype(np.uint64) << np.uint64(64 - shift)) | (keys >> np.uint64(shift)))
    d = (packed >> np.uint64(64 - shift)).astype(np.int64)
    new_run = np.ones(len(packed), dtype=bool)
    new_run[1:] = packed[1:] != packed[:-1]
    repeats += np.bincount(d[~new_run], minlength=n_docs)[:n_docs]
    run_starts = np.flatnonzero(new_run)
    run_lengths = np.diff(np.append(run_starts, len(packed)))
    np.maximum.at(top, d[run_starts], run_lengths)
    return repeats, top


def minhash_signatures(doc: np.ndarray, hashes: np.ndarray, n_docs: int, num_perm: int) -> np.ndarray:
    """``(n_docs, num_perm)`` uint32 one-permutation MinHash signatures of the shingle ``hashes``
    (uint64, mixed) of documents ``doc``; rows of documents without shingles are all 0xFFFFFFFF."""
    if num_perm & (num_perm - 1) or not 8 <= num_perm <= 1024:
        raise ValueError("num_perm must be a power of two from 8 to 1024")
    bits = num_perm.bit_length() - 1
    bucket = (hashes >> np.uint64(64 - bits)).astype(np.int64)
    value = ((hashes >> np.uint64(32 - bits)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)  # bits below the bucket
    empty = np.uint32(0xFFFFFFFF)
    sig = np.full(n_docs * num_perm, empty, dtype=np.uint32)
    np.minimum.at(sig, doc * num_perm + bucket, value)
    sig = sig.reshape(n_docs, num_perm)
    filled = sig != empty
    rows = filled.any(axis=1)
    if rows.any() and not filled[rows].all():
        # Rotation densification: an empty bucket takes the next filled bucket to its right (circularly),
        # offset by its distance so that borrowed values do not look like chance agreements.
        width = 2 * num_perm
        idx = np.where(np.concatenate([filled, filled], axis=1), np.arange(width), width)
        nxt = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1][:, :num_perm]
        src = np.where(nxt < width, nxt % num_perm, 0)
        distance = np.where(nxt < width, nxt - np.arange(num_perm), 0).astype(np.uint64)
        borrowed = (
            (sig[np.arange(n_docs)[:, None], src].astype(np.uint64) + distance * np.uint64(0x9E3779B1))
            & np.uint64(0xFFFFFFFE)
        ).astype(np.uint32)
        sig = np.where(filled | ~rows[:, None], sig, borrowed)
    return sig


def batch_signals(texts: list[str], num_perm: int | None = 128) -> BatchSignals:
    """Signals of ``texts`` (lower-cased here; words split at ASCII whitespace); ``num_perm`` None
    skips the signatures."""
    n = len(texts)
    encoded = [t.lower().encode("utf-8") for t in texts]
    n_bytes = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=n)
    # A space between documents: words never run across them.
    buf = np.frombuffer(b" ".join(encoded) + b" ", dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    if n:
        offsets[1:] = np.cumsum(n_bytes + 1)
    is_space = _WHITESPACE[buf]
    prev_space = np.concatenate([[True], is_space[:-1]])
    next_space = np.concatenate([is_space[1:], [True]])
    starts = np.flatnonzero(~is_space & prev_space)
    ends = np.flatnonzero(~is_space & next_space) + 1
    doc_of_word = np.searchsorted(offsets, starts, side="right") - 1
    n_words = np.bincount(doc_of_word, minlength=n)[:n] if n else np.zeros(0, dtype=np.int64)
    word_bytes = ends - starts

    zero = np.zeros(0, dtype=np.int64)
    symbols = np.add.reduceat(_SYMBOL[buf].astype(np.int64), offsets[:-1]) if n else zero
    non_space = np.bincount(doc_of_word, weights=word_bytes, minlength=n)[:n] if n else zero
    symbol_ratio = np.where(non_space > 0, symbols / np.maximum(non_space, 1), 0.0)

    words = word_hashes(buf, starts, ends)
    first_word = np.searchsorted(doc_of_word, np.arange(n)) if n else zero
    # exact key: the words in order (a polynomial over their hashes), so case and spacing do not count
    with np.errstate(over="ignore"):
        position = np.arange(len(words)) - first_word[doc_of_word] if len(words) else zero
        weighted = words * _word_powers(position)
        keys = np.zeros(n, dtype=np.uint64)
        if len(words):
            np.add.at(keys, doc_of_word, weighted)
        keys = _mix(keys ^ n_words.astype(np.uint64))

    def ngrams(k: int) -> tuple[np.ndarray, np.ndarray]:
        """(document, hash) of every word k-gram inside one document."""
        if len(starts) < k:
            return zero, np.zeros(0, dtype=np.uint64)
        m = len(starts) - k + 1
        i = np.flatnonzero(doc_of_word[:m] == doc_of_word[k - 1 :])
        acc = words[i].copy()
        for j in range(1, k):
            acc ^= _rotl(words[i + j], 17 * j)
        return doc_of_word[i], _mix(acc)

    doc5, h5 = ngrams(SHINGLE_WORDS)
    rep5, _ = _group_counts(doc5, h5, n)
    count5 = np.maximum(n_words - SHINGLE_WORDS + 1, 0)
    dup_ngram_fraction = np.where(count5 > 0, rep5 / np.maximum(count5, 1), 0.0)
    doc2, h2 = ngrams(2)
    _, top2 = _group_counts(doc2, h2, n)
    count2 = np.maximum(n_words - 1, 0)
    top_bigram_fraction = np.where(count2 > 0, top2 / np.maximum(count2, 1), 0.0)

    signatures = None
    if num_perm:
        # A document shorter than a shingle is one shingle: all its words.
        short = np.flatnonzero((n_words > 0) & (n_words < SHINGLE_WORDS))
        signatures = minhash_signatures(np.concatenate([doc5, short]), np.concatenate([h5, keys[short]]), n, num_perm)
    return BatchSignals(
        n_bytes=n_bytes,
        n_words=n_words,
        symbol_ratio=symbol_ratio,
        dup_ngram_fraction=dup_ngram_fraction,
        top_bigram_fraction=top_bigram_fraction,
        exact_keys=keys,
        signatures=signatures,
    )


def _word_powers(position: np.ndarray) -> np.ndarray:
    """``M ** position`` mod 2^64 for word positions (a cached table, grown as needed)."""
    global _POWER_TABLE
    need = int(position.max()) + 1 if len(position) else 1
    if len(_POWER_TABLE) < need:
        size = max(need, 2 * len(_POWER_TABLE))
        table = np.full(size, np.uint64(0x9E3779B97F4A7C15 | 1), dtype=np.uint64)
        table[0] = 1
        with np.errstate(over="ignore"):
            np.cumprod(table, out=table)
        _POWER_TABLE = table
    return _POWER_TABLE[position]


_POWER_TABLE = np.ones(1, dtype=np.uint64)
