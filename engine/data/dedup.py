"""Deduplication: exact (by key) and near-duplicate (MinHash LSH), first occurrence kept.

    dedup = Deduplicator(threshold=0.8, num_perm=128)
    reason = dedup.add(key, signature)     # None (kept), "exact_duplicate" or "near_duplicate"

Keys and signatures come from ``engine.data.signals`` (``exact_keys``, ``signatures``). Decisions
depend only on the documents and their order, never on how they were batched, so a re-run (or a
resumed run that replays the documents before its resume point) decides exactly alike.

Near duplicates: the signature is cut into ``bands`` bands of ``rows`` values (chosen for the
threshold like datasketch's ``MinHashLSH``: the pair minimising the false-positive plus
false-negative probability mass); documents that agree on a whole band are candidates, and a
candidate is a duplicate when the signatures agree in at least ``threshold`` of their positions
(the estimated Jaccard similarity of their word 5-gram sets). Memory: the kept documents'
signatures (``num_perm`` x 4 bytes each) and one integer per band per kept document.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EXACT, NEAR = "exact_duplicate", "near_duplicate"


def _probability(threshold: float, bands: int, rows: int, false_positive: bool) -> float:
    """Integral of the probability that a pair with similarity s becomes (FP: below the threshold) or
    fails to become (FN: above it) a candidate, by the midpoint rule."""
    steps = 200
    lo, hi = (0.0, threshold) if false_positive else (threshold, 1.0)
    width = (hi - lo) / steps
    total = 0.0
    for i in range(steps):
        s = lo + (i + 0.5) * width
        p = 1.0 - (1.0 - s**rows) ** bands
        total += (p if false_positive else 1.0 - p) * width
    return total


@lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) with bands x rows <= num_perm minimising false positives + false negatives."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the near-duplicate threshold must be between 0 and 1, got {threshold}")
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            err = _probability(threshold, bands, rows, True) + _probability(threshold, bands, rows, False)
            if err < best_err:
                best, best_err = (bands, rows), err
    return best


class Deduplicator:
    """Exact and near-duplicate detection over a stream of documents."""

    def __init__(self, threshold: float | None = 0.8, num_perm: int = 128):
        """``threshold`` None: exact duplicates only."""
        self.threshold = threshold
        self.num_perm = num_perm
        self.exact: set[int] = set()
        if threshold is not None:
            self.bands, self.rows = lsh_params(float(threshold), num_perm)
            self.tables: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
            self._sigs = np.zeros((1024, num_perm), dtype=np.uint32)
        self.kept = 0
        self.counts = {EXACT: 0, NEAR: 0}

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """``(n, bands)`` integer keys of each band of each signature."""
        n = len(signatures)
        cut = signatures[:, : self.bands * self.rows].reshape(n, self.bands, self.rows).astype(np.uint64)
        mult = (np.arange(1, self.rows + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
        with np.errstate(over="ignore"):
            keys = (cut * mult).sum(axis=2, dtype=np.uint64) + np.arange(self.bands, dtype=np.uint64)
        return keys

    def add_exact(self, key: int) -> bool:
        """Whether ``key`` is new (and remember it)."""
        if key in self.exact:
            self.counts[EXACT] += 1
            return False
        self.exact.add(key)
        return True

    def add_near(self, signature: np.ndarray, band_keys: np.ndarray) -> bool:
        """Whether the document is no near duplicate of a kept one (and keep it if so)."""
        if self.threshold is None:
            return True
        candidates: set[int] = set()
        for table, key in zip(self.tables, band_keys.tolist()):
            found = table.get(key)
            if found:
                candidates.update(found)
        if candidates:
            ids = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
            agree = (self._sigs[ids] == signature).mean(axis=1)
            if agree.max() >= self.threshold:
                self.counts[NEAR] += 1
                return False
        doc = self.kept
        if doc == len(self._sigs):
            self._sigs = np.concatenate([self._sigs, np.zeros_like(self._sigs)])
        self._sigs[doc] = signature
        for table, key in zip(self.tables, band_keys.tolist()):
            table.setdefault(key, []).append(doc)
        self.kept += 1
        return True
