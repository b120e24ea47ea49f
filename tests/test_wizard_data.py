"""The wizard's data step (Pilot, on small real files the tests make): choosing a file sets the
draft, validation lists the `file:line` problems, stats draw a histogram, prepare ends with the
draft on the shards, cancel keeps nothing half-written; snapshots."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from tui_helpers import wait_for

from cockpit.app import CockpitApp
from cockpit.data_work import Throttle
from cockpit.screens.data_step import DataScreen
from cockpit.wizard import WizardState, starting_draft

WORDS = ["amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris", "juniper", "kelp", "lumen"]


def corpus(path: Path, docs: int = 120, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [
        " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(rng.randrange(8, 40))) for _ in range(docs)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def docs_jsonl(path: Path, docs: int, broken: dict[int, str]) -> Path:
    """``docs`` pretrain records, the 0-based lines in ``broken`` replaced by what is there."""
    lines = [json.dumps({"text": f"document number {i} with some words"}) for i in range(docs)]
    for i, line in broken.items():
        lines[i] = line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def app_on(tmp_path: Path, draft=None) -> CockpitApp:
    return CockpitApp(runs_dir=tmp_path / "runs", wizard=WizardState(draft=draft or starting_draft()).go("data"))


async def on_data(pilot) -> DataScreen:
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, DataScreen)
    return screen


async def choose(pilot, screen: DataScreen, path: str) -> None:
    screen.query_one("#data-path").focus()
    screen.query_one("#data-path").value = path
    await pilot.press("enter")
    await pilot.pause()


async def test_choosing_a_text_file_validates_it_and_shows_its_stats(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path / "notes.txt")
    app = app_on(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "notes.txt")
        assert app.wizard.draft.get("data.source") == "text" and app.wizard.draft.get("data.path") == "notes.txt"
        assert app.wizard.draft.get("data.text_unit") == "auto"
        await wait_for(lambda: screen.stats is not None, 30, what="the stats")
        await pilot.pause()
        assert screen.summaries[0].records == 120 and app.wizard.facts.data_problems == 0
        assert screen.stats["records"] == 120
        histogram = screen.query_one("#data-histogram")
        assert sum(b["count"] for b in histogram.bins) == 120 and histogram.unit == "characters"
        await pilot.press("3")
        assert "characters per record" in str(histogram.render())
        assert "records      120" in str(screen.query_one("#data-stats").render())


async def test_a_jsonl_file_with_two_malformed_lines_lists_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs_jsonl(tmp_path / "docs.jsonl", 10, {3: '{"text": "broken', 7: "not json at all"})
    app = app_on(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "docs.jsonl")
        await wait_for(lambda: screen.summaries is not None, 30, what="the validation")
        await pilot.pause()
        shown = str(screen.query_one("#data-problems").render())
        assert "docs.jsonl:4: invalid JSON" in shown and "docs.jsonl:8: invalid JSON" in shown
        assert app.wizard.facts.data_problems == 2 and app.wizard.draft.get("data.source") == "jsonl"
        assert screen.query_one("#data-tabs").active == "data-problems-tab"


async def test_a_chat_file_previews_with_the_context_dimmed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = {
        "messages": [{"role": "user", "content": "What is kelp?"}, {"role": "assistant", "content": "A seaweed."}]
    }
    (tmp_path / "chat.jsonl").write_text((json.dumps(record) + "\n") * 3, encoding="utf-8")
    app = app_on(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "chat.jsonl")
        await wait_for(lambda: screen.stats is not None, 30, what="the preview")
        preview = screen.query_one("#data-preview").render()
        dim = "".join(preview.plain[s.start : s.end] for s in preview.spans if "dim" in str(s.style))
        assert "What is kelp?" in dim and "A seaweed." in preview.plain and "A seaweed." not in dim


async def test_a_path_that_is_not_data_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "empty-dir" / "readme.md").write_text("not data", encoding="utf-8")
    app = app_on(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_data(pilot)
        before = app.wizard.draft
        await choose(pilot, screen, "empty-dir")
        assert "error: empty-dir: no data files (.txt, .jsonl, .ndjson) and no manifest.json" in str(
            screen.query_one("#step-status").render()
        )
        await choose(pilot, screen, "nowhere.txt")
        assert "error: nowhere.txt: no such file" in str(screen.query_one("#step-status").render())
        assert app.wizard.draft == before


def two_file_corpus(directory: Path, docs: int = 30) -> Path:
    """A directory of a text file, a JSONL file whose 4th line is malformed, and a file that is not data."""
    directory.mkdir()
    corpus(directory / "a.txt", docs)
    docs_jsonl(directory / "b.jsonl", 10, {3: '{"text": "broken'})
    (directory / "notes.md").write_text("# not data\n", encoding="utf-8")
    return directory


async def test_a_directory_of_data_files_validates_them_all_and_keeps_the_draft_until_prepared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    two_file_corpus(tmp_path / "mixed")
    app = app_on(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen, before = await on_data(pilot), app.wizard.draft
        tree = screen.query_one("#data-tree")
        await wait_for(lambda: tree.root.children, 30, what="the tree")
        await pilot.press("down", "u")  # the tree's first entry: the directory
        await wait_for(lambda: screen.stats is not None, 30, what="the stats")
        await pilot.pause()
        assert [s.records for s in screen.summaries] == [30, 10] and app.wizard.facts.data_problems == 1
        assert screen.stats["records"] == 40  # the stats count both files
        header = str(screen.query_one("#data-summary").render())
        assert "2 data file(s), 1 other(s) ignored" in header and "40 records, 39 valid, 1 unusable" in header
        assert "mixed/b.jsonl:4: invalid JSON" in str(screen.query_one("#data-problems").render())
        status = str(screen.query_one("#step-status").render())
        assert "a directory of 2 files: press p to prepare shards" in status
        assert app.wizard.draft == before and app.wizard.facts.data_dir == "mixed"
        await pilot.press("ctrl+n")  # allowed: the draft trains as it was
        await pilot.pause()
        assert app.screen.STEP == "tokenizer"
        await pilot.press("escape")  # back: the directory is still the choice
        screen = await on_data(pilot)
        assert screen.files == [Path("mixed/a.txt"), Path("mixed/b.jsonl")]
        await wait_for(lambda: screen.summaries is not None, 30, what="the validation")


async def test_prepare_without_a_tokenizer_offers_the_tokenizer_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path / "notes.txt")
    app = app_on(tmp_path, starting_draft().set("tokenizer.path", "tok"))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "notes.txt")
        await wait_for(lambda: screen.stats is not None, 30, what="the stats")
        await pilot.press("p")
        assert "no tokenizer at tok yet: press t" in str(screen.query_one("#step-status").render())
        await pilot.press("t")
        await pilot.pause()
        assert app.screen.STEP == "tokenizer"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    from engine.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tok")
    return train_tokenizer(corpus(root / "corpus.txt", 300, seed=1), root / "tok", 300)


async def prepared(pilot, screen: DataScreen, name: str) -> dict:
    """Press p and wait for the shards: the draft ends on ``data/shards/<name>`` with its tokens."""
    await pilot.press("p")
    await wait_for(lambda: screen.manifest is not None, 60, what="the shards")
    await pilot.pause()
    draft, facts = pilot.app.wizard.draft, pilot.app.wizard.facts
    assert draft.get("data.source") == "shards" and draft.get("data.path") == f"data/shards/{name}"
    manifest = json.loads((Path("data/shards") / name / "manifest.json").read_text())
    assert facts.tokens_available == manifest["total_tokens"] > 0 and draft.check().ok
    return manifest


async def test_prepare_ends_with_the_draft_on_the_shards(tmp_path, monkeypatch, tokenizer):
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path / "notes.txt", 400)
    app = app_on(tmp_path, starting_draft().update({"tokenizer.path": str(tokenizer), "train.seq_len": 32}))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "notes.txt")
        await wait_for(lambda: screen.stats is not None, 30, what="the stats")
        assert screen.stats["tokens"]["total"] > 0  # the tokenizer counts tokens too
        manifest = await prepared(pilot, screen, "notes")
        assert "training tokens" in str(screen.query_one("#data-prepare").render())
        await pilot.press("m")  # the demo corpus, then the prepared shards chosen by path
        assert app.wizard.draft.get("data.source") == "demo"
        await choose(pilot, screen, "data/shards/notes")
        assert (
            app.wizard.draft.get("data.source") == "shards" and app.wizard.draft.get("data.path") == "data/shards/notes"
        )
        assert app.wizard.facts.tokens_available == manifest["total_tokens"]


async def test_prepare_of_a_directory_makes_one_shard_directory_of_all_its_files(tmp_path, monkeypatch, tokenizer):
    monkeypatch.chdir(tmp_path)
    two_file_corpus(tmp_path / "books", docs=200)
    app = app_on(tmp_path, starting_draft().update({"tokenizer.path": str(tokenizer), "train.seq_len": 32}))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "books")
        await wait_for(lambda: screen.summaries is not None, 30, what="the validation")
        assert app.wizard.draft.get("data.source") == "demo"
        manifest = await prepared(pilot, screen, "books")
        assert manifest["documents"]["read"] == 200 + 10 and manifest["documents"]["dropped"]["invalid"] == 1
        assert app.wizard.facts.data_dir is None


async def test_cancel_stops_prepare_leaving_no_manifest_and_p_again_completes(tmp_path, monkeypatch, tokenizer):
    monkeypatch.chdir(tmp_path)
    corpus(tmp_path / "big.txt", 21_000, seed=3)  # two batches: x lands before the first ends
    app = app_on(tmp_path, starting_draft().update({"tokenizer.path": str(tokenizer), "train.seq_len": 32}))
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_data(pilot)
        await choose(pilot, screen, "big.txt")
        await pilot.press("p")
        await pilot.press("x")
        await wait_for(lambda: "cancelled" in str(screen.query_one("#step-status").render()), 60, what="the cancel")
        assert screen.manifest is None and app.wizard.draft.get("data.source") == "text"
        assert not (tmp_path / "data/shards/big/manifest.json").exists()
        await pilot.press("p")  # again: it completes (resuming from any finished shard)
        await wait_for(lambda: screen.manifest is not None, 120, what="the shards")
        assert (tmp_path / "data/shards/big/manifest.json").is_file()
        assert app.wizard.draft.get("data.source") == "shards"


def test_scan_reports_progress_per_record_and_stops_when_the_callback_raises(tmp_path):
    from engine.data.formats import scan

    path = corpus(tmp_path / "notes.txt", 50)
    seen: list[int] = []
    summary = scan(path, progress=lambda s: seen.append(s.records))
    assert seen == list(range(1, 51)) and summary.records == 50

    def stop(s) -> None:
        if s.records == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(path, progress=stop)


def test_throttle_lets_through_at_most_the_rate_asked():
    throttle = Throttle(hz=10)
    assert throttle.due() and not throttle.due()  # the first at once, the next only 0.1 s later
    throttle.last -= 0.2
    assert throttle.due()


async def test_x_with_nothing_running_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = app_on(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_data(pilot)
        await pilot.press("x")
        assert "nothing to cancel" in str(screen.query_one("#step-status").render())


def _snapshot_app(tmp_path: Path) -> CockpitApp:
    corpus(tmp_path / "notes.txt")
    lines = [json.dumps({"text": f"document {i}"}) for i in range(6)]
    lines[2] = '{"text": "broken'
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return app_on(tmp_path, starting_draft().set("tokenizer.path", "no-tokenizer"))


async def _stats_shown(pilot) -> None:
    screen = await on_data(pilot)
    await choose(pilot, screen, "notes.txt")
    await wait_for(lambda: screen.stats is not None, 30, what="the stats")
    await pilot.press("3")
    await pilot.pause()


async def _problems_shown(pilot) -> None:
    screen = await on_data(pilot)
    await choose(pilot, screen, "bad.jsonl")
    await wait_for(lambda: screen.stats is not None, 30, what="the stats")
    await pilot.pause()


def test_snapshot_data_stats_120x40(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(_snapshot_app(tmp_path), terminal_size=(120, 40), run_before=_stats_shown)


def test_snapshot_data_problems_80x24(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert snap_compare(_snapshot_app(tmp_path), terminal_size=(80, 24), run_before=_problems_shown)
