"""engine.transfer over real servers on loopback: a checkpoint copied to an OpenSSH server (sftp://,
key from the ssh config) and to an S3-compatible server (s3://, endpoint and keys from the AWS_*
environment), verified there, and an interrupted copy resumed without sending again what arrived."""

from __future__ import annotations

import os
import uuid

import fsspec
import pytest

from engine.checkpoint_index import MANIFEST, write_manifest
from engine.transfer import PART_SUFFIX, TransferError, copy_checkpoint, join, open_url, read_manifest_at, verify_copy


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("run") / "checkpoints" / "checkpoint-10"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(os.urandom(200_000))
    (ckpt / "config.json").write_text('{"a": 1}\n')
    (ckpt / "sub" / "x.bin").write_bytes(b"x" * 1000)
    write_manifest(ckpt, 10)
    return ckpt


@pytest.fixture(params=["sftp", "s3"])
def target(request, tmp_path):
    """A fresh destination URL on a real server."""
    if request.param == "sftp":
        server = request.getfixturevalue("sshd_server")
        return f"{server.url}{tmp_path}/remote"
    request.getfixturevalue("s3_server")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs, _ = open_url(f"s3://{bucket}")
    fs.mkdir(bucket)
    return f"s3://{bucket}/backups"


def test_copy_verify_and_resume_on_a_real_server(checkpoint, target):
    local = fsspec.filesystem("file")
    fs, root = open_url(target)
    dst = join(root, "checkpoint-10")
    first = copy_checkpoint(local, str(checkpoint), fs, dst)
    assert (first.files_sent, first.files_skipped) == (3, 0)
    assert verify_copy(fs, dst) == []
    assert fs.cat(join(dst, MANIFEST)) == (checkpoint / MANIFEST).read_bytes()
    assert not [p for p in fs.find(root) if p.endswith(PART_SUFFIX)]

    # interrupted before its manifest, one file damaged at the far end: the resume sends that one only
    fs.rm(join(dst, MANIFEST))
    with fs.open(join(dst, "config.json"), "wb") as f:
        f.write(b"garbage")
    assert verify_copy(fs, dst, read_manifest_at(local, str(checkpoint))) == ["config.json: size 7, manifest says 9"]
    again = copy_checkpoint(local, str(checkpoint), fs, dst)
    assert (again.files_sent, again.files_skipped, again.bytes_sent) == (1, 2, 9)
    assert verify_copy(fs, dst) == []

    # and pulled back the other way (as `ckpt sync` does)
    back = checkpoint.parent.parent / f"pulled-{uuid.uuid4().hex[:6]}"
    pulled = copy_checkpoint(fs, dst, local, str(back))
    assert pulled.files_sent == 3 and verify_copy(local, str(back)) == []


def test_sftp_refuses_a_key_it_does_not_know(sshd_server, tmp_path, monkeypatch):
    known = sshd_server.key.parent / "known_hosts"
    (tmp_path / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {tmp_path / 'nokey'}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n"
    )
    monkeypatch.setenv("COCKPIT_SSH_CONFIG", str(tmp_path / "ssh_config"))
    with pytest.raises(Exception) as err:
        open_url(f"{sshd_server.url}{tmp_path}", skip_instance_cache=True)
    assert "nokey" in str(err.value) or "Authentication" in type(err.value).__name__ + str(err.value)


def test_a_scheme_whose_library_is_missing_names_what_to_install():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(TransferError, match=r"gcsfs is not installed.*cockpit\[gcs\]"):
            open_url("gs://bucket/prefix")
    else:
        pytest.skip("gcsfs is installed here")


def test_a_half_sent_file_over_sftp_goes_on_from_its_part(checkpoint, sshd_server, tmp_path):
    """SFTP appends: a ``.part`` an interrupted copy left is continued, not sent again (the first
    progress of the file already counts its bytes); the result verifies."""
    local = fsspec.filesystem("file")
    fs, root = open_url(f"{sshd_server.url}{tmp_path}/remote")
    dst = join(root, "checkpoint-10")
    fs.makedirs(dst, exist_ok=True)
    have = 120_000
    with fs.open(join(dst, "model.safetensors" + PART_SUFFIX), "wb") as f:
        f.write((checkpoint / "model.safetensors").read_bytes()[:have])
    seen = []
    copy_checkpoint(local, str(checkpoint), fs, dst, progress=seen.append)
    before = (checkpoint / "config.json").stat().st_size  # sorted: config.json is sent first
    first = next(p for p in seen if p.file == "model.safetensors")
    assert first.bytes_done == before + have
    assert verify_copy(fs, dst) == []
