"""The data step's work off the UI: scan files, inspect them (preview and stats), prepare shards.

Each function runs in a worker thread of the data step and reports through ``news(kind, data)``
(the screen turns it into a message): ``scan`` (live counts, at most ``PROGRESS_HZ`` a second),
``scanned``, ``inspected``, ``failed``; ``prepare`` (progress), ``prepared``, ``unprepared``. The
preparation itself runs in a child process (``cockpit.offload``), so it never holds the app's
interpreter lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.offload import Cancelled

#: Progress messages a worker posts per second, at most.
PROGRESS_HZ = 10
#: Records shown in the preview.
PREVIEW_RECORDS = 3

News = Callable[[str, Any], None]


class Throttle:
    """``due()`` is true at most ``hz`` times a second (high-rate progress collapsed)."""

    def __init__(self, hz: float = PROGRESS_HZ) -> None:
        self.interval = 1.0 / hz
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


def scan_files(paths: list[Path], unit: str, news: News, wanted: Callable[[], bool]) -> list | None:
    """Validate ``paths`` in turn with the scanner of ``cockpit data validate``; their summaries,
    or None when ``wanted()`` turned false (another choice) or a file cannot be read."""
    from engine.data import formats

    throttle = Throttle()
    summaries: list = []

    def progress(summary) -> None:
        if not wanted():
            raise Cancelled
        if throttle.due():
            done = [*summaries, summary]  # live counts over the files read so far
            news("scan", tuple(sum(getattr(s, key) for s in done) for key in ("records", "invalid", "lines")))

    try:
        for path in paths:
            summaries.append(formats.scan(path, unit=unit, progress=progress))
    except Cancelled:
        return None
    except formats.FormatError as exc:
        news("failed", str(exc))
        return None
    news("scanned", summaries)
    return summaries


def inspect_files(paths: list[Path], unit: str, fmt: str | None, tokenizer_dir: Path | None, news: News) -> None:
    """Preview (of the first file) and stats (of all) of ``paths``; ``fmt`` None detects each file's."""
    from engine.data import formats
    from engine.data.prepare import PrepareError, preview
    from engine.data.stats import data_stats
    from engine.data.tokenizer import read_tokenizer

    try:
        samples = preview(paths[:1], tokenizer_dir, PREVIEW_RECORDS, fmt, unit)
        tok = read_tokenizer(tokenizer_dir) if tokenizer_dir is not None else None
        stats = data_stats(paths, fmt, unit, tok)
    except (formats.FormatError, PrepareError, ValueError) as exc:
        news("failed", str(exc))
        return
    news("inspected", (samples, stats))


def prepare_files(
    inputs: list[Path],
    tokenizer_dir: Path,
    out: Path,
    seq_len: int,
    text_unit: str,
    label: str,
    news: News,
    cancel: threading.Event,
) -> None:
    """``cockpit data prepare`` of ``inputs`` into ``out`` (malformed records dropped: the scan listed
    them) in a child process; ``cancel`` ends it."""
    from cockpit.offload import ChildDied, run_in_child
    from engine.data.prepare import PrepareError, PrepareSettings, prepare

    settings = PrepareSettings(seq_len=seq_len, text_unit=text_unit, skip_invalid=True)
    throttle = Throttle()

    def progress(p) -> None:
        if throttle.due():
            news("prepare", p)

    try:
        manifest = run_in_child(prepare, (inputs, tokenizer_dir, out, settings), progress, cancel)
    except Cancelled:
        news("unprepared", f"cancelled: the finished shards in {out} are kept; p resumes")
        return
    except (PrepareError, OSError, ValueError, ChildDied) as exc:
        news("unprepared", f"error: prepare {label}: {exc}")
        return
    news("prepared", (out, manifest))
