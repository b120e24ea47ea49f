"""The over-long line attack (a 200 MB text file of one line): every reader of training data refuses a
line over the limit (``data.max_line_bytes``, ``--max-line-bytes``; 1 MiB by default) as a
``file:line`` error without ever holding the line (``cockpit data validate|stats|prepare``, the
readiness check, ``cockpit run``'s pre-flight and the engine), and a failed ``cockpit data prepare``
(bad input, an over-long line, interrupted) leaves no ``--out`` it made and nothing it wrote in one
that was there. The files are just over a small limit, or a few MiB over the default one."""

from __future__ import annotations

import os
import random
import tracemalloc
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cockpit.cli import app

runner = CliRunner()
MiB = 1 << 20
SMALL = 4096
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta", "zeta", "lambda"]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def lines_of(rng: random.Random, n: int) -> list[str]:
    return [f"{' '.join(rng.choice(WORDS) for _ in range(rng.randrange(5, 15)))} n{i}" for i in range(n)]


def write(path: Path, *parts: bytes) -> Path:
    path.write_bytes(b"".join(parts))
    return path


def one_line(path: Path, size: int) -> Path:
    """A text file of a single line of ``size`` bytes (no newline: as the attack had it)."""
    return write(path, b"word " * (size // 5) + b"w" * (size % 5))


def naming(result, where: str) -> list[str]:
    """The lines of a command's output that name ``where`` (``file:line``)."""
    return [line for line in result.output.splitlines() if where in line]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    from engine.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("long-tok")
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(lines_of(random.Random(1), 300)) + "\n", encoding="utf-8")
    return train_tokenizer(corpus, root / "tok", 300)


# --- the reader -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit,size,bound",
    [(None, 3 * MiB, 3 * MiB), (SMALL, MiB, 256 << 10)],
    ids=["default-limit", "small-limit"],
)
def test_the_reader_never_holds_an_over_long_line(tmp_path, limit, size, bound):
    from engine.data import formats
    from engine.data.lines import read_lines

    path = one_line(tmp_path / "one.txt", size)
    kw = {} if limit is None else {"max_line_bytes": limit}
    tracemalloc.start()
    try:
        lines = list(read_lines(path, **kw))
        summary = formats.scan(path, "text", **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < bound, f"peak {peak:,} bytes reading a line of {size:,}"
    assert len(lines) == 1 and not isinstance(lines[0][1], bytes)
    assert [str(p) for p in summary.problems] == [
        f"{path}:1: line too long ({size // MiB}.0 MiB; the limit is {limit or MiB:,} bytes): split it into "
        "shorter lines, or raise the limit (--max-line-bytes, data.max_line_bytes)"
    ]
    assert summary.errors == 1 and summary.valid == 0 and summary.bytes == size


def test_the_limit_is_exact_and_the_lines_after_keep_their_numbers(tmp_path):
    from engine.data import formats
    from engine.data.lines import read_lines

    at_limit, last = b"a" * SMALL, b"c" * SMALL  # the last one without its newline
    path = write(tmp_path / "t.txt", at_limit + b"\n", b"b" * (SMALL + 1) + b"\n", b"after\n", last)
    got = list(read_lines(path, SMALL))
    assert [n for n, _ in got] == [1, 2, 3, 4]
    assert got[0][1] == at_limit + b"\n" and got[2][1] == b"after\n" and got[3][1] == last
    assert got[1][1].size == SMALL + 1 and got[1][1].nbytes == SMALL + 2
    summary = formats.scan(path, "text", unit="line", max_line_bytes=SMALL)
    assert [(p.line, p.kind) for p in summary.problems] == [(2, "too_long")]
    assert summary.valid == 3 and summary.bytes == path.stat().st_size
    jsonl = write(tmp_path / "t.jsonl", b'{"text": "one"}\n', b'{"text": "' + b"x" * SMALL + b'"}\n')
    assert [str(p).split(": line")[0] for p in formats.scan(jsonl, max_line_bytes=SMALL).problems] == [f"{jsonl}:2"]


# --- cockpit data validate | stats | prepare --------------------------------------------------


@pytest.mark.parametrize(
    "limit,size", [(None, 3 * MiB), (SMALL, SMALL + 1)], ids=["default-limit-3MiB", "just-over-a-small-limit"]
)
@pytest.mark.parametrize("command", ["validate", "stats", "prepare"])
def test_a_single_line_file_over_the_limit_exits_2_naming_file_1(tmp_path, tok_dir, command, limit, size):
    path = one_line(tmp_path / "attack.txt", size)
    sentinel = write(tmp_path / "sentinel.txt", b"keep me\n")
    args = ["data", command, str(path)]
    if command == "prepare":
        args = ["data", "prepare", "--input", str(path), "--tokenizer", str(tok_dir), "--out", str(tmp_path / "out")]
        args += ["--seq-len", "8"]
    result = invoke(*args, *([] if limit is None else ["--max-line-bytes", str(limit)]))
    assert result.exit_code == 2, result.output
    named = naming(result, f"{path}:1")
    assert len(named) == 1 and "line too long" in named[0] and "--max-line-bytes" in named[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and sentinel.read_bytes() == b"keep me\n"


def test_validate_lists_an_over_long_line_among_the_others(tmp_path):
    path = write(tmp_path / "d.jsonl", b'{"text": "fine"}\n', b'{"text": "' + b"y" * SMALL + b'"}\n', b"{broken\n")
    result = invoke("data", "validate", str(path), "--max-line-bytes", str(SMALL))
    assert result.exit_code == 2
    assert len(naming(result, f"{path}:2: line too long")) == 1 and len(naming(result, f"{path}:3: invalid JSON")) == 1
    assert invoke("data", "validate", str(path), "--max-line-bytes", str(2 * SMALL)).exit_code == 2  # the JSON still
    assert naming(invoke("data", "validate", str(path), "--max-line-bytes", str(2 * SMALL)), "too long") == []


def prepare_args(src: Path, tok_dir: Path, out: Path) -> list[str]:
    return ["data", "prepare", "--input", str(src), "--tokenizer", str(tok_dir), "--out", str(out), "--seq-len", "8"]


@pytest.mark.parametrize("bad", ["too-long", "not-utf8"])
def test_a_failed_prepare_leaves_no_out_it_made(tmp_path, tok_dir, bad):
    rng = random.Random(2)
    last = b"z" * (SMALL + 10) if bad == "too-long" else b"bad \xc3\x28 byte"
    src = write(tmp_path / "c.txt", ("\n".join(lines_of(rng, 300)) + "\n").encode(), last + b"\n")
    sentinel = write(tmp_path / "sentinel.txt", b"keep me\n")
    out = tmp_path / "made" / "by" / "prepare"
    limit = ["--max-line-bytes", str(SMALL)] if bad == "too-long" else []  # not-utf8: as the old options had it
    result = invoke(*prepare_args(src, tok_dir, out), *limit)
    assert result.exit_code == 2, result.output
    assert len(naming(result, f"{src}:301:")) == 1, result.output
    assert not (tmp_path / "made").exists()  # out and the parents it made
    assert sorted(os.listdir(tmp_path)) == ["c.txt", "sentinel.txt"] and sentinel.read_bytes() == b"keep me\n"


@pytest.mark.parametrize("bad", ["too-long", "not-utf8"])
def test_a_failed_prepare_leaves_an_out_that_was_there_as_it_was(tmp_path, tok_dir, bad):
    # more than a batch of documents (sources.BATCH_DOCS) before the bad line: shards are finished first
    rng = random.Random(3)
    last = b"q" * (SMALL + 1) if bad == "too-long" else b"bad \xc3\x28 byte"
    src = write(tmp_path / "c.txt", ("\n".join(lines_of(rng, 20_050)) + "\n").encode(), last + b"\n")
    out = tmp_path / "out"
    out.mkdir()
    write(out / "notes.txt", b"mine\n")
    (out / "sub").mkdir()
    args = [*prepare_args(src, tok_dir, out), "--shard-tokens", "20000", "--near-dup-threshold", "0"]
    result = invoke(*args, *(["--max-line-bytes", str(SMALL)] if bad == "too-long" else []))
    assert result.exit_code == 2, result.output
    assert len(naming(result, f"{src}:20051:")) == 1, result.output
    assert sorted(os.listdir(out)) == ["notes.txt", "sub"] and (out / "notes.txt").read_bytes() == b"mine\n"
    assert sorted(os.listdir(tmp_path)) == ["c.txt", "out"]


def test_an_interrupted_prepare_keeps_only_what_a_rerun_continues_from(tmp_path, tok_dir):
    import json

    from engine.data.prepare import MANIFEST, STATE, PrepareSettings, prepare

    src = write(tmp_path / "c.txt", ("\n".join(lines_of(random.Random(4), 20_050)) + "\n").encode())

    def stop(progress) -> None:
        raise KeyboardInterrupt

    early = tmp_path / "early"  # no shard finished: nothing to continue from, nothing left
    with pytest.raises(KeyboardInterrupt):
        prepare([src], tok_dir, early, PrepareSettings(seq_len=8, near_dedup_threshold=None), progress=stop)
    assert not early.exists()

    late = tmp_path / "late"  # shards finished: they and the state stay, and a re-run completes
    settings = PrepareSettings(seq_len=8, near_dedup_threshold=None, shard_tokens=20_000)
    with pytest.raises(KeyboardInterrupt):
        prepare([src], tok_dir, late, settings, progress=stop)
    left = sorted(os.listdir(late))
    assert STATE in left and "train_000.bin" in left and MANIFEST not in left
    assert not [name for name in left if name.startswith(".")]  # no temporaries
    done = json.loads((late / STATE).read_text())["train"]
    assert set(left) == {STATE, *(s["file"] for s in done)}
    manifest = prepare([src], tok_dir, late, settings)
    assert (late / MANIFEST).is_file() and [s["sha256"] for s in manifest["shards"][: len(done)]] == [
        s["sha256"] for s in done
    ]


# --- the readiness check, cockpit run's pre-flight, the engine -------------------------------


def test_the_readiness_check_blocks_naming_file_1(tmp_path):
    from cockpit.checks.base import CheckContext
    from cockpit.checks.dataset import check_dataset
    from engine.config import RunConfig

    path = one_line(tmp_path / "one.txt", SMALL + 1)
    sections = {"data": {"source": "text", "path": "one.txt", "max_line_bytes": SMALL}, "tokenizer": {"path": "t"}}
    cfg = RunConfig.model_validate(sections).resolved(tmp_path)
    results = {r.id: r for r in check_dataset(CheckContext(config_path=None, cfg=cfg))}
    lines = results["dataset.lines"]
    assert lines.status == "fail" and lines.blocking
    assert lines.data["problems"] == {"too_long": 1} and lines.data["first"][0].startswith(f"{path}:1: line too long")
    assert not results["dataset.format"].blocking  # the lines check is the one that names it


@pytest.mark.parametrize("limit,size", [(None, 3 * MiB), (SMALL, SMALL + 1)], ids=["default-limit", "small-limit"])
def test_cockpit_run_is_refused_before_the_engine_starts(tmp_path, limit, size):
    path = one_line(tmp_path / "one.txt", size)
    data = {"source": "text", "path": str(path), **({} if limit is None else {"max_line_bytes": limit})}
    config = {"runs_dir": str(tmp_path / "runs"), "tokenizer": {"path": str(tmp_path / "tok")}, "data": data}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = runner.invoke(app, ["run", str(tmp_path / "run.yaml"), "--detach"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:1: line too long"), result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tok").exists()


def test_the_engine_refuses_an_over_long_line_before_training_a_tokenizer(tmp_path, tok_dir):
    from engine.build import prepare_data
    from engine.config import RunConfig
    from engine.data.text import DataError, tokenize_file
    from engine.data.tokenizer import load_tokenizer

    rng = random.Random(5)
    path = write(tmp_path / "c.txt", ("\n".join(lines_of(rng, 49)) + "\n").encode(), b"x" * (SMALL + 1) + b"\n")
    with pytest.raises(DataError, match=f"^{path}:50: line too long"):
        tokenize_file(path, load_tokenizer(tok_dir), max_line_bytes=SMALL)
    tok = tmp_path / "tok"
    cfg = RunConfig.model_validate(
        {"data": {"source": "text", "path": str(path), "max_line_bytes": SMALL}, "tokenizer": {"path": str(tok)}}
    )
    with pytest.raises(DataError, match=f"^{path}:50: line too long"):
        prepare_data(cfg, info=print)
    assert not tok.exists() and sorted(os.listdir(tmp_path)) == ["c.txt"]


def test_the_limit_is_one_setting_with_one_default(tmp_path):
    from cockpit.cli.data import MAX_LINE_BYTES_OPTION
    from engine.config import ConfigError, DataConfig, load_config
    from engine.data.lines import MAX_LINE_BYTES

    assert DataConfig().max_line_bytes == MAX_LINE_BYTES == MAX_LINE_BYTES_OPTION.default == MiB
    config = tmp_path / "c.yaml"
    config.write_text("name: c\n")
    assert load_config(config, ["data.max_line_bytes=4096"]).data.max_line_bytes == 4096
    with pytest.raises(ConfigError, match="data.max_line_bytes"):
        load_config(config, ["data.max_line_bytes=0"])
