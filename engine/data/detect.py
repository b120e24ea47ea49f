"""Detecting the format of a data file (or a shard directory) from its first records.

Torch-free and numpy-free.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.lines import MAX_LINE_BYTES, LongLine, open_data, read_lines
from engine.data.manifest import MANIFEST
from engine.data.records import FORMATS, JSONL_FORMATS, JSONL_SUFFIXES, SCHEMAS

#: Keys that point at a format when a record does not have all of its required keys.
_HINT_KEYS: tuple[tuple[str, str], ...] = (
    ("messages", "chat"),
    ("tool_calls", "tool"),
    ("tool_results", "tool"),
    ("user_message", "tool"),
    ("assistant_response", "tool"),
    ("teacher_text", "kd"),
    ("reasoning", "reasoning"),
    ("instruction", "instruct"),
    ("output", "instruct"),
    ("question", "reasoning"),
    ("answer", "reasoning"),
    ("prompt", "kd"),
    ("text", "pretrain"),
)
#: Records read by ``detect_format``.
DETECT_RECORDS = 200
#: Bytes at the head of a file that must hold no NUL byte for it to be text.
BINARY_SNIFF_BYTES = 64 << 10


@dataclass(frozen=True)
class Detection:
    format: str | None
    """The detected format, or None when nothing matched."""
    reason: str
    """How it was decided, e.g. ``keys instruction, output in 50 of the first 50 records``."""
    binary: bool = False
    """The file is not text at all (NUL bytes, or no UTF-8 line)."""
    too_long: bool = False
    """Every line read was over the line limit; ``reason`` is the first one's problem
    (``file:line: line too long ...``)."""

    def error(self, path: str | os.PathLike) -> str:
        """The one-line error for a file whose format was not detected, naming it."""
        if self.too_long:
            return self.reason
        if self.binary:
            return f"{path}: not a text file ({self.reason}); training data is UTF-8 text or JSONL"
        return f"{path}: unknown format ({self.reason}); name it with --format"


def classify_record(record: Any) -> str | None:
    """The JSONL format a parsed record belongs to: the first whose required keys it has all of,
    else the first that one of its keys points at; None for anything else."""
    if not isinstance(record, dict):
        return None
    for fmt in ("chat", "tool", "reasoning", "kd", "instruct", "pretrain"):
        if all(k in record for k, (_, required) in SCHEMAS[fmt].items() if required):
            return fmt
    return next((fmt for key, fmt in _HINT_KEYS if key in record), None)


def _has_nul(path: Path) -> bool:
    with open_data(path) as f:
        return b"\x00" in f.read(BINARY_SNIFF_BYTES)


def detect_format(
    path: str | os.PathLike, max_records: int = DETECT_RECORDS, max_line_bytes: int = MAX_LINE_BYTES
) -> Detection:
    """The format of a file or shard directory, from its first ``max_records`` readable records.

    A directory is ``shards``. A file with a NUL byte in its head is binary (no format). A file is JSONL when its suffix says so (``.jsonl``, ``.ndjson``) or
    most of its first non-blank lines are JSON objects, else ``text``; a JSONL file's format is the
    one most of its first records' keys match (``classify_record``). Lines over ``max_line_bytes``
    are passed over unread; when no other line was read, there is no format and the reason is the
    first one's ``too_long`` problem. Raises FormatError when the path does not exist."""
    path = Path(path)
    if path.is_dir():
        if (path / MANIFEST).is_file():
            return Detection("shards", f"directory with {MANIFEST}")
        return Detection("shards", f"directory without {MANIFEST}")
    if _has_nul(path):
        return Detection(None, f"binary: NUL bytes in its first {BINARY_SNIFF_BYTES >> 10} KB", binary=True)
    votes: dict[str, int] = {}
    keys: dict[str, set[str]] = {}
    objects = lines = undecodable = 0
    long_line, long_lines = None, 0
    for lineno, raw in read_lines(path, max_line_bytes):
        if isinstance(raw, LongLine):
            long_line = long_line or raw.problem(str(path), lineno)
            long_lines += 1
            if long_lines >= max_records:
                break
            continue
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            undecodable += 1
            if undecodable >= max_records:
                break
            continue
        if not line:
            continue
        lines += 1
        record = None
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                pass
        if isinstance(record, dict):
            objects += 1
            fmt = classify_record(record)
            if fmt is not None:
                votes[fmt] = votes.get(fmt, 0) + 1
                keys.setdefault(fmt, set()).update(k for k in record if k in SCHEMAS[fmt])
        if lines >= max_records:
            break
    if lines == 0 and long_line is not None and not undecodable:
        return Detection(None, str(long_line), too_long=True)
    if lines == 0:
        return Detection(
            None,
            f"{undecodable} line(s) read, none of them UTF-8 text" if undecodable else "no non-blank line",
            binary=bool(undecodable),
        )
    if path.suffix.lower() not in JSONL_SUFFIXES and objects * 2 <= lines:
        return Detection("text", f"{lines - objects} of the first {lines} lines are not JSON objects")
    if not votes:
        return Detection(
            None,
            f"none of the first {lines} lines is a record of a known format (keys of "
            + "; ".join(f"{f}: {', '.join(SCHEMAS[f])}" for f in JSONL_FORMATS)
            + ")",
        )
    best = max(votes, key=lambda f: (votes[f], -FORMATS.index(f)))
    shown = ", ".join(k for k in SCHEMAS[best] if k in keys[best])
    return Detection(best, f"keys {shown} in {votes[best]} of the first {lines} records")
