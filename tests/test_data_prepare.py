"""`cockpit data prepare` (engine.data.prepare): what is dropped and why, what the shards hold, the
validation split, refusals, a run killed midway and re-run, and the engine training on the result."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import events_of, train_in_process

from engine.data.prepare import MANIFEST, STATE, PrepareError, PrepareSettings, prepare
from engine.data.shards import open_shards, read_manifest
from engine.data.signals import batch_signals, split_draws
from engine.data.tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parent.parent
VOCAB = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "nu", "po", "re", "si", "tu", "va", "ze")
    for b in ("n", "ra", "th", "lo", "mi", "ss", "ko", "ve", "du", "x", "q", "pi")
]


def document(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) + rng.choice(("", "s", "ed", "ing", str(rng.randrange(100)))) for _ in range(n))


def planted_corpus(path: Path, seed: int = 0) -> dict:
    """Unique documents with planted exact duplicates, near duplicates, junk and blank lines; returns
    the lines and what each planted line should be dropped as."""
    rng = random.Random(seed)
    unique = [document(rng, rng.randrange(80, 140)) for _ in range(300)]
    lines, expect = list(unique), {}

    def plant(text: str, reason: str) -> None:
        lines.insert(rng.randrange(300, len(lines) + 1), text)  # after every unique document
        expect[text] = reason

    for i in range(20):
        plant("  " + unique[i].upper().replace(" ", "   "), "exact_duplicate")
    for i in range(20, 35):
        ws = unique[i].split()
        ws[len(ws) // 2] = "CHANGED"
        plant(" ".join(ws), "near_duplicate")
    for text in ("hi there", "ok", "yes no"):
        plant(text, "too_short")
    for text in ("@@ ## $$ %% ^^ && ** !!", "<<< >>> ||| ~~~ +++ === ---"):
        plant(text, "symbols")
    for word in ("buy now", "click here", "free money"):
        plant(" ".join([word] * 20), "repetition")
    lines[310:310] = ["", "   "]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"lines": lines, "unique": unique, "expect": expect}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare")
    info = planted_corpus(root / "corpus.txt")
    tok = train_tokenizer(root / "corpus.txt", root / "tok", 400)
    return root, info, tok


def decode_docs(tokens: np.ndarray, tok_dir: Path) -> list[str]:
    """The documents of a token stream: split at end-of-text, decoded."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    eos = tok.token_to_id("<|endoftext|>")
    tokens = np.asarray(tokens)
    assert tokens[-1] == eos
    cuts = np.flatnonzero(tokens == eos)
    return [tok.decode(part.tolist()) for part in np.split(tokens, cuts + 1)[:-1] for part in [part[:-1]]]


def test_drops_exactly_what_was_planted_and_keeps_the_rest_in_order(corpus, tmp_path):
    root, info, tok = corpus
    manifest = prepare(
        [root / "corpus.txt"], tok, tmp_path / "out", PrepareSettings(seq_len=64, val_fraction=0.1, shard_tokens=3000)
    )
    docs = manifest["documents"]
    want = {}
    for reason in info["expect"].values():
        want[reason] = want.get(reason, 0) + 1
    assert docs["dropped"] == {**want, "empty": 2}
    assert docs["train"] + docs["val"] == 300 and docs["val"] > 10
    assert docs["read"] == len(info["lines"])

    train = decode_docs(open_shards(tmp_path / "out", tok, 64), tok)
    val = decode_docs(open_shards(tmp_path / "out", tok, 64, split="val"), tok)
    held = split_draws(batch_signals(info["unique"], None).exact_keys) < 0.1
    assert train == [d for d, h in zip(info["unique"], held) if not h]
    assert val == [d for d, h in zip(info["unique"], held) if h]

    m = read_manifest(tmp_path / "out")
    assert m["total_tokens"] == sum(s["tokens"] for s in m["shards"]) and len(m["shards"]) > 3
    assert m["val_tokens"] == sum(s["tokens"] for s in m["val_shards"])
    for shard in m["shards"] + m["val_shards"]:
        assert hashlib.sha256((tmp_path / "out" / shard["file"]).read_bytes()).hexdigest() == shard["sha256"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [MANIFEST] + [s["file"] for s in m["shards"] + m["val_shards"]]
    )  # no state, no temporaries


def test_a_second_run_with_the_same_inputs_does_nothing(corpus, tmp_path):
    root, _, tok = corpus
    settings = PrepareSettings(seq_len=64)
    first = prepare([root / "corpus.txt"], tok, tmp_path / "out", settings)
    mtime = (tmp_path / "out" / "train_000.bin").stat().st_mtime_ns
    again = prepare([root / "corpus.txt"], tok, tmp_path / "out", settings)
    assert again["skipped"] and again["shards"] == first["shards"]
    assert (tmp_path / "out" / "train_000.bin").stat().st_mtime_ns == mtime
    other = prepare(
        [root / "corpus.txt"], tok, tmp_path / "out", PrepareSettings(seq_len=64, near_dedup_threshold=None)
    )
    assert not other.get("skipped") and "near_duplicate" not in other["documents"]["dropped"]


def test_filters_and_dedup_can_be_turned_off(corpus, tmp_path):
    from engine.data.quality import QualityRules

    root, info, tok = corpus
    off = QualityRules(
        min_words=0, max_words=None, max_symbol_ratio=None, max_dup_ngram_fraction=None, max_top_bigram_fraction=None
    )
    m = prepare(
        [root / "corpus.txt"],
        tok,
        tmp_path / "out",
        PrepareSettings(seq_len=64, val_fraction=0.0, near_dedup_threshold=None, exact_dedup=False, rules=off),
    )
    assert m["documents"]["dropped"] == {"empty": 2} and m["documents"]["train"] == len(info["lines"]) - 2
    assert m["val_shards"] == [] and m["val_tokens"] == 0


def test_refusals_name_the_problem(corpus, tmp_path):
    root, _, tok = corpus
    with pytest.raises(PrepareError, match="no tokenizer here"):
        prepare([root / "corpus.txt"], tmp_path / "nope", tmp_path / "out", PrepareSettings(seq_len=64))
    with pytest.raises(PrepareError, match="missing.txt: not found"):
        prepare([tmp_path / "missing.txt"], tok, tmp_path / "out", PrepareSettings(seq_len=64))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "one two three four"}\n{"text": "five six seven eight"\n{"text": 3}\n', encoding="utf-8")
    with pytest.raises(PrepareError, match=r"bad.jsonl:2: invalid JSON .*--skip-invalid"):
        prepare([bad], tok, tmp_path / "out", PrepareSettings(seq_len=64))
    assert not (tmp_path / "out" / MANIFEST).exists()
    m = prepare([bad], tok, tmp_path / "out", PrepareSettings(seq_len=64, val_fraction=0, skip_invalid=True))
    assert m["documents"]["dropped"] == {"invalid": 2} and m["documents"]["train"] == 1
    with pytest.raises(PrepareError, match="--seq-len must be positive"):
        prepare([bad], tok, tmp_path / "out", PrepareSettings(seq_len=0))


def big_corpus(path: Path, mib: int) -> Path:
    rng = random.Random(5)
    with open(path, "w", encoding="utf-8") as f:
        size = 0
        while size < mib << 20:
            line = document(rng, rng.randrange(20, 400)) + "\n"
            f.write(line)
            size += len(line)
    return path


def file_hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.mark.slow
def test_killed_midway_and_rerun_gives_the_same_shards(tmp_path):
    src = big_corpus(tmp_path / "big.txt", 10)
    tok = train_tokenizer(src, tmp_path / "tok", 400)
    args = [
        "data",
        "prepare",
        "--input",
        str(src),
        "--tokenizer",
        str(tok),
        "--seq-len",
        "128",
        "--val-fraction",
        "0.01",
        "--shard-tokens",
        "100000",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "cockpit", *args, "--out", str(out)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    whole = run(tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    reference = file_hashes(tmp_path / "whole")

    out = tmp_path / "killed"
    proc = run(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if len(json.loads((out / STATE).read_text())["train"]) >= 3:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.005)
    assert proc.poll() is None, "the preparation finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / MANIFEST).exists()
    left = file_hashes(out)
    for name, digest in left.items():  # every shard that looks complete is complete
        if name.endswith(".bin") and not name.startswith("."):
            assert reference[name] == digest, name
    done = json.loads((out / STATE).read_text())["train"]
    assert len(done) < len(json.loads((tmp_path / "whole" / MANIFEST).read_text())["shards"])
    kept = {s["file"]: (out / s["file"]).stat().st_mtime_ns for s in done}

    again = run(out)
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert file_hashes(out) == reference
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept  # finished shards were not rewritten


@pytest.mark.slow
def test_the_engine_trains_and_evaluates_on_prepared_shards(corpus, tmp_path, make_run_dir):
    root, _, tok = corpus
    prepare([root / "corpus.txt"], tok, tmp_path / "shards", PrepareSettings(seq_len=64, val_fraction=0.1))
    run_dir = make_run_dir(
        "prepared",
        {
            "data.source": "shards",
            "data.path": str(tmp_path / "shards"),
            "tokenizer.path": str(tok),
            "train.max_steps": 10,
            "train.eval_every": 5,
            "train.eval_batches": 2,
        },
    )
    assert train_in_process(run_dir) == 0, (run_dir / "logs" / "engine.log").read_text()[-3000:]
    events = events_of(run_dir)
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [5, 10] and all(np.isfinite(e["loss"]) for e in evals)
    logs = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    assert "in validation shards" in logs and "the shards' validation split" in logs


def test_shard_writer_closes_at_document_boundaries_in_uint32(tmp_path):
    from engine.data.prepare import ShardWriter

    closed = []
    writer = ShardWriter(tmp_path, "train", np.dtype(np.uint32), shard_tokens=10, on_shard=lambda: closed.append(1))
    tokens = np.arange(70_000, 70_025, dtype=np.int64)  # ids beyond uint16
    writer.add(tokens[:12], np.array([4, 12]), [0, 1])  # the second document crosses 10: the shard closes after it
    writer.add(tokens[12:], np.array([3, 13]), [2, 5])
    writer.close(end_position=None)
    assert [(s["file"], s["tokens"], s["end_position"]) for s in writer.shards] == [
        ("train_000.bin", 12, 2),
        ("train_001.bin", 13, 6),
    ]  # 13 >= 10: closed inside add
    assert len(closed) == 2
    back = np.concatenate([np.fromfile(tmp_path / s["file"], dtype="<u4") for s in writer.shards])
    np.testing.assert_array_equal(back, tokens)
