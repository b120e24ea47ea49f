"""Heavy work in a child process (cockpit/offload.py): its result, its progress, its error and a
cancel come back to the caller; the child is a real process running the real shard preparation."""

from __future__ import annotations

import random
import threading
import time

import pytest

from cockpit.offload import Cancelled, run_in_child
from cockpit.tokenizer_info import train_on_files
from engine.data.prepare import PrepareError, PrepareSettings, prepare


@pytest.fixture
def corpus_and_tokenizer(tmp_path):
    rng = random.Random(0)
    text = "\n".join(" ".join(f"w{rng.randrange(300)}" for _ in range(30)) for _ in range(3000))
    (tmp_path / "c.txt").write_text(text + "\n", encoding="utf-8")
    train_on_files([tmp_path / "c.txt"], tmp_path / "tok", 400)
    return tmp_path / "c.txt", tmp_path / "tok"


def test_the_result_and_the_progress_come_back(tmp_path, corpus_and_tokenizer):
    corpus, tok = corpus_and_tokenizer
    seen = []
    manifest = run_in_child(
        prepare, ([corpus], tok, tmp_path / "out", PrepareSettings(seq_len=32)), seen.append, threading.Event()
    )
    assert manifest["total_tokens"] > 0 and (tmp_path / "out" / "manifest.json").is_file()
    assert seen and seen[-1].documents == 3000  # prepare's own Progress objects


def test_an_error_in_the_child_is_raised_in_the_caller(tmp_path, corpus_and_tokenizer):
    corpus, tok = corpus_and_tokenizer
    with pytest.raises(PrepareError, match="seq-len must be positive"):
        run_in_child(prepare, ([corpus], tok, tmp_path / "out", PrepareSettings(seq_len=0)), print, threading.Event())


def test_cancel_ends_the_child_at_once(tmp_path, corpus_and_tokenizer):
    corpus, tok = corpus_and_tokenizer
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()  # the child is still starting up
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_in_child(prepare, ([corpus], tok, tmp_path / "out", PrepareSettings(seq_len=32)), print, cancel)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out" / "manifest.json").exists()
