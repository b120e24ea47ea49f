"""The demo corpus's token cache: the same tokens as a fresh tokenization, read back when the corpus
and the tokenizer are unchanged, and made afresh when either changes or the cache is damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.demo import generate_demo_corpus
from engine.data.text import tokenize_file
from engine.data.token_cache import cache_key, cache_path, cached_tokens
from engine.data.tokenizer import load_tokenizer, train_tokenizer


@pytest.fixture()
def demo(tmp_path: Path):
    """(corpus, tokenizer directory, tokenizer) as the demo makes them, in a data directory of its own."""
    corpus = generate_demo_corpus(tmp_path / "data" / "corpus.txt", 400, 7)
    tok_dir = tmp_path / "data" / "tokenizer"
    train_tokenizer(corpus, tok_dir, 300)
    return corpus, tok_dir, load_tokenizer(tok_dir)


def caches(corpus: Path) -> list[Path]:
    return sorted(corpus.parent.glob(f".{corpus.name}.tokens-*.npy"))


def test_cached_tokens_equal_a_fresh_tokenization_and_are_read_back(demo):
    corpus, tok_dir, tok = demo
    fresh = tokenize_file(corpus, tok)
    first = cached_tokens(corpus, tok_dir, tok)
    assert first.dtype == fresh.dtype and np.array_equal(first, fresh)
    [cache] = caches(corpus)
    assert cache == cache_path(corpus, cache_key(corpus, tok_dir, tok.eos_token_id))
    assert not any(p.name.endswith(".tmp") for p in corpus.parent.iterdir())
    assert np.array_equal(np.load(cache), fresh)
    # the second launch reads the file: what is in it is what comes back
    marked = fresh.copy()
    marked[0] = tok.eos_token_id
    np.save(cache, marked)
    assert np.array_equal(cached_tokens(corpus, tok_dir, tok), marked)


def test_an_edited_corpus_is_tokenized_afresh_and_the_stale_cache_goes(demo):
    corpus, tok_dir, tok = demo
    cached_tokens(corpus, tok_dir, tok)
    [old] = caches(corpus)
    corpus.write_text(corpus.read_text() + "one more line of text\n")
    tokens = cached_tokens(corpus, tok_dir, tok)
    assert np.array_equal(tokens, tokenize_file(corpus, tok))
    [new] = caches(corpus)
    assert new != old


def test_another_tokenizer_is_another_cache(demo, tmp_path):
    corpus, tok_dir, tok = demo
    cached_tokens(corpus, tok_dir, tok)
    train_tokenizer(corpus, tok_dir, 280)  # retrained in place: same directory, other merges
    retrained = load_tokenizer(tok_dir)
    tokens = cached_tokens(corpus, tok_dir, retrained)
    assert np.array_equal(tokens, tokenize_file(corpus, retrained))
    assert not np.array_equal(tokens, tokenize_file(corpus, tok))
    assert len(caches(corpus)) == 1


def test_a_damaged_cache_is_replaced(demo):
    corpus, tok_dir, tok = demo
    fresh = cached_tokens(corpus, tok_dir, tok)
    [cache] = caches(corpus)
    cache.write_bytes(cache.read_bytes()[:100])  # cut short, as by a full disk
    assert np.array_equal(cached_tokens(corpus, tok_dir, tok), fresh)
    assert np.array_equal(np.load(cache), fresh)


def test_the_engine_keeps_the_demo_tokens_in_the_data_directory_not_the_run(tmp_path):
    from helpers import small_run_config

    from engine.build import prepare_data

    cfg = small_run_config(tmp_path / "data", {"data.demo.samples": 300}).resolved(tmp_path)
    streams = []
    for name in ("first", "second"):  # the first launch makes corpus, tokenizer and cache; the second reads them
        run_dir = tmp_path / "runs" / name
        run_dir.mkdir(parents=True)
        tok, tokens, _ = prepare_data(cfg, info=lambda message, level="info": None)
        streams.append(tokens)
        assert not list(run_dir.iterdir())
    [cache] = caches(cfg.data.path)
    assert cache.parent == cfg.data.path.parent
    assert np.array_equal(streams[0], streams[1]) and np.array_equal(streams[1], tokenize_file(cfg.data.path, tok))
