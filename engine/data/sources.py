"""The inputs of ``cockpit data prepare``: which files, in which format, cut into which documents,
and the stream of their valid records in batches (step 1 of ``engine.data.prepare``).

Torch-free and numpy-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.data import formats
from engine.data.lines import unreadable
from engine.data.render import CHAT_FORMATS

#: Formats whose records are plain documents (the others are rendered with a loss mask).
DOCUMENT_FORMATS = ("text", "pretrain")
#: What a data file of a directory is named (a directory of them is one corpus).
DATA_SUFFIXES = (".txt", *formats.JSONL_SUFFIXES)
#: Bytes of text per batch (signals, deduplication and tokenization work on a batch at once).
BATCH_BYTES = 4 << 20
BATCH_DOCS = 20_000


class PrepareError(ValueError):
    """The inputs, the tokenizer or the output directory cannot be used; the message names it."""


@dataclass(frozen=True)
class Source:
    path: Path
    format: str
    bytes: int
    unit: formats.UnitChoice | None = None
    """How a text input is cut into documents (None for JSONL)."""
    max_line_bytes: int = formats.MAX_LINE_BYTES
    """The longest line read; a longer one is a ``too_long`` error at its line."""

    def to_json(self) -> dict:
        out = {"path": str(self.path), "format": self.format, "bytes": self.bytes}
        if self.unit is not None:
            out.update(text_unit=self.unit.unit, text_unit_reason=self.unit.reason)
        return out


def data_files(directory: str | os.PathLike) -> list[Path]:
    """The data files (``DATA_SUFFIXES``) directly inside ``directory``, sorted by name; other
    files and subdirectories are not data."""
    return sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in DATA_SUFFIXES and p.is_file())


def resolve_sources(
    inputs: list[str | os.PathLike],
    fmt: str | None,
    text_unit: str = "auto",
    max_line_bytes: int = formats.MAX_LINE_BYTES,
) -> list[Source]:
    """The input files with their formats (and document units, for text); PrepareError for a
    missing file or an unusable format (a file of lines over ``max_line_bytes`` only has none:
    the error names its first ``file:line``)."""
    if not inputs:
        raise PrepareError("no input files")
    sources = []
    for item in inputs:
        path = Path(item)
        if (why := unreadable(path)) is not None:
            raise PrepareError(why)
        found = fmt
        if found is None:
            detection = formats.detect_format(path, max_line_bytes=max_line_bytes)
            if detection.format is None:
                raise PrepareError(detection.error(path))
            found = detection.format
        if found not in DOCUMENT_FORMATS + CHAT_FORMATS:
            raise PrepareError(
                f"{path}: cannot prepare {found!r} data (text, pretrain or one of {', '.join(CHAT_FORMATS)})"
            )
        try:
            unit = formats.choose_text_unit(path, text_unit, max_line_bytes) if found == "text" else None
        except formats.FormatError as exc:
            raise PrepareError(str(exc)) from None
        sources.append(Source(path.resolve(), found, path.stat().st_size, unit, max_line_bytes))
    return sources


@dataclass
class Batch:
    positions: list[int]
    """Where each record is in the inputs: a position counts every record (JSONL line, text
    document) of every input."""
    texts: list[str]
    """What signals and deduplication look at (``formats.sample_text``)."""
    records: list
    """The parsed records (rendered for chat formats)."""
    formats: list[str]
    bytes_done: int
    """Input bytes read so far."""


def iter_batches(sources: list[Source], skip_invalid: bool, dropped: dict[str, int]) -> Iterator[Batch]:
    """Batches of valid, non-empty records in input order. Empty samples are counted in
    ``dropped``; a malformed line raises PrepareError (or is counted as ``invalid`` with
    ``skip_invalid``)."""
    batch = Batch([], [], [], [], 0)
    size = done = position = 0
    for source in sources:
        for sample in samples(source):
            done += sample.nbytes
            pos = position
            position += 1
            if not sample.ok:
                if not skip_invalid:
                    first = next(p for p in sample.problems if p.is_error)
                    raise PrepareError(
                        f"{first} (check the file with `cockpit data validate`; --skip-invalid drops such lines)"
                    )
                dropped["invalid"] = dropped.get("invalid", 0) + 1
                continue
            if sample.text is None:  # a blank JSONL line: no record
                continue
            if not sample.text.strip():
                dropped["empty"] = dropped.get("empty", 0) + 1
                continue
            batch.positions.append(pos)
            batch.texts.append(sample.text)
            batch.records.append(sample.record)
            batch.formats.append(source.format)
            size += len(sample.text)
            if size >= BATCH_BYTES or len(batch.texts) >= BATCH_DOCS:
                batch.bytes_done = done
                yield batch
                batch, size = Batch([], [], [], [], 0), 0
    if batch.texts:
        batch.bytes_done = done
        yield batch


def samples(source: Source) -> Iterator[formats.Sample]:
    unit = source.unit.unit if source.unit else "line"
    return formats.iter_samples(source.path, source.format, unit, source.max_line_bytes)
