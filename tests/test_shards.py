"""Prepared token shards: round trip, dtype, refusals with clear messages, JSONL, and a real engine run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import events_of, train_in_process

from engine.data.demo import generate_demo_corpus
from engine.data.shards import (
    MANIFEST,
    ShardTokens,
    open_shards,
    read_manifest,
    token_dtype,
    tokenizer_sha256,
    write_shards,
)
from engine.data.text import BatchIterator, DataError, iter_documents, split_tokens, tokenize_file
from engine.data.tokenizer import load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_demo_corpus(tmp_path_factory.mktemp("shard-corpus") / "corpus.txt", samples=1500, seed=11)


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory) -> Path:
    return train_tokenizer(corpus, tmp_path_factory.mktemp("shard-tok") / "tokenizer", vocab_size=384)


@pytest.fixture(scope="module")
def other_tok_dir(corpus, tmp_path_factory) -> Path:
    return train_tokenizer(corpus, tmp_path_factory.mktemp("shard-tok2") / "tokenizer", vocab_size=300)


@pytest.fixture(scope="module")
def stream(corpus, tok_dir) -> np.ndarray:
    return tokenize_file(corpus, load_tokenizer(tok_dir))


def test_round_trip_in_several_shards(tmp_path, stream, tok_dir):
    chunks = np.array_split(stream, 7)  # written as they come, across shard boundaries
    manifest = write_shards(iter(chunks), tmp_path / "sh", tok_dir, seq_len=64, shard_tokens=5000)
    files = sorted(p.name for p in (tmp_path / "sh").iterdir())
    n = -(-len(stream) // 5000)
    assert files == [MANIFEST] + [f"train_{i:03d}.bin" for i in range(n)]
    assert manifest["total_tokens"] == len(stream) and manifest["dtype"] == "uint16"
    assert [s["tokens"] for s in manifest["shards"]] == [5000] * (n - 1) + [len(stream) - 5000 * (n - 1)]
    assert manifest["tokenizer"]["sha256"] == tokenizer_sha256(tok_dir) and manifest["seq_len"] == 64
    assert read_manifest(tmp_path / "sh") == json.loads((tmp_path / "sh" / MANIFEST).read_text())

    tokens = open_shards(tmp_path / "sh", tok_dir, seq_len=64)
    assert isinstance(tokens, ShardTokens) and len(tokens) == len(stream)
    assert all(isinstance(m, np.memmap) for m in tokens._maps)  # nothing copied into RAM
    np.testing.assert_array_equal(np.asarray(tokens), stream)
    idx = np.array([[0, 4999, 5000, 5001], [len(stream) - 1, 12345, 7, 10000]])
    np.testing.assert_array_equal(tokens[idx], stream[idx])
    assert tokens[5000] == stream[5000] and tokens[-1] == stream[-1]
    train, val = split_tokens(tokens, 0.1)
    ref_train, ref_val = split_tokens(stream, 0.1)
    assert len(train) == len(ref_train) and len(val) == len(ref_val)
    np.testing.assert_array_equal(np.asarray(val), ref_val)
    # the same batches as from the in-memory stream, same seed
    a = BatchIterator(train, 4, 64, seed=5)
    b = BatchIterator(ref_train, 4, 64, seed=5)
    for _ in range(20):
        assert (next(a) == next(b)).all()

    # rewriting with bigger shards leaves no stale shard behind
    write_shards(stream, tmp_path / "sh", tok_dir, seq_len=64, shard_tokens=10**9)
    assert sorted(p.name for p in (tmp_path / "sh").iterdir()) == [MANIFEST, "train_000.bin"]


def test_dtype_follows_the_vocabulary(tmp_path, tok_dir, monkeypatch):
    assert token_dtype(65_535) == np.uint16 and token_dtype(65_536) == np.uint32 and token_dtype(1024) == np.uint16
    import engine.data.shards as shards

    monkeypatch.setattr(shards, "tokenizer_vocab_size", lambda _: 100_000)
    ids = np.array([0, 70_000, 99_999, 5], dtype=np.int64)
    manifest = write_shards(ids, tmp_path / "big", tok_dir, seq_len=2)
    assert manifest["dtype"] == "uint32" and (tmp_path / "big" / "train_000.bin").stat().st_size == 16
    one = open_shards(tmp_path / "big", tok_dir)
    assert isinstance(one, np.memmap) and one.dtype == np.uint32  # a single shard is its memory map
    np.testing.assert_array_equal(one, ids)
    with pytest.raises(DataError, match="token id 100000 is outside the vocabulary"):
        write_shards(np.array([100_000]), tmp_path / "bad", tok_dir, seq_len=2)


def test_shards_of_another_tokenizer_are_refused(tmp_path, stream, tok_dir, other_tok_dir):
    write_shards(stream, tmp_path / "sh", tok_dir, seq_len=64)
    with pytest.raises(DataError) as err:
        open_shards(tmp_path / "sh", other_tok_dir, seq_len=64)
    msg = str(err.value)
    assert f"shards in {tmp_path / 'sh'} were written with tokenizer sha256 {tokenizer_sha256(tok_dir)[:12]}" in msg
    assert f"this run's tokenizer in {other_tok_dir} has {tokenizer_sha256(other_tok_dir)[:12]}" in msg
    with pytest.raises(DataError, match="prepared for seq_len 64, this run uses train.seq_len 128"):
        open_shards(tmp_path / "sh", tok_dir, seq_len=128)


def test_missing_manifest_and_truncated_shard(tmp_path, stream, tok_dir):
    with pytest.raises(DataError, match="shard directory not found"):
        open_shards(tmp_path / "nowhere", tok_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"manifest.json: missing: not a prepared shard directory"):
        open_shards(tmp_path / "empty", tok_dir)
    write_shards(stream, tmp_path / "sh", tok_dir, seq_len=64, shard_tokens=4000)
    shard = tmp_path / "sh" / "train_001.bin"
    with open(shard, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(
        DataError,
        match=r"train_001.bin: 1,000 bytes, but manifest.json says 4,000 tokens x 2 B "
        r"= 8,000 bytes; the shard is truncated",
    ):
        open_shards(tmp_path / "sh", tok_dir)
    shard.unlink()
    with pytest.raises(DataError, match="train_001.bin: shard missing"):
        open_shards(tmp_path / "sh", tok_dir)


def test_jsonl_documents_and_malformed_lines(tmp_path, tok_dir):
    good = tmp_path / "docs.jsonl"
    good.write_text('{"text": "the cat sat"}\n\n{"text": "on the mat", "id": 2}\n', encoding="utf-8")
    assert list(iter_documents(good)) == ["the cat sat", "on the mat"]
    tok = load_tokenizer(tok_dir)
    stream = tokenize_file(good, tok, "jsonl")
    assert (stream == tok.eos_token_id).sum() == 2
    for line, message in (
        ('{"text": "ok"', r"invalid JSON \(Expecting ',' delimiter at column 14\)"),
        ('{"txt": "x"}', r"missing key 'text' \(pretrain\)"),
        ('["text"]', "got list"),
    ):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"{bad}:2: .*{message}"):
            tokenize_file(bad, tok, "jsonl")


def test_command_line_writes_shards(tmp_path, corpus, tok_dir, capsys):
    from engine.data.shards import main

    out = tmp_path / "sh"
    assert main(["--input", str(corpus), "--tokenizer", str(tok_dir), "--out", str(out), "--seq-len", "64"]) == 0
    done = capsys.readouterr()
    assert "tokens (uint16) in 1 shard(s)" in done.out and read_manifest(out)["seq_len"] == 64
    assert (
        main(["--input", str(tmp_path / "none.txt"), "--tokenizer", str(tok_dir), "--out", str(out), "--seq-len", "64"])
        == 2
    )
    bad = capsys.readouterr()
    assert "none.txt: not found" in bad.err and not bad.out


def test_engine_trains_from_shards(tmp_path, corpus, tok_dir, other_tok_dir, stream, make_run_dir):
    shard_dir = tmp_path / "shards"
    write_shards(stream, shard_dir, tok_dir, seq_len=64, shard_tokens=6000)
    run_dir = make_run_dir(
        "shards",
        overrides={
            "data.source": "shards",
            "data.path": str(shard_dir),
            "tokenizer.path": str(tok_dir),
            "train.max_steps": 10,
            "train.warmup_steps": 2,
            "telemetry.enabled": False,
            "train.eval_every": 5,
            "train.eval_batches": 2,
            "data.val_fraction": 0.1,
        },
    )
    rc = train_in_process(run_dir)
    events = events_of(run_dir)
    log = (run_dir / "logs" / "engine.log").read_text()
    assert rc == 0, log
    assert events[-1]["type"] == "status" and events[-1]["state"] == "finished"
    assert any("memory-mapped from" in e.get("message", "") for e in events if e["type"] == "log")
    assert [e["step"] for e in events if e["type"] == "metrics"][-1] == 10
    assert [e["step"] for e in events if e["type"] == "eval"] == [5, 10]  # held-out tail of the shards

    # the same run with another tokenizer is refused with the message, not a traceback
    other = make_run_dir(
        "shards-bad",
        overrides={
            "data.source": "shards",
            "data.path": str(shard_dir),
            "tokenizer.path": str(other_tok_dir),
            "telemetry.enabled": False,
        },
    )
    assert train_in_process(other) == 1
    error = next(e for e in events_of(other) if e["type"] == "error")
    assert error["message"].startswith(f"shards in {shard_dir} were written with tokenizer sha256 ")
    assert "Traceback" not in (other / "logs" / "engine.log").read_text()


def test_trainer_prepares_jsonl_training_its_tokenizer_on_the_texts(tmp_path, corpus):
    from helpers import small_run_config

    from engine.build import prepare_data

    lines = corpus.read_text(encoding="utf-8").splitlines()[:400]
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": line}) + "\n" for line in lines), encoding="utf-8")
    cfg = small_run_config(
        tmp_path,
        {
            "data.source": "jsonl",
            "data.path": str(docs),
            "tokenizer.path": str(tmp_path / "tok"),
            "tokenizer.vocab_size": 300,
        },
    )
    tokenizer, tokens, held_out = prepare_data(cfg, info=print)
    assert held_out is None  # split off the stream's tail by the trainer
    assert not any('text":' in t for t in tokenizer.get_vocab())  # learnt from the texts, not the JSON
    assert (tokens == tokenizer.eos_token_id).sum() == len(lines)
    assert not list(tmp_path.glob(".tok.corpus-*"))  # the temporary text is gone
