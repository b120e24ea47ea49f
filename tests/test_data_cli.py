"""`cockpit data validate|stats|prepare` and `cockpit tokenizer train|inspect` through the CLI: each
format good and broken (exact messages, line numbers, exit codes), stats, a tokenizer that
AutoTokenizer loads, and usage errors that exit 2 naming what is wrong."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cockpit.cli import app

runner = CliRunner()

GOOD = {
    "pretrain": {"text": "the cat sat on the mat"},
    "instruct": {"instruction": "add two and three", "input": "2 3", "output": "5"},
    "chat": {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    "tool": {
        "user_message": "weather in Oslo?",
        "tool_calls": [{"name": "weather", "arguments": {"city": "Oslo"}}],
        "tool_results": [{"temp": 3}],
        "assistant_response": "3 degrees",
    },
    "reasoning": {"question": "2+2?", "reasoning": "two and two make four", "answer": "4"},
    "kd": {"prompt": "say hi", "teacher_text": "hi!", "metadata": {"teacher": "big"}},
}
#: A required key of each format, and the key that makes its sample empty when blanked.
REQUIRED = {
    "pretrain": "text",
    "instruct": "output",
    "chat": "messages",
    "tool": "assistant_response",
    "reasoning": "answer",
    "kd": "teacher_text",
}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def variant(fmt: str, i: int) -> dict:
    """The good record of ``fmt`` made unique by line."""
    record = json.loads(json.dumps(GOOD[fmt]))
    if fmt == "chat":
        record["messages"][0]["content"] += f" {i}"
    else:
        record[next(k for k, v in record.items() if isinstance(v, str))] += f" {i}"
    return record


def empty(fmt: str) -> dict:
    if fmt == "chat":
        return {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": " "}]}
    if fmt == "tool":
        return {"user_message": "", "tool_calls": [], "tool_results": [], "assistant_response": ""}
    return {k: "" for k, v in GOOD[fmt].items() if isinstance(v, str)}


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_validate_a_good_file_of_each_format(tmp_path, fmt):
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text("".join(json.dumps(variant(fmt, i)) + "\n" for i in range(3)), encoding="utf-8")
    result = invoke("data", "validate", str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}: {fmt}, 3 records, 3 valid: ok" in result.stdout


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_validate_a_broken_file_of_each_format_names_every_line(tmp_path, fmt):
    path = tmp_path / f"{fmt}.jsonl"
    good = json.dumps(variant(fmt, 1))
    missing = {k: v for k, v in variant(fmt, 2).items() if k != REQUIRED[fmt]}
    path.write_bytes(
        b"\n".join(
            [
                good.encode(),  # 1
                good[:-1].encode()[:25] + b"\xff\xfe" + b'"}',  # 2 bad UTF-8
                good[: len(good) // 2].encode(),  # 3 truncated
                json.dumps(missing).encode(),  # 4 missing key
                json.dumps(empty(fmt)).encode(),  # 5 empty sample
                json.dumps(variant(fmt, 6)).encode(),  # 6
            ]
        )
        + b"\n"
    )
    result = invoke("data", "validate", "--format", fmt, str(path))
    assert result.exit_code == 2, result.output
    err = result.stderr.splitlines()
    assert err[0] == f"{path}:2: not UTF-8 (invalid start byte at byte 25)"
    assert err[1].startswith(f"{path}:3: invalid JSON (")
    assert err[2] == f"{path}:4: missing key '{REQUIRED[fmt]}' ({fmt})"
    assert err[3] == f"{path}:5: empty sample"
    assert f"{path}: {fmt}, 6 records, 3 valid: 3 unusable record(s); problems: " in result.stdout


def test_validate_json_and_shards_and_missing(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("one line\n\nanother line\none line\n", encoding="utf-8")
    result = invoke("data", "validate", "--json", str(path))
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["ok"]
    assert report["files"][0]["counts"] == {"empty": 1, "duplicate": 1}
    missing = invoke("data", "validate", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "nope.jsonl: not found" in missing.stderr
    (tmp_path / "shards").mkdir()
    shards = invoke("data", "validate", str(tmp_path / "shards"))
    assert shards.exit_code == 2 and "manifest.json: missing" in shards.stderr
    assert invoke("data", "validate", "--format", "yaml", str(path)).exit_code == 2


def corpus(path: Path, n: int = 400) -> Path:
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    words += [a + b + c for a in ("br", "kl", "st", "pr", "m", "v") for b in "aeiou" for c in ("n", "x", "rt", "lm")]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randrange(4, 30))) for _ in range(n)]
    lines += lines[:10]  # 10 exact duplicates
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-tok")
    corpus(root / "a.txt")
    (root / "b.jsonl").write_text(json.dumps({"text": "a jsonl document about omega"}) + "\n", encoding="utf-8")
    result = invoke(
        "tokenizer",
        "train",
        "--files",
        str(root / "*.txt"),
        "--files",
        str(root / "b.jsonl"),
        "--vocab-size",
        "320",
        "--out",
        str(root / "tok"),
    )
    assert result.exit_code == 0, result.output
    assert "trained a byte-level BPE of 320 tokens on 2 file(s)" in result.stdout
    return root / "tok"


def test_trained_tokenizer_loads_with_autotokenizer(tok_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    assert len(tok) == 320 and tok.eos_token == "<|endoftext|>" and tok.pad_token == "<|endoftext|>"
    assert tok.convert_tokens_to_ids("<|im_start|>") != tok.unk_token_id
    text = "alpha beta omega"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_inspect(tok_dir, tmp_path):
    src = corpus(tmp_path / "c.txt", 50)
    result = invoke("tokenizer", "inspect", str(tok_dir), "--json", "--text", "alpha beta", "--sample", str(src))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["vocab_size"] == 320 and report["special_tokens"]["eos"] == "<|endoftext|>"
    assert report["added_special_tokens"] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert report["chat_template"] and report["encodings"][0]["round_trip"]
    assert report["sample"]["records"] == 60 and report["sample"]["chars_per_token"] > 1.5
    text = invoke("tokenizer", "inspect", str(tok_dir))
    assert text.exit_code == 0 and "320 tokens" in text.stdout and "eos '<|endoftext|>'" in text.stdout
    assert invoke("tokenizer", "inspect", str(tmp_path)).exit_code == 2


def test_tokenizer_train_usage_errors(tmp_path):
    result = invoke(
        "tokenizer", "train", "--files", str(tmp_path / "*.txt"), "--vocab-size", "300", "--out", str(tmp_path / "tok")
    )
    assert result.exit_code == 2 and "matches no file" in result.stderr
    assert invoke("tokenizer", "train", "--files", "x.txt", "--vocab-size", "10", "--out", "t").exit_code == 2


def test_stats_counts_tokens_duplicates_and_quality(tok_dir, tmp_path):
    from tokenizers import Tokenizer

    src = corpus(tmp_path / "s.txt")
    result = invoke("data", "stats", str(src), "--tokenizer", str(tok_dir), "--json")
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    lines = src.read_text(encoding="utf-8").splitlines()
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    assert r["records"] == 410 and r["duplicates"] == 10 and r["chars"] == sum(map(len, lines))
    assert r["tokens"]["total"] == sum(len(tok.encode(line).ids) for line in lines) and not r["tokens"]["estimated"]
    assert r["quality"]["records"] == 410 and r["quality"]["words"]["max"] == 29
    assert sum(b["count"] for b in r["tokens"]["lengths"]["histogram"]) == 410
    sampled = json.loads(
        invoke("data", "stats", str(src), "--tokenizer", str(tok_dir), "--json", "--sample", "100").stdout
    )
    assert sampled["tokens"]["estimated"] and sampled["quality"]["sampled"]
    table = invoke("data", "stats", str(src))
    assert table.exit_code == 0 and "exact duplicates" in table.stdout and "length histogram" in table.stdout


def test_prepare_through_the_cli(tok_dir, tmp_path):
    src = corpus(tmp_path / "p.txt")
    args = [
        "data",
        "prepare",
        "--input",
        str(src),
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(tmp_path / "out"),
        "--seq-len",
        "32",
        "--val-fraction",
        "0.05",
    ]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "training tokens in 1 shard(s)" in result.stdout and "exact_duplicate 10" in result.stdout
    assert f"--set data.path={tmp_path / 'out'}" in result.stdout
    assert "already prepared" in invoke(*args).stdout
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["documents"]["dropped"]["exact_duplicate"] == 10

    bad = invoke(
        "data",
        "prepare",
        "--input",
        str(tmp_path / "none.txt"),
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(tmp_path / "o2"),
        "--seq-len",
        "32",
    )
    assert bad.exit_code == 2 and f"--input {tmp_path / 'none.txt'}: not found" in bad.stderr
    pattern = invoke(
        "data",
        "prepare",
        "--input",
        str(tmp_path / "*.txt"),
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(tmp_path / "o3"),
        "--seq-len",
        "32",
    )
    assert pattern.exit_code == 0 and "1 shard(s)" in pattern.stdout  # p.txt, through the glob
    assert invoke(*args, "--minhash-perm", "100").exit_code == 2


def test_prepare_debug_shows_what_is_learnt(tok_dir, tmp_path):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(variant("instruct", i)) + "\n" for i in range(5)), encoding="utf-8")
    result = invoke(
        "data",
        "prepare",
        "--input",
        str(data),
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(tmp_path / "o"),
        "--seq-len",
        "16",
        "--val-fraction",
        "0",
        "--debug",
        "2",
    )
    assert result.exit_code == 0, result.output
    assert f"--- {data}:1 (instruct):" in result.stderr and f"--- {data}:2 (instruct):" in result.stderr
    assert f"--- {data}:3" not in result.stderr
    assert "<|im_start|>assistant\n5<|im_end|>" in result.stderr and "dim: context" in result.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["loss_mask"] and manifest["documents"]["train"] == 5


def test_a_broken_tokenizer_or_undecodable_data_exit_2_naming_them(tok_dir, tmp_path):
    bad = tmp_path / "badtok"
    bad.mkdir()
    (bad / "tokenizer.json").write_text("{not json", encoding="utf-8")
    src = corpus(tmp_path / "d.txt", 20)
    for args in (
        [
            "data",
            "prepare",
            "--input",
            str(src),
            "--tokenizer",
            str(bad),
            "--out",
            str(tmp_path / "o"),
            "--seq-len",
            "8",
        ],
        ["data", "stats", str(src), "--tokenizer", str(bad)],
        ["tokenizer", "inspect", str(bad)],
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert (
            f"{bad / 'tokenizer.json'}: not a valid tokenizer.json (" in result.stderr
            and "Traceback" not in result.output
        )
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\xff\xfe junk\n\xfa\n")
    result = invoke(
        "data",
        "prepare",
        "--input",
        str(binary),
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(tmp_path / "o"),
        "--seq-len",
        "8",
    )
    assert result.exit_code == 2
    assert (
        result.stderr == f"error: {binary}: not a text file (2 line(s) read, none of them UTF-8 text); training "
        f"data is UTF-8 text or JSONL\n"
    )
    result = invoke(
        "data",
        "prepare",
        "--input",
        str(binary),
        "--format",
        "text",
        "--tokenizer",
        str(tok_dir),
        "--out",
        str(tmp_path / "o"),
        "--seq-len",
        "8",
    )
    assert result.exit_code == 2 and f"{binary}:1: not UTF-8 (invalid start byte at byte 0)" in result.stderr


def test_stats_on_a_binary_file_says_it_is_not_text(tmp_path):
    # token shards of small ids: NUL bytes, and every line decodes as UTF-8
    shard = tmp_path / "train_000.bin"
    shard.write_bytes(bytes(range(1, 120)) * 3 + b"\x00\x00\x07\x00\n\x00" * 50)
    undecodable = tmp_path / "u.txt"
    undecodable.write_bytes(b"\xff\xfe junk\n\xfa\n")
    for path, why in (
        (shard, "binary: NUL bytes in its first 64 KB"),
        (undecodable, "2 line(s) read, none of them UTF-8 text"),
    ):
        for args in (
            ["data", "stats", str(path)],
            [
                "data",
                "prepare",
                "--input",
                str(path),
                "--tokenizer",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "o"),
                "--seq-len",
                "8",
            ],
        ):
            result = invoke(*args)
            assert result.exit_code == 2, (args, result.output)
            if args[1] == "stats":
                assert result.stdout == ""
                assert (
                    result.stderr == f"error: {path}: not a text file ({why}); training data is UTF-8 text or JSONL\n"
                )
    result = invoke("data", "stats", str(undecodable), "--format", "text")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: {undecodable}: not a text file (no line of it is UTF-8: {undecodable}:1: "
        f"not UTF-8 (invalid start byte at byte 0))\n"
    )
