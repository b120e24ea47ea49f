"""What a checkpoint holds and whether it is intact, without torch: the manifest (sha256 and size of
every file), its verification, and the index of a run's checkpoints that ``cockpit ckpt`` shows.

``engine.checkpoint`` writes checkpoints (and needs torch); this module only reads them, so the
cockpit can list, show and verify checkpoints without importing the torch stack.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.atomic import atomic_write_text
from engine.config import ConfigError, read_run_config
from engine.digest import file_sha256
from engine.eval_store import StoredEval, read_evals
from engine.protocol import Checkpoint, Eval, Event, Metrics, Upload
from engine.rundir import CHECKPOINT_PREFIX, RunPaths, checkpoint_step
from engine.safe_path import UnsafePath, inside, relative_name
from engine.upload_status import UploadCopy, UploadFold

MODEL_CONFIG = "config.json"  #: the model config (save_pretrained)
WEIGHTS = "model.safetensors"  #: the weights (save_pretrained, safe serialization, one shard)
TRAINING_STATE = "training_state.pt"  #: optimizer, scheduler, RNG states, data position, counters
MANIFEST = "manifest.json"  #: step + sha256 and size of every other file


def write_manifest(ckpt_dir: Path, step: int) -> dict:
    """Hash every file of ``ckpt_dir`` (fsyncing it) into ``manifest.json`` (written and fsynced
    too: a torn manifest after a power loss would make an intact checkpoint look tampered); returns
    the manifest."""
    files = {}
    for path in sorted(p for p in ckpt_dir.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(ckpt_dir).as_posix()
        files[rel] = {"sha256": file_sha256(path, fsync=True), "size": path.stat().st_size}
    manifest = {"step": step, "created": time.time(), "files": files}
    atomic_write_text(ckpt_dir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def check_manifest(manifest: object, where: str) -> dict:
    """``manifest`` (parsed JSON) when it is a manifest whose every entry is safe to use: a mapping
    with a ``files`` table of plain relative names (``engine.safe_path``: no ``..``, no absolute path)
    each with a sha256 and a size. ValueError naming ``where`` and the entry otherwise (UnsafePath
    for a name that would reach outside the checkpoint)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ValueError(f"{where}: unreadable (no 'files' table)")
    for rel, meta in manifest["files"].items():
        relative_name(rel, where)
        if rel == MANIFEST:
            raise UnsafePath(f"{where}: entry {rel!r} names the manifest itself")
        if not isinstance(meta, dict):
            raise ValueError(f"{where}: entry {rel!r} is {type(meta).__name__}, not {{sha256, size}}")
        sha, size = meta.get("sha256"), meta.get("size")
        if not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise ValueError(f"{where}: entry {rel!r} has no sha256 (64 hex digits)")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"{where}: entry {rel!r} has no size (a whole number of bytes)")
    return manifest


def parse_manifest(raw: bytes, where: str) -> dict:
    """The manifest in ``raw`` (the bytes of a ``manifest.json``), checked (:func:`check_manifest`);
    ValueError naming ``where`` when it is not JSON or not a safe manifest."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(f"{where}: unreadable ({exc})") from None
    return check_manifest(manifest, where)


def read_manifest(ckpt_dir: str | os.PathLike) -> dict:
    """The manifest of ``ckpt_dir``, checked (:func:`check_manifest`); raises ValueError naming the
    file when it is missing, unreadable or names a file outside the checkpoint."""
    path = Path(ckpt_dir) / MANIFEST
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: unreadable ({exc.strerror or exc})") from None
    return parse_manifest(raw, str(path))


def verify_checkpoint(
    ckpt_dir: str | os.PathLike, progress: Callable[[tuple[int, int, str]], None] | None = None
) -> list[str]:
    """Problems found comparing ``ckpt_dir`` with its manifest; [] when it is intact. ``progress``
    is given ``(files done, files in all, the file being checked)`` before each file."""
    ckpt_dir = Path(ckpt_dir)
    try:
        files = read_manifest(ckpt_dir)["files"]
    except ValueError as exc:
        return [str(exc)]
    problems = []
    for done, (rel, meta) in enumerate(files.items()):
        if progress is not None:
            progress((done, len(files), rel))
        try:
            path = inside(ckpt_dir, rel, str(ckpt_dir / MANIFEST))
        except UnsafePath as exc:
            problems.append(str(exc))
            continue
        if path.is_symlink():
            problems.append(f"{rel}: a symlink (a checkpoint holds plain files)")
        elif not path.is_file():
            problems.append(f"{rel}: missing")
        elif path.stat().st_size != meta.get("size"):
            problems.append(f"{rel}: size {path.stat().st_size}, manifest says {meta.get('size')}")
        elif file_sha256(path) != meta.get("sha256"):
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems


@dataclass(frozen=True)
class CheckpointRecord:
    """One checkpoint of a run, as ``cockpit ckpt list`` shows it."""

    step: int
    """The training step it was saved at."""
    directory: str
    """Its directory, relative to the run directory (``checkpoints/checkpoint-<step>``)."""
    reason: str | None
    """Why it was saved (the ``checkpoint`` event's reason: interval, stop, final, ...); None when no event says."""
    size_bytes: int
    """The bytes of all its files on disk."""
    train_loss: float | None
    """The training loss of the ``metrics`` event of its step, or of the last one before it."""
    eval_loss: float | None
    """The held-out loss of the ``eval`` event of its step; None when there was no eval then."""
    perplexity: float | None
    """The held-out perplexity of the ``eval`` event of its step."""
    written: float
    """When it was written (seconds since the epoch: the manifest's time, else the directory's)."""
    latest: bool
    """Whether ``checkpoints/latest`` names it."""
    best: bool
    """Whether its eval loss is the lowest of the run's checkpoints."""
    complete: bool
    """Whether its manifest is present (a checkpoint without one was not finished)."""
    stored_evals: int = 0
    """How many evaluations of it are stored in the run's ``evals/`` (``cockpit ckpt eval``, gates)."""
    stored_eval_loss: float | None = None
    """The loss of the newest stored evaluation; None when there is none."""
    stored_perplexity: float | None = None
    """The perplexity of the newest stored evaluation."""
    stored_eval_data: str | None = None
    """What the newest stored evaluation scored, in words (``held-out split``, ``file x.txt (sha256 ...)``)."""
    uploads: tuple[UploadCopy, ...] = ()
    """Its copy at each upload target, as the run's ``upload`` events tell it (``engine.upload_status``)."""


def dir_size(path: Path) -> int:
    """The bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _written(path: Path) -> float:
    try:
        return float(read_manifest(path)["created"])
    except (ValueError, KeyError, TypeError):
        return path.stat().st_mtime


def list_checkpoints(
    run_dir: str | os.PathLike,
    events: Iterable[Event],
    stored: list[StoredEval] | None = None,
    uploads: UploadFold | None = None,
) -> list[CheckpointRecord]:
    """The checkpoints under ``run_dir/checkpoints``, oldest first, described with the run's
    ``events`` (the typed events of its events file) and its ``stored`` evaluations (read from its
    ``evals/`` when None; unreadable ones are skipped). The ``upload`` events among ``events`` are
    folded into ``uploads`` (a new fold when None): a caller that keeps the fold sees the copies of
    checkpoints no longer on disk too, and one that follows a file passes each event once."""
    paths = RunPaths(Path(run_dir))
    uploads = UploadFold() if uploads is None else uploads
    if stored is None:
        stored, _ = read_evals(paths.root)
    stored_by_step: dict[int, list[StoredEval]] = {}
    for record in stored:
        if record.step is not None:
            stored_by_step.setdefault(record.step, []).append(record)
    reasons: dict[int, str | None] = {}
    losses: list[tuple[int, float | None]] = []
    evals: dict[int, Eval] = {}
    for event in events:
        if isinstance(event, Checkpoint) and event.action == "saved":
            reasons[event.step] = event.reason
        elif isinstance(event, Metrics):
            losses.append((event.step, event.loss))
        elif isinstance(event, Eval):
            evals[event.step] = event
        elif isinstance(event, Upload):
            uploads.apply(event)
    found = sorted(
        (step, p)
        for p in (paths.checkpoints.glob(f"{CHECKPOINT_PREFIX}*") if paths.checkpoints.is_dir() else ())
        if p.is_dir() and (step := checkpoint_step(p.name)) is not None
    )
    eval_losses = [evals[s].loss for s, _ in found if s in evals and evals[s].loss is not None]
    best_loss = min(eval_losses, default=None)
    latest = paths.latest_name()
    records = []
    for step, path in found:
        ev = evals.get(step)
        mine = stored_by_step.get(step, [])
        newest = max(mine, key=lambda r: r.created) if mine else None
        train_loss = None
        for at, loss in losses:
            if at <= step:
                train_loss = loss
        records.append(
            CheckpointRecord(
                step=step,
                directory=paths.relative(path),
                reason=reasons.get(step),
                size_bytes=dir_size(path),
                train_loss=train_loss,
                eval_loss=ev.loss if ev else None,
                perplexity=ev.perplexity if ev else None,
                written=_written(path),
                latest=path.name == latest,
                best=ev is not None and best_loss is not None and ev.loss == best_loss,
                complete=(path / MANIFEST).is_file(),
                stored_evals=len(mine),
                stored_eval_loss=newest.loss if newest else None,
                stored_perplexity=newest.perplexity if newest else None,
                stored_eval_data=newest.data.describe() if newest else None,
                uploads=uploads.copies(paths.relative(path)),
            )
        )
    return records


#: The keys of a checkpoint's ``config.json`` that summarise the model's shape.
_MODEL_SHAPE = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")


def config_summary(run_dir: str | os.PathLike | None, ckpt_dir: str | os.PathLike) -> dict:
    """The model's shape from the checkpoint's ``config.json`` and, when it belongs to a run, the
    run's name, preset, ``max_steps`` and ``seq_len`` (``cockpit ckpt show`` and the viewer's detail)."""
    summary: dict = {}
    try:
        model = json.loads((Path(ckpt_dir) / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        model = {}
    for key in _MODEL_SHAPE:
        if isinstance(model, dict) and key in model:
            summary[key] = model[key]
    if run_dir is not None:
        try:
            cfg = read_run_config(Path(run_dir))
        except ConfigError:
            return summary
        summary.update(run=cfg.name, preset=cfg.preset, max_steps=cfg.train.max_steps, seq_len=cfg.train.seq_len)
    return summary
