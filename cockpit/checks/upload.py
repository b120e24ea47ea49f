"""Upload targets: each one tested for real, the way the uploads will use it.

For every fsspec URL in ``upload.targets`` (``file://``, ``sftp://``, ``s3://``, ``gs://``): connect
(with a short timeout), write a small probe file under the target, read it back, delete it, and say
how much space is free where the filesystem tells (local disks and OpenSSH servers; object stores do
not). A target that fails blocks the run: its checkpoints would have nowhere to go. Each failure says
what is wrong (no such host, nothing listening, the key refused, permission denied, no such bucket,
no credentials) and what to do. URLs are shown redacted (engine.transfer.redact).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from typing import Any
from urllib.parse import urlsplit

from cockpit.checks.base import CheckContext, CheckResult, result

#: Seconds a target has to answer before it counts as unreachable.
PROBE_TIMEOUT_S = 5.0
#: The probe file's name prefix, under the target.
PROBE_PREFIX = ".cockpit-probe-"
TITLE = "Upload target"


def check_upload(ctx: CheckContext) -> list[CheckResult]:
    if ctx.cfg is None:
        return []
    upload = getattr(ctx.cfg, "upload", None)
    targets = list(getattr(upload, "targets", None) or [])
    if not targets:
        return [
            result("upload.target", TITLE, "skip", "no upload target configured: checkpoints stay in the run directory")
        ]
    each, count = None, 1
    total_params = (ctx.model or {}).get("total_params")  # found by the memory check, which runs first
    if total_params:
        from cockpit.checks.machine import checkpoint_bytes

        train = ctx.cfg.train
        each = checkpoint_bytes(total_params)
        count = (train.max_steps // train.save_every if train.save_every else 0) + 1  # each saved one, the final one
    return check_upload_targets(targets, checkpoint_bytes=each, checkpoints=count)


def check_upload_targets(
    urls: list[str], timeout: float = PROBE_TIMEOUT_S, checkpoint_bytes: int | None = None, checkpoints: int = 1
) -> list[CheckResult]:
    """One result per target URL (ids ``upload.target.1``, ``upload.target.2``, ...): ok when it
    was reached and a probe file written, read back and removed there; a blocking fail otherwise.
    With ``checkpoint_bytes`` (the size of one checkpoint) and where the free space is known: a fail
    when not even one fits, a warning when fewer than ``checkpoints`` (what the run will upload) do."""
    return [
        _check_one(f"upload.target.{i}", url, timeout, checkpoint_bytes, checkpoints) for i, url in enumerate(urls, 1)
    ]


def _storage_options(scheme: str, timeout: float) -> dict[str, Any]:
    options: dict[str, Any] = {"skip_instance_cache": True}
    if scheme == "sftp":
        options.update(timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    elif scheme in ("s3", "s3a"):
        options["config_kwargs"] = {"connect_timeout": timeout, "read_timeout": timeout, "retries": {"max_attempts": 1}}
    return options


def _check_one(id: str, url: str, timeout: float, each: int | None, count: int) -> CheckResult:
    from engine.transfer import redact
    from engine.units import nbytes

    shown = redact(url)
    stage = ["connect"]
    try:
        free = _probe(url, timeout, stage)
    except ReadBackDiffers:
        return result(
            id,
            TITLE,
            "fail",
            f"{shown}: a probe file written there read back different",
            "check the target's storage",
            url=shown,
        )
    except Exception as exc:  # a check never raises: whatever went wrong is the finding
        detail, fix = explain(exc, url, timeout, connecting=stage[0] == "connect")
        return result(id, TITLE, "fail", f"{shown}: {detail}", fix, url=shown)
    detail = f"{shown}: reachable, writable (a probe file written, read back, removed); "
    data = {"url": shown, "free_bytes": free, "checkpoint_bytes": each, "checkpoints": count}
    if free is None:
        return result(id, TITLE, "ok", detail + "free space unknown (not reported by the store)", **data)
    detail += f"{nbytes(free)} free"
    if each is None:
        return result(id, TITLE, "ok", detail, **data)
    detail += f"; the run uploads {count} checkpoint(s) of ~{nbytes(each)}"
    if free < each:
        return result(
            id, TITLE, "fail", f"{detail}: not even one fits", "free space there, or choose another target", **data
        )
    if free < each * count:
        fix = "free space there, or have older copies removed as the run goes"
        return result(id, TITLE, "warn", f"{detail}: only {free // each} fit", fix, **data)
    return result(id, TITLE, "ok", detail, **data)


class ReadBackDiffers(Exception):
    """The probe file read back from a target is not what was written."""


def _probe(url: str, timeout: float, stage: list[str]) -> int | None:
    """Reach ``url``, write a probe file there, read it back, remove it: the free bytes there (None
    when the store does not say); ReadBackDiffers when the probe came back different."""
    from engine.transfer import join, open_url

    scheme = urlsplit(url).scheme or "file"
    fs, root = open_url(url, **_storage_options(scheme, timeout))
    stage[0] = "write"
    try:
        if scheme not in ("s3", "s3a", "gs", "gcs"):  # on an object store makedirs would create a missing bucket
            fs.makedirs(root, exist_ok=True)
        probe = join(root, f"{PROBE_PREFIX}{uuid.uuid4().hex[:12]}")
        payload = f"cockpit upload probe {uuid.uuid4().hex}\n".encode()
        with fs.open(probe, "wb") as f:
            f.write(payload)
        try:
            with fs.open(probe, "rb") as f:
                back = f.read()
        finally:
            fs.rm(probe)
        if back != payload:
            raise ReadBackDiffers
        return _free_bytes(fs, scheme, root)
    finally:
        client = getattr(fs, "client", None)  # sftp: close the connection the check opened
        if client is not None and hasattr(client, "close"):
            client.close()


def _free_bytes(fs: Any, scheme: str, root: str) -> int | None:
    if scheme in ("file", "local"):
        return shutil.disk_usage(root).free
    if scheme == "sftp":
        from engine.sftp import sftp_free_bytes

        return sftp_free_bytes(fs, root)
    return None


def explain(
    exc: BaseException, url: str, timeout: float = PROBE_TIMEOUT_S, connecting: bool = False
) -> tuple[str, str]:
    """What ``exc``, raised reaching (``connecting``) or writing ``url``, means, and what to do about it."""
    from engine.transfer import TransferError

    parts = urlsplit(url)
    scheme = parts.scheme or "file"
    host = parts.hostname or ""
    where = f"{host}:{parts.port}" if parts.port else host
    name = type(exc).__name__
    text = str(exc) or name
    if isinstance(exc, TransferError):  # a library missing, an unknown scheme, an unreadable ssh config
        return text.split(": ", 1)[-1], "install what it names, or fix the URL or the file it names"
    if isinstance(exc, socket.gaierror):
        return f"no such host {host!r} ({text})", "check the host name in the URL (and HostName in your ssh config)"
    if name == "NoValidConnectionsError" or isinstance(exc, ConnectionRefusedError):
        return f"nothing answers on {where} (connection refused)", "is the server running, and is the port right?"
    if isinstance(exc, (TimeoutError, socket.timeout)) or name in ("ConnectTimeoutError", "ReadTimeoutError"):
        return f"{where or url} did not answer within {timeout:g} s", "check the host is up and reachable from here"
    if isinstance(exc, (EOFError, ConnectionResetError, BrokenPipeError)) or any(
        s in text for s in ("Socket is closed", "connection dropped")
    ):
        return f"the connection dropped ({text})", "check the network and that the server is up"
    if name == "EndpointConnectionError":
        return f"cannot reach the endpoint ({text})", "check AWS_ENDPOINT_URL (or the endpoint in ~/.aws/config)"
    if name == "AuthenticationException":
        return f"the server refused the login ({text}) with {_keys_tried(url)}", (
            "add your public key to the server's ~/.ssh/authorized_keys, or name the right key with IdentityFile "
            "in ~/.ssh/config (or the file COCKPIT_SSH_CONFIG names)"
        )
    if name == "NoCredentialsError":
        return (
            "no credentials found",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure ~/.aws/credentials",
        )
    if scheme == "sftp" and connecting and isinstance(exc, FileNotFoundError):
        keys = _keys_tried(url)
        if "key file" in keys:
            return f"cannot log in: {keys}", "fix IdentityFile in your ssh config, or create the key (ssh-keygen)"
    if isinstance(exc, PermissionError):
        who = "these credentials" if scheme in ("s3", "s3a", "gs", "gcs") else "this user"
        return (
            f"permission denied writing under the target ({text})",
            f"give {who} write access there, or choose another target",
        )
    if scheme in ("s3", "s3a", "gs", "gcs") and (isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text):
        bucket = host
        return (
            f"the bucket {bucket!r} does not exist ({text})",
            f"create it (e.g. `aws s3 mb {scheme}://{bucket}`) or fix the URL",
        )
    if isinstance(exc, FileNotFoundError):
        return (
            f"no such directory, and it could not be made ({text})",
            "create the directory, or fix the path in the URL",
        )
    return f"{name}: {text}", "check the URL, the server and the credentials"


def _keys_tried(url: str) -> str:
    try:
        from engine.sftp import sftp_options, ssh_config_path

        keys = sftp_options(url).get("key_filename")
    except Exception:
        return "your ssh keys"
    if not keys:
        return "the ssh agent and ~/.ssh/id_* (no IdentityFile in the ssh config for this host)"
    missing = [k for k in keys if not os.path.exists(k)]
    if missing:
        return f"the key file {', '.join(missing)} (IdentityFile in {ssh_config_path()}) does not exist"
    return f"the key {', '.join(keys)} (IdentityFile in {ssh_config_path()})"
