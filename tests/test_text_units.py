"""Text document units (line, paragraph, file, auto): a play in one .txt keeps its paragraphs as
documents, its repeated speaker names and stage directions inside them, through the one reader
(engine.data.formats.iter_text_documents) that data prepare|stats|validate, the dataset check and
the engine's text stream share; auto picks paragraph for it and line for the demo corpus."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pydantic
import pytest
from typer.testing import CliRunner

from cockpit.checks.base import CheckContext
from cockpit.checks.dataset import check_dataset
from cockpit.cli import app
from engine.config import RunConfig
from engine.data.demo import generate_demo_corpus
from engine.data.formats import choose_text_unit, iter_text_documents, scan
from engine.data.prepare import STATE, PrepareError, PrepareSettings, prepare
from engine.data.text import iter_documents, tokenize_file
from engine.data.tokenizer import load_tokenizer, train_tokenizer

runner = CliRunner()
WORDS = [
    f"{a}{b}"
    for a in ("be", "lo", "mi", "no", "pa", "ro", "si", "tu", "wa", "ze")
    for b in ("n", "ra", "th", "ve", "du", "x", "ly", "st")
]
SPEAKERS = ("HAMLET.", "HORATIO.", "OPHELIA.")


def speech(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 16))) + "."


def play(path: Path, scenes: int = 30, seed: int = 0) -> list[str]:
    """A play: paragraphs of a speaker's name and one to three lines of speech, some ending in
    "Exit."; blank lines between them. Returns the paragraphs."""
    rng = random.Random(seed)
    paragraphs = []
    for i in range(scenes):
        lines = [SPEAKERS[i % 3]] + [speech(rng) for _ in range(rng.randrange(1, 4))]
        if i % 4 == 3:
            lines.append("Exit.")
        paragraphs.append("\n".join(lines))
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return paragraphs


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    paragraphs = play(root / "hamlet.txt")
    tok = train_tokenizer(root / "hamlet.txt", root / "tok", 400)
    return root / "hamlet.txt", paragraphs, tok


# --- choosing the unit ------------------------------------------------------------------------


def test_auto_chooses_paragraph_for_a_play_and_line_for_line_corpora(stage, tmp_path):
    path, paragraphs, _ = stage
    choice = choose_text_unit(path)
    assert choice.unit == "paragraph"
    assert choice.reason == (
        f"auto: {len(paragraphs)} of the {len(paragraphs)} blank-line separated blocks in the "
        f"first {path.read_text().count(chr(10)):,} lines span several lines"
    )
    demo = generate_demo_corpus(tmp_path / "demo.txt", 500, 1)
    assert choose_text_unit(demo).unit == "line" and "no blank line" in choose_text_unit(demo).reason
    rng = random.Random(1)
    lines = [speech(rng) for _ in range(200)]
    spaced = tmp_path / "spaced.txt"  # one document per line, a blank line after each
    spaced.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    assert choose_text_unit(spaced).unit == "line"
    assert (
        choose_text_unit(spaced).reason == "auto: 0 of the 200 blank-line separated blocks in the first 399 lines "
        "span several lines"
    )
    stray = tmp_path / "stray.txt"  # one document per line with two stray blank lines
    stray.write_text("\n".join(lines[:100]) + "\n\n" + "\n".join(lines[100:]) + "\n\n", encoding="utf-8")
    assert choose_text_unit(stray).unit == "line" and "only 2 blank line(s)" in choose_text_unit(stray).reason
    assert choose_text_unit(path, "file").unit == "file" and choose_text_unit(path, "line").reason == "as set"


def test_the_one_reader_cuts_by_unit(stage):
    path, paragraphs, _ = stage
    assert list(iter_documents(path)) == paragraphs
    assert list(iter_documents(path, unit="paragraph")) == paragraphs
    assert list(iter_documents(path, unit="line")) == [line for p in paragraphs for line in p.split("\n")]
    assert list(iter_documents(path, unit="file")) == ["\n\n".join(paragraphs)]
    samples = list(iter_text_documents(path, "paragraph"))
    starts = [1 + sum(p.count("\n") + 2 for p in paragraphs[:i]) for i in range(len(paragraphs))]
    assert [s.line for s in samples] == starts
    assert sum(s.nbytes for s in samples) == path.stat().st_size
    assert sum(s.nlines for s in samples) == path.read_text().count("\n")


def test_paragraph_edge_cases(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\r\n\r\nfirst line\r\nsecond line\r\n\r\n\r\nbad \xff here\r\nstill bad\r\n\r\nlast\r\n\r\n")
    samples = list(iter_text_documents(path, "paragraph"))
    assert [(s.line, s.text) for s in samples] == [(3, "first line\nsecond line"), (7, None), (10, "last")]
    assert [str(p) for p in samples[1].problems] == [f"{path}:7: not UTF-8 (invalid start byte at byte 4)"]
    assert sum(s.nbytes for s in samples) == path.stat().st_size and sum(s.nlines for s in samples) == 11
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n", encoding="utf-8")
    for unit in ("paragraph", "file"):
        [only] = iter_text_documents(blank, unit)
        assert only.text == "" and [p.kind for p in only.problems] == ["empty"] and only.nlines == 3


# --- every tool cuts alike --------------------------------------------------------------------


def test_the_engine_stream_has_one_end_of_text_per_paragraph(stage):
    path, paragraphs, tok_dir = stage
    tok = load_tokenizer(tok_dir)
    stream = tokenize_file(path, tok)
    cuts = np.flatnonzero(stream == tok.eos_token_id)
    assert len(cuts) == len(paragraphs)
    docs = [tok.decode(part[:-1].tolist()) for part in np.split(stream, cuts + 1)[:-1]]
    assert docs == paragraphs
    assert (tokenize_file(path, tok, unit="line") == tok.eos_token_id).sum() == sum(
        p.count("\n") + 1 for p in paragraphs
    )


def test_prepare_keeps_every_paragraph_and_its_repeated_lines(stage, tmp_path):
    path, paragraphs, tok_dir = stage
    out = tmp_path / "shards"
    result = runner.invoke(
        app,
        [
            "data",
            "prepare",
            "--input",
            str(path),
            "--tokenizer",
            str(tok_dir),
            "--out",
            str(out),
            "--seq-len",
            "32",
            "--val-fraction",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    reason = choose_text_unit(path).reason
    assert f"{path}: one document per blank-line separated paragraph ({reason})" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["documents"] == {"read": len(paragraphs), "train": len(paragraphs), "val": 0, "dropped": {}}
    assert manifest["sources"][0]["text_unit"] == "paragraph" and manifest["sources"][0]["text_unit_reason"] == reason
    assert manifest["prepare"]["settings"]["text_unit"] == "auto"
    tokens = np.fromfile(out / manifest["shards"][0]["file"], dtype=manifest["dtype"])
    tok = load_tokenizer(tok_dir)
    text = tok.decode(tokens.tolist(), skip_special_tokens=False)
    assert text == "".join(p + "<|endoftext|>" for p in paragraphs)
    assert text.count("HAMLET.") == len(paragraphs[::3]) and text.count("Exit.") == len(paragraphs) // 4

    # one document per line, the same file loses its repeated lines and short lines
    lines = tmp_path / "lines"
    result = runner.invoke(
        app,
        [
            "data",
            "prepare",
            "--input",
            str(path),
            "--tokenizer",
            str(tok_dir),
            "--out",
            str(lines),
            "--seq-len",
            "32",
            "--val-fraction",
            "0",
            "--text-unit",
            "line",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    dropped = json.loads(result.stdout)["documents"]["dropped"]
    # every speaker line and "Exit." goes: the first of each is too short, the others repeat it
    assert dropped == {
        "exact_duplicate": len(paragraphs) - 3 + len(paragraphs) // 4 - 1,
        "too_short": 4,
        "empty": len(paragraphs) - 1,
    }


def test_resume_refuses_another_unit(stage, tmp_path):
    path, paragraphs, tok_dir = stage
    out = tmp_path / "shards"

    def interrupt(progress) -> None:
        raise KeyboardInterrupt

    settings = PrepareSettings(seq_len=16, val_fraction=0.0, shard_tokens=200)
    with pytest.raises(KeyboardInterrupt):
        prepare([path], tok_dir, out, settings, progress=interrupt)
    kept = sorted(p.name for p in out.glob("train_*.bin"))
    assert len(kept) > 1 and (out / STATE).is_file()
    with pytest.raises(
        PrepareError,
        match=rf"^{out}: an interrupted preparation cut {path} into paragraph "
        rf"documents, this run into line documents; continue it with --text-unit "
        rf"paragraph, or delete {out / STATE} to start over$",
    ):
        prepare([path], tok_dir, out, PrepareSettings(seq_len=16, val_fraction=0.0, shard_tokens=200, text_unit="line"))
    assert sorted(p.name for p in out.glob("train_*.bin")) == kept and (out / STATE).is_file()
    manifest = prepare(
        [path], tok_dir, out, PrepareSettings(seq_len=16, val_fraction=0.0, shard_tokens=200, text_unit="paragraph")
    )
    assert manifest["documents"]["train"] == len(paragraphs) and not (out / STATE).exists()


def test_stats_and_validate_report_the_unit(stage):
    path, paragraphs, _ = stage
    reason = choose_text_unit(path).reason
    report = json.loads(runner.invoke(app, ["data", "stats", str(path), "--json"]).stdout)
    assert (report["text_unit"], report["text_unit_reason"]) == ("paragraph", reason)
    assert report["records"] == len(paragraphs) and report["duplicates"] == 0
    assert report["lines"] == path.read_text().count("\n")
    shown = runner.invoke(app, ["data", "stats", str(path)])
    assert shown.exit_code == 0 and "one document per blank-line separated paragraph" in shown.stdout
    by_line = json.loads(runner.invoke(app, ["data", "stats", str(path), "--text-unit", "line", "--json"]).stdout)
    assert (
        by_line["text_unit_reason"] == "as set" and by_line["duplicates"] == len(paragraphs) + len(paragraphs) // 4 - 4
    )
    result = runner.invoke(app, ["data", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"{path}: text, one document per blank-line separated paragraph ({reason}), "
        f"{len(paragraphs)} records, {len(paragraphs)} valid: ok\n"
    )
    bad = runner.invoke(app, ["data", "validate", str(path), "--text-unit", "page"])
    assert (
        bad.exit_code == 2 and bad.stderr == "error: --text-unit 'page': expected one of auto, line, paragraph, file\n"
    )


def test_the_dataset_check_cuts_as_configured(stage, tmp_path):
    path, paragraphs, tok_dir = stage

    def check(**data) -> dict:
        cfg = RunConfig.model_validate(
            {"data": {"source": "text", "path": str(path), **data}, "tokenizer": {"path": str(tok_dir)}}
        ).resolved(tmp_path)
        ctx = CheckContext(None, cfg)
        results = {r.id: r for r in check_dataset(ctx)}
        return results, ctx.dataset

    results, facts = check()
    assert (
        results["dataset.format"].detail
        == f"text: one document per blank-line separated paragraph ({choose_text_unit(path).reason})"
    )
    assert results["dataset.counts"].data["documents"] == len(paragraphs) == facts["documents"]
    assert results["dataset.duplicates"].status == "ok" and facts["text_unit"] == "paragraph"
    tok = load_tokenizer(tok_dir)
    assert facts["tokens"] == len(tokenize_file(path, tok))
    results, facts = check(text_unit="line")
    assert results["dataset.format"].detail == "text: one document per line (as set)"
    assert results["dataset.duplicates"].status == "warn" and facts["text_unit"] == "line"
    assert facts["tokens"] == len(tokenize_file(path, tok, unit="line"))
    with pytest.raises(pydantic.ValidationError, match="text_unit"):
        RunConfig.model_validate({"data": {"text_unit": "page"}})


def test_scan_of_a_file_unit(stage):
    path, paragraphs, _ = stage
    summary = scan(path, "text", unit="file")
    assert summary.records == 1 and summary.lengths.max == len("\n\n".join(paragraphs))
    assert summary.bytes == path.stat().st_size and summary.to_json()["text_unit"] == "file"
