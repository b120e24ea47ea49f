"""Dataset formats: detect, validate and summarise training data, streaming line by line.

The names of the modules that do each job, in one place for the code that uses several:
``lines`` (reading lines, ``Problem``, the wording of faults), ``records`` (the schema of each
format, ``validate_record``, ``sample_text``, ``iter_samples``), ``textunits`` (documents of a text
file), ``detect`` (``detect_format``), ``summary`` (``scan``, ``Summary``, ``LengthStats``) and
``manifest`` (shard directories: ``inspect_shards``). All are torch-free and numpy-free, so the
cockpit's readiness check and ``cockpit data validate|stats`` can read a file of any size without
importing the engine's training stack. Nothing loads a whole file: lines are read one at a time,
and a line over ``max_line_bytes`` (``MAX_LINE_BYTES``, 1 MiB, unless set) is never read whole: it
is a ``too_long`` error at its line.

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
               (``engine.data.manifest``)

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
    data.jsonl:13: line too long (200 MiB; the limit is 1,048,576 bytes): split it into shorter lines, ...

JSON columns count from 1 (as ``json`` reports them), UTF-8 byte offsets within the line from 0 (as
Python and ``engine.data.text`` report them), so both tools name the same place.

Kinds in ``ERROR_KINDS`` make a record unusable; those in ``WARNING_KINDS`` (empty samples and
fields, blank JSONL lines, duplicates) leave it usable but deserve a look; ``missing`` is a
missing file of a shard directory.
"""

from __future__ import annotations

from engine.data.detect import BINARY_SNIFF_BYTES, DETECT_RECORDS, Detection, classify_record, detect_format
from engine.data.lines import (
    ERROR_KINDS,
    MAX_LINE_BYTES,
    WARNING_KINDS,
    FormatError,
    LongLine,
    Problem,
    Sample,
    json_error,
    read_lines,
    unreadable,
    utf8_error,
)
from engine.data.manifest import ShardSummary, inspect_shards
from engine.data.records import (
    CONTENT_KEYS,
    FORMATS,
    JSONL_FORMATS,
    JSONL_SUFFIXES,
    ROLES,
    SCHEMAS,
    iter_samples,
    normalise,
    sample_text,
    validate_record,
)
from engine.data.summary import LengthStats, Summary, histogram, scan
from engine.data.textunits import (
    AUTO_BYTES,
    AUTO_LINES,
    AUTO_MIN_BLANK_SHARE,
    AUTO_MIN_MULTILINE_BLOCKS,
    AUTO_MIN_MULTILINE_SHARE,
    TEXT_UNITS,
    TextUnit,
    UnitChoice,
    choose_text_unit,
    iter_text_documents,
)

__all__ = [
    "AUTO_BYTES",
    "AUTO_LINES",
    "AUTO_MIN_BLANK_SHARE",
    "AUTO_MIN_MULTILINE_BLOCKS",
    "AUTO_MIN_MULTILINE_SHARE",
    "BINARY_SNIFF_BYTES",
    "CONTENT_KEYS",
    "DETECT_RECORDS",
    "ERROR_KINDS",
    "FORMATS",
    "JSONL_FORMATS",
    "JSONL_SUFFIXES",
    "MAX_LINE_BYTES",
    "ROLES",
    "SCHEMAS",
    "TEXT_UNITS",
    "WARNING_KINDS",
    "Detection",
    "FormatError",
    "LengthStats",
    "LongLine",
    "Problem",
    "Sample",
    "ShardSummary",
    "Summary",
    "TextUnit",
    "UnitChoice",
    "choose_text_unit",
    "classify_record",
    "detect_format",
    "histogram",
    "inspect_shards",
    "iter_samples",
    "iter_text_documents",
    "json_error",
    "normalise",
    "read_lines",
    "sample_text",
    "scan",
    "unreadable",
    "utf8_error",
    "validate_record",
]
