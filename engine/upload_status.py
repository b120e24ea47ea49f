"""Where each checkpoint's remote copies stand, as the run's ``upload`` events tell it. Torch-free, no I/O.

The one fold of :class:`engine.protocol.Upload` events: :class:`UploadFold` keeps, per checkpoint
directory (``checkpoints/checkpoint-<step>``, relative to the run directory) and per target (the
redacted URL), the latest :class:`UploadCopy`. Progress events arrive about once a second per
transfer; the fold keeps only the latest, so a long upload costs one entry. Every reader (the
checkpoint index behind ``ckpt list|status`` and the viewer, the dashboard's ``RunState``,
``cockpit runs``) folds with it, and :func:`upload_cell` / :func:`upload_count` are the one wording
of a checkpoint's or a run's uploads in a table cell.

The engine's queue in ``uploads/`` is its own bookkeeping; the events are what every view reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine import units
from engine.protocol import Event, Upload

#: The state of one copy: waiting to start, being sent, sent and verified at the far end, given up on (for now).
QUEUED, UPLOADING, DONE, FAILED = "queued", "uploading", "done", "failed"

#: The state each ``upload`` event's action leaves a copy in.
_STATE_OF_ACTION = {"queued": QUEUED, "progress": UPLOADING, "done": DONE, "failed": FAILED}


@dataclass(frozen=True)
class UploadCopy:
    """One checkpoint's copy at one target."""

    target: str
    """The destination URL, credentials removed (the event's ``target``)."""
    state: str
    """queued | uploading | done | failed."""
    bytes_done: int | None = None
    """Bytes sent so far (the latest event that said)."""
    bytes_total: int | None = None
    """Bytes to send."""
    error: str | None = None
    """Why it failed, while it is failed."""
    ts: float | None = None
    """When the latest event about it was written (unix seconds)."""

    @property
    def fraction(self) -> float | None:
        """How much of it is sent, 0..1; 1 when done; None when the total is unknown."""
        if self.state == DONE:
            return 1.0
        if not self.bytes_total or self.bytes_done is None:
            return None
        return min(1.0, max(0.0, self.bytes_done / self.bytes_total))


def _next(old: UploadCopy | None, e: Upload) -> UploadCopy:
    state = _STATE_OF_ACTION[e.action]
    total = e.bytes_total if e.bytes_total is not None else (old.bytes_total if old else None)
    done = e.bytes_done if e.bytes_done is not None else (old.bytes_done if old and state != QUEUED else None)
    if state == DONE and total is not None:
        done = total
    if state == QUEUED and e.bytes_done is None:
        done = 0 if total is not None else None
    error = (e.error or "unknown error") if state == FAILED else None
    return UploadCopy(target=e.target, state=state, bytes_done=done, bytes_total=total, error=error, ts=e.ts)


class UploadFold:
    """The latest state of every checkpoint copy: ``apply`` one ``upload`` event, ``copies(path)`` reads."""

    def __init__(self) -> None:
        #: checkpoint directory -> target -> its copy, each in the order first seen.
        self._copies: dict[str, dict[str, UploadCopy]] = {}

    def apply(self, event: Upload) -> UploadCopy:
        """Fold one ``upload`` event; returns the copy it is about, as it now stands."""
        by_target = self._copies.setdefault(event.path, {})
        copy = _next(by_target.get(event.target), event)
        by_target[event.target] = copy
        return copy

    def apply_all(self, events: Iterable[Event]) -> UploadFold:
        """Fold the ``upload`` events among ``events`` (others are skipped); returns itself."""
        for event in events:
            if isinstance(event, Upload):
                self.apply(event)
        return self

    def copies(self, path: str) -> tuple[UploadCopy, ...]:
        """The copies of the checkpoint in ``path`` (relative to the run directory), by target first seen."""
        return tuple(self._copies.get(path, {}).values())

    def paths(self) -> tuple[str, ...]:
        """Every checkpoint directory an ``upload`` event named, in the order first seen."""
        return tuple(self._copies)

    def all_copies(self) -> tuple[UploadCopy, ...]:
        return tuple(c for by_target in self._copies.values() for c in by_target.values())

    def __bool__(self) -> bool:
        return bool(self._copies)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UploadFold) and other._copies == self._copies

    __hash__ = None  # type: ignore[assignment]  # mutable


def _percent(copies: tuple[UploadCopy, ...]) -> float | None:
    """Bytes sent over bytes to send, over ``copies`` whose total is known, in percent."""
    known = [c for c in copies if c.bytes_total]
    total = sum(c.bytes_total or 0 for c in known)
    if not total:
        return None
    return 100.0 * sum((c.fraction or 0.0) * (c.bytes_total or 0) for c in known) / total


def upload_cell(copies: tuple[UploadCopy, ...], wide: bool = False) -> tuple[str, str]:
    """A checkpoint's uploads in a table cell, and its style: ``—`` (none), ``✗ failed``, ``↑ 45%``
    (how far the transfers under way are; ``wide``: with the bytes they sent), ``queued``, ``1/2 ✓``
    (some targets done, the others waiting), ``2/2 ✓`` (every target done and verified). A failure
    shows first: it is what a person must act on."""
    if not copies:
        return units.DASH, "dim"
    states = [c.state for c in copies]
    if FAILED in states:
        return "✗ failed", "bold red"
    if UPLOADING in states:
        pct = _percent(tuple(c for c in copies if c.state == UPLOADING))
        text = "↑ " + (units.percent(pct) if pct is not None else "…")
        if wide:
            sent = sum(c.bytes_done or 0 for c in copies if c.state == UPLOADING)
            text += f" {units.nbytes(sent)}"
        return text, "yellow"
    done = states.count(DONE)
    if QUEUED in states:
        return ("queued" if not done else f"{done}/{len(copies)} ✓"), "dim"
    return f"{done}/{len(copies)} ✓", "green"


@dataclass(frozen=True)
class UploadCount:
    """A run's checkpoint copies by state (``cockpit runs``)."""

    copies: int = 0
    done: int = 0
    uploading: int = 0
    queued: int = 0
    failed: int = 0

    def text(self) -> str:
        """``3/3 uploaded``, ``1 failed · 2/3 uploaded``; ``—`` without uploads."""
        if not self.copies:
            return units.DASH
        done = f"{self.done}/{self.copies} uploaded"
        return f"{self.failed} failed · {done}" if self.failed else done


def upload_count(fold: UploadFold) -> UploadCount:
    """How many of the run's checkpoint copies are in each state."""
    states = [c.state for c in fold.all_copies()]
    return UploadCount(
        copies=len(states),
        done=states.count(DONE),
        uploading=states.count(UPLOADING),
        queued=states.count(QUEUED),
        failed=states.count(FAILED),
    )
