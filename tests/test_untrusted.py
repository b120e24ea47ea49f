"""What came from outside never writes (or reads) outside its place: the attacks an outside test made,
each reproduced as it was written and shown refused, with a sentinel outside left as it was.

A manifest naming ``../../x`` or ``/etc/hostname`` (sync, upload, verify), a config's run name
``../../../tmp/x``, a config nested thousands deep or megabytes long, a checkpoint whose tokenizer
file was tampered with (eval), and the messages a sync gives for a damaged source or a full disk."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from helpers import train_in_process
from typer.testing import CliRunner

from cockpit.cli import app
from engine.checkpoint_index import MANIFEST, read_manifest, verify_checkpoint, write_manifest
from engine.rundir import RunPaths
from engine.safe_path import UnsafePath, component, inside, relative_name

runner = CliRunner()
SENTINEL = b"sentinel: must stay as it is\n"


def make_checkpoint(run: Path, step: int) -> Path:
    """A small complete checkpoint of ``step`` in the run directory ``run``."""
    ckpt = RunPaths(run).checkpoint_dir(step)
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(os.urandom(4_000))
    write_manifest(ckpt, step)
    return ckpt


def add_entry(ckpt: Path, rel: str, content: bytes) -> None:
    """Rewrite ``ckpt``'s manifest to also list ``rel`` (with the sha256 and size of ``content``)."""
    manifest = json.loads((ckpt / MANIFEST).read_text())
    manifest["files"][rel] = {"sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
    (ckpt / MANIFEST).write_text(json.dumps(manifest))


def one_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert lines, "no message"
    return lines[-1]


# --- the one rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel", ["../x", "a/../../x", "/etc/hostname", "a//b", "./a", "", "a\\..\\b", "a\x00b", "C:/x", 7, None]
)
def test_names_that_leave_their_root_are_refused(rel):
    with pytest.raises(UnsafePath, match="where"):
        relative_name(rel, "where")


def test_plain_names_pass_and_a_symlink_out_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "tok").mkdir(parents=True)
    assert relative_name("tok/vocab.json", "m") == "tok/vocab.json"
    assert inside(root, "tok/vocab.json", "m") == root / "tok" / "vocab.json"
    (root / "out").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="leads outside"):
        inside(root, "out/secret", "m")
    for name in ("my-run", "run_1.2"):
        assert component(name, "run name") == name
    for name in ("a/b", "..", "../../../tmp/x", "."):
        with pytest.raises(UnsafePath, match="one plain name"):
            component(name, "run name")


# --- 1. ckpt sync: a manifest naming ../../../escaped_src.txt --------------------------------------


def test_sync_refuses_a_manifest_that_escapes_and_still_pulls_the_good_checkpoints(tmp_path):
    src = tmp_path / "remote" / "runs" / "src"
    src.mkdir(parents=True)
    (src / "run.yaml").write_text("name: src\n")
    bad = make_checkpoint(src, 1)
    payload = b"written through the source's manifest\n"
    (bad / "../../../escaped_src.txt").resolve().write_bytes(payload)  # what the source serves there
    add_entry(bad, "../../../escaped_src.txt", payload)
    make_checkpoint(src, 2)
    dest = tmp_path / "local" / "runs" / "copy"
    escaped = (dest / "checkpoints" / "checkpoint-1" / "../../../escaped_src.txt").resolve()
    escaped.parent.mkdir(parents=True, exist_ok=True)
    escaped.write_bytes(SENTINEL)

    result = runner.invoke(app, ["ckpt", "sync", src.as_uri(), str(dest)])

    assert result.exit_code == 2, result.output
    assert escaped.read_bytes() == SENTINEL  # nothing written outside DIR
    assert "checkpoint-1: refused" in result.output and "'../../../escaped_src.txt'" in result.output
    assert one_line(result.output).startswith("error: 1 checkpoint(s) refused: checkpoint-1")
    assert not (dest / "checkpoints" / "checkpoint-1").exists()
    good = dest / "checkpoints" / "checkpoint-2"
    assert verify_checkpoint(good) == [] and (dest / "checkpoints" / "latest").read_text().strip() == "checkpoint-2"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700 and stat.S_IMODE(good.stat().st_mode) == 0o700


def test_verify_refuses_an_absolute_entry_instead_of_calling_it_ok(tmp_path):
    run = tmp_path / "run"
    ckpt = make_checkpoint(run, 3)
    outside = tmp_path / "hostname"
    outside.write_bytes(b"somehost\n")
    add_entry(ckpt, str(outside), b"somehost\n")  # an absolute entry whose sha256 matches
    result = runner.invoke(app, ["ckpt", "verify", str(ckpt)])
    assert result.exit_code == 2, result.output
    assert "is an absolute path" in one_line(result.output) and str(outside) in result.output
    assert "ok" not in result.output.split()
    assert verify_checkpoint(ckpt) and "absolute" in verify_checkpoint(ckpt)[0]


def test_verify_refuses_a_symlink_leading_out_of_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    ckpt = make_checkpoint(run, 3)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret\n")
    (ckpt / "tokenizer.json").symlink_to(secret)
    add_entry(ckpt, "tokenizer.json", b"secret\n")
    problems = verify_checkpoint(ckpt)
    assert len(problems) == 1 and "leads outside" in problems[0]


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"model.safetensors": "abc"}, "is str, not {sha256, size}"),
        ({"model.safetensors": {"size": 3}}, "has no sha256"),
        ({"model.safetensors": {"sha256": "0" * 64, "size": "3"}}, "has no size"),
        ([], "no 'files' table"),
    ],
)
def test_a_malformed_manifest_is_named_not_an_attribute_error(tmp_path, files, expected):
    ckpt = tmp_path / "checkpoint-1"
    ckpt.mkdir()
    (ckpt / MANIFEST).write_text(json.dumps({"step": 1, "files": files}))
    with pytest.raises(ValueError, match="manifest.json") as info:
        read_manifest(ckpt)
    assert expected in str(info.value)


# --- 2. ckpt upload: a manifest key ../../../../../leak.txt ----------------------------------------


def test_upload_refuses_a_manifest_that_escapes_reading_nothing_writing_nothing(make_run_dir, tmp_path):
    run = make_run_dir("leaky")
    ckpt = make_checkpoint(run, 1)
    leak = (ckpt / "../../../../../leak.txt").resolve()
    leak.write_bytes(b"a file from outside the checkpoint\n")
    add_entry(ckpt, "../../../../../leak.txt", leak.read_bytes())
    target = tmp_path / "tgt" / "a" / "b"
    landing = (target / run.name / "checkpoints" / "checkpoint-1" / "../../../../../leak.txt").resolve()
    landing.parent.mkdir(parents=True, exist_ok=True)
    landing.write_bytes(SENTINEL)
    events_before = RunPaths(run).events.read_bytes() if RunPaths(run).events.exists() else b""

    result = runner.invoke(app, ["ckpt", "upload", str(run), "1", "--to", target.as_uri()])

    assert result.exit_code == 2, result.output
    assert landing.read_bytes() == SENTINEL
    assert not (target / run.name).exists()
    line = one_line(result.output)
    assert "refusing to upload" in line and "'../../../../../leak.txt'" in line and "nothing was sent" in line
    events_after = RunPaths(run).events.read_bytes() if RunPaths(run).events.exists() else b""
    assert events_after == events_before  # no upload event for a copy never started


# --- 3. a config's name ../../../tmp/x ---------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["check"]])
def test_a_run_name_that_climbs_out_of_runs_dir_is_refused(tmp_path, command):
    runs_dir = tmp_path / "work" / "runs"
    config = tmp_path / "work" / "escape.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"name: ../../../tmp/x\nruns_dir: {runs_dir}\npreset: tiny\n")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    args = [*command, str(config)] + (["--headless"] if command == ["run"] else [])
    result = runner.invoke(app, args)
    assert result.exit_code == (2 if command == ["run"] else 1), result.output  # check: a blocking failure
    assert "name: run name '../../../tmp/x': must be one plain name" in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no run directory anywhere


# --- 7. deeply nested YAML; an enormous config ------------------------------------------------------


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_yaml_is_one_line_and_exit_2(tmp_path, depth):
    config = tmp_path / "deep.yaml"
    config.write_text("model: " + "[" * depth + "]" * depth + "\n")
    result = runner.invoke(app, ["run", str(config), "--headless"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert f"{config}: nested more than 32 levels deep" in result.output
    result = runner.invoke(app, ["check", str(config), "--json"])
    assert result.exit_code == 1 and "nested more than 32 levels deep" in result.output  # a blocking check
    result = runner.invoke(app, ["run", "demo", "--headless", "--set", "model.x=" + "[" * 5000 + "]" * 5000])
    assert result.exit_code == 2 and "nests more than 32 levels" in one_line(result.output)
    from engine.config import parse_override

    assert parse_override("data.path=[not-yaml") == (["data", "path"], "[not-yaml")  # unparsed: the text as given


def test_a_config_of_many_megabytes_is_refused_before_it_is_parsed(tmp_path):
    config = tmp_path / "huge.yaml"
    config.write_text("preset: tiny\n" + "# padding\n" * 600_000)  # 6 MB of comments
    result = runner.invoke(app, ["run", str(config), "--headless"])
    assert result.exit_code == 2, result.output
    assert "larger than a config can be" in one_line(result.output)


# --- 8. a flipped byte in a checkpoint's tokenizer.json ---------------------------------------------


@pytest.fixture(scope="module")
def trained_run(make_run_dir):
    run = make_run_dir("untrusted", {"train.max_steps": 2, "train.save_every": 2, "train.eval_every": 0})
    assert train_in_process(run) == 0
    return run


def test_eval_checks_the_manifest_before_it_loads_the_tokenizer(trained_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    ckpt = RunPaths(run).checkpoint_dir(2)
    tok = ckpt / "tokenizer.json"
    data = bytearray(tok.read_bytes())
    data[len(data) // 2] ^= 0x01
    tok.write_bytes(bytes(data))
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    result = runner.invoke(app, ["ckpt", "eval", str(ckpt)])
    assert result.exit_code == 2, result.output
    line = one_line(result.output)
    assert "Traceback" not in result.output and "does not match its manifest" in line and "tokenizer.json" in line
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # no eval stored


def test_an_export_is_one_mode_and_its_card_holds_no_local_path(trained_run, tmp_path):
    out = tmp_path / "export"
    result = runner.invoke(app, ["ckpt", "export", f"{trained_run}:2", str(out)])
    assert result.exit_code == 0, result.output
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert len(set(modes.values())) == 1, modes  # the weights as shareable as the tokenizer files
    card = (out / "README.md").read_text()
    assert "corpus.txt" in card and str(Path(trained_run).parent) not in card
    assert "data sha256" in card


# --- 10. sync's messages name the real cause --------------------------------------------------------


def test_a_damaged_source_file_is_named_as_such_and_tried_twice_not_five_times(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "run.yaml").write_text("name: src\n")
    ckpt = make_checkpoint(src, 1)
    (ckpt / "model.safetensors").write_bytes(os.urandom(4_000))  # same size, other bytes
    make_checkpoint(src, 2)
    dest = tmp_path / "dest"
    result = runner.invoke(app, ["ckpt", "sync", src.as_uri(), str(dest)])
    assert result.exit_code == 2, result.output
    assert "checkpoint-1: refused" in result.output and "the source copy is damaged" in result.output
    assert "(twice)" in result.output and "gave up after" not in result.output
    assert "changed while it was read" in result.output  # the other possible cause, said as such
    assert verify_checkpoint(dest / "checkpoints" / "checkpoint-2") == []


@pytest.mark.parametrize(
    "code, expected",
    [
        (errno.ENOSPC, "no space left on the disk of"),
        (errno.EROFS, "is on a read-only filesystem"),
        (errno.EACCES, "permission denied writing"),
    ],
)
def test_a_local_write_failure_blames_this_machine_not_the_url(tmp_path, code, expected):
    from cockpit.cli.ckpt_sync import _reason
    from engine.transfer import TransferError

    dest = tmp_path / "dest"
    target = str(dest / "checkpoints" / "checkpoint-1" / "model.safetensors.part")
    try:
        try:
            raise OSError(code, os.strerror(code), target)
        except OSError as exc:
            raise TransferError(f"model.safetensors -> {dest}: {exc}") from exc
    except TransferError as wrapped:
        reason = _reason(wrapped, "sftp://host/runs/x", dest)
    assert expected in reason and "URL" not in reason and "credentials" not in reason
