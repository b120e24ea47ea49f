"""The wizard's tokenizer step (Pilot): train a tokenizer on a small text file, inspect one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tui_helpers import wait_for

from cockpit.app import CockpitApp
from cockpit.tokenizer_info import train_on_files
from cockpit.wizard import WizardState, starting_draft

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine",
    "every good boy deserves fudge",
    "pack my box with five dozen liquor jugs",
]


def text_file(path: Path, lines: int = 400) -> Path:
    path.write_text("\n\n".join(f"{LINES[i % len(LINES)]} number {i}" for i in range(lines)) + "\n")
    return path


def text_draft(data: Path, tokenizer: Path, vocab: int = 300):
    return starting_draft().update(
        {
            "data.source": "text",
            "data.path": str(data),
            "data.demo": None,
            "tokenizer.path": str(tokenizer),
            "tokenizer.vocab_size": vocab,
        }
    )


def at_tokenizer(draft) -> WizardState:
    return WizardState(draft=draft).go("tokenizer")


async def test_trains_a_tokenizer_on_the_data_and_the_draft_points_at_it(tmp_path):
    data = text_file(tmp_path / "corpus.txt")
    out = tmp_path / "tok"
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_tokenizer(text_draft(data, out, vocab=1024)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.screen.STEP == "tokenizer"
        vocab = app.screen.query_one("#tok-vocab")
        vocab.value = "100"  # below the smallest vocabulary: the error shows next to the field
        await pilot.pause()
        assert "260" in str(app.screen.query_one("#tok-vocab-error").render())
        assert app.wizard.draft.get("tokenizer.vocab_size") == 1024
        vocab.value = "300"
        await pilot.pause()
        assert app.wizard.draft.get("tokenizer.vocab_size") == 300
        await pilot.press("ctrl+t")
        await wait_for(lambda: app.wizard.facts.vocab_size is not None, 60, what="the training")
        await pilot.pause()
        assert (out / "tokenizer.json").is_file()
        assert app.wizard.draft.get("tokenizer.path") == str(out)
        assert app.wizard.facts.vocab_size == 300
        report = str(app.screen.query_one("#tok-report").render())
        assert "300 tokens" in report and f"on {data}" in report
    assert not list(tmp_path.glob(".tok.tmp-*"))  # nothing half-written left beside it


async def test_inspects_an_existing_tokenizer_and_shows_its_vocabulary(tmp_path):
    data = text_file(tmp_path / "corpus.txt")
    tok = tmp_path / "mine"
    train_on_files([data], tok, 280)
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_tokenizer(text_draft(data, tmp_path / "none")))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "no tokenizer yet" in str(app.screen.query_one("#step-status").render())
        assert app.wizard.facts.vocab_size is None
        app.screen.query_one("#tok-path").value = str(tmp_path / "missing")
        await pilot.press("ctrl+o")
        await wait_for(lambda: "missing" in str(app.screen.query_one("#step-status").render()), 10)
        assert "tokenizer.json is missing" in str(app.screen.query_one("#step-status").render())
        app.screen.query_one("#tok-path").value = str(tok)
        app.screen.query_one("#tok-path").focus()
        await pilot.press("enter")
        await wait_for(lambda: app.wizard.facts.vocab_size is not None, 20, what="the inspection")
        await pilot.pause()
        assert app.wizard.facts.vocab_size == 280
        assert app.wizard.draft.get("tokenizer.path") == str(tok)
        report = str(app.screen.query_one("#tok-report").render())
        assert "280 tokens" in report and "<|endoftext|>" in report and "characters per token" in report


async def test_the_demo_draft_says_its_tokenizer_is_trained_at_launch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_tokenizer(starting_draft()))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "trains one of 1,024 tokens at launch" in str(app.screen.query_one("#step-status").render())
        assert app.wizard.facts.vocab_size == 1024
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert "generated at launch" in str(app.screen.query_one("#step-status").render())
        assert not (tmp_path / "data").exists()


@pytest.fixture
def inspected_app(tmp_path, monkeypatch):
    """The step on a text file with a tokenizer trained on it, with paths relative to the test's directory."""
    monkeypatch.chdir(tmp_path)
    text_file(Path("corpus.txt"))
    train_on_files([Path("corpus.txt")], Path("tok"), 300)
    return CockpitApp(runs_dir=Path("runs"), wizard=at_tokenizer(text_draft(Path("corpus.txt"), Path("tok"))))


async def _inspected(pilot) -> None:
    await wait_for(lambda: pilot.app.wizard.facts.vocab_size is not None, 20, what="the inspection")
    await pilot.pause()


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_snapshot_inspected(snap_compare, inspected_app, size):
    assert snap_compare(inspected_app, terminal_size=size, run_before=_inspected)


async def test_a_training_cancelled_writes_nothing_and_the_draft_keeps_its_tokenizer(tmp_path):
    data = text_file(tmp_path / "big.txt", lines=300_000)
    out = tmp_path / "tok"
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_tokenizer(text_draft(data, out)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+t")
        await wait_for(lambda: app.screen.query_one("#tok-progress").progress > 0, 30, what="training progress")
        await pilot.press("ctrl+x")
        await wait_for(lambda: "cancelled;" in str(app.screen.query_one("#step-status").render()), 30)
        assert not app.screen.query_one("#tok-progress").display
    assert not out.exists() and not list(tmp_path.glob(".tok*"))
    assert app.wizard.facts.vocab_size is None and app.wizard.draft.get("tokenizer.path") == str(out)


async def test_a_directory_chosen_in_the_data_step_is_what_the_tokenizer_trains_on(tmp_path):
    from cockpit.wizard import WizardFacts

    corpus = tmp_path / "books"
    corpus.mkdir()
    text_file(corpus / "a.txt", 200)
    (corpus / "b.txt").write_text("zebra quagga okapi\n" * 200)  # words only this file has
    (corpus / "notes.md").write_text("not data\n")
    out = tmp_path / "tok"
    draft = starting_draft().update({"tokenizer.path": str(out), "tokenizer.vocab_size": 300})
    state = WizardState(draft=draft, facts=WizardFacts(data_dir=str(corpus))).go("tokenizer")
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=state)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "the data files of" in str(app.screen.query_one("#tok-note").render())
        await pilot.press("ctrl+t")
        await wait_for(lambda: app.wizard.facts.vocab_size is not None, 60, what="the training")
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    assert any("zebra" in token for token in vocab)  # trained on b.txt too, not only the draft's data
