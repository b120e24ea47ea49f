"""The wizard's preset step (Pilot): the catalog against a given machine, picking, overrides, not fitting."""

from __future__ import annotations

import pytest
from tui_helpers import wait_for

from cockpit.app import CockpitApp
from cockpit.checks.memory import MemoryBudget
from cockpit.preset_fit import preset_fit
from cockpit.wizard import WizardFacts, WizardState, starting_draft
from presets import list_presets

GIB = 1 << 30
#: A machine the test gives: one 8 GiB GPU (the snapshots show no figure of the machine they run on).
GPU_8G = MemoryBudget("cuda", 8 * GIB, 8 * GIB, "GPU 0 (Test GPU): 8.0 GiB free of 8.0 GiB")


def at_preset(memory: MemoryBudget | None = GPU_8G, **facts) -> WizardState:
    facts = {"vocab_size": 1024, "tokens_available": 2_000_000, **facts}
    return WizardState(facts=WizardFacts(memory=memory, **facts)).go("preset")


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def row(app, name: str) -> list[str]:
    table = app.screen.query_one("#preset-table")
    return [str(cell) for cell in table.get_row(name)]


async def test_lists_the_catalog_and_enter_picks_tiny(tmp_path):
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_preset())
    app.wizard = app.wizard.with_draft(app.wizard.draft.set("preset", "nano"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#preset-table")
        assert [str(key.value) for key in table.rows] == list_presets()
        cfg = starting_draft().check().config
        nano = preset_fit("nano", cfg, GPU_8G, vocab_size=1024)
        assert row(app, "nano")[0] == "●" and app.wizard.facts.params == nano.params
        table.focus()
        table.move_cursor(row=list_presets().index("tiny"))
        await pilot.pause()
        assert text_of(app, "#preset-detail").startswith("tiny: ")
        await pilot.press("enter")
        await pilot.pause()
        tiny = preset_fit("tiny", cfg, GPU_8G, vocab_size=1024)
        assert app.wizard.draft.get("preset") == "tiny" and app.wizard.facts.params == tiny.params
        assert row(app, "tiny")[0] == "●" and row(app, "nano")[0] == ""
        assert "yes" in row(app, "tiny")[6]


async def test_an_override_out_of_range_shows_next_to_its_field(tmp_path):
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_preset())
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        layers = app.screen.query_one("#preset-num_hidden_layers")
        layers.value = "0"
        await pilot.pause()
        assert "model.num_hidden_layers" in text_of(app, "#preset-override-error")
        assert layers.has_class("-invalid-override")
        assert app.wizard.draft.get("model") is None  # the draft keeps what loads
        app.screen.query_one("#preset-hidden_size").value = "130"  # not a multiple of the 4 heads
        await pilot.pause()
        assert "num_attention_heads" in text_of(app, "#preset-override-error")
        app.screen.query_one("#preset-hidden_size").value = ""
        layers.value = "8"
        await pilot.pause()
        assert text_of(app, "#preset-override-error") == ""
        assert app.wizard.draft.get("model") == {"num_hidden_layers": 8}
        assert "8 layers" in text_of(app, "#preset-detail")
        cfg = starting_draft().check().config
        eight = preset_fit("tiny", cfg, GPU_8G, overrides={"num_hidden_layers": 8}, vocab_size=1024)
        four = preset_fit("tiny", cfg, GPU_8G, vocab_size=1024)
        assert app.wizard.facts.params == eight.params > four.params  # recounted with the override
    assert app.wizard.draft.check().ok


async def test_a_preset_that_does_not_fit_a_small_memory_says_so(tmp_path):
    small = MemoryBudget("cpu", 700 << 20, None, "RAM: 700 MiB free")
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_preset(small))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert row(app, "worker_9b")[6] == "no, not mb 1"
        table = app.screen.query_one("#preset-table")
        table.focus()
        table.move_cursor(row=list_presets().index("dense_75m"))
        await pilot.pause()
        assert "does not fit; not even micro batch 1 fits" in text_of(app, "#preset-detail")
        await pilot.press("enter")
        await pilot.pause()
        assert app.wizard.draft.get("preset") == "dense_75m"  # picked all the same, and told
        assert "does not fit" in text_of(app, "#step-status")


async def test_the_machine_memory_is_found_in_a_worker_when_not_known(tmp_path):
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=at_preset(None))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.wizard.facts.memory is not None, 20, what="the machine's memory")
        await pilot.pause()
        assert app.wizard.facts.memory.available > 0
        assert row(app, "tiny")[6].startswith(("yes", "no"))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
def test_snapshot(snap_compare, tmp_path, size):
    assert snap_compare(CockpitApp(runs_dir=tmp_path / "runs", wizard=at_preset()), terminal_size=size)


async def test_the_tokenizer_steps_vocabulary_sizes_the_presets(tmp_path):
    from test_wizard_tokenizer import at_tokenizer, text_draft, text_file

    from cockpit.tokenizer_info import train_on_files

    data = text_file(tmp_path / "corpus.txt")
    train_on_files([data], tmp_path / "tok", 300)
    wizard = at_tokenizer(text_draft(data, tmp_path / "tok"))
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=wizard.with_facts(memory=GPU_8G))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.wizard.facts.vocab_size == 300, 20, what="the inspection")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.STEP == "preset"
        cfg = app.wizard.draft.check().config
        assert app.wizard.facts.params == preset_fit("tiny", cfg, GPU_8G, vocab_size=300).params
        assert app.wizard.facts.params != preset_fit("tiny", cfg, GPU_8G, vocab_size=1024).params
        assert "Vocabulary 300;" in text_of(app, "#preset-intro")


async def test_without_the_tokenizer_step_the_drafts_vocabulary_sizes_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no tokenizer here: the demo draft trains one of tokenizer.vocab_size at launch
    state = at_preset(vocab_size=None)
    state = state.with_draft(state.draft.set("tokenizer.vocab_size", 2048))
    app = CockpitApp(runs_dir=tmp_path / "runs", wizard=state)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.wizard.facts.vocab_size is not None, 20, what="the vocabulary")
        await pilot.pause()
        assert app.wizard.facts.vocab_size == 2048
        cfg = state.draft.check().config
        assert app.wizard.facts.params == preset_fit("tiny", cfg, GPU_8G, vocab_size=2048).params
        assert "Vocabulary 2,048" in str(app.screen.query_one("#preset-intro").render())
