"""Plain text files: what a document is (``--text-unit``, ``data.text_unit``) and the one reader
of text documents for ``scan``, ``cockpit data prepare``, ``cockpit check`` and the engine.

Text units: ``line`` (every non-empty line is a document), ``paragraph`` (blocks separated by blank
lines, newlines inside a block kept: a book or a play keeps its speaker names and stage directions
inside the speech they belong to), ``file`` (the whole file is one document) and ``auto``, which
reads the head of the file (``AUTO_LINES`` lines): it is ``paragraph`` when blank lines are at
least ``AUTO_MIN_BLANK_SHARE`` of the lines, at least ``AUTO_MIN_MULTILINE_BLOCKS`` blank-line
separated blocks span several lines and they are at least ``AUTO_MIN_MULTILINE_SHARE`` of the
blocks; else ``line`` (a one-document-per-line corpus has no blank lines, a stray one, or blank
lines between single lines). A text sample is one document: its ``line`` is where it starts.
Torch-free and numpy-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

from engine.data.lines import MAX_LINE_BYTES, FormatError, LongLine, Problem, Sample, read_lines, utf8_problem

#: What a document of a plain text file is (see the module docstring).
TextUnit = Literal["auto", "line", "paragraph", "file"]
TEXT_UNITS: tuple[str, ...] = get_args(TextUnit)
#: Lines (at most; and at most ``AUTO_BYTES``) of a file's head that ``auto`` decides on.
AUTO_LINES = 2_000
AUTO_BYTES = 1 << 20
#: ``auto`` is ``paragraph`` when blank lines are at least this share of the head's lines...
AUTO_MIN_BLANK_SHARE = 0.05
#: ... at least this many of its blank-line separated blocks have two lines or more...
AUTO_MIN_MULTILINE_BLOCKS = 3
#: ... and they are at least this share of the blocks.
AUTO_MIN_MULTILINE_SHARE = 0.25


@dataclass(frozen=True)
class UnitChoice:
    unit: str
    """``line``, ``paragraph`` or ``file``."""
    reason: str
    """Why, for ``auto`` (e.g. ``auto: 40 of the 52 blank-line separated blocks ... span several
    lines``); ``as set`` otherwise."""

    def describe(self) -> str:
        """``one document per blank-line separated paragraph (auto: ...)``: how the file is cut, for reports."""
        what = {
            "line": "one document per line",
            "paragraph": "one document per blank-line separated paragraph",
            "file": "the whole file is one document",
        }[self.unit]
        return f"{what} ({self.reason})"


def choose_text_unit(
    path: str | os.PathLike, unit: str = "auto", max_line_bytes: int = MAX_LINE_BYTES
) -> UnitChoice:
    """The document unit of the text file at ``path``: ``unit`` itself unless it is ``auto``, which
    reads the file's head and decides by the rule of the module docstring (a line over
    ``max_line_bytes`` counts as a non-blank line, unread). FormatError for an unknown unit or a
    file that cannot be opened."""
    if unit not in TEXT_UNITS:
        raise FormatError(f"text unit {unit!r}: expected one of {', '.join(TEXT_UNITS)}")
    if unit != "auto":
        return UnitChoice(unit, "as set")
    lines = blank = blocks = multiline = 0
    current = 0  # lines of the block being read
    read = 0
    for _, raw in read_lines(path, max_line_bytes):
        lines += 1
        read += raw.nbytes if isinstance(raw, LongLine) else len(raw)
        if isinstance(raw, LongLine) or raw.strip():
            current += 1
        else:
            blank += 1
            if current:
                blocks += 1
                multiline += current > 1
            current = 0
        if lines >= AUTO_LINES or read >= AUTO_BYTES:
            break
    if current:
        blocks += 1
        multiline += current > 1
    head = f"the first {lines:,} lines"
    if not blank:
        return UnitChoice("line", f"auto: no blank line in {head}")
    if blank < AUTO_MIN_BLANK_SHARE * lines:
        return UnitChoice("line", f"auto: only {blank:,} blank line(s) in {head}")
    several = multiline >= AUTO_MIN_MULTILINE_BLOCKS and multiline >= AUTO_MIN_MULTILINE_SHARE * blocks
    return UnitChoice(
        "paragraph" if several else "line",
        f"auto: {multiline:,} of the {blocks:,} blank-line separated blocks in {head} span several lines",
    )


def iter_text_documents(
    path: str | os.PathLike, unit: str, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Sample]:
    """The documents of a plain text file cut by ``unit`` (``line``, ``paragraph`` or ``file``) as
    ``text`` samples: the one reader of text for ``scan``, ``cockpit data prepare`` and the engine.

    ``line``: a sample per line (an empty one is an ``empty`` warning). ``paragraph``: a sample per
    block of non-blank lines, joined by newlines; blank lines only separate. ``file``: one sample of
    every line. An undecodable line makes its document unusable (a ``utf8`` error at that line), and
    so does a line over ``max_line_bytes`` (a ``too_long`` error; it is never read whole)."""
    if unit not in ("line", "paragraph", "file"):
        raise FormatError(f"text unit {unit!r}: expected line, paragraph or file")
    name = str(path)
    start = 0
    lines: list[str] = []
    problems: list[Problem] = []
    nbytes = nlines = 0
    after_blank = False

    def document() -> Sample:
        first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
        last = next((i for i in range(len(lines), first, -1) if lines[i - 1].strip()), first)
        text = "\n".join(lines[first:last])  # without the blank lines around it (unit file)
        if problems:
            return Sample(start, None, list(problems), None, nbytes, nlines)
        found = [] if text.strip() else [Problem(name, start, "empty sample", "empty")]
        return Sample(start, text, found, text, nbytes, nlines)

    for lineno, raw in read_lines(path, max_line_bytes):
        if isinstance(raw, LongLine):
            line, bad, size = None, raw.problem(name, lineno), raw.nbytes
        else:
            size = len(raw)
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                line, bad = None, utf8_problem(name, lineno, exc)
            else:
                bad = None
        if unit == "line":
            if bad is not None:
                yield Sample(lineno, None, [bad], None, size)
            else:
                yield Sample(
                    lineno,
                    line,
                    [] if line.strip() else [Problem(name, lineno, "empty sample", "empty")],
                    line,
                    size,
                )
            continue
        blank = line is not None and not line.strip()
        if unit == "paragraph" and not blank and after_blank and start:  # a new block: the last one is done
            yield document()
            lines.clear()
            problems.clear()
            nbytes = nlines = start = 0
        nbytes += size
        nlines += 1
        after_blank = blank
        if blank and unit == "paragraph":
            continue
        if not start and (not blank or unit == "file"):
            start = lineno
        if bad is not None:
            problems.append(bad)
        else:
            lines.append(line)
    if unit != "line" and (start or nlines):
        yield document() if start else Sample(1, "", [Problem(name, 1, "empty sample", "empty")], "", nbytes, nlines)
