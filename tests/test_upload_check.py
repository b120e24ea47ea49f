"""The readiness check of upload targets, against real targets: a local directory (file://), an
OpenSSH server (sftp://) and an S3-compatible server (s3://) on loopback; and each way one fails
(no such host, nothing listening, the key refused, a missing key file, no such bucket, a path that
cannot be made), named with what to do, blocking, the URL shown without its secret."""

from __future__ import annotations

import subprocess
import uuid
from types import SimpleNamespace

from cockpit.checks.base import CheckContext
from cockpit.checks.upload import PROBE_PREFIX, check_upload, check_upload_targets
from engine.transfer import open_url


def test_good_targets_pass_and_leave_no_probe(tmp_path, sshd_server, s3_server):
    bucket = f"ok-{uuid.uuid4().hex[:10]}"
    fs, _ = open_url(f"s3://{bucket}")
    fs.mkdir(bucket)
    local = tmp_path / "local"
    urls = [f"file://{local}", f"{sshd_server.url}{tmp_path}/over-sftp", f"s3://{bucket}/ckpts"]
    results = check_upload_targets(urls)
    assert [r.id for r in results] == ["upload.target.1", "upload.target.2", "upload.target.3"]
    assert [r.status for r in results] == ["ok", "ok", "ok"], [r.detail for r in results]
    assert results[0].detail.endswith(" free") and "reachable, writable" in results[0].detail
    assert results[0].data["free_bytes"] > 0 and results[1].data["free_bytes"] > 0
    assert results[2].data["free_bytes"] is None and "free space unknown" in results[2].detail
    assert not list(tmp_path.rglob(f"{PROBE_PREFIX}*"))
    assert fs.find(bucket) == []


def test_each_failure_names_what_is_wrong_and_blocks(tmp_path, sshd_server, s3_server, monkeypatch):
    closed = sshd_server.port + 1 if sshd_server.port < 65535 else sshd_server.port - 1
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    urls = [
        "sftp://user:hunter2@no-such-host.invalid/backups",
        f"sftp://{sshd_server.user}@127.0.0.1:{closed}/backups",
        f"s3://missing-{uuid.uuid4().hex[:8]}/ckpts",
        f"file://{blocker}/sub",
        "nosuchscheme://x/y",
    ]
    results = check_upload_targets(urls, timeout=3)
    by = {r.id: r for r in results}
    assert all(r.status == "fail" and r.blocking and r.fix for r in results), [(r.status, r.detail) for r in results]
    assert "no such host 'no-such-host.invalid'" in by["upload.target.1"].detail
    assert "hunter2" not in "".join(r.detail + r.fix + str(r.data) for r in results)
    assert f"nothing answers on 127.0.0.1:{closed}" in by["upload.target.2"].detail
    assert "does not exist" in by["upload.target.3"].detail and "aws s3 mb" in by["upload.target.3"].fix
    assert str(blocker) in by["upload.target.4"].detail or "a-file" in by["upload.target.4"].detail
    assert "nosuchscheme" in by["upload.target.5"].detail

    # the key refused, then a key file that is not there: each named, with where it was configured
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    config = tmp_path / "ssh_config"
    known = f"  UserKnownHostsFile {sshd_server.key.parent / 'known_hosts'}\n"
    config.write_text(f"Host 127.0.0.1\n  IdentityFile {other}\n  IdentitiesOnly yes\n{known}")
    monkeypatch.setenv("COCKPIT_SSH_CONFIG", str(config))
    refused = check_upload_targets([f"{sshd_server.url}{tmp_path}"])[0]
    assert refused.status == "fail" and "refused the login" in refused.detail and str(other) in refused.detail
    assert "authorized_keys" in refused.fix
    config.write_text(f"Host 127.0.0.1\n  IdentityFile {tmp_path / 'gone'}\n  IdentitiesOnly yes\n{known}")
    missing = check_upload_targets([f"{sshd_server.url}{tmp_path}"])[0]
    assert missing.status == "fail" and f"key file {tmp_path / 'gone'}" in missing.detail


def test_the_servers_host_key_is_checked_as_ssh_checks_it(tmp_path, sshd_server, monkeypatch):
    """Unknown host: refused, saying how to accept it (unless StrictHostKeyChecking accept-new); a
    host key that differs from the recorded one: refused, always."""
    key = sshd_server.key
    config = tmp_path / "ssh_config"
    monkeypatch.setenv("COCKPIT_SSH_CONFIG", str(config))
    url = f"{sshd_server.url}{tmp_path}"
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    base = f"Host 127.0.0.1\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {empty}\n"
    config.write_text(base)
    unknown = check_upload_targets([url])[0]
    assert unknown.status == "fail" and "is not in" in unknown.detail and f"ssh -p {sshd_server.port}" in unknown.detail
    config.write_text(base + "  StrictHostKeyChecking accept-new\n")
    assert check_upload_targets([url])[0].status == "ok"
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    empty.write_text(f"[127.0.0.1]:{sshd_server.port} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n")
    changed = check_upload_targets([url])[0]
    assert changed.status == "fail" and "differs from the one in" in changed.detail


def test_check_upload_reads_the_configs_targets(tmp_path):
    cfg = SimpleNamespace(upload=SimpleNamespace(targets=[f"file://{tmp_path}/t"]))
    (only,) = check_upload(CheckContext(config_path=None, cfg=cfg))
    assert only.id == "upload.target.1" and only.status == "ok"
    (skip,) = check_upload(CheckContext(config_path=None, cfg=SimpleNamespace()))
    assert skip.status == "skip" and "no upload target" in skip.detail


def test_free_space_is_weighed_against_the_checkpoints_uploaded(tmp_path):
    url = f"file://{tmp_path}/t"
    (none_fits,) = check_upload_targets([url], checkpoint_bytes=10**18, checkpoints=3)
    assert none_fits.status == "fail" and none_fits.blocking and "not even one fits" in none_fits.detail
    (some_fit,) = check_upload_targets([url], checkpoint_bytes=1, checkpoints=10**18)
    assert some_fit.status == "warn" and not some_fit.blocking and "only" in some_fit.detail
    (all_fit,) = check_upload_targets([url], checkpoint_bytes=1, checkpoints=3)
    assert all_fit.status == "ok" and "the run uploads 3 checkpoint(s)" in all_fit.detail
