"""Summarising a data file in one streaming pass: counts, problems, duplicates and lengths.

    summary = scan(path)                     # Summary: records, problems, duplicates, lengths

Torch-free and numpy-free.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.data.detect import detect_format
from engine.data.lines import ERROR_KINDS, MAX_LINE_BYTES, FormatError, Problem, Sample
from engine.data.records import iter_samples, normalise
from engine.data.textunits import UnitChoice, choose_text_unit


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
        return {
            "count": self.count,
            "total": self.total,
            "min": self.min or 0,
            "max": self.max or 0,
            "mean": round(self.mean, 2),
            "p50": self.percentile(50),
            "p90": self.percentile(90),
            "p99": self.percentile(99),
            "exact": self.exact,
            "histogram": self.histogram(bins),
        }


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
        return {
            "path": self.path,
            "format": self.format,
            "lines": self.lines,
            "records": self.records,
            "valid": self.valid,
            "invalid": self.invalid,
            "empty": self.empty,
            "duplicates": self.duplicates,
            "chars": self.chars,
            "bytes": self.bytes,
            "errors": self.errors,
            "counts": dict(self.counts),
            "problems": [str(p) for p in self.problems],
            "lengths_chars": self.lengths.to_json(),
            **({"text_unit": self.unit.unit, "text_unit_reason": self.unit.reason} if self.unit else {}),
        }


def scan(
    path: str | os.PathLike,
    fmt: str | None = None,
    max_problems: int = 100,
    unit: str = "auto",
    progress: Callable[[Summary], None] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Summary:
    """Validate and summarise a ``text`` (cut into documents by ``unit``) or JSONL file in one
    streaming pass; ``fmt`` None detects it (FormatError when it cannot be). ``progress`` is called
    with the summary so far after every record (an exception it raises stops the scan). A line
    over ``max_line_bytes`` is a ``too_long`` problem, never read whole."""
    if fmt is None:
        detection = detect_format(path, max_line_bytes=max_line_bytes)
        if detection.format is None or detection.format == "shards":
            raise FormatError(
                detection.error(path)
                if detection.format is None
                else f"{path}: cannot scan as a line format ({detection.reason})"
            )
        fmt = detection.format
    summary = Summary(str(path), fmt, max_problems=max_problems)
    if fmt == "text":
        summary.unit = choose_text_unit(path, unit, max_line_bytes)
        unit = summary.unit.unit
    for sample in iter_samples(path, fmt, unit, max_line_bytes):
        summary.add(sample)
        if progress is not None:
            progress(summary)
    return summary
