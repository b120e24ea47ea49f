"""Records of the line formats: the schema of each, checking a parsed record, the text it
contributes, and ``iter_samples``, which reads a file of any line format as samples.

Formats (``FORMATS``; see ``engine.data.formats`` for each one's keys). Extra keys in a record are
allowed; an optional key may be absent or ``null``. Torch-free and numpy-free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from engine.data.lines import (
    MAX_LINE_BYTES,
    FormatError,
    LongLine,
    Problem,
    Sample,
    json_error,
    read_lines,
    utf8_problem,
)
from engine.data.textunits import choose_text_unit, iter_text_documents

#: Every format, in the order detection prefers them on a tie.
FORMATS: tuple[str, ...] = ("text", "pretrain", "instruct", "chat", "tool", "reasoning", "kd", "shards")
#: The formats of JSON Lines files.
JSONL_FORMATS: tuple[str, ...] = ("pretrain", "instruct", "chat", "tool", "reasoning", "kd")
#: Roles a chat message may have.
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
#: File suffixes that mean JSON Lines.
JSONL_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson")

#: Required (True) and optional (False) keys of each JSONL format, with their types.
SCHEMAS: dict[str, dict[str, tuple[type, bool]]] = {
    "pretrain": {"text": (str, True)},
    "instruct": {"instruction": (str, True), "input": (str, False), "output": (str, True)},
    "chat": {"messages": (list, True)},
    "tool": {
        "user_message": (str, True),
        "tool_calls": (list, True),
        "tool_results": (list, True),
        "assistant_response": (str, True),
    },
    "reasoning": {"question": (str, True), "reasoning": (str, True), "answer": (str, True)},
    "kd": {"prompt": (str, True), "teacher_text": (str, True), "metadata": (dict, False)},
}
#: String keys whose emptiness is reported (``empty 'output'``) when the rest of the sample has text.
CONTENT_KEYS: dict[str, tuple[str, ...]] = {
    "pretrain": ("text",),
    "instruct": ("instruction", "output"),
    "chat": (),
    "tool": ("user_message", "assistant_response"),
    "reasoning": ("question", "reasoning", "answer"),
    "kd": ("prompt", "teacher_text"),
}
_EXPECTED = {str: "a string", list: "a list", dict: "an object"}


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
            out.extend(
                ("type", f"'tool_calls[{i}]' must be an object, got {_type_name(call)}")
                for i, call in enumerate(value)
                if not isinstance(call, dict)
            )
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
        parts = [
            record["user_message"],
            *map(_as_text, record["tool_calls"]),
            *map(_as_text, record["tool_results"]),
            record["assistant_response"],
        ]
    else:
        parts = [record[k] for k in SCHEMAS[fmt] if SCHEMAS[fmt][k][0] is str and isinstance(record.get(k), str)]
    return "\n".join(parts)


def normalise(text: str) -> str:
    """Text with every run of whitespace made one space and the ends stripped (duplicates compare this)."""
    return " ".join(text.split())


def iter_samples(
    path: str | os.PathLike, fmt: str, unit: str = "auto", max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Sample]:
    """Every record of the file at ``path`` read as format ``fmt`` (``text``, whose documents are
    cut by ``unit``, or a JSONL format: a line each), with its problems; raises FormatError only when
    the file cannot be opened. A line over ``max_line_bytes`` is a ``too_long`` error, never read
    whole."""
    if fmt != "text" and fmt not in SCHEMAS:
        raise FormatError(f"{path}: {fmt!r} is not a line format (text or one of {', '.join(JSONL_FORMATS)})")
    if fmt == "text":
        chosen = choose_text_unit(path, unit, max_line_bytes).unit
        yield from iter_text_documents(path, chosen, max_line_bytes)
        return
    name = str(path)
    content = CONTENT_KEYS.get(fmt, ())
    for lineno, raw in read_lines(path, max_line_bytes):
        if isinstance(raw, LongLine):
            yield Sample(lineno, None, [raw.problem(name, lineno)], None, raw.nbytes)
            continue
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Sample(lineno, None, [utf8_problem(name, lineno, exc)], None, len(raw))
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
            problems = [
                Problem(name, lineno, f"empty '{key}'", "empty_field") for key in content if not record[key].strip()
            ]
        yield Sample(lineno, text, problems, record, len(raw))
