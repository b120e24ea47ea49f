"""Engine pieces in-process: demo corpus, tokenizer, token stream and batches, LR schedule, presets,
model, metrics logger, checkpoints, telemetry."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from engine.config import TrainConfig
from engine.data.demo import demo_lines, generate_demo_corpus
from engine.data.text import BatchIterator, DataError, split_tokens, tokenize_file
from engine.data.tokenizer import EOS_TOKEN, has_tokenizer, load_tokenizer, train_tokenizer
from engine.metrics import ConsoleSink, MetricsLogger
from engine.optim import build_optimizer, build_scheduler, lr_multiplier
from presets import PresetError, list_presets, load_preset


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_demo_corpus(tmp_path_factory.mktemp("corpus") / "corpus.txt", samples=600, seed=3)


@pytest.fixture(scope="module")
def tokenizer(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train_tokenizer(corpus, out, vocab_size=320)
    return load_tokenizer(out)


# --- demo corpus ------------------------------------------------------------------------------


def test_demo_corpus_is_deterministic_per_seed(tmp_path):
    a = generate_demo_corpus(tmp_path / "a" / "corpus.txt", samples=500, seed=11).read_bytes()
    b = generate_demo_corpus(tmp_path / "b" / "corpus.txt", samples=500, seed=11).read_bytes()
    c = generate_demo_corpus(tmp_path / "c" / "corpus.txt", samples=500, seed=12).read_bytes()
    assert a == b and a != c
    lines = a.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 501 and all(lines[:-1])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["corpus.txt"]  # no temp file left


def test_demo_corpus_has_learnable_patterns():
    lines = list(demo_lines(2000, seed=1))
    sums = [ln for ln in lines if " + " in ln]
    assert sums and all(
        int(ln.split(" = ")[1].rstrip(".")) == sum(map(int, ln.split(" = ")[0].split(" + "))) for ln in sums
    )
    assert any(ln.startswith("count: ") for ln in lines) and any(ln.startswith("the ") for ln in lines)


# --- tokenizer --------------------------------------------------------------------------------


def test_tokenizer_round_trips_and_loads_with_autotokenizer(corpus, tokenizer):
    from transformers import AutoTokenizer

    assert tokenizer.eos_token == EOS_TOKEN and tokenizer.pad_token_id == tokenizer.eos_token_id
    assert len(tokenizer) <= 320
    for text in corpus.read_text().splitlines()[:50] + ["héllo wörld ✓ 🚀", "  spaces\tand tabs  "]:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    auto = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    assert auto.encode("17 + 25 = 42.") == tokenizer.encode("17 + 25 = 42.")


def test_tokenizer_training_fills_an_existing_empty_dir_and_leaves_no_temp(corpus, tmp_path):
    out = tmp_path / "tok"
    out.mkdir()
    assert not has_tokenizer(out)
    train_tokenizer(corpus, out, vocab_size=300)
    assert has_tokenizer(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]


# --- token stream and batches -----------------------------------------------------------------


def test_tokenize_file_puts_eos_after_each_document_and_skips_empty_lines(tmp_path, tokenizer):
    path = tmp_path / "docs.txt"
    path.write_text("one two.\n\nthree four.\n", encoding="utf-8")
    tokens = tokenize_file(path, tokenizer)
    eos = tokenizer.eos_token_id
    assert tokens.dtype == np.int32 and tokens[-1] == eos and (tokens == eos).sum() == 2
    first = tokens[: list(tokens).index(eos)]
    assert tokenizer.decode(first.tolist()) == "one two."


def test_tokenize_file_names_the_bad_line(tmp_path, tokenizer):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"bad\.txt:3: not UTF-8"):
        tokenize_file(path, tokenizer)
    with pytest.raises(DataError, match="not found"):
        tokenize_file(tmp_path / "missing.txt", tokenizer)


def test_split_holds_out_the_tail():
    tokens = np.arange(1000, dtype=np.int32)
    train, val = split_tokens(tokens, 0.1)
    assert len(train) == 900 and len(val) == 100 and val[0] == 900
    assert len(split_tokens(tokens, 0.0)[1]) == 0


def test_batches_are_deterministic_windows_of_the_stream():
    tokens = np.arange(10_000, dtype=np.int32)
    a, b = BatchIterator(tokens, 4, 16, seed=5), BatchIterator(tokens, 4, 16, seed=5)
    other = BatchIterator(tokens, 4, 16, seed=6)
    batches = [next(a) for _ in range(20)]
    assert all(torch.equal(x, next(b)) for x in batches)
    assert not torch.equal(batches[0], next(other))
    x = batches[0]
    assert x.shape == (4, 16) and x.dtype == torch.int64
    assert all(int(row[0]) % 16 == 0 and torch.equal(row, torch.arange(int(row[0]), int(row[0]) + 16)) for row in x)


def test_an_epoch_visits_every_window_once_and_ranks_do_not_overlap():
    tokens = np.arange(64 * 8, dtype=np.int32)  # 64 windows of 8
    it = BatchIterator(tokens, 8, 8, seed=1)
    starts = [int(row[0]) for _ in range(8) for row in next(it)]
    assert sorted(starts) == list(range(0, 512, 8))
    next(it)
    assert it.epoch == 1
    r0, r1 = (
        BatchIterator(tokens, 4, 8, seed=1, rank=0, world_size=2),
        BatchIterator(tokens, 4, 8, seed=1, rank=1, world_size=2),
    )
    s0 = {int(row[0]) for _ in range(8) for row in next(r0)}
    s1 = {int(row[0]) for _ in range(8) for row in next(r1)}
    assert not s0 & s1 and len(s0 | s1) == 64


def test_batch_position_survives_a_state_dict_round_trip():
    tokens = np.arange(5_000, dtype=np.int32)
    it = BatchIterator(tokens, 8, 32, seed=2)
    for _ in range(30):  # crosses an epoch boundary (156 windows)
        next(it)
    state = json.loads(json.dumps(it.state_dict()))
    expected = [next(it) for _ in range(5)]
    again = BatchIterator(tokens, 8, 32, seed=2)
    again.load_state_dict(state)
    assert all(torch.equal(x, next(again)) for x in expected)


def test_too_little_text_is_a_clear_error():
    with pytest.raises(DataError, match="seq_len"):
        BatchIterator(np.arange(10, dtype=np.int32), 2, 16, seed=0)


# --- learning rate ----------------------------------------------------------------------------


def schedule(kind: str, step: int) -> float:
    return lr_multiplier(step, warmup_steps=10, max_steps=110, schedule=kind, min_lr_ratio=0.1)


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_lr_warms_up_linearly_to_the_peak(kind):
    warm = [schedule(kind, s) for s in range(11)]
    assert warm[0] == pytest.approx(1 / 11) and warm[9] == pytest.approx(10 / 11) and warm[10] == 1.0
    assert all(b - a == pytest.approx(1 / 11) for a, b in zip(warm[:10], warm[1:10]))


def test_lr_decays_to_min_ratio():
    cosine = [schedule("cosine", s) for s in range(10, 111)]
    linear = [schedule("linear", s) for s in range(10, 111)]
    for curve in (cosine, linear):
        assert curve[0] == 1.0 and curve[-1] == pytest.approx(0.1)
        assert all(b <= a for a, b in zip(curve, curve[1:]))
    assert cosine[50] == pytest.approx(0.55) and linear[50] == pytest.approx(0.55)
    assert cosine[25] > linear[25]  # cosine stays high longer
    assert schedule("cosine", 500) == pytest.approx(0.1)  # clamped past the end
    assert all(schedule("constant", s) == 1.0 for s in range(10, 200))


def test_scheduler_and_weight_decay_groups():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    train = TrainConfig(lr=1e-2, warmup_steps=2, max_steps=10, weight_decay=0.1)
    opt = build_optimizer(model, train)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.ndim == 2 for p in decay["params"]) and len(decay["params"]) == 2
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3  # bias, norm weight and bias
    sched = build_scheduler(opt, train)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-2 / 3) and lrs[2] == pytest.approx(1e-2)
    assert sched.get_last_lr()[0] == pytest.approx(1e-3)
    torch.save(sched.state_dict(), "/dev/null")


# --- presets and model ------------------------------------------------------------------------


def test_presets_load_and_unknown_names_list_the_known_ones():
    assert {"tiny", "nano"} <= set(list_presets())
    tiny, nano = load_preset("tiny"), load_preset("nano")
    assert tiny["family"] == "llama" and nano["hidden_size"] > tiny["hidden_size"]
    assert tiny["num_attention_heads"] % tiny["num_key_value_heads"] == 0
    with pytest.raises(PresetError, match=r"unknown preset 'huge' \(known: .*nano.*tiny"):
        load_preset("huge")
    with pytest.raises(PresetError):
        load_preset("../configs/demo")


def test_model_from_preset_with_overrides():
    from engine.model import build_model, count_params, model_config

    cfg = model_config("tiny", {"num_hidden_layers": 1}, vocab_size=300, eos_token_id=0)
    assert (
        cfg.num_hidden_layers == 1 and cfg.vocab_size == 300 and cfg.hidden_size == load_preset("tiny")["hidden_size"]
    )
    model = build_model(cfg)
    assert type(model).__name__ == "LlamaForCausalLM" and count_params(model) > 0
    with pytest.raises(PresetError, match="model.hidden_sise"):
        model_config("tiny", {"hidden_sise": 3}, vocab_size=300)


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_logger_fans_out_and_survives_a_failing_sink(capsys):
    class Recorder:
        def __init__(self):
            self.rows, self.closed = [], False

        def write(self, metrics, step):
            self.rows.append((step, metrics))

        def close(self):
            self.closed = True

    class Broken(Recorder):
        def write(self, metrics, step):
            raise RuntimeError("disk full")

    rec = Recorder()
    logger = MetricsLogger([Broken(), rec, ConsoleSink(max_steps=300)])
    metrics = {
        "loss": 2.5,
        "lr": 1e-3,
        "grad_norm": 0.5,
        "tokens_per_s": 12345.6,
        "step_time_s": 0.2,
        "eta_s": 62.0,
        "mfu": None,
    }
    logger.log(metrics, step=10)
    logger.close()
    assert rec.rows == [(10, metrics)] and rec.closed
    line = capsys.readouterr().out.strip()
    assert line == "step  10/300 | loss 2.5000 | lr 1.00e-03 | gnorm 0.50 | 12,346 tok/s | 0.200 s/step | eta 1m02s"


# --- checkpoints ------------------------------------------------------------------------------


def test_checkpoint_is_atomic_verifiable_and_weights_only(tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    from engine.checkpoint import load_training_state, rng_state, save_checkpoint, set_rng_state, verify_checkpoint
    from engine.model import build_model, model_config

    model = build_model(
        model_config(
            "tiny", {"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64}, vocab_size=len(tokenizer)
        )
    )
    opt = torch.optim.AdamW(model.parameters())
    model(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    opt.step()
    rng = rng_state()
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": rng, "data": {"epoch": 0, "index": 3}}
    root = tmp_path / "checkpoints"
    saved = save_checkpoint(root, 7, model, tokenizer, state)
    assert saved.path == root / "checkpoint-7" and (root / "latest").read_text().strip() == "checkpoint-7"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-7", "latest"]
    assert verify_checkpoint(saved.path) == []
    assert saved.size_bytes == sum(p.stat().st_size for p in saved.path.iterdir())

    loaded = load_training_state(saved.path)
    assert loaded["step"] == 7 and loaded["data"] == {"epoch": 0, "index": 3}
    set_rng_state(loaded["rng"])
    assert (random.random(), float(np.random.rand())) == expected[:2] and torch.equal(torch.rand(3), expected[2])
    reloaded = AutoModelForCausalLM.from_pretrained(saved.path)
    assert torch.equal(reloaded.model.embed_tokens.weight, model.model.embed_tokens.weight)

    save_checkpoint(root, 7, model, tokenizer, state)  # same step again: replaced in place
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-7", "latest"]
    with open(saved.path / "config.json", "a") as f:
        f.write(" ")
    assert any("config.json" in p for p in verify_checkpoint(saved.path))


def test_prune_deletes_the_oldest_beyond_the_limit_but_keeps_the_latest_and_best(tmp_path):
    from engine.checkpoint import prune

    root = tmp_path / "checkpoints"
    for step in (5, 10, 15, 20, 25):
        (root / f"checkpoint-{step}").mkdir(parents=True)
    (root / ".tmp-checkpoint-30").mkdir()  # a checkpoint being written, and the pointer: not checkpoints
    (root / "latest").write_text("checkpoint-25\n")
    (root / "checkpoint-notes.txt").write_text("")

    assert prune(root, 0, {25}) == []  # no limit: everything stays
    pruned = prune(root, 2, {25, 5})  # 5 is the best held-out loss's step: kept though oldest
    assert pruned == [(10, root / "checkpoint-10"), (15, root / "checkpoint-15"), (20, root / "checkpoint-20")]
    assert sorted(p.name for p in root.iterdir()) == [
        ".tmp-checkpoint-30",
        "checkpoint-25",
        "checkpoint-5",
        "checkpoint-notes.txt",
        "latest",
    ]
    assert prune(root, 2, {25, None}) == []  # at the limit already; no best step yet
    assert prune(root, 1, {25, None}) == [(5, root / "checkpoint-5")]


def test_gathered_state_restores_by_parameter_name_with_tied_weights(tmp_path, tokenizer):
    from safetensors.torch import load_file

    from engine.checkpoint import gather_state, load_training_state, restore_state, save_checkpoint
    from engine.model import build_model, model_config

    def make(layers=1):
        torch.manual_seed(layers)
        model = build_model(
            model_config(
                "tiny",
                {"num_hidden_layers": layers, "hidden_size": 32, "intermediate_size": 64, "tie_word_embeddings": True},
                vocab_size=len(tokenizer),
            )
        )
        return model, torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)

    model, opt = make()
    x = torch.tensor([[1, 2, 3, 4]])
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    model_state, optim_state = gather_state(model, opt)
    assert "model.embed_tokens.weight" in optim_state["state"]  # keyed by name, not by position
    saved = save_checkpoint(tmp_path, 1, model, tokenizer, {"optimizer": optim_state}, model_state=model_state)
    weights = load_file(saved.path / "model.safetensors")
    assert "lm_head.weight" not in weights  # tied: written once

    fresh, fresh_opt = make()
    assert not torch.equal(fresh.model.embed_tokens.weight, model.model.embed_tokens.weight)
    restore_state(fresh, fresh_opt, weights, load_training_state(saved.path)["optimizer"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    assert fresh.lm_head.weight is fresh.model.embed_tokens.weight
    before = opt.state_dict()["state"]
    after = fresh_opt.state_dict()["state"]
    assert all(torch.equal(before[i]["exp_avg_sq"], after[i]["exp_avg_sq"]) for i in before)

    other, other_opt = make(layers=2)
    with pytest.raises(KeyError, match=r"missing \['model\.layers\.1\."):
        restore_state(other, other_opt, weights, load_training_state(saved.path)["optimizer"])


# --- telemetry --------------------------------------------------------------------------------


def test_telemetry_sample_has_the_protocol_keys_and_degrades_without_nvml():
    from engine.nvml import Nvml
    from engine.protocol import EVENT_PAYLOADS, make_event
    from engine.telemetry import sample_system

    gpus = Nvml()
    sample = sample_system(gpus=gpus)
    gpus.close()
    make_event("telemetry", "r", 0, **sample)  # every required key present
    assert set(sample) == set(EVENT_PAYLOADS["telemetry"])
    assert sample["ram_total"] >= sample["ram_used"] > 0 and sample["proc_rss"] > 0
    if not torch.cuda.is_available():
        assert sample["gpus"] == []
    assert not math.isnan(sample["cpu_percent"])
