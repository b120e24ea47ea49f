"""Simple, language-agnostic quality filters on ``engine.data.signals`` (length, symbols, repetition).

    rules = QualityRules(min_words=3)
    reasons = rules.reasons(signals)     # per document: None (kept) or the reason it is dropped

Thresholds in the spirit of Gopher's rules (Rae et al. 2021), loosened for small and synthetic
corpora; every one can be changed (``cockpit data prepare --min-words ...``) or turned off (0 or
None). Repetition is judged only on documents of at least ``repetition_min_words`` words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from engine.data.signals import BatchSignals

#: Drop reasons, in the order they are checked.
REASONS = ("too_short", "too_long", "symbols", "repetition")


@dataclass(frozen=True)
class QualityRules:
    min_words: int = 3
    """Fewer words than this: dropped as ``too_short`` (0: no minimum)."""
    max_words: int | None = 100_000
    """More words than this: dropped as ``too_long`` (None: no maximum)."""
    max_symbol_ratio: float | None = 0.5
    """ASCII symbol bytes (not letters, digits, spaces) per non-space byte above this: ``symbols``."""
    max_dup_ngram_fraction: float | None = 0.3
    """Share of word 5-grams repeating an earlier 5-gram of the document above this: ``repetition``."""
    max_top_bigram_fraction: float | None = 0.2
    """Share of the most frequent word 2-gram among the 2-grams above this: ``repetition``."""
    repetition_min_words: int = 20
    """Repetition is judged from this many words up."""

    def to_json(self) -> dict:
        return asdict(self)

    def reasons(self, s: BatchSignals) -> list[str | None]:
        """The drop reason of each document of ``s`` (None: kept)."""
        n = len(s.n_words)
        reason = np.full(n, -1, dtype=np.int64)

        def mark(mask: np.ndarray, code: int) -> None:
            reason[(reason < 0) & mask] = code

        if self.min_words:
            mark(s.n_words < self.min_words, 0)
        if self.max_words is not None:
            mark(s.n_words > self.max_words, 1)
        if self.max_symbol_ratio is not None:
            mark(s.symbol_ratio > self.max_symbol_ratio, 2)
        long_enough = s.n_words >= self.repetition_min_words
        if self.max_dup_ngram_fraction is not None:
            mark(long_enough & (s.dup_ngram_fraction > self.max_dup_ngram_fraction), 3)
        if self.max_top_bigram_fraction is not None:
            mark(long_enough & (s.top_bigram_fraction > self.max_top_bigram_fraction), 3)
        return [None if r < 0 else REASONS[r] for r in reason.tolist()]
