"""The shard manifest (engine.data.manifest): manifests as the earlier writers wrote them still read,
malformed ones are reported as problems naming the key, the engine refuses with the same words as
the check, and the one line reader words a missing file or a directory alike for every reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.data.demo import generate_demo_corpus
from engine.data.manifest import MANIFEST, inspect_shards
from engine.data.shards import open_masks, open_shards, read_manifest, tokenizer_sha256, write_shards
from engine.data.text import DataError
from engine.data.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    corpus = generate_demo_corpus(tmp_path_factory.mktemp("mf-corpus") / "corpus.txt", samples=300, seed=3)
    return train_tokenizer(corpus, tmp_path_factory.mktemp("mf-tok") / "tokenizer", vocab_size=300)


def old_directory(path: Path, tok_dir: Path, prepared: bool) -> tuple[dict, np.ndarray, np.ndarray]:
    """A shard directory with a manifest exactly as the earlier ``write_shards`` (``prepared``
    False) or ``prepare`` (True: sha256s, validation shards, masks, records) wrote it."""
    path.mkdir()
    train = np.arange(300, dtype=np.uint16) % 290
    val = np.arange(50, dtype=np.uint16)
    train.tofile(path / "train_000.bin")
    tok = {"sha256": tokenizer_sha256(tok_dir), "vocab_size": 300, "path": str(tok_dir)}
    manifest = {
        "format": "cockpit-token-shards",
        "version": 1,
        "dtype": "uint16",
        "tokenizer": tok,
        "seq_len": 16,
        "shards": [{"file": "train_000.bin", "tokens": 300}],
        "total_tokens": 300,
    }
    if prepared:
        val.tofile(path / "val_000.bin")
        np.ones(300, dtype=np.uint8).tofile(path / "train_000.mask.bin")
        np.zeros(50, dtype=np.uint8).tofile(path / "val_000.mask.bin")
        manifest["shards"][0].update(sha256="ab" * 32, mask_file="train_000.mask.bin", mask_sha256="cd" * 32)
        manifest.update(
            val_shards=[
                {
                    "file": "val_000.bin",
                    "tokens": 50,
                    "sha256": "ef" * 32,
                    "mask_file": "val_000.mask.bin",
                    "mask_sha256": "01" * 32,
                }
            ],
            val_tokens=50,
            loss_mask=True,
            chat_markers_special=None,
            documents={"read": 12, "train": 9, "val": 1, "dropped": {"empty": 2}},
            sources=[
                {
                    "path": "/data/a.txt",
                    "format": "text",
                    "bytes": 99,
                    "text_unit": "line",
                    "text_unit_reason": "as set",
                }
            ],
            prepare={
                "fingerprint": "f" * 64,
                "settings": {"seq_len": 16, "rules": {"min_words": 3}},
                "drop_reasons": ["invalid", "empty"],
            },
        )
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest, train, val


@pytest.mark.parametrize("prepared", [False, True])
def test_manifests_of_the_earlier_writers_still_read(tmp_path, tok_dir, prepared):
    manifest, train, val = old_directory(tmp_path / "old", tok_dir, prepared)
    summary = inspect_shards(tmp_path / "old")
    assert summary.ok and summary.problems == [] and summary.tokens == 300 and summary.seq_len == 16
    assert read_manifest(tmp_path / "old") == manifest  # nothing added, nothing lost
    np.testing.assert_array_equal(open_shards(tmp_path / "old", tok_dir, seq_len=16), train)
    if prepared:
        assert summary.manifest.documents.dropped == {"empty": 2} and summary.manifest.prepare.fingerprint == "f" * 64
        np.testing.assert_array_equal(open_shards(tmp_path / "old", tok_dir, split="val"), val)
        assert int(np.asarray(open_masks(tmp_path / "old", split="val")).sum()) == 0
    else:
        assert open_shards(tmp_path / "old", tok_dir, split="val") is None and open_masks(tmp_path / "old") is None


def test_malformed_manifests_name_the_key_and_the_engine_says_the_same(tmp_path, tok_dir):
    manifest, _, _ = old_directory(tmp_path / "sh", tok_dir, prepared=False)
    path = tmp_path / "sh" / MANIFEST
    cases = [
        ({**manifest, "seq_len": "16"}, "'seq_len': Input should be a valid integer, got '16'"),
        ({**manifest, "tokenizer": {"vocab_size": 300}}, "missing key 'tokenizer.sha256'"),
        ({**manifest, "dtype": "int8"}, "'dtype': Input should be 'uint16' or 'uint32', got 'int8'"),
        ({**manifest, "shards": [{"file": "train_000.bin", "tokens": -1}]}, "'shards[0].tokens'"),
        ({**manifest, "total_tokens": 301}, "'total_tokens' is 301, the shards hold 300"),
        ({**manifest, "version": 2}, "format version 2, this engine reads version 1"),
    ]
    for broken, words in cases:
        path.write_text(json.dumps(broken), encoding="utf-8")
        summary = inspect_shards(tmp_path / "sh")
        assert summary.manifest is None and not summary.ok
        first = str(summary.problems[0])
        assert first.startswith(f"{path}: ") and words in first, first
        with pytest.raises(DataError) as err:
            open_shards(tmp_path / "sh", tok_dir)
        assert str(err.value) == first
    path.write_text('{"format": "cockpit-token-shards",\n "version": 1,,}', encoding="utf-8")
    assert [str(p) for p in inspect_shards(tmp_path / "sh").problems] == [
        f"{path}:2: invalid JSON (Expecting property name enclosed in double quotes at column 15)"
    ]


def test_a_missing_mask_is_a_problem_of_the_directory(tmp_path, tok_dir):
    old_directory(tmp_path / "sh", tok_dir, prepared=True)
    (tmp_path / "sh" / "val_000.mask.bin").unlink()
    problems = [str(p) for p in inspect_shards(tmp_path / "sh").problems]
    assert problems == [
        f"{tmp_path / 'sh' / 'val_000.mask.bin'}: loss mask missing or not 50 bytes (listed in "
        f"manifest.json); prepare the shards again"
    ]
    with pytest.raises(DataError, match="val_000.mask.bin: loss mask missing"):
        open_masks(tmp_path / "sh")


def test_write_shards_records_each_shard_sha256(tmp_path, tok_dir):
    import hashlib

    manifest = write_shards(np.arange(250, dtype=np.int64) % 290, tmp_path / "sh", tok_dir, seq_len=8, shard_tokens=100)
    assert [s["tokens"] for s in manifest["shards"]] == [100, 100, 50]
    for s in manifest["shards"]:
        assert s["sha256"] == hashlib.sha256((tmp_path / "sh" / s["file"]).read_bytes()).hexdigest()
        assert "end_position" not in s
    assert "val_shards" not in manifest and read_manifest(tmp_path / "sh") == manifest


def test_one_wording_of_a_missing_file_and_a_directory(tmp_path, tok_dir):
    from typer.testing import CliRunner

    from cockpit.cli import app
    from engine.data.formats import FormatError, scan
    from engine.data.prepare import PrepareError, PrepareSettings, prepare
    from engine.data.text import iter_documents

    for path, words in ((tmp_path / "none.txt", "not found"), (tmp_path, "is a directory, not a data file")):
        expected = f"{path}: {words}"
        with pytest.raises(DataError) as engine_err:
            list(iter_documents(path, "text"))
        with pytest.raises(FormatError) as scan_err:
            scan(path, "pretrain")
        with pytest.raises(PrepareError) as prepare_err:
            prepare([path], tok_dir, tmp_path / "out", PrepareSettings(seq_len=8))
        assert str(engine_err.value) == str(scan_err.value) == str(prepare_err.value) == expected
        stats = CliRunner().invoke(app, ["data", "stats", str(path)])
        assert stats.exit_code == 2 and f"error: {expected}" in stats.stderr
