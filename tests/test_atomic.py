"""engine.atomic: a write replaces the target whole or not at all, and leaves no temporary file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from engine.atomic import AtomicFile, atomic_open, atomic_write_bytes, atomic_write_text


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_text_and_bytes_replace_the_target_and_leave_nothing_else(tmp_path):
    target = tmp_path / "status.json"
    target.write_text("old\n", encoding="utf-8")
    atomic_write_text(target, "néw\n")
    assert target.read_bytes() == "néw\n".encode()
    atomic_write_bytes(target, b"\x00\x01\xff")
    assert target.read_bytes() == b"\x00\x01\xff"
    assert listing(tmp_path) == ["status.json"]


def test_a_new_file_gets_the_permissions_open_would_give_it(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "train_000.bin", b"x")
        with open(tmp_path / "plain", "wb"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "train_000.bin").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o640


def test_a_streamed_write_is_renamed_only_when_the_block_ends(tmp_path):
    target = tmp_path / "tokens.npy"
    tokens = np.arange(1000, dtype=np.int32)
    with atomic_open(target, "wb", fsync=False) as f:
        np.save(f, tokens, allow_pickle=False)
        assert not target.exists()  # readers see nothing until the rename
        assert len(listing(tmp_path)) == 1 and listing(tmp_path)[0].startswith(".tokens.npy.")
    assert np.array_equal(np.load(target), tokens)
    assert listing(tmp_path) == ["tokens.npy"]


def test_an_error_in_the_block_keeps_the_old_content_and_removes_the_temporary_file(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("complete\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="disk gone"):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk gone")
    assert target.read_text(encoding="utf-8") == "complete\n"
    assert listing(tmp_path) == ["manifest.json"]


def test_an_atomic_file_kept_open_across_steps_commits_or_aborts(tmp_path):
    kept = AtomicFile(tmp_path / "train_000.bin")
    for chunk in (b"ab", b"cd"):
        kept.file.write(chunk)
    kept.commit()
    dropped = AtomicFile(tmp_path / "train_001.bin")
    dropped.file.write(b"partial")
    dropped.abort()
    assert (tmp_path / "train_000.bin").read_bytes() == b"abcd"
    assert listing(tmp_path) == ["train_000.bin"]


def test_fsync_is_asked_for_or_skipped(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    atomic_write_text(tmp_path / "a", "1")
    atomic_write_text(tmp_path / "b", "2", fsync=False)
    assert len(synced) == 1


def test_a_missing_directory_raises_and_a_read_mode_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "missing" / "x", "1")
    with pytest.raises(ValueError, match="mode 'rb'"):
        AtomicFile(tmp_path / "x", "rb")
    assert listing(tmp_path) == []


def test_stale_temporaries_of_a_killed_writer_are_removed_and_a_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from engine.atomic import remove_stale_temporaries

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = tmp_path / "latest"
    stale = tmp_path / f".latest.{dead.pid}-0a1b2c3d.tmp"
    live = tmp_path / f".latest.{os.getpid()}-0a1b2c3d.tmp"
    other = tmp_path / f".run.yaml.{dead.pid}-0a1b2c3d.tmp"
    for p in (stale, live, other):
        p.write_text("x")
    assert remove_stale_temporaries(target) == [stale]
    assert not stale.exists() and live.exists() and other.exists()
