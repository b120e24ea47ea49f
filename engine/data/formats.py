"""Dataset formats: detect, validate and summarise training data, streaming line by line.

Torch-free and numpy-free (``json``, ``hashlib`` and the standard library only), so the cockpit's
readiness check and ``cockpit data validate|stats`` can read a file of any size without importing
the engine's training stack. Nothing here loads a whole file: lines are read one at a time.

Formats (``FORMATS``):

``text``       plain UTF-8; its document unit (``TEXT_UNITS``) is a line, a blank-line separated
               paragraph or the whole file (``choose_text_unit`` picks one for ``auto``)
``pretrain``   JSONL, ``{"text": str}``
``instruct``   JSONL, ``{"instruction": str, "input": str (optional), "output": str}``
``chat``       JSONL, ``{"messages": [{"role": system|user|assistant|tool, "content": str}, ...]}``
``tool``       JSONL, ``{"user_message": str, "tool_calls": [object, ...], "tool_results": [...],
               "assistant_response": str}``
``reasoning``  JSONL, ``{"question": str, "reasoning": str, "answer": str}``
``kd``         JSONL (distillation), ``{"prompt": str, "teacher_text": str, "metadata": object (optional)}``
``shards``     a directory of prepared token shards with their ``manifest.json``
               (``engine.data.shards``)

Extra keys in a record are allowed; an optional key may be absent or ``null``.

Text units (``--text-unit``, ``data.text_unit``): ``line`` (every non-empty line is a document),
``paragraph`` (blocks separated by blank lines, newlines inside a block kept: a book or a play keeps
its speaker names and stage directions inside the speech they belong to), ``file`` (the whole file
is one document) and ``auto``, which reads the head of the file (``AUTO_LINES`` lines): it is
``paragraph`` when blank lines are at least ``AUTO_MIN_BLANK_SHARE`` of the lines, at least
``AUTO_MIN_MULTILINE_BLOCKS`` blank-line separated blocks span several lines and they are at least
``AUTO_MIN_MULTILINE_SHARE`` of the blocks; else ``line`` (a one-document-per-line corpus has no
blank lines, a stray one, or blank lines between single lines).
A text sample is one document: its ``line`` is where the document starts.

Usage::

    detect_format(path)                      # Detection(format="instruct", reason="...")
    summary = scan(path)                     # Summary: records, problems, duplicates, lengths
    for sample in iter_samples(path, "chat"):   # Sample(line, text, problems, record)
        ...
    inspect_shards(directory)                # ShardSummary: manifest, problems, totals

A problem is a ``Problem(path, line, message, kind)`` and renders as ``file:line: what is wrong``::

    data.jsonl:3: invalid JSON (Expecting ',' delimiter at column 17)
    data.jsonl:5: not UTF-8 (invalid start byte at byte 12)
    data.jsonl:7: missing key 'output' (instruct)
    data.jsonl:9: 'messages' must be a list, got str
    data.jsonl:11: empty sample

JSON columns count from 1 (as ``json`` reports them), UTF-8 byte offsets within the line from 0 (as
Python and ``engine.data.text`` report them), so both tools name the same place.

Kinds in ``ERROR_KINDS`` make a record unusable; those in ``WARNING_KINDS`` (empty samples and
fields, blank JSONL lines, duplicates) leave it usable but deserve a look; ``missing`` is a
missing file of a shard directory.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, get_args

#: Every format, in the order detection prefers them on a tie.
FORMATS: tuple[str, ...] = ("text", "pretrain", "instruct", "chat", "tool", "reasoning", "kd", "shards")
#: The formats of JSON Lines files.
JSONL_FORMATS: tuple[str, ...] = ("pretrain", "instruct", "chat", "tool", "reasoning", "kd")
#: Roles a chat message may have.
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
#: File suffixes that mean JSON Lines.
JSONL_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson")

#: Problem kinds that make a record unusable.
ERROR_KINDS: tuple[str, ...] = ("utf8", "json", "not_object", "missing_key", "type", "value", "missing")
#: Problem kinds that leave a record usable.
WARNING_KINDS: tuple[str, ...] = ("empty", "empty_field", "blank", "duplicate")

# Shard directories (engine.data.shards; repeated here so that reading them needs no numpy/torch).
SHARD_MANIFEST = "manifest.json"
SHARD_FORMAT = "cockpit-token-shards"
SHARD_VERSION = 1
SHARD_ITEMSIZE = {"uint16": 2, "uint32": 4}

#: Required (True) and optional (False) keys of each JSONL format, with their types.
SCHEMAS: dict[str, dict[str, tuple[type, bool]]] = {
    "pretrain": {"text": (str, True)},
    "instruct": {"instruction": (str, True), "input": (str, False), "output": (str, True)},
    "chat": {"messages": (list, True)},
    "tool": {"user_message": (str, True), "tool_calls": (list, True), "tool_results": (list, True),
             "assistant_response": (str, True)},
    "reasoning": {"question": (str, True), "reasoning": (str, True), "answer": (str, True)},
    "kd": {"prompt": (str, True), "teacher_text": (str, True), "metadata": (dict, False)},
}
#: String keys whose emptiness is reported (``empty 'output'``) when the rest of the sample has text.
CONTENT_KEYS: dict[str, tuple[str, ...]] = {
    "pretrain": ("text",), "instruct": ("instruction", "output"), "chat": (),
    "tool": ("user_message", "assistant_response"), "reasoning": ("question", "reasoning", "answer"),
    "kd": ("prompt", "teacher_text"),
}
#: Keys that point at a format when a record does not have all of its required keys.
_HINT_KEYS: tuple[tuple[str, str], ...] = (
    ("messages", "chat"), ("tool_calls", "tool"), ("tool_results", "tool"), ("user_message", "tool"),
    ("assistant_response", "tool"), ("teacher_text", "kd"), ("reasoning", "reasoning"), ("instruction", "instruct"),
    ("output", "instruct"), ("question", "reasoning"), ("answer", "reasoning"), ("prompt", "kd"),
    ("text", "pretrain"),
)
_EXPECTED = {str: "a string", list: "a list", dict: "an object"}
#: Records read by ``detect_format``.
DETECT_RECORDS = 200
#: Bytes at the head of a file that must hold no NUL byte for it to be text.
BINARY_SNIFF_BYTES = 64 << 10

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


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_type(key: str, value: Any, expected: type) -> tuple[str, str] | None:
    if isinstance(value, expected):
        return None
    return "type", f"'{key}' must be {_EXPECTED[expected]}, got {_type_name(value)}"


def _check_messages(messages: list) -> list[tuple[str, str]]:
    out = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            out.append(("type", f"'{where}' must be an object, got {_type_name(msg)}"))
            continue
        for key in ("role", "content"):
            if key not in msg:
                out.append(("missing_key", f"missing key '{where}.{key}' (chat)"))
            elif (bad := _check_type(f"{where}.{key}", msg[key], str)) is not None:
                out.append(bad)
            elif key == "role" and msg[key] not in ROLES:
                out.append(("value", f"'{where}.role' must be one of {', '.join(ROLES)}, got {msg[key]!r}"))
    return out


def validate_record(fmt: str, record: Any) -> list[tuple[str, str]]:
    """The errors of one parsed JSONL record in format ``fmt``, as ``(kind, message)`` pairs, in key
    order; emptiness is not checked here (``sample_text`` and ``iter_samples`` do)."""
    if fmt not in SCHEMAS:
        raise FormatError(f"{fmt!r} is not a JSONL format (one of {', '.join(JSONL_FORMATS)})")
    if not isinstance(record, dict):
        return [("not_object", f"expected a JSON object, got {_type_name(record)}")]
    out: list[tuple[str, str]] = []
    for key, (expected, required) in SCHEMAS[fmt].items():
        value = record.get(key)
        if key not in record or (value is None and not required):
            if required:
                out.append(("missing_key", f"missing key '{key}' ({fmt})"))
            continue
        bad = _check_type(key, value, expected)
        if bad is not None:
            out.append(bad)
        elif key == "messages":
            out.extend(_check_messages(value))
        elif key == "tool_calls":
            out.extend(("type", f"'tool_calls[{i}]' must be an object, got {_type_name(call)}")
                       for i, call in enumerate(value) if not isinstance(call, dict))
    return out


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def sample_text(fmt: str, record: Any) -> str:
    """The text a valid record contributes (its content fields joined by newlines): what lengths,
    duplicates and token counts are measured on. For ``text`` and ``pretrain`` it is exactly the
    document the engine trains on."""
    if fmt == "text":
        return record
    if fmt == "pretrain":
        return record["text"]
    if fmt == "chat":
        parts = [m["content"] for m in record["messages"]]
    elif fmt == "tool":
        parts = [record["user_message"], *map(_as_text, record["tool_calls"]),
                 *map(_as_text, record["tool_results"]), record["assistant_response"]]
    else:
        parts = [record[k] for k in SCHEMAS[fmt] if SCHEMAS[fmt][k][0] is str and isinstance(record.get(k), str)]
    return "\n".join(parts)


def normalise(text: str) -> str:
    """Text with every run of whitespace made one space and the ends stripped (duplicates compare this)."""
    return " ".join(text.split())


def json_error(exc: json.JSONDecodeError) -> str:
    """``invalid JSON (Expecting ',' delimiter at column 17)``: the decoder's message and 1-based column."""
    return f"invalid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno})"


def _read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise FormatError(f"{path}: not found") from None
    except IsADirectoryError:
        raise FormatError(f"{path}: is a directory, not a data file") from None
    with f:
        yield from enumerate(f, 1)


def iter_samples(path: str | os.PathLike, fmt: str, unit: str = "auto") -> Iterator[Sample]:
    """Every record of the file at ``path`` read as format ``fmt`` (``text``, whose documents are
    cut by ``unit``, or a JSONL format: a line each), with its problems; raises FormatError only when
    the file cannot be opened."""
    if fmt != "text" and fmt not in SCHEMAS:
        raise FormatError(f"{path}: {fmt!r} is not a line format (text or one of {', '.join(JSONL_FORMATS)})")
    if fmt == "text":
        yield from iter_text_documents(path, choose_text_unit(path, unit).unit)
        return
    name = str(path)
    content = CONTENT_KEYS.get(fmt, ())
    for lineno, raw in _read_lines(Path(path)):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Sample(lineno, None, [_utf8_problem(name, lineno, exc)], None, len(raw))
            continue
        if not line.strip():
            yield Sample(lineno, None, [Problem(name, lineno, "blank line", "blank")], None, len(raw))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Sample(lineno, None, [Problem(name, lineno, json_error(exc), "json")], None, len(raw))
            continue
        errors = validate_record(fmt, record)
        if errors:
            yield Sample(lineno, None, [Problem(name, lineno, m, k) for k, m in errors], record, len(raw))
            continue
        text = sample_text(fmt, record)
        if not text.strip():
            problems = [Problem(name, lineno, "empty sample", "empty")]
        else:
            problems = [Problem(name, lineno, f"empty '{key}'", "empty_field")
                        for key in content if not record[key].strip()]
        yield Sample(lineno, text, problems, record, len(raw))


def _utf8_problem(name: str, lineno: int, exc: UnicodeDecodeError) -> Problem:
    return Problem(name, lineno, f"not UTF-8 ({exc.reason} at byte {exc.start})", "utf8")


# --- plain text: documents by unit ------------------------------------------------------------

@dataclass(frozen=True)
class UnitChoice:
    unit: str
    """``line``, ``paragraph`` or ``file``."""
    reason: str
    """Why, for ``auto`` (e.g. ``auto: 40 of the 52 blank-line separated blocks ... span several
    lines``); ``as set`` otherwise."""

    def describe(self) -> str:
        """``one document per blank-line separated paragraph (auto: ...)``: how the file is cut, for reports."""
        what = {"line": "one document per line", "paragraph": "one document per blank-line separated paragraph",
                "file": "the whole file is one document"}[self.unit]
        return f"{what} ({self.reason})"


def choose_text_unit(path: str | os.PathLike, unit: str = "auto") -> UnitChoice:
    """The document unit of the text file at ``path``: ``unit`` itself unless it is ``auto``, which
    reads the file's head and decides by the rule of the module docstring. FormatError for an
    unknown unit or a file that cannot be opened."""
    if unit not in TEXT_UNITS:
        raise FormatError(f"text unit {unit!r}: expected one of {', '.join(TEXT_UNITS)}")
    if unit != "auto":
        return UnitChoice(unit, "as set")
    lines = blank = blocks = multiline = 0
    current = 0  # lines of the block being read
    read = 0
    for _, raw in _read_lines(Path(path)):
        lines += 1
        read += len(raw)
        if raw.strip():
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
    return UnitChoice("paragraph" if several else "line",
                      f"auto: {multiline:,} of the {blocks:,} blank-line separated blocks in {head} span several lines")


def iter_text_documents(path: str | os.PathLike, unit: str) -> Iterator[Sample]:
    """The documents of a plain text file cut by ``unit`` (``line``, ``paragraph`` or ``file``) as
    ``text`` samples: the one reader of text for ``scan``, ``cockpit data prepare`` and the engine.

    ``line``: a sample per line (an empty one is an ``empty`` warning). ``paragraph``: a sample per
    block of non-blank lines, joined by newlines; blank lines only separate. ``file``: one sample of
    every line. An undecodable line makes its document unusable (a ``utf8`` error at that line)."""
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

    for lineno, raw in _read_lines(Path(path)):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            line, bad = None, _utf8_problem(name, lineno, exc)
        else:
            bad = None
        if unit == "line":
            if bad is not None:
                yield Sample(lineno, None, [bad], None, len(raw))
            else:
                yield Sample(lineno, line, [] if line.strip() else [Problem(name, lineno, "empty sample", "empty")],
                             line, len(raw))
            continue
        blank = line is not None and not line.strip()
        if unit == "paragraph" and not blank and after_blank and start:  # a new block: the last one is done
            yield document()
            lines.clear()
            problems.clear()
            nbytes = nlines = start = 0
        nbytes += len(raw)
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


# --- detection --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Detection:
    format: str | None
    """The detected format, or None when nothing matched."""
    reason: str
    """How it was decided, e.g. ``keys instruction, output in 50 of the first 50 records``."""
    binary: bool = False
    """The file is not text at all (NUL bytes, or no UTF-8 line)."""

    def error(self, path: str | os.PathLike) -> str:
        """The one-line error for a file whose format was not detected, naming it."""
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
    try:
        with open(path, "rb") as f:
            return b"\x00" in f.read(BINARY_SNIFF_BYTES)
    except FileNotFoundError:
        raise FormatError(f"{path}: not found") from None


def detect_format(path: str | os.PathLike, max_records: int = DETECT_RECORDS) -> Detection:
    """The format of a file or shard directory, from its first ``max_records`` readable records.

    A directory is ``shards``. A file with a NUL byte in its head is binary (no format). A file is JSONL when its suffix says so (``.jsonl``, ``.ndjson``) or
    most of its first non-blank lines are JSON objects, else ``text``; a JSONL file's format is the
    one most of its first records' keys match (``classify_record``). Raises FormatError when the
    path does not exist."""
    path = Path(path)
    if path.is_dir():
        if (path / SHARD_MANIFEST).is_file():
            return Detection("shards", f"directory with {SHARD_MANIFEST}")
        return Detection("shards", f"directory without {SHARD_MANIFEST}")
    if _has_nul(path):
        return Detection(None, f"binary: NUL bytes in its first {BINARY_SNIFF_BYTES >> 10} KB", binary=True)
    votes: dict[str, int] = {}
    keys: dict[str, set[str]] = {}
    objects = lines = undecodable = 0
    for _, raw in _read_lines(path):
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
    if lines == 0:
        return Detection(None, f"{undecodable} line(s) read, none of them UTF-8 text" if undecodable
                         else "no non-blank line", binary=bool(undecodable))
    if path.suffix.lower() not in JSONL_SUFFIXES and objects * 2 <= lines:
        return Detection("text", f"{lines - objects} of the first {lines} lines are not JSON objects")
    if not votes:
        return Detection(None, f"none of the first {lines} lines is a record of a known format (keys of "
                               + "; ".join(f"{f}: {', '.join(SCHEMAS[f])}" for f in JSONL_FORMATS) + ")")
    best = max(votes, key=lambda f: (votes[f], -FORMATS.index(f)))
    shown = ", ".join(k for k in SCHEMAS[best] if k in keys[best])
    return Detection(best, f"keys {shown} in {votes[best]} of the first {lines} records")


# --- summary ----------------------------------------------------------------------------------

class LengthStats:
    """Count, sum, min and max of a stream of lengths, exactly, plus a seeded reservoir sample of
    ``keep`` of them for percentiles and a histogram (exact while no more than ``keep`` came)."""

    def __init__(self, keep: int = 100_000, seed: int = 0):
        self.keep = keep
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None
        self.values: list[int] = []
        self._rng = random.Random(seed)

    def add(self, value: int) -> None:
        self.count += 1
        self.total += value
        self.min = value if self.min is None or value < self.min else self.min
        self.max = value if self.max is None or value > self.max else self.max
        if len(self.values) < self.keep:
            self.values.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < self.keep:
                self.values[j] = value

    def extend(self, values: Iterable[int]) -> None:
        for v in values:
            self.add(v)

    @property
    def exact(self) -> bool:
        return self.count <= self.keep

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> int:
        """The ``q``-th percentile (nearest rank) of the lengths (of the sample, past ``keep``)."""
        if not self.values:
            return 0
        ordered = sorted(self.values)
        rank = max(1, -(-len(ordered) * q // 100))
        return ordered[int(rank) - 1]

    def histogram(self, bins: int = 10) -> list[dict[str, int]]:
        """``bins`` equal integer ranges from min to max: ``[{"lo", "hi" (exclusive), "count"}]``;
        counts are scaled to ``count`` when the lengths were sampled."""
        return histogram(self.values, bins, scale_to=self.count)

    def to_json(self, bins: int = 10) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "min": self.min or 0, "max": self.max or 0,
                "mean": round(self.mean, 2), "p50": self.percentile(50), "p90": self.percentile(90),
                "p99": self.percentile(99), "exact": self.exact, "histogram": self.histogram(bins)}


def histogram(values: list[int], bins: int = 10, scale_to: int | None = None) -> list[dict[str, int]]:
    """Counts of ``values`` in ``bins`` equal-width integer ranges covering min..max (fewer when
    the range is narrower); ``scale_to`` rescales the counts to that total."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    width = max(1, -(-(hi - lo + 1) // bins))
    n = -(-(hi - lo + 1) // width)
    counts = [0] * n
    for v in values:
        counts[(v - lo) // width] += 1
    if scale_to is not None and scale_to != len(values):
        counts = [round(c * scale_to / len(values)) for c in counts]
    return [{"lo": lo + i * width, "hi": lo + (i + 1) * width, "count": c} for i, c in enumerate(counts)]


@dataclass
class Summary:
    """What a pass over a data file found; ``add`` each Sample of ``iter_samples`` to it."""

    path: str
    format: str
    lines: int = 0
    """Lines read."""
    records: int = 0
    """Samples: every document of a text file (every line for unit ``line``), every non-blank line
    of a JSONL file."""
    invalid: int = 0
    """Records with at least one error."""
    empty: int = 0
    """Valid records whose text is empty (or whitespace only)."""
    duplicates: int = 0
    """Non-empty valid records whose normalised text an earlier record had."""
    chars: int = 0
    """Characters of the valid records' texts."""
    bytes: int = 0
    """Bytes read."""
    counts: dict[str, int] = field(default_factory=dict)
    """Problems per kind, all of them."""
    problems: list[Problem] = field(default_factory=list)
    """The first ``max_problems`` problems of each kind, in line order (so thousands of duplicates
    never crowd out the first malformed line)."""
    lengths: LengthStats = field(default_factory=LengthStats)
    """Characters per non-empty valid record."""
    max_problems: int = 100
    max_tracked: int = 5_000_000
    """Distinct texts remembered for duplicates; past it, later records are compared with those only."""
    _seen: dict[int, int] = field(default_factory=dict, repr=False)

    unit: UnitChoice | None = None
    """How a text file was cut into documents (None for JSONL)."""

    def add(self, sample: Sample) -> None:
        self.lines += sample.nlines
        self.bytes += sample.nbytes
        if not (sample.text is None and sample.ok):  # a blank JSONL line is not a record
            self.records += 1
        problems = list(sample.problems)
        if not sample.ok:
            self.invalid += 1
        elif sample.text is not None:
            if any(p.kind == "empty" for p in problems):
                self.empty += 1
            else:
                self.chars += len(sample.text)
                self.lengths.add(len(sample.text))
                key = hash(normalise(sample.text))
                first = self._seen.get(key)
                if first is not None:
                    self.duplicates += 1
                    problems.append(Problem(self.path, sample.line, f"duplicate of line {first}", "duplicate"))
                elif len(self._seen) < self.max_tracked:
                    self._seen[key] = sample.line
        for p in problems:
            n = self.counts[p.kind] = self.counts.get(p.kind, 0) + 1
            if n <= self.max_problems:
                self.problems.append(p)

    @property
    def errors(self) -> int:
        """Problems that make records unusable."""
        return sum(n for k, n in self.counts.items() if k in ERROR_KINDS)

    @property
    def valid(self) -> int:
        return self.records - self.invalid

    @property
    def duplicates_exact(self) -> bool:
        """Whether every record was compared with every earlier one (``max_tracked`` not reached)."""
        return len(self._seen) < self.max_tracked

    def first(self, kinds: Iterable[str], n: int = 5) -> list[Problem]:
        """The first ``n`` kept problems of the given kinds."""
        kinds = set(kinds)
        return [p for p in self.problems if p.kind in kinds][:n]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "lines": self.lines, "records": self.records,
                "valid": self.valid, "invalid": self.invalid, "empty": self.empty, "duplicates": self.duplicates,
                "chars": self.chars, "bytes": self.bytes, "errors": self.errors, "counts": dict(self.counts),
                "problems": [str(p) for p in self.problems], "lengths_chars": self.lengths.to_json(),
                **({"text_unit": self.unit.unit, "text_unit_reason": self.unit.reason} if self.unit else {})}


def scan(path: str | os.PathLike, fmt: str | None = None, max_problems: int = 100, unit: str = "auto") -> Summary:
    """Validate and summarise a ``text`` (cut into documents by ``unit``) or JSONL file in one
    streaming pass; ``fmt`` None detects it (FormatError when it cannot be)."""
    if fmt is None:
        detection = detect_format(path)
        if detection.format is None or detection.format == "shards":
            raise FormatError(detection.error(path) if detection.format is None
                              else f"{path}: cannot scan as a line format ({detection.reason})")
        fmt = detection.format
    summary = Summary(str(path), fmt, max_problems=max_problems)
    if fmt == "text":
        summary.unit = choose_text_unit(path, unit)
        unit = summary.unit.unit
    for sample in iter_samples(path, fmt, unit):
        summary.add(sample)
    return summary


# --- shard directories ------------------------------------------------------------------------

@dataclass
class ShardSummary:
    """A shard directory as its manifest describes it, with what is wrong with it."""

    path: str
    manifest: dict[str, Any] | None
    """The parsed manifest, or None when it is missing or unreadable."""
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems

    @property
    def tokens(self) -> int:
        return int(self.manifest.get("total_tokens", 0)) if self.manifest else 0

    @property
    def shards(self) -> int:
        return len(self.manifest.get("shards", [])) if self.manifest else 0

    @property
    def tokenizer_sha256(self) -> str | None:
        tok = (self.manifest or {}).get("tokenizer")
        return tok.get("sha256") if isinstance(tok, dict) else None

    @property
    def seq_len(self) -> int | None:
        value = (self.manifest or {}).get("seq_len")
        return value if isinstance(value, int) else None


def inspect_shards(path: str | os.PathLike) -> ShardSummary:
    """Read and check a shard directory's manifest and the sizes of its shard files (without reading
    the tokens). Problems name the manifest or the shard file (line 0)."""
    path = Path(path)
    if not path.is_dir():
        return ShardSummary(str(path), None, [Problem(str(path), 0, "shard directory not found" if not path.exists()
                                                      else "not a directory", "missing")])
    mpath = path / SHARD_MANIFEST
    name = str(mpath)
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ShardSummary(str(path), None, [Problem(name, 0, "missing: not a prepared shard directory, or its "
                                                      "preparation did not finish", "missing")])
    except UnicodeDecodeError as exc:
        return ShardSummary(str(path), None, [Problem(name, 0, f"not UTF-8 ({exc.reason} at byte {exc.start})", "utf8")])
    except json.JSONDecodeError as exc:
        return ShardSummary(str(path), None, [Problem(name, exc.lineno, json_error(exc), "json")])
    if not isinstance(manifest, dict) or manifest.get("format") != SHARD_FORMAT:
        return ShardSummary(str(path), None, [Problem(name, 0, f"not a {SHARD_FORMAT} manifest", "value")])
    if manifest.get("version") != SHARD_VERSION:
        return ShardSummary(str(path), None, [Problem(name, 0, f"format version {manifest.get('version')!r}, "
                                                      f"this engine reads version {SHARD_VERSION}", "value")])
    problems = []
    tok = manifest.get("tokenizer")
    shards = manifest.get("shards")
    if manifest.get("dtype") not in SHARD_ITEMSIZE:
        problems.append(Problem(name, 0, f"'dtype' must be one of {', '.join(SHARD_ITEMSIZE)}, got "
                                         f"{manifest.get('dtype')!r}", "value"))
    if not isinstance(tok, dict) or not isinstance(tok.get("sha256"), str):
        problems.append(Problem(name, 0, "missing key 'tokenizer.sha256'", "missing_key"))
    if not isinstance(manifest.get("seq_len"), int):
        problems.append(Problem(name, 0, f"'seq_len' must be an integer, got {_type_name(manifest.get('seq_len'))}",
                                "type"))
    if not isinstance(shards, list) or not all(isinstance(s, dict) and isinstance(s.get("file"), str)
                                               and isinstance(s.get("tokens"), int) for s in shards):
        problems.append(Problem(name, 0, "'shards' must be a list of {file, tokens}", "type"))
    if problems:
        return ShardSummary(str(path), manifest, problems)
    itemsize = SHARD_ITEMSIZE[manifest["dtype"]]
    for shard in shards:
        file = path / shard["file"]
        expected = shard["tokens"] * itemsize
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            problems.append(Problem(str(file), 0, f"shard missing (listed in {SHARD_MANIFEST})", "missing"))
            continue
        if size != expected:
            problems.append(Problem(str(file), 0, f"{size:,} bytes, but {SHARD_MANIFEST} says {shard['tokens']:,} "
                                                  f"tokens x {itemsize} B = {expected:,} bytes (truncated or damaged)",
                                    "value"))
    total = sum(s["tokens"] for s in shards)
    if manifest.get("total_tokens") != total:
        problems.append(Problem(name, 0, f"'total_tokens' is {manifest.get('total_tokens')!r}, the shards hold "
                                         f"{total:,}", "value"))
    if total == 0:
        problems.append(Problem(str(path), 0, "the shards hold no tokens", "value"))
    return ShardSummary(str(path), manifest, problems)
