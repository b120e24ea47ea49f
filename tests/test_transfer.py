"""engine.transfer on real directories (file://): a verified copy, the manifest last, resuming an
interrupted copy without sending again what arrived intact, a corrupted far copy found and replaced,
retries with backoff, and URLs shown without their secrets."""

from __future__ import annotations

import os

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem

from engine.checkpoint_index import MANIFEST, write_manifest
from engine.transfer import (
    PART_SUFFIX,
    TransferError,
    copy_checkpoint,
    open_url,
    read_manifest_at,
    redact,
    retrying,
    verify_copy,
)


@pytest.fixture
def checkpoint(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-10"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(os.urandom(3 << 20))
    (ckpt / "config.json").write_text('{"a": 1}\n')
    (ckpt / "sub" / "x.bin").write_bytes(b"x" * 1000)
    write_manifest(ckpt, 10)
    return ckpt


class FailingWrites(LocalFileSystem):
    """A real local filesystem whose first ``fail`` opens for writing raise, as a dropped link does."""

    cachable = False

    def __init__(self, fail: int, **kwargs):
        super().__init__(**kwargs)
        self.fail = fail
        self.writes = 0

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode:
            self.writes += 1
            if self.writes <= self.fail:
                raise ConnectionResetError(f"connection dropped writing {path}")
        return super()._open(path, mode, **kwargs)


class DropsMidFile(LocalFileSystem):
    """A real local filesystem whose connection drops once, after 1 MiB of the first big file is written."""

    cachable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dropped = False

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        if "w" not in mode or self.dropped:
            return f
        fs, write = self, f.write
        written = 0

        def dropping_write(data):
            nonlocal written
            written += len(data)
            if written > (1 << 20) and not fs.dropped:
                fs.dropped = True
                raise ConnectionResetError("connection dropped mid-file")
            return write(data)

        f.write = dropping_write
        return f


def test_a_connection_dropped_mid_file_leaves_a_part_file_then_the_retry_completes(checkpoint, tmp_path):
    local = fsspec.filesystem("file")
    dropping = DropsMidFile()
    dst = tmp_path / "remote" / "c"
    retries = []
    copy_checkpoint(
        local, str(checkpoint), dropping, str(dst), sleep=lambda s: None, on_retry=lambda *a: retries.append(a)
    )
    assert dropping.dropped and len(retries) == 1 and "mid-file" in str(retries[0][1])
    assert verify_copy(local, str(dst)) == [] and not list(dst.rglob(f"*{PART_SUFFIX}"))


def test_copy_is_verified_and_the_manifest_comes_last(checkpoint, tmp_path):
    local = fsspec.filesystem("file")
    dst = str(tmp_path / "remote" / "checkpoint-10")
    seen = []
    result = copy_checkpoint(local, str(checkpoint), local, dst, progress=seen.append)
    manifest = read_manifest_at(local, str(checkpoint))
    assert result.files_sent == len(manifest["files"]) == 3 and result.files_skipped == 0
    assert result.bytes_total == sum(m["size"] for m in manifest["files"].values()) == seen[-1].bytes_done
    assert verify_copy(local, dst) == []
    assert (tmp_path / "remote" / "checkpoint-10" / MANIFEST).read_bytes() == (checkpoint / MANIFEST).read_bytes()
    assert not list((tmp_path / "remote").rglob(f"*{PART_SUFFIX}"))
    done = [p.bytes_done for p in seen]
    assert done == sorted(done)


def test_an_interrupted_copy_resumes_and_a_corrupted_file_is_sent_again(checkpoint, tmp_path):
    local = fsspec.filesystem("file")
    dst = tmp_path / "remote" / "checkpoint-10"
    copy_checkpoint(local, str(checkpoint), local, str(dst))
    (dst / MANIFEST).unlink()  # as if the copy had stopped before its manifest
    with open(dst / "model.safetensors", "r+b") as f:  # and one file arrived damaged
        f.write(b"\0\0\0\0")
    assert verify_copy(local, str(dst), read_manifest_at(local, str(checkpoint))) == [
        "model.safetensors: sha256 differs from the manifest"
    ]
    again = copy_checkpoint(local, str(checkpoint), local, str(dst))
    assert (again.files_sent, again.files_skipped) == (1, 2)
    assert verify_copy(local, str(dst)) == []


def test_a_dropped_connection_is_retried_with_backoff(checkpoint, tmp_path):
    flaky = FailingWrites(fail=2)
    local = fsspec.filesystem("file")
    delays, retries = [], []
    result = copy_checkpoint(
        local,
        str(checkpoint),
        flaky,
        str(tmp_path / "remote" / "c"),
        base_delay=0.01,
        sleep=delays.append,
        on_retry=lambda n, exc, delay: retries.append((n, str(exc))),
    )
    assert result.files_sent == 3 and verify_copy(local, str(tmp_path / "remote" / "c")) == []
    assert [n for n, _ in retries] == [1, 2] and "connection dropped" in retries[0][1]
    assert all(0 <= d <= 0.01 * 2**i for i, d in enumerate(delays))


def test_giving_up_names_the_file_and_the_destination(checkpoint, tmp_path):
    with pytest.raises(TransferError, match=r"config\.json -> .*remote.*gave up after 3 tries"):
        copy_checkpoint(
            fsspec.filesystem("file"),
            str(checkpoint),
            FailingWrites(fail=100),
            str(tmp_path / "remote"),
            retries=2,
            sleep=lambda s: None,
        )
    assert not (tmp_path / "remote" / MANIFEST).exists()


def test_a_source_without_its_manifest_is_refused(checkpoint, tmp_path):
    (checkpoint / MANIFEST).unlink()
    local = fsspec.filesystem("file")
    with pytest.raises(ValueError, match="manifest.json: missing"):
        copy_checkpoint(local, str(checkpoint), local, str(tmp_path / "remote"))


def test_retrying_waits_with_exponential_backoff_and_full_jitter():
    calls, delays = [], []

    def attempt():
        calls.append(1)
        if len(calls) < 4:
            raise TimeoutError("slow")
        return "ok"

    assert retrying("x", attempt, retries=5, base_delay=1.0, max_delay=3.0, sleep=delays.append) == "ok"
    assert len(delays) == 3 and all(0 <= d <= cap for d, cap in zip(delays, (1.0, 2.0, 3.0), strict=True))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sftp://me:hunter2@host:2222/backups", "sftp://me@host:2222/backups"),
        ("s3://bucket/prefix?X-Amz-Signature=abc", "s3://bucket/prefix"),
        ("file:///mnt/backup", "file:///mnt/backup"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_redact_keeps_no_secret(url, shown):
    assert redact(url) == shown


def test_an_unknown_scheme_is_named():
    with pytest.raises(TransferError, match="nosuch://x"):
        open_url("nosuch://x/y")


def test_several_files_at_a_time_are_each_verified_and_progress_adds_up(checkpoint, tmp_path):
    import threading

    local = fsspec.filesystem("file")
    dst = str(tmp_path / "remote" / "p")
    seen, threads = [], set()

    def progress(p):
        seen.append(p.bytes_done)
        threads.add(threading.current_thread().name)

    result = copy_checkpoint(local, str(checkpoint), local, dst, progress=progress, workers=3)
    assert result.files_sent == 3 and verify_copy(local, dst) == []
    assert seen == sorted(seen) and seen[-1] == result.bytes_total
    assert all(name.startswith("copy") for name in threads)


class CountsWrites(LocalFileSystem):
    """A real local filesystem that counts the bytes written through it."""

    cachable = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.written = 0

    def _open(self, path, mode="rb", **kwargs):
        f = super()._open(path, mode, **kwargs)
        if "w" in mode or "a" in mode:
            fs, write = self, f.write

            def counting_write(data):
                fs.written += len(data)
                return write(data)

            f.write = counting_write
        return f


@pytest.mark.parametrize("good_part", [True, False])
def test_a_half_sent_file_goes_on_from_its_part_and_a_bad_part_costs_one_retry(checkpoint, tmp_path, good_part):
    local, counting = fsspec.filesystem("file"), CountsWrites()
    dst = tmp_path / "remote" / "c"
    dst.mkdir(parents=True)
    weights = (checkpoint / "model.safetensors").read_bytes()
    half = weights[: 1 << 20] if good_part else b"\0" * (1 << 20)  # an interrupted copy's part (or a damaged one)
    (dst / f"model.safetensors{PART_SUFFIX}").write_bytes(half)
    retries = []
    result = copy_checkpoint(
        local, str(checkpoint), counting, str(dst), sleep=lambda s: None, on_retry=lambda *a: retries.append(a)
    )
    assert result.files_sent == 3 and verify_copy(local, str(dst)) == []
    others = sum(p.stat().st_size for p in checkpoint.rglob("*") if p.is_file() and p.name != "model.safetensors")
    if good_part:
        assert counting.written == len(weights) - (1 << 20) + others and not retries
    else:
        assert counting.written == 2 * len(weights) - (1 << 20) + others and len(retries) == 1
