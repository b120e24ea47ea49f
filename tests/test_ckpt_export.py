"""`cockpit ckpt export` on a real checkpoint of one tiny run trained in-process: the export loads with
Transformers' Auto classes and generates, holds weights in the dtype asked for, carries a model card
naming the run and its metrics, and nothing of training; a non-empty OUT and a tampered checkpoint are
refused."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from cockpit.client import read_events
from engine.checkpoint_index import list_checkpoints
from engine.rundir import RunPaths

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(make_run_dir):
    run_dir = make_run_dir(
        "export", {"train.max_steps": 6, "train.save_every": 3, "train.eval_every": 3, "train.log_every": 1}
    )
    assert train_in_process(run_dir) == 0
    return run_dir


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """The latest checkpoint exported in bf16 (the default), and what --json said."""
    out = tmp_path_factory.mktemp("export") / "model"
    result = runner.invoke(app, ["ckpt", "export", str(run_dir), str(out), "--json"])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def _safetensors_dtypes(path) -> set[str]:
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    return {v["dtype"] for k, v in header.items() if k != "__metadata__"}


def test_export_loads_with_auto_classes_and_generates(exported):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, info = exported
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md"} <= files
    assert not files & {"training_state.pt", "manifest.json"}
    assert info["files"] == {p.name: p.stat().st_size for p in out.iterdir()}
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert model.dtype == torch.bfloat16 and info["dtype"] == "bfloat16"
    assert sum(p.numel() for p in model.parameters()) == info["params"]
    ids = tokenizer("the", return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == ids["input_ids"].shape[1] + 3
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tokenizer.eos_token_id


def test_bf16_export_stores_bf16_weights(exported):
    out, _ = exported
    assert _safetensors_dtypes(out / "model.safetensors") == {"BF16"}


def test_card_names_the_run_and_its_metrics(run_dir, exported):
    out, info = exported
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: transformers" in front and "pipeline_tag: text-generation" in front
    record = [r for r in list_checkpoints(run_dir, read_events(RunPaths(run_dir).events)) if r.latest][0]
    assert info["step"] == record.step == 6
    assert f"# {run_dir.name} (step 6)" in card and "Run config name: `test`" in card
    assert f"| train loss | {record.train_loss:.4f} |" in card
    assert (
        f"| eval loss | {record.eval_loss:.4f} |" in card and f"| eval perplexity | {record.perplexity:.2f} |" in card
    )
    assert "preset: `tiny`" in card and "hidden size: `64`" in card and f"parameters: {info['params']:,}" in card
    assert "tokens seen: " in card and "corpus.txt" in card and "data sha256: `" in card
    assert "AutoModelForCausalLM.from_pretrained" in card


def test_non_empty_out_is_refused_unless_force(run_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(app, ["ckpt", "export", f"{run_dir}:3", str(out)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "Traceback" not in result.output
    assert str(out) in result.output and "not empty" in result.output and "--force" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = runner.invoke(app, ["ckpt", "export", f"{run_dir}:3", str(out), "--force", "--dtype", "fp32"])
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists() and _safetensors_dtypes(out / "model.safetensors") == {"F32"}
    assert "(step 3)" in (out / "README.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_tampered_checkpoint_is_refused_naming_the_file(run_dir, tmp_path):
    copy = tmp_path / "checkpoint-6"
    shutil.copytree(RunPaths(run_dir).checkpoint_dir(6), copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = runner.invoke(app, ["ckpt", "export", str(copy), str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "model.safetensors: sha256 differs" in result.output and not out.exists()


def test_dtype_names_and_their_short_forms():
    from engine.checkpoint_model import dtype_name

    assert [dtype_name(t) for t in ("bf16", "BFloat16", "fp16", "half", "fp32", "float32", "auto")] == [
        "bfloat16",
        "bfloat16",
        "float16",
        "float16",
        "float32",
        "float32",
        "auto",
    ]


def test_unknown_dtype_is_exit_2(run_dir, tmp_path):
    result = runner.invoke(app, ["ckpt", "export", str(run_dir), str(tmp_path / "o"), "--dtype", "int3"])
    assert result.exit_code == 2 and "unknown dtype 'int3'" in result.output and "bf16" in result.output
    assert not (tmp_path / "o").exists()


def test_card_lists_stored_evals_and_stands_outside_a_run():
    from engine.model_card import CardFacts, render_card

    facts = CardFacts(
        name="checkpoint-9",
        step=9,
        stored_evals=[{"data": "held-out split", "loss": 2.5, "perplexity": 12.18, "tokens": 4096}],
    )
    card = render_card(facts, load_path="out")
    assert "# checkpoint-9 (step 9)" in card and "| held-out split | 2.5000 | 12.18 | 4,096 |" in card
    assert "| train loss | -- |" in card and "Run config name" not in card
    assert 'AutoModelForCausalLM.from_pretrained("out")' in card
