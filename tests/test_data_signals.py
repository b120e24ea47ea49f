"""Per-document signals, MinHash LSH deduplication and quality rules (engine.data.signals, dedup, quality)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from engine.data.dedup import EXACT, NEAR, Deduplicator, lsh_params
from engine.data.quality import QualityRules
from engine.data.signals import SHINGLE_WORDS, batch_signals, split_draws

POOL = [f"w{i}x{random.Random(i).randrange(10**6)}" for i in range(100_000)]


def words(n: int, seed: int, vocab: int = 3000) -> list[str]:
    """``n`` random words of a vocabulary of ``vocab``."""
    rng = random.Random(seed)
    return [POOL[rng.randrange(vocab)] for _ in range(n)]


def shingles(ws: list[str]) -> set[tuple[str, ...]]:
    return {tuple(ws[i : i + SHINGLE_WORDS]) for i in range(len(ws) - SHINGLE_WORDS + 1)}


def test_word_counts_and_symbol_ratio():
    s = batch_signals(["Hello,  world!\tagain", "$$$ ## ok", "", "Grüße aus Köln", "a"], num_perm=None)
    assert s.n_words.tolist() == [3, 3, 0, 3, 1]
    # symbols per non-space byte: ",!" of "Hello,world!again" (17 bytes); "$$$##" of "$$$##ok" (7)
    assert s.symbol_ratio[0] == pytest.approx(2 / 17) and s.symbol_ratio[1] == pytest.approx(5 / 7)
    assert s.symbol_ratio[3] == 0.0  # non-ASCII letters are letters
    assert s.signatures is None


def test_exact_keys_ignore_case_and_spacing_only():
    s = batch_signals(["The cat sat", "the  CAT\nsat", "the cat sat down", "cat the sat"], num_perm=None)
    k = s.exact_keys.tolist()
    assert k[0] == k[1] and len({k[0], k[2], k[3]}) == 3


def test_signals_do_not_depend_on_the_batch():
    docs = [" ".join(words(50, i)) for i in range(6)]
    whole = batch_signals(docs, 64)
    parts = [batch_signals(docs[:2], 64), batch_signals(docs[2:], 64)]
    np.testing.assert_array_equal(whole.signatures, np.concatenate([p.signatures for p in parts]))
    np.testing.assert_array_equal(whole.exact_keys, np.concatenate([p.exact_keys for p in parts]))
    draws = split_draws(whole.exact_keys)
    assert ((draws >= 0) & (draws < 1)).all() and len(set(draws.tolist())) == 6


@pytest.mark.parametrize("keep", [300, 240, 150, 60])
def test_minhash_estimates_the_jaccard_similarity(keep):
    base = words(300, 1)
    other = base[:keep] + words(300 - keep, 2)
    a, b = shingles(base), shingles(other)
    jaccard = len(a & b) / len(a | b)
    sig = batch_signals([" ".join(base), " ".join(other)], 256).signatures
    assert (sig[0] == sig[1]).mean() == pytest.approx(jaccard, abs=0.1)


def test_repetition_signals():
    rep = ["spam"] * 30
    mixed = words(30, 3)
    s = batch_signals([" ".join(rep), " ".join(mixed), "one two"], num_perm=None)
    assert s.dup_ngram_fraction[0] == pytest.approx(25 / 26)  # every 5-gram after the first repeats it
    assert s.top_bigram_fraction[0] == 1.0
    assert s.dup_ngram_fraction[1] == 0.0 and s.top_bigram_fraction[1] == pytest.approx(1 / 29)
    assert s.dup_ngram_fraction[2] == 0.0 and s.top_bigram_fraction[2] == 1.0


def test_lsh_parameters_separate_the_threshold():
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128

    def p(s):
        return 1 - (1 - s**rows) ** bands

    assert p(0.95) > 0.99 and p(0.9) > 0.9 and p(0.5) < 0.02 and 0.3 < p(0.8) < 0.8
    with pytest.raises(ValueError, match="between 0 and 1"):
        lsh_params(1.0, 128)


def test_deduplicator_keeps_first_occurrences():
    base = words(200, 4)
    near = list(base)
    near[100] = "changed"  # 5 of 196 shingles differ: similarity ~0.95
    far = base[:100] + words(100, 5)  # ~0.33
    docs = [" ".join(base), " ".join(base).upper(), " ".join(near), " ".join(far), " ".join(words(200, 6))]
    sig = batch_signals(docs, 128)
    dedup = Deduplicator(0.8, 128)
    bands = dedup.band_keys(sig.signatures)
    kept = [
        dedup.add_exact(k) and dedup.add_near(sig.signatures[i], bands[i])
        for i, k in enumerate(sig.exact_keys.tolist())
    ]
    assert kept == [True, False, False, True, True]
    assert dedup.counts == {EXACT: 1, NEAR: 1} and dedup.kept == 3

    exact_only = Deduplicator(None)
    assert [
        exact_only.add_exact(k) and exact_only.add_near(sig.signatures[i], None)
        for i, k in enumerate(sig.exact_keys.tolist())
    ] == [True, False, True, True, True]


def test_deduplicator_grows_past_its_first_block():
    docs = [" ".join(words(12, 100 + i, vocab=100_000)) for i in range(1500)]
    sig = batch_signals(docs, 64)
    dedup = Deduplicator(0.8, 64)
    bands = dedup.band_keys(sig.signatures)
    assert all(dedup.add_near(sig.signatures[i], bands[i]) for i in range(1500))
    assert dedup.kept == 1500 and not dedup.add_near(sig.signatures[700], bands[700])


def test_quality_rules_name_the_reason():
    docs = [
        "hi there",
        " ".join(words(10, 7)),
        "@@ ## $$ %% ^^ && **",
        " ".join(["buy now"] * 15),
        " ".join(words(25, 8)),
    ]
    reasons = QualityRules().reasons(batch_signals(docs, None))
    assert reasons == ["too_short", None, "symbols", "repetition", None]
    assert (
        QualityRules(
            min_words=0, max_symbol_ratio=None, max_dup_ngram_fraction=None, max_top_bigram_fraction=None
        ).reasons(batch_signals(docs, None))
        == [None] * 5
    )
    assert QualityRules(max_words=9).reasons(batch_signals(docs[1:2], None)) == ["too_long"]
