"""Copying a checkpoint directory from one filesystem to another (fsspec URLs), verified: the one
transfer under background uploads, `cockpit ckpt upload` and `cockpit ckpt sync`. Torch-free.

A destination is an fsspec URL: ``file:///mnt/backup``, ``sftp://user@host/path`` (fsspec's
paramiko SFTP), ``s3://bucket/prefix`` (s3fs; any S3-compatible endpoint through the usual
``AWS_ENDPOINT_URL`` / ``AWS_*`` environment or ``~/.aws``), ``gs://bucket/prefix`` (gcsfs, when
installed). Credentials come from the environment and the libraries' own configuration, never from a
URL that is written down: :func:`redact` is how a URL appears in events, logs and messages.

:func:`copy_checkpoint` copies file by file, the manifest last, so a directory holding
``manifest.json`` is complete: a reader that finds the manifest knows every file it lists is there.
Each file goes to ``<name>.part`` first, is hashed as it is sent, renamed into place, and read back
and hashed again: a copy counts only when the bytes at the far end match the manifest's sha256.
A file already at the far end with the manifest's size and sha256 is not sent again, so an
interrupted copy resumes where it stopped; where the protocol appends (file, sftp) a half-sent file
goes on from its ``.part`` (the whole file is still read back and hashed; a bad ``.part`` costs one
retry of the whole file), elsewhere (object stores) it is sent again. A failure is
retried with exponential backoff and jitter; the last one raises :class:`TransferError` naming the
file and the destination.
"""

from __future__ import annotations

import errno
import hashlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from engine.checkpoint_index import MANIFEST, parse_manifest
from engine.safe_path import inside

#: Bytes per read and write.
CHUNK_BYTES = 4 << 20
#: Suffix of a file while it is being written at the far end.
PART_SUFFIX = ".part"


class TransferError(RuntimeError):
    """A copy failed after its retries; the message names the file, the destination and why."""


class SourceMismatch(TransferError):
    """A file read from the source is not what its manifest says (sha256): the source copy is damaged,
    or it changed while it was read. Tried once more, not five times: a damaged file stays damaged."""


#: Errors of the writing side that another try would only repeat: a full disk, a read-only
#: filesystem, no permission.
PERMANENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def permanent(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is an error that retrying would only repeat."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in PERMANENT_ERRNOS:
            return True
        exc = exc.__cause__
    return False


def redact(url: str) -> str:
    """``url`` without a password or token (``sftp://user:secret@host/p`` -> ``sftp://user@host/p``),
    and without a query string (where signed URLs keep their keys): how a URL may be shown."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file":
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


#: Where each scheme's library takes its credentials from (what a refused URL's message says).
CREDENTIALS_FROM = (
    "credentials come from the environment or the library's own configuration: the ssh agent or ~/.ssh keys "
    "(sftp://), AWS_* variables or ~/.aws (s3://), GOOGLE_APPLICATION_CREDENTIALS (gs://)"
)


def check_target(url: str) -> str:
    """``url`` when it may be written down as an upload target: an fsspec URL with a known scheme and
    no password, token or query string (they would end up in ``run.yaml`` and the events);
    ValueError naming the (redacted) URL and what to write instead."""
    from fsspec.registry import known_implementations

    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        raise ValueError(f"{url!r}: not a URL; write file:///absolute/path, sftp://user@host/path, s3://bucket/prefix")
    if parts.scheme not in known_implementations:
        raise ValueError(f"{redact(url)}: unknown scheme {parts.scheme!r} (file, sftp, s3, gs, ...)")
    if parts.password is not None:
        raise ValueError(f"{redact(url)}: holds a password or token; {CREDENTIALS_FROM}")
    if parts.query or parts.fragment:
        raise ValueError(f"{redact(url)}: has a query string (signed keys); {CREDENTIALS_FROM}")
    if parts.scheme == "file" and parts.netloc:
        raise ValueError(f"{url}: a file:// URL takes an absolute path: file:///{parts.netloc}{parts.path}")
    if not parts.path.strip("/") and parts.scheme == "file":
        raise ValueError(f"{url}: no directory")
    return url


#: What to install for a scheme whose library is an optional extra.
MISSING_LIBRARY = {
    "gs": "gcsfs is not installed; install it with: pip install 'cockpit[gcs]'",
    "gcs": "gcsfs is not installed; install it with: pip install 'cockpit[gcs]'",
}


def open_url(url: str, **storage_options: Any) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path within it. ``storage_options`` go to the
    filesystem (``skip_instance_cache=True`` for a fresh connection); an ``sftp://`` URL also gets
    what the user's ssh config says of its host (``engine.sftp.sftp_options``). A scheme whose
    library is missing raises TransferError saying what to install; so does an unreadable ssh config."""
    import fsspec

    scheme = urlsplit(url).scheme
    try:
        if scheme == "sftp":
            from engine.sftp import sftp_options

            storage_options = {**sftp_options(url), **storage_options}
        return fsspec.core.url_to_fs(url, **storage_options)
    except ImportError as exc:
        raise TransferError(f"{redact(url)}: {MISSING_LIBRARY.get(scheme) or exc}") from None
    except ValueError as exc:  # an unknown protocol, an unreadable ssh config
        raise TransferError(f"{redact(url)}: {exc}") from None


def join(root: str, *parts: str) -> str:
    """``root/part/...`` with single slashes (fsspec paths use ``/`` on every filesystem)."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


@dataclass(frozen=True)
class Progress:
    """Where a copy stands: bytes done of the whole checkpoint, and the file being sent."""

    bytes_done: int
    bytes_total: int
    file: str


@dataclass(frozen=True)
class CopyResult:
    files_sent: int
    """Files sent this time."""
    files_skipped: int
    """Files already at the far end, intact (an earlier, interrupted copy)."""
    bytes_sent: int
    bytes_total: int


def read_manifest_at(fs: Any, directory: str) -> dict:
    """The manifest of the checkpoint ``directory`` on ``fs``; ValueError when missing or unreadable."""
    return _manifest_and_bytes(fs, directory)[0]


def read_manifest_and_bytes(fs: Any, directory: str) -> tuple[dict, bytes]:
    """The manifest of ``directory`` on ``fs`` and its bytes as stored (to compare two copies byte
    for byte); ValueError when missing or unreadable."""
    return _manifest_and_bytes(fs, directory)


def _manifest_and_bytes(fs: Any, directory: str) -> tuple[dict, bytes]:
    path = join(directory, MANIFEST)
    try:
        with fs.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (the checkpoint is not complete there)") from None
    except OSError as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    return parse_manifest(raw, path), raw  # ValueError (UnsafePath) naming a bad or escaping entry


def pipelined(f: Any, reading: bool) -> Any:
    """``f`` with paramiko's pipelining on when it is an SFTP file (fsspec leaves it off): reads
    prefetched, writes not waiting for each acknowledgement; some 15x faster both ways. A write error
    still raises, at close."""
    if reading and hasattr(f, "prefetch"):
        f.prefetch()
    elif not reading and hasattr(f, "set_pipelined"):
        f.set_pipelined(True)
    return f


def remote_sha256(fs: Any, path: str) -> str:
    """The sha256 of ``path`` on ``fs``, read back in chunks."""
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        pipelined(f, reading=True)
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def _intact(fs: Any, path: str, meta: dict) -> bool:
    try:
        if fs.size(path) != meta.get("size"):
            return False
        return remote_sha256(fs, path) == meta.get("sha256")
    except (FileNotFoundError, OSError):
        return False


def verify_copy(fs: Any, directory: str, manifest: dict | None = None) -> list[str]:
    """Problems of the copy at ``directory`` on ``fs`` against ``manifest`` (default: the manifest
    found there); [] when every file is present with its size and sha256."""
    if manifest is None:
        try:
            manifest = read_manifest_at(fs, directory)
        except ValueError as exc:
            return [str(exc)]
    problems = []
    for rel, meta in manifest["files"].items():
        path = join(directory, rel)
        if not fs.exists(path):
            problems.append(f"{rel}: missing")
        elif fs.size(path) != meta.get("size"):
            problems.append(f"{rel}: size {fs.size(path)}, manifest says {meta.get('size')}")
        elif remote_sha256(fs, path) != meta.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


#: Protocols whose files can be appended to: a ``.part`` left by an interrupted copy goes on from
#: where it stopped instead of from its first byte (object stores write whole objects).
APPENDABLE = frozenset({"file", "local", "sftp", "ssh"})


def _resume_offset(dst_fs: Any, part: str, size: int | None) -> int:
    """Bytes of ``part`` an interrupted copy left that this one can go on from (0: start over)."""
    protocols = dst_fs.protocol if isinstance(dst_fs.protocol, tuple) else (dst_fs.protocol,)
    if not APPENDABLE & set(protocols) or size is None:
        return 0
    try:
        have = dst_fs.size(part)
    except (FileNotFoundError, OSError):
        return 0
    return have if 0 < have < size else 0


def _send(
    src_fs: Any,
    src: str,
    dst_fs: Any,
    dst: str,
    expect_sha: str | None,
    on_bytes: Callable[[int], None],
    size: int | None = None,
):
    """One file: to ``dst.part`` (hashing what is sent; going on from a ``.part`` an interrupted copy
    left, where the protocol appends), renamed into place, read back and checked."""
    part = dst + PART_SUFFIX
    parent = dst.rsplit("/", 1)[0]
    if parent:
        dst_fs.makedirs(parent, exist_ok=True)
    h = hashlib.sha256()
    offset = _resume_offset(dst_fs, part, size)
    with src_fs.open(src, "rb") as fin:
        pipelined(fin, reading=True)
        left = offset
        while left:  # the part already there: hashed from the source, not sent again
            block = fin.read(min(CHUNK_BYTES, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
        if offset:
            on_bytes(offset)
        with dst_fs.open(part, "ab" if offset else "wb") as fout:
            pipelined(fout, reading=False)
            for block in iter(lambda: fin.read(CHUNK_BYTES), b""):
                h.update(block)
                fout.write(block)
                on_bytes(len(block))
    if expect_sha is not None and h.hexdigest() != expect_sha:
        dst_fs.rm(part)
        raise SourceMismatch(
            f"{src}: its sha256 is not the manifest's (the source copy is damaged, or it changed while it was read)"
        )
    if dst_fs.exists(dst):
        dst_fs.rm(dst)
    dst_fs.mv(part, dst)
    if expect_sha is not None and remote_sha256(dst_fs, dst) != expect_sha:
        dst_fs.rm(dst)  # a resumed part that was not what it seemed: the retry sends the whole file
        raise TransferError(f"{dst}: the copy's sha256 differs from the manifest after writing")


def retrying(
    what: str,
    attempt: Callable[[], Any],
    retries: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, Exception, float], None] | None = None,
) -> Any:
    """``attempt()``, again after a failure (``retries`` more times), waiting ``base_delay * 2**n``
    (at most ``max_delay``) with full jitter in between. The last failure raises TransferError
    naming ``what``; ``on_retry(n, error, delay)`` hears of each retry."""
    mismatches = 0
    for n in range(retries + 1):
        try:
            return attempt()
        except (OSError, TransferError, EOFError, ValueError, TimeoutError) as exc:
            mismatches += isinstance(exc, SourceMismatch)
            if permanent(exc):
                raise TransferError(f"{what}: {exc}") from exc
            if mismatches > 1 or (mismatches and n == retries):
                raise SourceMismatch(f"{what}: {exc} (twice)") from exc
            if n == retries:
                raise TransferError(f"{what}: {exc} (gave up after {retries + 1} tries)") from exc
            delay = random.uniform(0, min(max_delay, base_delay * 2**n))
            if on_retry is not None:
                on_retry(n + 1, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def _is_local(fs: Any) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return bool({"file", "local"} & set(protocols))


def copy_checkpoint(
    src_fs: Any,
    src_dir: str,
    dst_fs: Any,
    dst_dir: str,
    *,
    progress: Callable[[Progress], None] | None = None,
    retries: int = 5,
    base_delay: float = 0.5,
    on_retry: Callable[[int, Exception, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    workers: int = 1,
) -> CopyResult:
    """Copy the checkpoint ``src_dir`` on ``src_fs`` to ``dst_dir`` on ``dst_fs``, verified, the
    manifest last (see the module's docstring), ``workers`` files at a time (threads; one at a time
    over SFTP, whose one channel per connection would only interleave them). The source must hold
    its manifest (a complete checkpoint); ValueError otherwise. TransferError when a file cannot be
    copied after retries (the files in flight beside it are finished first). ``progress`` and
    ``on_retry`` are called from one thread at a time."""
    manifest, manifest_bytes = _manifest_and_bytes(src_fs, src_dir)
    files = manifest["files"]
    for fs, root in ((src_fs, src_dir), (dst_fs, dst_dir)):
        if _is_local(fs):  # a symlink on this machine must not lead a read or a write out of the checkpoint
            for rel in files:
                inside(root, rel, join(src_dir, MANIFEST))
    total = sum(int(meta.get("size") or 0) for meta in files.values())
    dst_label = redact(dst_dir) if "://" in dst_dir else dst_dir
    lock = threading.Lock()
    skipped_bytes, skipped, to_send = 0, 0, []
    for rel, meta in sorted(files.items()):
        if _intact(dst_fs, join(dst_dir, rel), meta):
            skipped, skipped_bytes = skipped + 1, skipped_bytes + int(meta.get("size") or 0)
            if progress is not None:
                progress(Progress(skipped_bytes, total, rel))
        else:
            to_send.append((rel, meta))
    sent_of: dict[str, int] = {}  # bytes of each file sent so far (its current try)

    def locked_retry(n: int, exc: Exception, delay: float) -> None:
        if on_retry is not None:
            with lock:
                on_retry(n, exc, delay)

    def send(rel: str, meta: dict) -> None:
        def attempt() -> None:
            with lock:
                sent_of[rel] = 0

            def on_bytes(n: int) -> None:
                with lock:
                    sent_of[rel] += n
                    if progress is not None:
                        progress(Progress(skipped_bytes + sum(sent_of.values()), total, rel))

            size = meta.get("size")
            _send(src_fs, join(src_dir, rel), dst_fs, join(dst_dir, rel), meta.get("sha256"), on_bytes, size)

        retrying(f"{rel} -> {dst_label}", attempt, retries, base_delay, on_retry=locked_retry, sleep=sleep)

    protocols = dst_fs.protocol if isinstance(dst_fs.protocol, tuple) else (dst_fs.protocol,)
    workers = 1 if {"sftp", "ssh"} & set(protocols) else max(1, workers)
    if workers == 1 or len(to_send) < 2:
        for rel, meta in to_send:
            send(rel, meta)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy") as pool:
            futures = [pool.submit(send, rel, meta) for rel, meta in to_send]
        for future in futures:
            future.result()  # the first failure, after every file in flight has ended
    sent_bytes = sum(int(meta.get("size") or 0) for _, meta in to_send)
    sent = len(to_send)
    # the manifest last (as it is, byte for byte): its presence at the far end says the copy is complete

    def write_manifest() -> None:
        path = join(dst_dir, MANIFEST)
        with dst_fs.open(path + PART_SUFFIX, "wb") as f:
            f.write(manifest_bytes)
        if dst_fs.exists(path):
            dst_fs.rm(path)
        dst_fs.mv(path + PART_SUFFIX, path)

    retrying(f"{MANIFEST} -> {dst_label}", write_manifest, retries, base_delay, on_retry=on_retry, sleep=sleep)
    return CopyResult(files_sent=sent, files_skipped=skipped, bytes_sent=sent_bytes, bytes_total=total)
