"""Reading a data file line by line, and the one wording of what can be wrong with it.

Every reader of training data (``cockpit data validate|stats|prepare``, ``cockpit check``, the
engine's ``engine.data.text``) opens files through ``read_lines`` and words faults with the helpers
here, so a fault reads the same wherever it is found::

    data.jsonl: not found
    data.jsonl: is a directory, not a data file
    data.jsonl:5: not UTF-8 (invalid start byte at byte 12)
    data.jsonl:3: invalid JSON (Expecting ',' delimiter at column 17)
    data.txt:1: line too long (200 MiB; the limit is 1,048,576 bytes): split it into shorter lines, or ...

A line longer than ``max_line_bytes`` (``MAX_LINE_BYTES`` unless set: ``data.max_line_bytes``,
``--max-line-bytes``) is never held in memory: ``read_lines`` reads it in bounded pieces up to the
next newline and yields a ``LongLine`` (its size) in its place, which the readers report as a
``too_long`` error at that line.

JSON columns count from 1 (as ``json`` reports them), UTF-8 byte offsets within the line from 0.
A problem is a ``Problem(path, line, message, kind)``; kinds in ``ERROR_KINDS`` make a record
unusable, those in ``WARNING_KINDS`` leave it usable but deserve a look; ``missing`` is a missing
file of a shard directory. Torch-free and numpy-free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.units import nbytes

#: Problem kinds that make a record unusable.
ERROR_KINDS: tuple[str, ...] = (
    "utf8",
    "json",
    "not_object",
    "missing_key",
    "type",
    "value",
    "missing",
    "too_long",
)
#: Problem kinds that leave a record usable.
WARNING_KINDS: tuple[str, ...] = ("empty", "empty_field", "blank", "duplicate")
#: The longest line (bytes, its newline not counted) a data file may have unless a limit is given.
MAX_LINE_BYTES = 1 << 20
#: Bytes read at a time past the limit of an over-long line, up to its newline.
SKIP_CHUNK = 64 << 10


class FormatError(ValueError):
    """A data path cannot be read at all (missing, a directory, an unknown format)."""


# --- problems and samples ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    """The file, as given (shown as is)."""
    line: int
    """1-based line number; 0 for a problem of the whole file or directory."""
    message: str
    """What is wrong, e.g. ``missing key 'output' (instruct)``."""
    kind: str = "value"
    """One of ERROR_KINDS or WARNING_KINDS; ``count`` and tests key on it."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.kind in ERROR_KINDS

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message, "kind": self.kind}


@dataclass(slots=True)
class Sample:
    """One record of a data file (a JSONL line, a text document), read and checked."""

    line: int
    """1-based line number (of a text document: its first line)."""
    text: str | None
    """The sample's text (``sample_text``), or None when the line is blank or has an error."""
    problems: list[Problem]
    record: Any = None
    """The parsed JSON value (JSONL) or the line (text); None when it could not be read."""
    nbytes: int = 0
    """Bytes of the line, newline included (of a text document: of its lines and the blank lines
    after it)."""
    nlines: int = 1
    """Lines of the file the sample spans (a text document of several lines, the blank lines after it)."""

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


def json_error(exc: json.JSONDecodeError) -> str:
    """``invalid JSON (Expecting ',' delimiter at column 17)``: the decoder's message and 1-based column."""
    return f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"


def utf8_error(exc: UnicodeDecodeError) -> str:
    """``not UTF-8 (invalid start byte at byte 12)``: the reason and the 0-based byte offset."""
    return f"not UTF-8 ({exc.reason} at byte {exc.start})"


def utf8_problem(name: str, lineno: int, exc: UnicodeDecodeError) -> Problem:
    return Problem(name, lineno, utf8_error(exc), "utf8")


def unreadable(path: str | os.PathLike) -> str | None:
    """Why the data file at ``path`` cannot be opened (``path: not found``, ``path: is a directory,
    not a data file``), or None when it is a file."""
    path = Path(path)
    if path.is_file():
        return None
    return f"{path}: {'is a directory, not a data file' if path.is_dir() else 'not found'}"


def open_data(path: str | os.PathLike):
    """The data file at ``path`` opened for reading bytes; FormatError worded by ``unreadable``."""
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError):
        raise FormatError(unreadable(path) or f"{path}: cannot be opened") from None


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line over the limit, read past but not kept (``read_lines`` yields it for the line)."""

    nbytes: int
    """Bytes of the line, newline included."""
    size: int
    """Bytes of the line without its newline."""
    limit: int
    """The limit it is over (``max_line_bytes``)."""

    def problem(self, name: str, lineno: int) -> Problem:
        return Problem(name, lineno, too_long_error(self.size, self.limit), "too_long")


def too_long_error(size: int, limit: int) -> str:
    """``line too long (200 MiB; the limit is 1,048,576 bytes): split it ...``: the size, the limit
    and what to do."""
    return (
        f"line too long ({nbytes(size)}; the limit is {limit:,} bytes): split it into shorter lines, "
        f"or raise the limit (--max-line-bytes, data.max_line_bytes)"
    )


def read_lines(
    path: str | os.PathLike, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes | LongLine]]:
    """``(line number from 1, raw bytes with the newline)`` of every line of the file at ``path``;
    FormatError (``unreadable``) when it cannot be opened. A line of more than ``max_line_bytes``
    bytes (without its newline) comes as a ``LongLine`` instead: at most ``max_line_bytes + 1`` of
    its bytes are read at once, the rest in ``SKIP_CHUNK`` pieces that are dropped."""
    if max_line_bytes < 1:
        raise ValueError(f"max_line_bytes must be positive, got {max_line_bytes}")
    with open_data(path) as f:
        lineno = 0
        while raw := f.readline(max_line_bytes + 1):
            lineno += 1
            if len(raw) <= max_line_bytes or raw.endswith(b"\n"):
                yield lineno, raw
                continue
            total, last = len(raw), raw[-1:]
            del raw
            while last != b"\n" and (piece := f.readline(SKIP_CHUNK)):
                total += len(piece)
                last = piece[-1:]
            newline = 1 if last == b"\n" else 0
            yield lineno, LongLine(total, total - newline, max_line_bytes)


def first_long_line(path: str | os.PathLike, max_line_bytes: int = MAX_LINE_BYTES) -> Problem | None:
    """The first line of the file at ``path`` over ``max_line_bytes``, as a ``too_long`` problem,
    or None: for code that hands the whole file to a reader that would hold a line whole (the
    tokenizer trainer)."""
    for lineno, raw in read_lines(path, max_line_bytes):
        if isinstance(raw, LongLine):
            return raw.problem(str(path), lineno)
    return None
