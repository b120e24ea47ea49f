"""Fine-tuning records through the chat template with a loss mask (engine.data.render), prepared
into masked shards (engine.data.prepare), and the engine learning only the assistant's tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import events_of, train_in_process

from engine.data.prepare import PrepareSettings, prepare
from engine.data.render import encode_segments_batch, markers_are_special, render_record
from engine.data.shards import open_masks, open_shards
from engine.data.text import BatchIterator
from engine.data.tokenizer import CHAT_TEMPLATE, CHAT_TOKENS, train_tokenizer

RECORDS = {
    "instruct": {"instruction": "add the numbers", "input": "2 3", "output": "5"},
    "chat": {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
            {"role": "assistant", "content": "see you"},
        ]
    },
    "tool": {
        "user_message": "weather in Oslo?",
        "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
        "tool_results": [{"temp": 3}],
        "assistant_response": "3 degrees",
    },
    "reasoning": {"question": "2+2?", "reasoning": "two and two", "answer": "4"},
    "kd": {"prompt": "say hi", "teacher_text": "hi!", "metadata": {"teacher": "big"}},
}
#: What the model learns from each record: the assistant's words and the end of its turns.
LEARNT = {
    "instruct": ["5<|im_end|>\n"],
    "chat": ["hello<|im_end|>\n", "see you<|im_end|>\n"],
    "tool": [
        '<tool_call>\n{"arguments": {"city": "Oslo"}, "name": "weather"}\n</tool_call><|im_end|>\n',
        "3 degrees<|im_end|>\n",
    ],
    "reasoning": ["<think>\ntwo and two\n</think>\n\n4<|im_end|>\n"],
    "kd": ["hi!<|im_end|>\n"],
}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("render-tok")
    texts = [json.dumps(r) for r in RECORDS.values()] * 20 + ["the quick brown fox jumps over the lazy dog"] * 20
    return train_tokenizer(
        None, root / "tok", 400, texts=texts, extra_special_tokens=CHAT_TOKENS, chat_template=CHAT_TEMPLATE
    )


@pytest.mark.parametrize("fmt", sorted(RECORDS))
def test_render_learns_what_the_assistant_says(fmt):
    segments = render_record(fmt, RECORDS[fmt])
    assert [text for text, learnt in segments if learnt] == LEARNT[fmt]
    assert all(text.startswith("<|im_start|>") for text, learnt in segments if not learnt)


def test_render_matches_the_tokenizers_chat_template(tok_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    messages = RECORDS["chat"]["messages"]
    rendered = "".join(text for text, _ in render_record("chat", RECORDS["chat"]))
    assert rendered == tok.apply_chat_template(messages, tokenize=False)


def test_segments_tokenize_to_ids_and_mask(tok_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    assert markers_are_special(tok)
    eos = tok.token_to_id("<|endoftext|>")
    segments = render_record("instruct", RECORDS["instruct"])
    [(ids, mask)] = encode_segments_batch(tok, [segments], eos)
    assert len(ids) == len(mask) and ids[-1] == eos and mask[-1] == 1
    learnt = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(learnt, skip_special_tokens=False) == "5<|im_end|>\n<|endoftext|>"
    assert tok.decode(ids, skip_special_tokens=False) == "".join(t for t, _ in segments) + "<|endoftext|>"


def test_prepared_shards_carry_the_mask_and_labels_ignore_the_prompt(tok_dir, tmp_path):
    from tokenizers import Tokenizer

    files = []
    for fmt, record in RECORDS.items():
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
        files.append(path)
    m = prepare(files, tok_dir, tmp_path / "out", PrepareSettings(seq_len=16, val_fraction=0.0))
    assert m["loss_mask"] and m["chat_markers_special"] and m["documents"]["train"] == 5
    tokens, mask = open_shards(tmp_path / "out", tok_dir, 16), open_masks(tmp_path / "out")
    assert len(mask) == len(tokens) and set(np.unique(mask).tolist()) == {0, 1}
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    learnt = tok.decode(np.asarray(tokens)[np.asarray(mask) == 1].tolist(), skip_special_tokens=False)
    assert learnt == "".join(t + "<|endoftext|>" for fmt in RECORDS for t in ["".join(LEARNT[fmt])])

    it = BatchIterator(tokens, 2, 16, seed=0, mask=mask)
    x, y = it.take()
    assert x.shape == y.shape == (2, 16) and (y == -100).any()
    keep = y != -100
    assert torch.equal(y[keep], x[keep])
    plain = BatchIterator(tokens, 2, 16, seed=0)
    x2, y2 = plain.take()
    assert y2 is x2 and torch.equal(x2, x)


@pytest.mark.slow
def test_the_engine_fine_tunes_on_masked_shards(tok_dir, tmp_path, make_run_dir):
    rows = []
    for i in range(300):
        rows.append({"instruction": f"add {i} and {i + 1}", "output": f"{2 * i + 1}"})
        rows.append(
            {"messages": [{"role": "user", "content": f"say the number {i}"}, {"role": "assistant", "content": f"{i}"}]}
        )
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[0::2]), encoding="utf-8")
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps(r) + "\n" for r in rows[1::2]), encoding="utf-8")
    m = prepare([data, chat], tok_dir, tmp_path / "shards", PrepareSettings(seq_len=64, val_fraction=0.1))
    assert m["loss_mask"] and m["val_shards"][0]["mask_file"] == "val_000.mask.bin"
    run_dir = make_run_dir(
        "sft",
        {
            "data.source": "shards",
            "data.path": str(tmp_path / "shards"),
            "tokenizer.path": str(tok_dir),
            "train.max_steps": 10,
            "train.eval_every": 10,
            "train.eval_batches": 2,
        },
    )
    assert train_in_process(run_dir) == 0, (run_dir / "logs" / "engine.log").read_text()[-3000:]
    events = events_of(run_dir)
    logs = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    assert "training tokens are learnt (the rest is prompt)" in logs
    losses = [e["loss"] for e in events if e["type"] == "metrics"]
    assert losses and all(np.isfinite(losses))
    assert [e for e in events if e["type"] == "eval"][0]["loss"] > 0
    assert not [e for e in events if e["type"] == "error"]


def test_readiness_check_reports_the_prepared_split_and_the_mask(tok_dir, tmp_path):
    from cockpit.checks.base import CheckContext
    from cockpit.checks.dataset import check_dataset
    from engine.config import RunConfig

    data = tmp_path / "sft.jsonl"
    data.write_text(
        "".join(
            json.dumps({"instruction": f"count to {i}", "output": " ".join(map(str, range(i)))}) + "\n"
            for i in range(1, 200)
        ),
        encoding="utf-8",
    )
    m = prepare([data], tok_dir, tmp_path / "shards", PrepareSettings(seq_len=16, val_fraction=0.2))
    cfg = RunConfig.model_validate(
        {
            "data": {"source": "shards", "path": str(tmp_path / "shards")},
            "tokenizer": {"path": str(tok_dir)},
            "train": {"seq_len": 16},
        }
    ).resolved(tmp_path)
    tokens = next(r for r in check_dataset(CheckContext(config_path=None, cfg=cfg)) if r.id == "dataset.tokens")
    assert tokens.status == "ok" and f"{m['val_tokens']:,} in the validation shards" in tokens.detail
    assert f"{m['total_tokens']:,} training tokens" in tokens.detail and "loss mask" in tokens.detail
