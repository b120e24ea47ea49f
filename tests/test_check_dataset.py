"""Dataset formats (engine.data.formats) and the dataset readiness check (cockpit.checks.dataset):
every format good and broken with exact file:line messages, detection, summaries, token counts that
agree with the engine, sampling of large files, shard directories, and no torch on the way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cockpit.checks import dataset as dataset_check
from cockpit.checks.base import CheckContext
from cockpit.checks.dataset import check_dataset
from engine.config import RunConfig
from engine.data import formats
from engine.data.demo import generate_demo_corpus
from engine.data.formats import (
    FormatError,
    LengthStats,
    Problem,
    detect_format,
    histogram,
    inspect_shards,
    iter_samples,
    scan,
)

REPO = Path(__file__).resolve().parent.parent

GOOD = {
    "pretrain": [{"text": "the cat sat."}, {"text": "a dog ran.", "id": 2}],
    "instruct": [
        {"instruction": "add", "input": "2 3", "output": "5"},
        {"instruction": "greet", "output": "hi"},
        {"instruction": "x", "input": None, "output": "y"},
    ],
    "chat": [
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "time?"},
                {"role": "tool", "content": "12:00"},
                {"role": "assistant", "content": "noon"},
            ]
        },
    ],
    "tool": [
        {
            "user_message": "weather?",
            "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
            "tool_results": [{"temp": 3}],
            "assistant_response": "3 degrees",
        }
    ],
    "reasoning": [{"question": "2+2?", "reasoning": "two and two", "answer": "4"}],
    "kd": [
        {"prompt": "say hi", "teacher_text": "hi!", "metadata": {"teacher": "big"}},
        {"prompt": "say bye", "teacher_text": "bye!"},
    ],
}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def messages(path: Path, fmt: str | None = None) -> list[str]:
    return [str(p) for p in scan(path, fmt).problems]


def make_ctx(tmp_path: Path, nproc: int = 1, **sections) -> CheckContext:
    cfg = RunConfig.model_validate(sections).resolved(tmp_path)
    return CheckContext(config_path=None, cfg=cfg, nproc=nproc)


def by_id(results) -> dict:
    return {r.id: r for r in results}


# --- formats: good files ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_good_jsonl_formats_are_detected_and_valid(tmp_path, fmt):
    path = write_jsonl(tmp_path / "data.jsonl", GOOD[fmt])
    assert detect_format(path).format == fmt
    summary = scan(path)
    assert summary.format == fmt and summary.problems == [] and summary.errors == 0
    assert summary.records == summary.valid == len(GOOD[fmt])
    assert summary.lengths.count == len(GOOD[fmt]) and summary.chars > 0


def test_text_format_and_sample_texts(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("one line\r\nsecond  line\n", encoding="utf-8")
    assert detect_format(path).format == "text"
    samples = list(iter_samples(path, "text"))
    assert [(s.line, s.text) for s in samples] == [(1, "one line"), (2, "second  line")]
    assert formats.sample_text("instruct", GOOD["instruct"][0]) == "add\n2 3\n5"
    assert formats.sample_text("chat", GOOD["chat"][0]) == "be brief\nhi\nhello"
    assert (
        formats.sample_text("tool", GOOD["tool"][0])
        == 'weather?\n{"arguments": {"city": "Oslo"}, "name": "weather"}\n{"temp": 3}\n3 degrees'
    )


def test_problem_renders_file_line_message():
    assert str(Problem("data.jsonl", 3, "invalid JSON (x)", "json")) == "data.jsonl:3: invalid JSON (x)"
    assert str(Problem("shards/manifest.json", 0, "missing", "missing")) == "shards/manifest.json: missing"
    assert Problem("a", 1, "m", "json").is_error and not Problem("a", 1, "m", "duplicate").is_error


# --- formats: broken files --------------------------------------------------------------------


def test_broken_instruct_file_exact_messages(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [
        json.dumps({"instruction": "a", "output": "b"}).encode(),  # 1 ok
        b'{"instruction": "a", "output": "\xff"}',  # 2 bad UTF-8
        b'{"instruction": "a", "output": "b" "c"}',  # 3 invalid JSON
        b'{"instruction": "a", "output": "trunc',  # 4 truncated
        json.dumps({"instruction": "a"}).encode(),  # 5 missing key
        json.dumps({"instruction": 3, "output": "b"}).encode(),  # 6 mistyped
        json.dumps({"instruction": "", "output": " "}).encode(),  # 7 empty sample
        json.dumps({"instruction": "q", "output": ""}).encode(),  # 8 empty field
        json.dumps({"instruction": "a", "output": "b"}).encode(),  # 9 duplicate of 1
        b"",  # 10 blank
        b"[1, 2]",  # 11 not an object
        json.dumps({"instruction": "a", "input": 5, "output": "b"}).encode(),  # 12 optional mistyped
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    summary = scan(path)  # detected: instruct
    p = str(path)
    assert [str(x) for x in summary.problems] == [
        f"{p}:2: not UTF-8 (invalid start byte at byte 32)",
        f"{p}:3: invalid JSON (Expecting ',' delimiter at column 36)",
        f"{p}:4: invalid JSON (Unterminated string starting at column 32)",
        f"{p}:5: missing key 'output' (instruct)",
        f"{p}:6: 'instruction' must be a string, got int",
        f"{p}:7: empty sample",
        f"{p}:8: empty 'output'",
        f"{p}:9: duplicate of line 1",
        f"{p}:10: blank line",
        f"{p}:11: expected a JSON object, got list",
        f"{p}:12: 'input' must be a string, got int",
    ]
    assert summary.counts == {
        "utf8": 1,
        "json": 2,
        "missing_key": 1,
        "type": 2,
        "empty": 1,
        "empty_field": 1,
        "duplicate": 1,
        "blank": 1,
        "not_object": 1,
    }
    assert summary.lines == 12 and summary.records == 11 and summary.invalid == 7 and summary.valid == 4
    assert summary.errors == 7 and summary.empty == 1 and summary.duplicates == 1
    assert summary.lengths.count == 3  # lines 1, 8, 9


def test_chat_problems(tmp_path):
    path = write_jsonl(
        tmp_path / "data.jsonl",
        [
            GOOD["chat"][0],
            {"messages": "hello"},
            {"messages": ["hi", {"role": "bot", "content": "x"}, {"content": "y"}, {"role": "user", "content": 5}]},
            {"messages": []},
        ],
    )
    p = str(path)
    assert messages(path) == [
        f"{p}:2: 'messages' must be a list, got str",
        f"{p}:3: 'messages[0]' must be an object, got str",
        f"{p}:3: 'messages[1].role' must be one of system, user, assistant, tool, got 'bot'",
        f"{p}:3: missing key 'messages[2].role' (chat)",
        f"{p}:3: 'messages[3].content' must be a string, got int",
        f"{p}:4: empty sample",
    ]


def test_tool_reasoning_kd_problems(tmp_path):
    tool = write_jsonl(
        tmp_path / "tool.jsonl",
        [
            GOOD["tool"][0],
            {"user_message": "x", "tool_calls": ["weather()"], "tool_results": {}, "assistant_response": "y"},
        ],
    )
    assert messages(tool) == [
        f"{tool}:2: 'tool_calls[0]' must be an object, got str",
        f"{tool}:2: 'tool_results' must be a list, got dict",
    ]
    reasoning = write_jsonl(tmp_path / "r.jsonl", [GOOD["reasoning"][0], {"question": "q", "answer": None}])
    assert messages(reasoning) == [
        f"{reasoning}:2: missing key 'reasoning' (reasoning)",
        f"{reasoning}:2: 'answer' must be a string, got null",
    ]
    kd = write_jsonl(tmp_path / "kd.jsonl", [GOOD["kd"][0], {"prompt": "p", "teacher_text": "t", "metadata": [1]}])
    assert messages(kd) == [f"{kd}:2: 'metadata' must be an object, got list"]


def test_explicit_format_overrides_detection(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", GOOD["instruct"][:2])
    assert messages(path, "pretrain") == [
        f"{path}:1: missing key 'text' (pretrain)",
        f"{path}:2: missing key 'text' (pretrain)",
    ]
    assert messages(path, "text") == []  # every line is a document of text
    with pytest.raises(FormatError, match="not a line format"):
        list(iter_samples(path, "shards"))


def test_missing_file_raises_format_error(tmp_path):
    with pytest.raises(FormatError, match="not found"):
        scan(tmp_path / "nope.jsonl", "pretrain")


# --- detection --------------------------------------------------------------------------------


def test_detection_votes_and_falls_back(tmp_path):
    # a broken first line and one pretrain record among instruct records: the majority wins
    path = write_jsonl(tmp_path / "data.jsonl", ['{"instruction": ', {"text": "t"}] + GOOD["instruct"])
    found = detect_format(path)
    assert found.format == "instruct"
    assert found.reason == "keys instruction, input, output in 3 of the first 5 records"
    # a record missing a required key still points at its format
    assert formats.classify_record({"instruction": "a"}) == "instruct"
    assert formats.classify_record({"question": "q", "answer": "a"}) == "reasoning"
    assert formats.classify_record({"foo": 1}) is None
    # JSON lines in a .txt file are still JSONL; unknown keys give no format
    txt = write_jsonl(tmp_path / "data.txt", [{"text": "a"}, {"text": "b"}])
    assert detect_format(txt).format == "pretrain"
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"foo": 1}])
    assert detect_format(unknown).format is None and "known format" in detect_format(unknown).reason
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert detect_format(empty) == formats.Detection(None, "no non-blank line")
    (tmp_path / "dir").mkdir()
    assert detect_format(tmp_path / "dir").format == "shards"


def test_shard_constants_have_one_owner(tmp_path):
    from engine.data import manifest, prepare, shards

    assert not any(hasattr(formats, name) for name in ("SHARD_MANIFEST", "SHARD_FORMAT", "SHARD_VERSION"))
    assert shards.MANIFEST is manifest.MANIFEST and prepare.MANIFEST is manifest.MANIFEST
    (tmp_path / manifest.MANIFEST).write_text("{}")
    assert detect_format(tmp_path) == formats.Detection("shards", f"directory with {manifest.MANIFEST}")


# --- summaries --------------------------------------------------------------------------------


def test_length_stats_and_histogram():
    stats = LengthStats()
    stats.extend([1, 2, 3, 4, 100])
    assert (stats.count, stats.total, stats.min, stats.max, stats.exact) == (5, 110, 1, 100, True)
    assert stats.percentile(50) == 3 and stats.percentile(100) == 100
    hist = stats.histogram(bins=4)
    assert [h["count"] for h in hist] == [4, 0, 0, 1] and hist[0]["lo"] == 1 and hist[-1]["hi"] > 100
    assert histogram([5, 5, 5]) == [{"lo": 5, "hi": 6, "count": 3}]
    sampled = LengthStats(keep=100)
    sampled.extend(range(10_000))
    assert sampled.count == 10_000 and len(sampled.values) == 100 and not sampled.exact
    assert sum(h["count"] for h in sampled.histogram()) == pytest.approx(10_000, abs=10)
    assert 3_000 < sampled.percentile(50) < 7_000


def test_duplicates_compare_normalised_text(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("a  b\nc\n a b \n\nc\n", encoding="utf-8")
    summary = scan(path, "text")
    assert [str(p) for p in summary.problems] == [
        f"{path}:3: duplicate of line 1",
        f"{path}:4: empty sample",
        f"{path}:5: duplicate of line 2",
    ]
    assert (summary.records, summary.empty, summary.duplicates, summary.chars) == (5, 1, 2, 11)
    assert summary.to_json()["duplicates"] == 2


# --- the check: files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_demo_corpus(tmp_path_factory.mktemp("ds-corpus") / "corpus.txt", samples=1500, seed=5)


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory) -> Path:
    from engine.data.tokenizer import train_tokenizer

    return train_tokenizer(corpus, tmp_path_factory.mktemp("ds-tok") / "tokenizer", vocab_size=384)


@pytest.fixture(scope="module")
def other_tok_dir(corpus, tmp_path_factory) -> Path:
    from engine.data.tokenizer import train_tokenizer

    return train_tokenizer(corpus, tmp_path_factory.mktemp("ds-tok2") / "tokenizer", vocab_size=300)


def test_no_config_no_results():
    assert check_dataset(CheckContext(config_path=None, cfg=None)) == []


def test_demo_with_missing_corpus_will_be_created(tmp_path):
    ctx = make_ctx(tmp_path, data={"source": "demo", "path": "data/corpus.txt"}, tokenizer={"path": "data/tok"})
    results = check_dataset(ctx)
    assert [(r.id, r.status, r.blocking) for r in results] == [("dataset.path", "ok", False)]
    assert "will be created" in results[0].detail and "20,000 lines" in results[0].detail
    assert ctx.dataset["will_create"] is True


def test_missing_file_for_text_source_blocks(tmp_path):
    results = check_dataset(make_ctx(tmp_path, data={"source": "text", "path": "nope.txt"}))
    assert [(r.id, r.status, r.blocking) for r in results] == [("dataset.path", "fail", True)]
    assert results[0].detail == f"data.path: {tmp_path / 'nope.txt'} not found"


def test_pretrain_jsonl_with_a_malformed_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two" "x"}\n{"text": "three"}\n', encoding="utf-8")
    ctx = make_ctx(tmp_path, data={"source": "jsonl", "path": "data.jsonl"}, tokenizer={"path": "no-tok"})
    results = by_id(check_dataset(ctx))
    assert results["dataset.format"].status == "ok"
    lines = results["dataset.lines"]
    assert lines.status == "fail" and lines.blocking
    assert lines.detail == (
        f"1 of 3 records have errors (1 json):\n{path}:2: invalid JSON (Expecting ',' delimiter at column 16)"
    )
    assert lines.data["first"] == [f"{path}:2: invalid JSON (Expecting ',' delimiter at column 16)"]
    assert lines.data["problems"] == {"json": 1} and lines.data["invalid"] == 1
    assert results["dataset.counts"].data["documents"] == 2
    assert results["dataset.tokens"].status == "skip"  # no tokenizer yet: characters only
    assert ctx.dataset["records"] == 3 and ctx.dataset["tokens"] is None


def test_jsonl_source_with_instruct_data_blocks_naming_the_format(tmp_path):
    write_jsonl(tmp_path / "sft.jsonl", GOOD["instruct"])
    results = by_id(check_dataset(make_ctx(tmp_path, data={"source": "jsonl", "path": "sft.jsonl"})))
    fmt = results["dataset.format"]
    assert fmt.status == "fail" and fmt.blocking and fmt.data["format"] == "instruct"
    assert "instruct data" in fmt.detail and '"text" key' in fmt.detail
    assert results["dataset.lines"].status == "ok"  # validated as what it is


def test_text_source_with_json_lines_warns(tmp_path):
    write_jsonl(tmp_path / "data.txt", GOOD["pretrain"])
    results = by_id(check_dataset(make_ctx(tmp_path, data={"source": "text", "path": "data.txt"})))
    fmt = results["dataset.format"]
    assert fmt.status == "warn" and not fmt.blocking and fmt.data["looks_like"] == "pretrain"
    assert "data.source: jsonl" in fmt.fix


def test_a_binary_file_is_not_text(tmp_path):
    # token shards of small ids decode as UTF-8 line by line; their NUL bytes give them away
    (tmp_path / "train_000.bin").write_bytes(np.arange(3, 3000, dtype=np.uint16).tobytes())
    for source in ("text", "jsonl"):
        results = check_dataset(make_ctx(tmp_path, data={"source": source, "path": "train_000.bin"}))
        assert [r.id for r in results] == ["dataset.path", "dataset.format"]
        fmt = results[1]
        assert fmt.status == "fail" and fmt.blocking and fmt.data["binary"]
        assert fmt.detail == (
            f"{tmp_path / 'train_000.bin'}: not a text file (binary: NUL bytes in its first 64 KB); "
            f"training data is UTF-8 text or JSONL"
        )


def test_text_with_bad_utf8_empty_and_duplicates(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"hello world\nbad \xc3\x28 byte\n\nhello   world\nfine\n")
    ctx = make_ctx(tmp_path, data={"source": "text", "path": "c.txt"})
    results = by_id(check_dataset(ctx))
    assert results["dataset.lines"].detail == (
        f"1 of 5 records have errors (1 utf8):\n{path}:2: not UTF-8 (invalid continuation byte at byte 4)"
    )
    empty = results["dataset.empty"]
    assert empty.status == "warn" and not empty.blocking and empty.data["first"] == [f"{path}:3: empty sample"]
    dup = results["dataset.duplicates"]
    assert dup.status == "warn" and not dup.blocking
    assert dup.data == {"duplicates": 1, "first": [f"{path}:4: duplicate of line 1"]}
    assert "1 of 3 samples (33.3%)" in dup.detail


def test_a_late_error_is_quoted_after_many_duplicates(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "same"}\n' * 500 + '{"text": 1}\n', encoding="utf-8")
    results = by_id(check_dataset(make_ctx(tmp_path, data={"source": "jsonl", "path": "d.jsonl"})))
    assert results["dataset.lines"].data["first"] == [f"{path}:501: 'text' must be a string, got int"]
    dup = results["dataset.duplicates"]
    assert dup.data["duplicates"] == 499 and dup.detail.endswith("… and 494 more")


def test_an_empty_file_has_no_text(tmp_path):
    (tmp_path / "c.txt").write_text("\n  \n", encoding="utf-8")
    results = by_id(check_dataset(make_ctx(tmp_path, data={"source": "text", "path": "c.txt"})))
    assert results["dataset.counts"].status == "fail" and results["dataset.counts"].blocking


def test_tokens_agree_with_the_engine(tmp_path, corpus, tok_dir):
    from engine.data.text import tokenize_file
    from engine.data.tokenizer import load_tokenizer

    ctx = make_ctx(
        tmp_path, data={"source": "text", "path": str(corpus)}, tokenizer={"path": str(tok_dir)}, train={"seq_len": 64}
    )
    results = by_id(check_dataset(ctx))
    assert all(r.status == "ok" for r in results.values() if r.id != "dataset.duplicates"), results
    expected = len(tokenize_file(corpus, load_tokenizer(tok_dir)))
    tokens = results["dataset.tokens"]
    assert tokens.data["tokens"] == expected and not tokens.data["estimated"]
    assert tokens.data["sequences"] == expected // 64
    hist = tokens.data["lengths_tokens"]["histogram"]
    assert sum(h["count"] for h in hist) == 1500
    assert ctx.dataset["tokens"] == expected and ctx.dataset["documents"] == 1500
    assert results["dataset.seq_len"].detail.startswith("every sample fits in train.seq_len 64")

    # the same corpus as pretrain JSONL gives the same stream
    jsonl = write_jsonl(tmp_path / "c.jsonl", [{"text": t} for t in corpus.read_text(encoding="utf-8").splitlines()])
    ctx2 = make_ctx(
        tmp_path, data={"source": "jsonl", "path": str(jsonl)}, tokenizer={"path": str(tok_dir)}, train={"seq_len": 64}
    )
    assert by_id(check_dataset(ctx2))["dataset.tokens"].data["tokens"] == expected


def test_long_samples_are_fine_for_pretraining(tmp_path, corpus, tok_dir):
    ctx = make_ctx(
        tmp_path, data={"source": "text", "path": str(corpus)}, tokenizer={"path": str(tok_dir)}, train={"seq_len": 8}
    )
    seq = by_id(check_dataset(ctx))["dataset.seq_len"]
    assert seq.status == "ok" and seq.data["over"] > 0 and "fine for pretraining" in seq.detail


def test_too_little_text_for_the_processes_blocks(tmp_path, tok_dir):
    (tmp_path / "c.txt").write_text("a b c\n", encoding="utf-8")
    ctx = make_ctx(
        tmp_path,
        nproc=4,
        data={"source": "text", "path": "c.txt"},
        tokenizer={"path": str(tok_dir)},
        train={"seq_len": 8},
    )
    tokens = by_id(check_dataset(ctx))["dataset.tokens"]
    assert tokens.status == "fail" and tokens.blocking and "fewer than 4 sequence(s)" in tokens.detail


def test_large_files_tokenize_a_sample_and_say_so(tmp_path, corpus, tok_dir, monkeypatch):
    monkeypatch.setattr(dataset_check, "FULL_TOKENIZE_BYTES", 10_000)
    monkeypatch.setattr(dataset_check, "SAMPLE_TOKENIZE_BYTES", 10_000)
    ctx = make_ctx(tmp_path, data={"source": "text", "path": str(corpus)}, tokenizer={"path": str(tok_dir)})
    results = by_id(check_dataset(ctx))
    tokens = results["dataset.tokens"]
    size = corpus.stat().st_size
    every = -(-size // 10_000)
    assert tokens.data["estimated"] and tokens.data["tokenized_samples"] == -(-1500 // every)
    assert "estimated" in tokens.detail and "every line was validated" in tokens.detail
    assert tokens.detail.startswith("about ")
    assert results["dataset.lines"].data["records"] == 1500  # still every line
    from engine.data.text import tokenize_file
    from engine.data.tokenizer import load_tokenizer

    exact = len(tokenize_file(corpus, load_tokenizer(tok_dir)))
    assert tokens.data["tokens"] == pytest.approx(exact, rel=0.1)
    assert ctx.dataset["tokens_estimated"] is True


# --- the check: shards ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shard_dir(corpus, tok_dir, tmp_path_factory) -> Path:
    from engine.data.shards import write_shards

    ids = np.arange(5000, dtype=np.int32) % 300
    out = tmp_path_factory.mktemp("ds-shards") / "shards"
    write_shards(ids, out, tok_dir, seq_len=64, shard_tokens=2000)
    return out


def shard_ctx(tmp_path, path, tok, seq_len=64):
    return make_ctx(
        tmp_path, data={"source": "shards", "path": str(path)}, tokenizer={"path": str(tok)}, train={"seq_len": seq_len}
    )


def test_shards_of_this_tokenizer_pass(tmp_path, shard_dir, tok_dir):
    ctx = shard_ctx(tmp_path, shard_dir, tok_dir)
    results = check_dataset(ctx)
    assert [(r.id, r.status) for r in results] == [
        ("dataset.path", "ok"),
        ("dataset.manifest", "ok"),
        ("dataset.shard_tokenizer", "ok"),
        ("dataset.shard_seq_len", "ok"),
        ("dataset.tokens", "ok"),
    ]
    assert by_id(results)["dataset.manifest"].data == {"shards": 3, "tokens": 5000, "dtype": "uint16"}
    assert ctx.dataset["tokens"] == 5000 and ctx.dataset["sequences"] == 5000 // 64


def test_shards_of_another_tokenizer_are_refused(tmp_path, shard_dir, tok_dir, other_tok_dir):
    from engine.data.shards import tokenizer_sha256

    match = by_id(check_dataset(shard_ctx(tmp_path, shard_dir, other_tok_dir)))["dataset.shard_tokenizer"]
    assert match.status == "fail" and match.blocking
    theirs, ours = tokenizer_sha256(tok_dir), tokenizer_sha256(other_tok_dir)
    assert f"written with tokenizer sha256 {theirs[:12]}…" in match.detail
    assert f"tokenizer in {other_tok_dir} has {ours[:12]}…" in match.detail
    assert match.data == {"shards_sha256": theirs, "tokenizer_sha256": ours}


def test_shards_for_another_seq_len_are_refused(tmp_path, shard_dir, tok_dir):
    seq = by_id(check_dataset(shard_ctx(tmp_path, shard_dir, tok_dir, seq_len=128)))["dataset.shard_seq_len"]
    assert seq.status == "fail" and seq.blocking
    assert seq.detail == f"shards in {shard_dir} were prepared for seq_len 64, this run uses train.seq_len 128"


def test_broken_shard_directories(tmp_path, shard_dir, tok_dir):
    import shutil

    missing = by_id(check_dataset(shard_ctx(tmp_path, tmp_path / "nope", tok_dir)))
    assert missing["dataset.path"].status == "fail" and "not found" in missing["dataset.path"].detail
    bare = tmp_path / "bare"
    bare.mkdir()
    manifest = by_id(check_dataset(shard_ctx(tmp_path, bare, tok_dir)))["dataset.manifest"]
    assert manifest.status == "fail" and manifest.detail.startswith(f"{bare / 'manifest.json'}: missing")
    cut = tmp_path / "cut"
    shutil.copytree(shard_dir, cut)
    with open(cut / "train_001.bin", "r+b") as f:
        f.truncate(100)
    manifest = by_id(check_dataset(shard_ctx(tmp_path, cut, tok_dir)))["dataset.manifest"]
    assert manifest.status == "fail" and manifest.blocking
    assert manifest.detail == (
        f"{cut / 'train_001.bin'}: 100 bytes, but manifest.json says 2,000 tokens x 2 B = "
        f"4,000 bytes; the shard is truncated or damaged, prepare the shards again"
    )
    assert inspect_shards(shard_dir).ok and inspect_shards(shard_dir).tokens == 5000


# --- torch-free -------------------------------------------------------------------------------


def test_the_check_imports_no_torch(tmp_path, corpus, tok_dir):
    code = f"""
import sys
from pathlib import Path
from engine.config import RunConfig
from cockpit.checks.base import CheckContext
from cockpit.checks.dataset import check_dataset
cfg = RunConfig.model_validate({{"data": {{"source": "text", "path": {str(corpus)!r}}},
                                 "tokenizer": {{"path": {str(tok_dir)!r}}}}})
results = check_dataset(CheckContext(None, cfg))
assert results[-1].id == "dataset.duplicates", results
heavy = sorted(m for m in ("torch", "numpy", "transformers") if m in sys.modules)
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_shard_check_reads_the_manifest_without_numpy(tmp_path, shard_dir, tok_dir):
    code = f"""
import sys
from engine.config import RunConfig
from cockpit.checks.base import CheckContext
from cockpit.checks.dataset import check_dataset
from engine.data import formats
cfg = RunConfig.model_validate({{"data": {{"source": "shards", "path": {str(shard_dir)!r}}},
                                 "tokenizer": {{"path": {str(tok_dir)!r}}}, "train": {{"seq_len": 64}}}})
results = check_dataset(CheckContext(None, cfg))
assert [r.status for r in results] == ["ok"] * 5, results
assert formats.inspect_shards({str(shard_dir)!r}).manifest.total_tokens == 5000
print(sorted(m for m in ("torch", "numpy", "transformers") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
