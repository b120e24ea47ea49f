"""`cockpit ckpt sync SRC_URL DIR [--watch SECONDS]`: pull a remote run's complete checkpoints into a
local run directory, verified, resumable; with ``--watch``, as they appear, until Ctrl-C. The work is
engine/sync.py's; this module is the command: its arguments, its lines and its summary."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from cockpit.cli.common import fail

#: Seconds between progress lines while one checkpoint is being pulled.
PROGRESS_EVERY_S = 2.0


@dataclass
class Totals:
    pulled: list[str] = field(default_factory=list)
    here: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    """Checkpoint name -> why it was not pulled (a manifest naming files outside it, a damaged file)."""
    files_sent: int = 0
    bytes_sent: int = 0

    def line(self, dest: Path) -> str:
        from engine import units

        refused = f", {len(self.refused)} refused" if self.refused else ""
        return (
            f"sync: {len(self.pulled)} checkpoint(s) pulled, {len(self.here)} already here{refused}; "
            f"{self.files_sent} file(s) sent ({units.nbytes(self.bytes_sent)}) into {dest}"
        )


def sync(
    src_url: str = typer.Argument(
        ...,
        metavar="SRC_URL",
        help="The remote run directory: sftp://[user@]host[:port]/abs/path/runs/RUN, "
        "s3://bucket/prefix/RUN, file:///path, ... (the host's key from ~/.ssh/config; S3 from the AWS_* environment).",
    ),
    dest: Path = typer.Argument(..., metavar="DIR", help="The local run directory to pull into (made when missing)."),
    watch: float | None = typer.Option(
        None, "--watch", help="Look again every SECONDS until Ctrl-C.", metavar="SECONDS"
    ),
) -> None:
    """Pull every complete checkpoint (manifest present, copy verified) of a run on another machine into
    DIR/checkpoints/, with its run.yaml and events.jsonl; an interrupted pull resumes without sending again
    what arrived; with --watch, keep pulling new checkpoints as the run saves them, until Ctrl-C."""
    from engine.transfer import redact

    if watch is not None and not watch > 0:
        fail(f"--watch {watch:g}: give the seconds between looks, more than 0")
    if dest.exists() and not dest.is_dir():
        fail(f"{dest}: is a file; give a directory to pull the run into")
    if "://" not in src_url:
        src_url = Path(src_url).resolve().as_uri()
    shown = redact(src_url)
    fs, root = _open_source(src_url, shown)
    totals = Totals()
    # `kill` ends it as Ctrl-C does: with the summary
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if watch is not None else False
    said = None  # the last problem reported, so that a long outage is one warning, not one per look
    try:
        while True:
            error = None
            if fs is None:
                fs, error = _reconnect(src_url)
                if fs is not None and said is not None:
                    typer.echo(f"{shown}: reached again")
                    said = None
            if fs is not None:
                try:
                    _one_pass(fs, root, dest, totals)
                except Exception as exc:  # the link dropped, the server went away: said, tried again next look
                    fs, error = None, exc
            if error is not None:
                reason = _reason(error, src_url, dest)
                if watch is None:
                    typer.echo(totals.line(dest))
                    fail(f"{shown}: {reason}", code=2 if _local_problem(error, dest) else 1)
                if reason != said:
                    typer.echo(f"warning: {shown}: {reason}; trying again every {watch:g} s", err=True)
                said = reason
            if watch is None:
                break
            time.sleep(watch)
    except KeyboardInterrupt:
        typer.echo("interrupted")
    finally:
        if previous is not False:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    typer.echo(totals.line(dest))
    if totals.refused:
        fail(f"{len(totals.refused)} checkpoint(s) refused: {', '.join(sorted(totals.refused))} (the reasons above)")


def _local_problem(exc: BaseException | None, dest: Path) -> OSError | None:
    """The error of this machine's side that ``exc`` is or wraps (a full disk or a read-only
    filesystem: sync writes only here; no permission on a file under ``dest``), or None when it came
    from the source."""
    import errno

    while exc is not None:
        if isinstance(exc, OSError):
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                return exc
            if exc.errno in (errno.EACCES, errno.EPERM) and _under(exc.filename, dest):
                return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _under(filename: object, dest: Path) -> bool:
    if not isinstance(filename, str):
        return False
    path, root = Path(filename).resolve(), dest.resolve()
    return path == root or root in path.parents


def _reason(exc: BaseException, url: str, dest: Path | None = None) -> str:
    """What went wrong, blaming the side it happened on: this machine's disk under ``dest`` (when
    something was being written there), or the source."""
    import errno

    from cockpit.checks.upload import explain
    from engine.transfer import SourceMismatch

    local = _local_problem(exc, dest) if dest is not None else None
    if local is not None:
        where = local.filename or dest
        if local.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on the disk of {dest} (writing {where}); free some space there, or pull into another directory"
        if local.errno == errno.EROFS:
            return f"{dest} is on a read-only filesystem (writing {where}); pull into a writable directory"
        return f"permission denied writing {where}; pull into a directory you can write, or fix its permissions"
    if isinstance(exc, SourceMismatch):
        return f"{exc}; check the source with `cockpit ckpt verify` on its machine"
    detail, fix = explain(exc, url)
    return f"{detail}; {fix}"


def _open_source(url: str, shown: str) -> tuple[Any, str]:
    """The source's filesystem and path; a source that cannot be reached, or is not a run directory,
    ends the command (exit 2) saying why."""
    from engine.rundir import CHECKPOINTS, RunPaths
    from engine.transfer import join, open_url

    try:
        fs, root = open_url(url, skip_instance_cache=True)
        if not fs.isdir(root):
            fail(f"{shown}: no such directory on {urlsplit(url).hostname or 'this machine'}")
        run_yaml = RunPaths(Path(root)).run_yaml.name
        if not fs.exists(join(root, run_yaml)) and not fs.isdir(join(root, CHECKPOINTS)):
            fail(
                f"{shown}: not a run directory (neither {run_yaml} nor {CHECKPOINTS}/ there); give the run's directory"
            )
    except typer.Exit:
        raise
    except Exception as exc:
        fail(f"{shown}: {_reason(exc, url)}")
    return fs, root


def _reconnect(url: str) -> tuple[Any, Exception | None]:
    """A fresh connection to the source: ``(fs, None)``, or ``(None, why not)``."""
    from engine.transfer import open_url

    try:
        return open_url(url, skip_instance_cache=True)[0], None
    except Exception as exc:
        return None, exc


def _one_pass(fs: Any, root: str, dest: Path, totals: Totals) -> None:
    from engine import units
    from engine.sync import mark_latest, pull_checkpoint, pull_run_files, remote_checkpoints
    from engine.transfer import SourceMismatch

    pull_run_files(fs, root, dest)
    for step in remote_checkpoints(fs, root):
        name = f"checkpoint-{step}"
        last = [time.monotonic()]

        def progress(p, name=name, last=last) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                typer.echo(f"{name}: {units.nbytes(p.bytes_done)} of {units.nbytes(p.bytes_total)} ({p.file})")

        try:
            got = pull_checkpoint(fs, root, dest, step, progress=progress)
        except (ValueError, SourceMismatch) as exc:  # this checkpoint is bad at the source: the others still come
            why = str(exc)
            if totals.refused.get(name) != why:
                typer.echo(f"{name}: refused: {why}; not pulled", err=True)
            totals.refused[name] = why
            continue
        totals.refused.pop(name, None)
        if got.state == "vanished":
            typer.echo(f"{name}: gone at the source (pruned) before it was pulled; skipped")
            continue
        if got.state == "here":  # each look compares the manifests: a checkpoint saved again is pulled again
            if name not in totals.here and name not in totals.pulled:
                totals.here.append(name)
                typer.echo(f"{name}: already here ({got.files_skipped} files, {units.nbytes(got.bytes_total)})")
        else:
            totals.pulled.append(name)
            totals.files_sent += got.files_sent
            totals.bytes_sent += got.bytes_sent
            typer.echo(
                f"{name}: {got.state}, verified: {got.files_sent} file(s) sent ({units.nbytes(got.bytes_sent)}), "
                f"{got.files_skipped} already here"
            )
        mark_latest(dest, step)
