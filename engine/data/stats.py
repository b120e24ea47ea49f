"""The figures of ``cockpit data stats`` (and the wizard's data step): records, characters, token
counts, the length histogram, exact duplicates and quality signals of one data file.

    report = data_stats(path, fmt=None, unit="auto", tokenizer=None, sample=20_000)

One streaming pass for the counts; the first ``sample`` records are kept, scored (quality signals)
and, with a tokenizer, tokenized. FormatError (naming the file) when the file cannot be read as
data. Torch-free.
"""

from __future__ import annotations

import os
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
    path: str | os.PathLike, fmt: str | None = None, unit: str = "auto", tokenizer=None, sample: int = 20_000
) -> dict[str, Any]:
    """The stats report of ``path`` (``Summary.to_json`` without its problems, plus ``quality`` and,
    with a ``tokenizers.Tokenizer``, ``tokens``); ``fmt`` None detects the format."""
    from engine.data.quality import QualityRules
    from engine.data.signals import batch_signals

    detection = formats.detect_format(path) if fmt is None else None
    if detection is not None and detection.format is None:
        raise formats.FormatError(detection.error(path))
    detected = fmt or detection.format
    summary = formats.Summary(str(path), detected)
    if detected == "text":
        summary.unit = formats.choose_text_unit(path, unit)
    texts: list[str] = []
    for s in formats.iter_samples(path, detected, summary.unit.unit if summary.unit else unit):
        summary.add(s)
        if s.ok and s.text and s.text.strip() and len(texts) < sample:
            texts.append(s.text)
    if summary.records and summary.counts.get("utf8") == summary.invalid == summary.records:  # no UTF-8 record
        raise formats.FormatError(f"{path}: not a text file (no line of it is UTF-8: {summary.first(('utf8',), 1)[0]})")
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


def length_histogram(report: dict[str, Any]) -> tuple[list[dict[str, int]], str]:
    """The histogram to show of a stats report and its unit: tokens per record when the report has
    them, else characters."""
    tokens = (report.get("tokens") or {}).get("lengths", {}).get("histogram")
    if tokens:
        return tokens, "tokens"
    return report["lengths_chars"]["histogram"], "characters"
