"""`cockpit ckpt eval` and `cockpit ckpt gate` on the real checkpoints (steps 4 and 8) of one tiny run."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from helpers import events_of, train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from engine.eval_store import read_evals
from engine.protocol import Eval
from engine.rundir import RunPaths

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(make_run_dir):
    run_dir = make_run_dir(
        "evalgate",
        {
            "train.max_steps": 8,
            "train.save_every": 4,
            "train.eval_every": 4,
            "train.eval_batches": 2,
            "train.log_every": 4,
        },
    )
    assert train_in_process(run_dir) == 0
    return run_dir


def test_ckpt_help_lists_eval_and_gate():
    result = runner.invoke(app, ["ckpt", "--help"])
    assert result.exit_code == 0 and "eval" in result.output and "gate" in result.output
    gate_help = runner.invoke(app, ["ckpt", "gate", "--help"], terminal_width=200).output
    assert "--min-improvement" in gate_help and "5%" in gate_help and "--baseline" in gate_help


def _eval_json(*args: str) -> dict:
    result = runner.invoke(app, ["ckpt", "eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_on_the_held_out_split_matches_the_engines_own_eval(run_dir):
    engine_evals = {e.step: e.loss for e in events_of(run_dir) if isinstance(e, Eval)}
    out = _eval_json(f"{run_dir}:8")
    assert out["step"] == 8 and out["data"]["kind"] == "held-out" and out["made_by"] == "ckpt eval"
    assert out["loss"] == pytest.approx(engine_evals[8], abs=1e-5)
    assert out["perplexity"] == pytest.approx(math.exp(out["loss"]), rel=1e-9)
    assert out["tokens"] == out["data"]["windows"] * (out["data"]["seq_len"] - 1) > 0
    stored, problems = read_evals(run_dir)
    assert problems == [] and out["id"] in [r.id for r in stored]
    assert (RunPaths(run_dir).evals / f"{out['id']}.json").is_file()


def test_eval_on_a_text_file_and_the_stored_evals_in_ckpt_list(run_dir, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("\n".join(f"the cat sat on the mat number {i} and looked at the dog" for i in range(60)) + "\n")
    out = _eval_json(str(RunPaths(run_dir).checkpoint_dir(8)), "--data", str(text), "--batches", "1")
    assert out["data"]["kind"] == "file" and out["data"]["sha256"] and out["step"] == 8
    assert 0 < out["data"]["windows"] <= 8 and math.isfinite(out["loss"])
    assert out["perplexity"] == pytest.approx(math.exp(out["loss"]))
    listed = json.loads(runner.invoke(app, ["ckpt", "list", str(run_dir), "--json"]).stdout)
    by_step = {r["step"]: r for r in listed}
    assert by_step[8]["stored_evals"] >= 1 and by_step[8]["stored_eval_loss"] == pytest.approx(out["loss"])
    assert by_step[8]["stored_eval_data"].startswith("file notes.txt")
    stored = read_evals(run_dir)[0]
    assert all(r["stored_evals"] == sum(e.step == r["step"] for e in stored) for r in listed)
    shown = runner.invoke(app, ["ckpt", "show", f"{run_dir}:8"], terminal_width=200)
    assert shown.exit_code == 0 and "stored evals" in shown.stdout and "on file notes.txt" in shown.stdout
    from engine.model_card import card_facts

    card_rows = card_facts(RunPaths(run_dir).checkpoint_dir(8)).stored_evals  # what `ckpt export` writes in its card
    assert any(r["data"] == by_step[8]["stored_eval_data"] and r["loss"] == out["loss"] for r in card_rows)
    # a damaged eval file is named and skipped; the list still works
    (RunPaths(run_dir).evals / "broken.json").write_text("{not json")
    result = runner.invoke(app, ["ckpt", "list", str(run_dir)], terminal_width=200)
    assert result.exit_code == 0 and "broken.json" in result.stderr and "stored" in result.stdout
    (RunPaths(run_dir).evals / "broken.json").unlink()


def test_eval_on_chat_records_scores_only_what_the_assistant_says(run_dir, tmp_path):
    chat = tmp_path / "chat.jsonl"
    record = {"instruction": "say hello to the cat " * 4, "output": "hello cat"}
    chat.write_text("\n".join(json.dumps(record) for _ in range(30)) + "\n")
    out = _eval_json(f"{run_dir}:8", "--data", str(chat), "--batches", "1")
    assert out["data"]["kind"] == "file"
    full = out["data"]["windows"] * (out["data"]["seq_len"] - 1)
    assert 0 < out["tokens"] < full / 2  # the prompts are masked out, as in fine-tuning
    # the same records prepared into shards score the same tokens, with the shards' own mask
    from engine.data.prepare import PrepareSettings, prepare

    ckpt = RunPaths(run_dir).checkpoint_dir(8)
    settings = PrepareSettings(seq_len=64, val_fraction=0.0, near_dedup_threshold=None, exact_dedup=False)
    prepare([chat], ckpt, tmp_path / "shards", settings)
    shards = _eval_json(str(ckpt), "--data", str(tmp_path / "shards"), "--batches", "1")
    assert shards["data"]["kind"] == "shards" and shards["data"]["split"] == "train" and shards["data"]["sha256"]
    assert (shards["tokens"], shards["loss"]) == (out["tokens"], pytest.approx(out["loss"], abs=1e-6))


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "not found"),
        ("malformed", "bad.jsonl:2"),
        ("tampered", "does not match its manifest"),
        ("not_ckpt", "not a checkpoint directory"),
    ],
)
def test_bad_input_is_a_clear_message_and_exit_2(run_dir, tmp_path, setup, expected):
    ckpt = str(RunPaths(run_dir).checkpoint_dir(4))
    args = [ckpt]
    if setup == "missing":
        args += ["--data", str(tmp_path / "nope.txt")]
    elif setup == "malformed":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"text": "fine line here"}\n{"text": oops}\n')
        args += ["--data", str(bad)]
    elif setup == "tampered":
        copy = tmp_path / "run" / "checkpoints" / "checkpoint-4"
        shutil.copytree(ckpt, copy)
        with open(copy / "model.safetensors", "r+b") as f:
            f.seek(-4, 2)
            f.write(b"\0\1\2\3")
        text = tmp_path / "some.txt"
        text.write_text("a few words of text to score here\n" * 40)
        args = [str(copy), "--data", str(text)]
    else:
        (tmp_path / "empty").mkdir()
        args = [str(tmp_path / "empty")]
    result = runner.invoke(app, ["ckpt", "eval", *args])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output


def test_gate_go_for_a_better_checkpoint_and_no_go_the_other_way(run_dir, tmp_path):
    before = len(read_evals(run_dir)[0])
    go = runner.invoke(app, ["ckpt", "gate", f"{run_dir}:8", "--baseline", f"{run_dir}:4", "--json"])
    assert go.exit_code == 0, go.output
    verdict = json.loads(go.stdout)
    assert verdict["verdict"] == "GO" and verdict["improvement"] >= 0.05
    assert verdict["candidate"] < verdict["baseline"] and verdict["margin"] == pytest.approx(
        verdict["improvement"] - 0.05
    )
    assert len(read_evals(run_dir)[0]) == before + 2  # both stored, made by the gate
    no_go = runner.invoke(
        app, ["ckpt", "gate", f"{run_dir}:4", "--baseline", f"{run_dir}:8", "--min-improvement", "0.05"]
    )
    assert no_go.exit_code == 1, no_go.output
    assert "NO-GO" in no_go.stdout and "worse" in no_go.stdout
    # a METRICS.json baseline (saved `ckpt eval --json`), compared on perplexity
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"perplexity": verdict["candidate_eval"]["perplexity"] * 0.5}))
    vs_file = runner.invoke(
        app, ["ckpt", "gate", f"{run_dir}:8", "--baseline", str(metrics), "--metric", "perplexity", "--json"]
    )
    assert vs_file.exit_code == 1 and json.loads(vs_file.stdout)["metric"] == "perplexity"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--min-improvement", "lots"], "--min-improvement"),
        (["--metric", "accuracy"], "--metric"),
        (["--baseline", "/no/such/run"], "/no/such/run"),
    ],
)
def test_gate_bad_input_exits_2(run_dir, args, expected):
    base = ["--baseline", f"{run_dir}:4"] if "--baseline" not in args else []
    result = runner.invoke(app, ["ckpt", "gate", f"{run_dir}:8", *base, *args])
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
