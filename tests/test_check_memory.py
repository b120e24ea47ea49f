"""Model facts, the memory estimate and the dry run of `cockpit check`.

- the family defaults the torch-free parameter formula assumes are Transformers' own (the formula
  itself meets the meta-device model in tests/test_presets.py, for every preset and for overrides);
- the estimate's arithmetic (precisions, strategies, checkpointing, the largest micro batch), and
  ``check_memory`` against a simulated device (RAM, GPUs);
- for real (slow): the estimate within 25% of the dry run's measured peak for the demo config (tiny,
  micro batch 16) on this machine (more cases are calibration: bench/memory_estimate.py), the dry
  run check end to end without touching the user's data directory, and a dry run that fails
  reporting why with exit code 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cockpit.checks.base import CheckContext
from cockpit.checks.dry_run import check_dry_run
from cockpit.checks.memory import (
    GIB,
    MIB,
    activation_bytes_per_token,
    check_memory,
    estimate_memory,
    largest_micro_batch,
)
from cockpit.checks.model_facts import DEFAULTS, model_facts
from engine.config import RunConfig, apply_overrides, load_config, set_dotted
from presets import PresetError

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "configs" / "demo.yaml"


def by_id(results, id_):
    found = [r for r in results if r.id == id_]
    assert len(found) == 1, [r.id for r in results]
    return found[0]


def config(tmp_path: Path, **items) -> RunConfig:
    data: dict = {}
    for key, value in {"runs_dir": str(tmp_path / "runs"), **items}.items():
        set_dotted(data, key.replace("__", "."), value)
    return RunConfig.model_validate(data).resolved(tmp_path)


def demo_config(**items) -> RunConfig:
    """configs/demo.yaml with dotted overrides."""
    data = load_config(DEMO).model_dump(mode="json")
    return RunConfig.model_validate(apply_overrides(data, [f"{k}={v}" for k, v in items.items()]))


# --- model facts ------------------------------------------------------------------------------


def test_defaults_mirror_the_transformers_config_classes():
    from engine.model import config_class

    for family, defaults in DEFAULTS.items():
        real = config_class(family)().to_dict()
        for key, value in defaults.items():
            if value is None:  # derived from other fields
                continue
            assert real[key] == value, (family, key)


def test_unknown_preset_raises_preset_error():
    with pytest.raises(PresetError, match="unknown preset 'nope'"):
        model_facts(SimpleNamespace(preset="nope", model={}), None)


def test_check_memory_is_torch_free_and_fast(tmp_path):
    code = (
        "import sys, time\n"
        "t0 = time.perf_counter()\n"
        "from cockpit.checks.base import CheckContext\n"
        "from cockpit.checks.memory import check_memory\n"
        "from engine.config import RunConfig\n"
        f"cfg = RunConfig.model_validate({{'preset': 'mac_nano', 'runs_dir': {str(tmp_path)!r}}}).resolved({str(tmp_path)!r})\n"
        "res = check_memory(CheckContext(None, cfg))\n"
        "elapsed = time.perf_counter() - t0\n"
        "assert [r.status for r in res][0] == 'ok', res\n"
        "print(elapsed, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    elapsed, torch_loaded, transformers_loaded = out.split()
    assert torch_loaded == "False" and transformers_loaded == "False"
    assert float(elapsed) < 1.5


# --- the estimate -----------------------------------------------------------------------------


def test_states_are_16_bytes_per_parameter_and_mixed_precision_adds_autocast_copies(tmp_path):
    facts = model_facts(SimpleNamespace(preset="dense_75m", model={}), None)
    P = facts["total_params"]
    est = {
        p: estimate_memory(facts, config(tmp_path, preset="dense_75m", train__precision=p), 1)
        for p in ("fp32", "bf16", "fp16")
    }
    for e in est.values():
        assert (e["weights"], e["grads"], e["optimizer"]) == (4 * P, 4 * P, 8 * P)
        assert e["training"] == (e["states"] + e["weight_copies"] + e["activations"] + e["transient"] + e["workspace"])
        assert e["total"] == e["training"] + e["overhead"]
    assert est["fp32"]["weight_copies"] == 0 and est["bf16"]["weight_copies"] == 2 * P
    assert est["bf16"]["activations"] < 0.8 * est["fp32"]["activations"]
    assert est["bf16"]["activations"] == est["fp16"]["activations"]


def test_strategies_shard_or_replicate_the_state(tmp_path):
    facts = model_facts(SimpleNamespace(preset="worker_9b", model={}), None)
    P = facts["total_params"]
    ddp = estimate_memory(facts, config(tmp_path, preset="worker_9b", train__precision="bf16"), 4)
    fsdp = estimate_memory(
        facts, config(tmp_path, preset="worker_9b", train__precision="bf16", distributed__strategy="fsdp"), 4
    )
    offload = estimate_memory(
        facts,
        config(
            tmp_path,
            preset="worker_9b",
            train__precision="bf16",
            distributed__strategy="fsdp",
            distributed__fsdp__cpu_offload=True,
        ),
        4,
    )
    assert ddp["states"] == 16 * P and ddp["ddp_buckets"] == 4 * P and ddp["fsdp_gathered"] == 0
    assert fsdp["states"] <= 16 * P / 4 + 3 and fsdp["ddp_buckets"] == 0 and fsdp["fsdp_gathered"] > 0
    assert fsdp["total"] < ddp["total"] / 3
    assert offload["states"] == 0 and offload["total"] < fsdp["total"]
    # one process ignores the strategy, as the engine does
    one = estimate_memory(facts, config(tmp_path, preset="worker_9b", distributed__strategy="fsdp"), 1)
    assert one["strategy"] == "ddp" and one["states"] == 16 * P


def test_activations_scale_with_tokens_and_checkpointing_saves_most(tmp_path):
    facts = model_facts(SimpleNamespace(preset="nano", model={}), 1024)
    cfg = config(tmp_path, preset="nano")
    for device in ("cpu", "cuda"):
        a = estimate_memory(facts, cfg, device=device, micro_batch_size=8)
        b = estimate_memory(facts, cfg, device=device, micro_batch_size=16)
        assert b["activations"] == pytest.approx(2 * a["activations"], rel=1e-6)
        assert a["activations_ckpt"] < a["activations_no_ckpt"] / 2
        ckpt = estimate_memory(facts, cfg, device=device, micro_batch_size=8, gradient_checkpointing=True)
        assert ckpt["activations"] == a["activations_ckpt"] and ckpt["gradient_checkpointing"]
    per_token = activation_bytes_per_token(facts)
    # fp32 Llama: per layer 6h + 2q + 2kv + 4i values (+ heads and 2 statistics), 4 bytes each
    h, q, kv, i = 256, 256, 128, 768
    assert per_token["layer"] == 4 * (6 * h + 2 * q + 2 * kv + 4 * i + 8 + 2)


@pytest.mark.parametrize(
    "preset,overrides",
    [
        ("tiny", {"hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 96}),
        ("nano", {"head_dim": 48, "num_hidden_layers": 3}),
        (
            "mac_nano",
            {
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "intermediate_size": 96,
                "num_local_experts": 4,
                "num_experts_per_tok": 2,
            },
        ),
        ("neox_1_2b", {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96}),
    ],
)
def test_activation_count_equals_what_autograd_saves(preset, overrides):
    """fp32, no checkpointing: the bytes the forward pass saves for backward (parameters excluded),
    per token, against the formula (within 2%: the shared rotary tables are not counted)."""
    import torch

    from engine.model import build_model, model_config

    vocab, mb, seq = 300, 2, 32
    model = build_model(model_config(preset, overrides, vocab)).train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = max(saved.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    x = torch.randint(0, vocab, (mb, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=x, labels=x, use_cache=False)
    facts = model_facts(SimpleNamespace(preset=preset, model=overrides), vocab)
    act = activation_bytes_per_token(facts)
    formula = facts["layers"] * act["layer"] + act["head"]
    assert sum(saved.values()) / (mb * seq) == pytest.approx(formula, rel=0.02)


def test_largest_micro_batch_is_the_boundary(tmp_path):
    facts = model_facts(SimpleNamespace(preset="tiny", model={}), None)
    cfg = config(tmp_path)
    available = 2 * GIB
    mb = largest_micro_batch(facts, cfg, 1, available, device="cpu")
    assert mb > 1
    assert estimate_memory(facts, cfg, device="cpu", micro_batch_size=mb)["total"] <= available
    assert estimate_memory(facts, cfg, device="cpu", micro_batch_size=mb + 1)["total"] > available
    assert largest_micro_batch(facts, cfg, 1, 100 * MIB, device="cpu") == 0


# --- check_memory -----------------------------------------------------------------------------


def test_fits_in_ram_and_leaves_the_facts_for_other_checks(tmp_path):
    ctx = CheckContext(None, config(tmp_path), ram_free_bytes=64 * GIB, gpus=[])
    results = check_memory(ctx)
    assert [r.id for r in results] == ["memory.model", "memory.estimate", "memory.fit"]
    assert all(r.status == "ok" for r in results)
    assert ctx.model["total_params"] == by_id(results, "memory.model").data["total_params"]
    assert ctx.model["vocab_size"] == 1024  # the tokenizer the demo trains at launch
    assert ctx.memory["device"] == "cpu" and ctx.memory_fit["fits"]
    assert "per process on the CPU" in by_id(results, "memory.estimate").detail


def test_not_enough_ram_is_a_blocking_failure_with_the_micro_batch_that_fits(tmp_path):
    cfg = config(tmp_path, preset="nano", train__micro_batch_size=64, train__seq_len=512)
    ctx = CheckContext(None, cfg, ram_free_bytes=2 * GIB, gpus=[])
    fit = by_id(check_memory(ctx), "memory.fit")
    assert fit.status == "fail" and fit.blocking
    mb = fit.data["largest_micro_batch"]
    assert 0 < mb < 64 and f"largest micro batch that fits is {mb}" in fit.detail
    assert f"train.micro_batch_size {mb} with train.grad_accum_steps" in fit.fix
    assert "gradient_checkpointing" in fit.fix
    assert not ctx.memory_fit["fits"]
    # the dry run is not attempted on a run that would not fit
    skipped = check_dry_run(dataclasses.replace(ctx, dry_run=True))
    assert [(r.id, r.status) for r in skipped] == [("dry_run.steps", "skip")]

    tiny_ram = by_id(check_memory(CheckContext(None, cfg, ram_free_bytes=300 * MIB, gpus=[])), "memory.fit")
    assert tiny_ram.status == "fail" and "not even micro batch 1 fits" in tiny_ram.detail


def fake_gpus(monkeypatch, n: int, free_gib: float, total_gib: float = 80.0) -> list[dict]:
    import cockpit.checks.environment as env

    monkeypatch.setattr(env, "torch_build", lambda: {"version": "2.8.0", "cuda": "12.8", "hip": None})
    return [
        {
            "index": i,
            "name": "NVIDIA H100 80GB HBM3",
            "memory_total": int(total_gib * GIB),
            "memory_free": int(free_gib * GIB),
        }
        for i in range(n)
    ]


def test_gpu_memory_decides_and_fsdp_is_suggested(tmp_path, monkeypatch):
    gpus = fake_gpus(monkeypatch, 8, 79.0)
    cfg = config(
        tmp_path,
        preset="worker_9b",
        train__precision="bf16",
        train__micro_batch_size=4,
        train__seq_len=2048,
        tokenizer__vocab_size=50257,
    )
    one = check_memory(CheckContext(None, cfg, nproc=1, gpus=gpus))
    fit = by_id(one, "memory.fit")
    assert by_id(one, "memory.estimate").data["device"] == "cuda"
    assert fit.status == "fail" and "GPU 0 (NVIDIA H100 80GB HBM3)" in fit.detail
    assert "distributed.strategy: fsdp" in fit.fix and fit.data["largest_micro_batch"] == 0

    sharded = config(
        tmp_path,
        preset="worker_9b",
        train__precision="bf16",
        train__micro_batch_size=1,
        train__seq_len=2048,
        train__gradient_checkpointing=True,
        distributed__strategy="fsdp",
        tokenizer__vocab_size=50257,
    )
    eight = check_memory(CheckContext(None, sharded, nproc=8, gpus=gpus))
    assert by_id(eight, "memory.fit").status == "ok", by_id(eight, "memory.fit").detail
    assert "per GPU (fsdp over 8)" in by_id(eight, "memory.estimate").detail

    busy = fake_gpus(monkeypatch, 1, 0.5)  # another process holds the GPU
    small = check_memory(CheckContext(None, config(tmp_path, preset="nano", train__precision="bf16"), gpus=busy))
    assert by_id(small, "memory.fit").status == "fail"


def test_vocabulary_comes_from_the_tokenizer_file(tmp_path):
    from tokenizers import Tokenizer

    from engine.data.demo import generate_demo_corpus
    from engine.data.tokenizer import train_tokenizer

    corpus = generate_demo_corpus(tmp_path / "corpus.txt", 300, 3)
    train_tokenizer(corpus, tmp_path / "tok", 300)
    size = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json")).get_vocab_size()
    cfg = config(tmp_path, data__path=str(corpus), tokenizer__path=str(tmp_path / "tok"))
    ctx = CheckContext(None, cfg, ram_free_bytes=8 * GIB, gpus=[])
    model = by_id(check_memory(ctx), "memory.model")
    assert ctx.model["vocab_size"] == size and f"vocabulary {size:,} (the tokenizer at" in model.detail


def test_unknown_preset_is_skipped_here(tmp_path):
    unknown = config(tmp_path).model_copy(update={"preset": "nope"})  # refused at load; the check copes
    results = check_memory(CheckContext(None, unknown, gpus=[]))
    assert [(r.id, r.status) for r in results] == [("memory.model", "skip")]


# --- for real: the dry run --------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """A demo corpus and a tokenizer trained on it, as the demo makes them at launch."""
    from engine.data.demo import generate_demo_corpus
    from engine.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("memory-data")
    corpus = generate_demo_corpus(root / "corpus.txt", 5000, 1234)
    train_tokenizer(corpus, root / "tokenizer", 1024)
    return root


def dry_run_subprocess(cfg: RunConfig, tmp_path: Path, steps: int = 2) -> tuple[int, dict]:
    path = tmp_path / "run.yaml"
    path.write_text(cfg.to_yaml(), encoding="utf-8")
    out = tmp_path / "dry.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "engine.dryrun", "--config", str(path), "--steps", str(steps), "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc.returncode, json.loads(out.read_text())


@pytest.mark.slow
def test_cpu_estimate_within_25_percent_of_the_dry_run(demo_data, tmp_path):
    """The demo config as shipped (tiny, seq_len 128, micro batch 16), fp32 on the CPU. The other
    cases (nano, smaller and larger batches, seq_len 512, gradient checkpointing, MoE) are
    calibration: bench/memory_estimate.py measures them and bench/RESULTS.md records them."""
    from tokenizers import Tokenizer

    cfg = demo_config(
        preset="tiny",
        **{
            "train.micro_batch_size": 16,
            "train.seq_len": 128,
            "data.path": demo_data / "corpus.txt",
            "tokenizer.path": demo_data / "tokenizer",
        },
    )
    code, measured = dry_run_subprocess(cfg, tmp_path)
    assert code == 0 and measured["ok"], measured
    if measured["peak"]["kind"] != "cpu_rss":
        pytest.skip("calibrated for the CPU")
    vocab = Tokenizer.from_file(str(demo_data / "tokenizer" / "tokenizer.json")).get_vocab_size()
    facts = model_facts(cfg, vocab)
    assert facts["total_params"] == measured["params"]
    est = estimate_memory(facts, cfg, 1, device="cpu")["training"]
    got = measured["peak"]["training_bytes"]
    assert abs(est - got) / got < 0.25, (est / MIB, got / MIB)


@pytest.mark.slow
def test_dry_run_check_measures_without_writing_the_users_data(tmp_path):
    data_dir = tmp_path / "data"  # the demo would generate its corpus and tokenizer here
    cfg = config(
        tmp_path,
        preset="tiny",
        data__path=str(data_dir / "corpus.txt"),
        data__demo__samples=500,
        tokenizer__path=str(data_dir / "tokenizer"),
        tokenizer__vocab_size=300,
        train__seq_len=64,
        train__micro_batch_size=4,
        train__max_steps=1000,
        train__warmup_steps=5,
        train__price_per_hour=3.0,
        model={
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 192,
        },
    )
    ctx = CheckContext(None, cfg, dry_run=True, ram_free_bytes=16 * GIB, gpus=[])
    check_memory(ctx)
    t0 = time.perf_counter()
    results = check_dry_run(ctx)
    assert time.perf_counter() - t0 < 60
    assert [r.id for r in results] == ["dry_run.steps", "dry_run.memory", "dry_run.speed", "dry_run.eta"]
    steps, memory, speed, eta = results
    assert steps.status == "ok" and "demo corpus generated" in steps.detail, steps.detail
    assert memory.status == "ok" and memory.data["measured"] > 0 and "estimated" in memory.detail
    assert speed.data["step_s"] > 0 and speed.data["tokens_per_s"] > 0
    assert eta.data["max_steps"] == 1000 and eta.data["eta_s"] == pytest.approx(1000 * speed.data["step_s"])
    assert eta.data["cost_usd"] == pytest.approx(3.0 * eta.data["eta_s"] / 3600) and "$3/h" in eta.detail
    assert not data_dir.exists() and not (tmp_path / "runs").exists()

    assert check_dry_run(CheckContext(None, cfg, dry_run=False)) == []  # only with --dry-run


@pytest.mark.slow
def test_a_failing_dry_run_reports_why_and_exits_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hello there"}\n{"text": oops}\n', encoding="utf-8")
    cfg = config(tmp_path, data__source="jsonl", data__path=str(bad), tokenizer__path=str(tmp_path / "tok"))
    code, measured = dry_run_subprocess(cfg, tmp_path)
    assert code == 2 and not measured["ok"] and measured["kind"] == "data"
    assert f"{bad}:2" in measured["error"]
    assert not (tmp_path / "tok").exists()  # the tokenizer it would train went to its temporary directory

    results = check_dry_run(CheckContext(None, cfg, dry_run=True))
    assert [(r.id, r.status, r.blocking) for r in results] == [("dry_run.steps", "fail", True)]
    assert f"{bad}:2" in results[0].detail and "cockpit data validate" in results[0].fix


def test_measured_memory_warns_only_when_the_estimate_is_far_too_low(tmp_path):
    from cockpit.checks.dry_run import TOLERANCE_BYTES, _memory_result

    cfg = config(
        tmp_path,
        preset="tiny",
        train__seq_len=64,
        train__micro_batch_size=4,
        model={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 192},
    )
    ctx = CheckContext(None, cfg, gpus=[])
    want = estimate_memory(model_facts(cfg, 1000), cfg, 1, device="cpu")["training"]

    def measured(got: int) -> dict:
        return {
            "vocab_size": 1000,
            "peak": {
                "kind": "cpu_rss",
                "training_bytes": got,
                "baseline_bytes": 400 * MIB,
                "absolute_bytes": 400 * MIB + got,
            },
        }

    near = _memory_result(ctx, measured(int(want * 1.1)), {})
    assert near.status == "ok" and "estimated" in near.detail and ": -9%" in near.detail
    far = _memory_result(ctx, measured(2 * want + TOLERANCE_BYTES), {})
    assert far.status == "warn" and "too low" in far.detail and far.data["diff"] < -0.5
    # more than 25% too low, but by less than TOLERANCE_BYTES: allocator noise, not a warning
    assert want * 0.4 < TOLERANCE_BYTES
    noise = _memory_result(ctx, measured(int(want * 1.4)), {})
    assert noise.data["diff"] < -0.25 and noise.status == "ok"
    beyond = _memory_result(ctx, measured(want + TOLERANCE_BYTES + MIB), {})
    assert beyond.data["diff"] < -0.25 and beyond.status == "warn"
