"""`cockpit run` refuses bad input before any engine starts: one line naming the file or key on
stderr, exit 2, no traceback, no run directory (in-process through CliRunner; no engine is started).
The engine itself never trains a tokenizer on a file without text."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cockpit.cli import app
from engine.data.demo import generate_demo_corpus

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_demo_corpus(tmp_path_factory.mktemp("pf-corpus") / "corpus.txt", samples=400, seed=3)


@pytest.fixture(scope="module")
def tokenizers(corpus, tmp_path_factory) -> tuple[Path, Path]:
    """Two different tokenizers trained on the same corpus."""
    from engine.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("pf-tok")
    return (
        train_tokenizer(corpus, root / "tok-a", vocab_size=300),
        train_tokenizer(corpus, root / "tok-b", vocab_size=280),
    )


def write_config(tmp_path: Path, **items) -> Path:
    """A config file in ``tmp_path`` whose runs go to ``tmp_path/runs``; ``items`` are dotted keys."""
    from engine.config import set_dotted

    data: dict = {}
    for key, value in {"runs_dir": str(tmp_path / "runs"), "tokenizer.path": str(tmp_path / "tok"), **items}.items():
        set_dotted(data, key, value)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def refused(tmp_path: Path, args: list[str], *names: str) -> str:
    """Run ``cockpit run ARGS --detach``; assert it was refused as a user error naming ``names``
    and left nothing behind; return the error line."""
    result = runner.invoke(app, ["run", *args, "--detach"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for name in names:
        assert name in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()
    return lines[0]


# --- data and tokenizer -----------------------------------------------------------------------


def test_missing_data_file(tmp_path):
    missing = tmp_path / "missing.txt"
    line = refused(
        tmp_path, [str(write_config(tmp_path, **{"data.source": "text", "data.path": str(missing)}))], str(missing)
    )
    assert "does not exist" in line


def test_a_directory_as_data_path(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    line = refused(
        tmp_path, [str(write_config(tmp_path, **{"data.source": "text", "data.path": str(folder)}))], str(folder)
    )
    assert "is a directory, not a file" in line


@pytest.mark.parametrize("size", [4096, 3 << 20], ids=["small", "large"])  # checked whole / by its head
def test_a_binary_file(tmp_path, size):
    data = tmp_path / "weights.bin"
    data.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    line = refused(
        tmp_path, [str(write_config(tmp_path, **{"data.source": "text", "data.path": str(data)}))], f"{data}:"
    )
    assert "not a text file" in line


def test_an_empty_file(tmp_path):
    data = tmp_path / "empty.txt"
    data.write_text("")
    line = refused(
        tmp_path, [str(write_config(tmp_path, **{"data.source": "text", "data.path": str(data)}))], str(data)
    )
    assert "no text" in line


def test_shards_of_another_tokenizer(tmp_path, tokenizers):
    from engine.data.shards import write_shards

    tok_a, tok_b = tokenizers
    shards = tmp_path / "shards"
    write_shards(np.arange(5000, dtype=np.int32) % 280, shards, tok_a, seq_len=64, shard_tokens=2000)
    config = write_config(
        tmp_path,
        **{"data.source": "shards", "data.path": str(shards), "tokenizer.path": str(tok_b), "train.seq_len": 64},
    )
    line = refused(tmp_path, [str(config)], str(shards), str(tok_b))
    assert "written with tokenizer sha256" in line


def test_truncated_shards_name_the_first_one(tmp_path, tokenizers):
    import json

    from engine.data.shards import write_shards

    tok_a, _ = tokenizers
    shards = tmp_path / "shards"
    write_shards(np.arange(6000, dtype=np.int32) % 280, shards, tok_a, seq_len=64, shard_tokens=2000)
    files = [shards / s["file"] for s in json.loads((shards / "manifest.json").read_text())["shards"]]
    for file in files[:2]:
        file.write_bytes(file.read_bytes()[:100])
    config = write_config(
        tmp_path,
        **{"data.source": "shards", "data.path": str(shards), "tokenizer.path": str(tok_a), "train.seq_len": 64},
    )
    line = refused(tmp_path, [str(config)], f"{files[0]}: 100 bytes")
    assert "truncated or damaged" in line and str(files[1]) not in line


def test_a_tokenizer_larger_than_the_embedding(tmp_path, corpus, tokenizers):
    tok_a, _ = tokenizers
    config = write_config(
        tmp_path,
        **{"data.source": "text", "data.path": str(corpus), "tokenizer.path": str(tok_a), "model.vocab_size": 256},
    )
    line = refused(tmp_path, [str(config)], str(tok_a), "model.vocab_size")
    assert "do not fit the model's embedding of 256" in line


def test_the_demo_before_its_data_exists_passes_the_preflight(tmp_path):
    from cockpit.checks.preflight import preflight
    from cockpit.launch import prepare_config

    path, cfg = prepare_config(str(write_config(tmp_path, **{"data.path": str(tmp_path / "demo" / "corpus.txt")})))
    assert not cfg.data.path.exists() and not cfg.tokenizer.path.exists()
    assert preflight(cfg, path) is None


def test_a_worker_node_leaves_the_data_to_node_0(tmp_path):
    from cockpit.checks.preflight import preflight
    from cockpit.launch import prepare_config

    path, cfg = prepare_config(
        str(write_config(tmp_path, **{"data.source": "text", "data.path": str(tmp_path / "missing.txt")}))
    )
    assert "missing.txt" in preflight(cfg, path)
    assert preflight(cfg, path, data=False) is None


def test_resume_refuses_a_run_whose_data_is_gone_and_changes_nothing(tmp_path, corpus):
    from cockpit.launch import new_run_dir, prepare_config

    data = tmp_path / "corpus.txt"
    data.write_bytes(corpus.read_bytes())
    config = write_config(tmp_path, **{"data.source": "text", "data.path": str(data)})
    path, cfg = prepare_config(str(config))
    run_dir = new_run_dir(cfg, path, tmp_path / "old-run")
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "latest").write_text("checkpoint-10\n")
    before = (run_dir / "run.yaml").read_text()
    data.unlink()
    result = runner.invoke(
        app, ["run", str(config), "--resume", str(run_dir), "--set", "train.max_steps=500", "--detach"]
    )
    assert result.exit_code == 2 and f"data.path: {data} does not exist" in result.stderr
    assert (run_dir / "run.yaml").read_text() == before  # the --set was not written
    assert not (run_dir / "events.jsonl").exists()


# --- values that must not validate ------------------------------------------------------------


@pytest.mark.parametrize(
    "item,names",
    [
        ("model.num_hidden_layers=-3", ("model.num_hidden_layers", "positive integer")),
        ("model.hidden_size=0", ("model.hidden_size", "positive integer")),
        ("model.num_hiden_layers=3", ("model.num_hiden_layers", "did you mean 'model.num_hidden_layers'")),
        ("train.lr=inf", ("train.lr", "finite number > 0")),
        ("train.lr=.nan", ("train.lr", "finite number > 0")),
        ("train.grad_clip=.inf", ("train.grad_clip", "finite number >= 0")),
        ("preset=huge", ("unknown preset 'huge'", "tiny")),
        ("train.betas=[2,3]", ("train.betas", "[0, 1)")),
        ("train.seq_len=1024", ("train.seq_len 1024", "512 positions")),
        ("model.max_position_embeddings=64", ("train.seq_len 128", "64 positions")),
    ],
)
def test_bad_values_are_refused_naming_the_key_and_range(tmp_path, item, names):
    config = write_config(tmp_path, **{"data.path": str(tmp_path / "demo" / "corpus.txt")})
    refused(tmp_path, [str(config), "--set", item], str(config), *names)


def test_an_empty_config_file(tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("# nothing yet\n")
    refused(tmp_path, [str(config)], f"{config}: is empty")


# --- warm-up ----------------------------------------------------------------------------------


def test_a_short_run_clamps_its_warmup_with_a_note(tmp_path):
    config = write_config(tmp_path, **{"data.path": str(tmp_path / "demo" / "corpus.txt")})
    check = runner.invoke(app, ["check", str(config), "--set", "train.max_steps=10"])
    assert "note: train.warmup_steps 30 is clamped to train.max_steps 10" in check.stderr
    taken = tmp_path / "taken"  # refused after the preflight: the note comes first, no engine starts
    taken.mkdir()
    (taken / "run.yaml").write_text("name: x\n")
    run = runner.invoke(app, ["run", str(config), "--set", "train.max_steps=10", "--run-dir", str(taken), "--detach"])
    assert run.exit_code == 2
    assert run.stderr.splitlines()[0] == (
        "note: train.warmup_steps 30 is clamped to train.max_steps 10: the learning rate warms up over the whole run"
    )
    for fits in (["--set", "train.max_steps=40"], ["--set", "train.max_steps=10", "--set", "train.epochs=2"]):
        quiet = runner.invoke(app, ["check", str(config), *fits])  # with epochs, the engine knows the steps
        assert quiet.exit_code == 0 and "note:" not in quiet.stderr, quiet.output


# --- the engine: no tokenizer from no text ----------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n  \n\t\n"], ids=["empty", "blank-lines"])
def test_prepare_data_on_a_file_without_text_leaves_no_tokenizer(tmp_path, text):
    from engine.build import prepare_data
    from engine.config import RunConfig
    from engine.data.text import DataError

    data = tmp_path / "empty.txt"
    data.write_text(text)
    tok = tmp_path / "tok"
    cfg = RunConfig.model_validate(
        {"data": {"source": "text", "path": str(data)}, "tokenizer": {"path": str(tok), "vocab_size": 300}}
    )
    with pytest.raises(DataError, match=f"{data}: no text"):
        prepare_data(cfg, info=print)
    assert not tok.exists() and not any(p.name.startswith(".tok") for p in tmp_path.iterdir())
    assert sorted(os.listdir(tmp_path)) == ["empty.txt"]
