"""A BERT-style tokenizer whose tokenizer.json turns on padding to 128 and truncation at 128: every
path that encodes documents (data prepare, the engine's text stream, data stats, the dataset
check) encodes them whole, without a pad token, and `tokenizer inspect` and the tokenizer check
say what was turned off."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from typer.testing import CliRunner

from cockpit.checks.base import CheckContext
from cockpit.checks.dataset import check_dataset
from cockpit.checks.tokenizer import check_tokenizer
from cockpit.cli import app
from engine.config import RunConfig

runner = CliRunner()
WORDS = [
    f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "po", "re", "si", "tu") for b in ("n", "ra", "th", "ve", "du", "x")
]
NOTE = (
    "tokenizer.json enables padding to 128 and truncation at 128: both are turned off for encoding; "
    "documents are packed whole into one token stream, end-of-text between them"
)


def doc(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) + rng.choice(("", "s", "ed", str(rng.randrange(50)))) for _ in range(n))


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(tokenizer dir, corpus, plain tokenizer, documents): a WordPiece saved with padding and
    truncation on, and a corpus of documents most of which are far longer than 128 tokens."""
    root = tmp_path_factory.mktemp("bert")
    rng = random.Random(3)
    docs = [doc(rng, rng.randrange(150, 300)) for _ in range(8)] + [doc(rng, 12) for _ in range(4)]
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(docs) + "\n", encoding="utf-8")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train(
        [str(corpus)], trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    )
    plain = Tokenizer.from_str(tok.to_str())  # the same tokenizer as saved before padding was turned on
    tok.enable_padding(length=128, pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    tok.enable_truncation(128)
    tok_dir = root / "tok"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(
        json.dumps({"eos_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}), encoding="utf-8"
    )
    saved = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    assert saved.padding["length"] == 128 and saved.truncation["max_length"] == 128  # as a BERT ships
    assert len(saved.encode(docs[-1]).ids) == 128  # what the bug made of every document
    return tok_dir, corpus, plain, docs


def expected_stream(plain: Tokenizer, docs: list[str]) -> list[int]:
    sep = plain.token_to_id("[SEP]")
    return [i for d in docs for i in plain.encode(d, add_special_tokens=False).ids + [sep]]


def test_prepare_writes_whole_documents_and_no_padding(bert, tmp_path):
    tok_dir, corpus, plain, docs = bert
    out = tmp_path / "shards"
    result = runner.invoke(
        app,
        [
            "data",
            "prepare",
            "--input",
            str(corpus),
            "--tokenizer",
            str(tok_dir),
            "--out",
            str(out),
            "--seq-len",
            "64",
            "--val-fraction",
            "0",
            "--near-dup-threshold",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    tokens = np.fromfile(out / manifest["shards"][0]["file"], dtype=manifest["dtype"])
    assert plain.token_to_id("[PAD]") not in tokens
    assert tokens.tolist() == expected_stream(plain, docs)
    lengths = np.diff(np.flatnonzero(tokens == plain.token_to_id("[SEP]")), prepend=-1) - 1
    assert sorted(lengths.tolist())[-1] > 128 and (lengths > 128).sum() == 8


def test_the_engine_and_the_checks_encode_documents_whole(bert, tmp_path):
    from engine.data.text import tokenize_file
    from engine.data.tokenizer import load_tokenizer

    tok_dir, corpus, plain, docs = bert
    stream = tokenize_file(corpus, load_tokenizer(tok_dir))
    assert stream.tolist() == expected_stream(plain, docs)

    cfg = RunConfig.model_validate(
        {"data": {"source": "text", "path": str(corpus), "val_fraction": 0.0}, "tokenizer": {"path": str(tok_dir)}}
    ).resolved(tmp_path)
    results = {r.id: r for r in check_tokenizer(CheckContext(None, cfg))}
    assert results["tokenizer.encoding"].detail == NOTE and results["tokenizer.encoding"].data["turned_off"]
    assert results["tokenizer.special"].data["eos"] == "[SEP]"
    tokens = {r.id: r for r in check_dataset(CheckContext(None, cfg))}["dataset.tokens"]
    assert tokens.data["tokens"] == len(stream) and tokens.data["lengths_tokens"]["max"] > 128

    stats = runner.invoke(app, ["data", "stats", str(corpus), "--tokenizer", str(tok_dir), "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["tokens"]["total"] == len(stream) - len(docs)


def test_inspect_says_padding_and_truncation_are_turned_off(bert):
    tok_dir, _, plain, _ = bert
    result = runner.invoke(app, ["tokenizer", "inspect", str(tok_dir)])
    assert result.exit_code == 0, result.output
    assert NOTE in result.stdout.splitlines()
    report = json.loads(runner.invoke(app, ["tokenizer", "inspect", str(tok_dir), "--json"]).stdout)
    assert report["padding_truncation"] == NOTE
    pad = plain.token_to_id("[PAD]")
    assert all(pad not in e["ids"] and len(e["ids"]) < 128 for e in report["encodings"])


def test_a_tokenizer_without_padding_says_nothing_of_it(tmp_path):
    from engine.data.tokenizer import train_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(doc(random.Random(i), 20) for i in range(30)) + "\n", encoding="utf-8")
    tok_dir = train_tokenizer(corpus, tmp_path / "tok", 300)
    report = json.loads(runner.invoke(app, ["tokenizer", "inspect", str(tok_dir), "--json"]).stdout)
    assert report["padding_truncation"] is None
    cfg = RunConfig.model_validate({"tokenizer": {"path": str(tok_dir)}}).resolved(tmp_path)
    encoding = {r.id: r for r in check_tokenizer(CheckContext(None, cfg))}["tokenizer.encoding"]
    assert encoding.status == "ok" and not encoding.data["turned_off"] and "encoded whole" in encoding.detail
