"""The figures of ``cockpit data stats`` (and the wizard's data step): records, characters, token
counts, the length histogram, exact duplicates and quality signals of a data file (or of several
files taken as one corpus: a directory of data files).

    report = data_stats(path, fmt=None, unit="auto", tokenizer=None, sample=20_000)
    report = data_stats([first, second], ...)      # the files in turn, counted together

One streaming pass for the counts; the first ``sample`` records are kept, scored (quality signals)
and, with a tokenizer, tokenized. FormatError (naming the file) when a file cannot be read as
data, or (naming ``file:line``) at its first line over ``max_line_bytes``. Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from engine.data import formats


def _distribution(values) -> dict[str, float]:
    import numpy as np

    arr = np.asarray(values, dtype=float)
    return {
        "mean": round(float(arr.mean()), 4),
        "p50": round(float(np.percentile(arr, 50)), 4),
        "p90": round(float(np.percentile(arr, 90)), 4),
        "max": round(float(arr.max()), 4),
    }


def data_stats(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    fmt: str | None = None,
    unit: str = "auto",
    tokenizer=None,
    sample: int = 20_000,
    max_line_bytes: int = formats.MAX_LINE_BYTES,
) -> dict[str, Any]:
    """The stats report of ``path`` (``Summary.to_json`` without its problems, plus ``quality`` and,
    with a ``tokenizers.Tokenizer``, ``tokens``); ``fmt`` None detects the format (of each file).
    Several paths are read in turn and counted as one corpus (``format`` is ``mixed`` when their
    formats differ; ``text_unit`` is the first text file's). A line over ``max_line_bytes`` stops
    it (FormatError, ``file:line: line too long ...``): it is never read whole."""
    from engine.data.quality import QualityRules
    from engine.data.signals import batch_signals

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    summary = formats.Summary(", ".join(map(str, paths)), fmt or "")
    found: list[str] = []
    texts: list[str] = []
    for one in paths:
        detected = fmt or _detected(one, max_line_bytes)
        found.append(detected)
        unit_of_file = unit
        if detected == "text":
            choice = formats.choose_text_unit(one, unit, max_line_bytes)
            summary.unit = summary.unit or choice
            unit_of_file = choice.unit
        records, not_utf8 = summary.records, summary.counts.get("utf8", 0)
        for s in formats.iter_samples(one, detected, unit_of_file, max_line_bytes):
            if (long := next((p for p in s.problems if p.kind == "too_long"), None)) is not None:
                raise formats.FormatError(str(long))
            summary.add(s)
            if s.ok and s.text and s.text.strip() and len(texts) < sample:
                texts.append(s.text)
        read = summary.records - records
        if read and summary.counts.get("utf8", 0) - not_utf8 == read:  # no UTF-8 record
            first = [p for p in summary.problems if p.kind == "utf8" and p.path == str(one)][:1]
            raise formats.FormatError(f"{one}: not a text file (no line of it is UTF-8: {first[0] if first else ''})")
    summary.format = found[0] if len(set(found)) == 1 else "mixed"
    report = summary.to_json()
    report.pop("problems")
    sampled = len(texts) < summary.valid - summary.empty
    if texts:
        sig = batch_signals(texts, None)
        reasons = QualityRules().reasons(sig)
        report["quality"] = {
            "records": len(texts),
            "sampled": sampled,
            "words": _distribution(sig.n_words),
            "symbol_ratio": _distribution(sig.symbol_ratio),
            "dup_5gram_fraction": _distribution(sig.dup_ngram_fraction),
            "top_2gram_fraction": _distribution(sig.top_bigram_fraction),
            "would_drop": {r: reasons.count(r) for r in sorted(set(filter(None, reasons)))},
        }
    if tokenizer is not None and texts:
        lengths = [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]
        per_char = sum(lengths) / max(1, sum(map(len, texts)))
        stats_ = formats.LengthStats()
        stats_.extend(lengths)
        report["tokens"] = {
            "total": round(summary.chars * per_char) if sampled else sum(lengths),
            "estimated": sampled,
            "chars_per_token": round(1 / per_char, 3) if per_char else None,
            "lengths": stats_.to_json(),
        }
    return report


def _detected(path: str | os.PathLike, max_line_bytes: int = formats.MAX_LINE_BYTES) -> str:
    """The format of ``path``; FormatError naming it when it has none."""
    detection = formats.detect_format(path, max_line_bytes=max_line_bytes)
    if detection.format is None:
        raise formats.FormatError(detection.error(path))
    return detection.format


def length_histogram(report: dict[str, Any]) -> tuple[list[dict[str, int]], str]:
    """The histogram to show of a stats report and its unit: tokens per record when the report has
    them, else characters."""
    tokens = (report.get("tokens") or {}).get("lengths", {}).get("histogram")
    if tokens:
        return tokens, "tokens"
    return report["lengths_chars"]["histogram"], "characters"
