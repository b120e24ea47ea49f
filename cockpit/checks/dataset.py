"""Dataset: the training data exists, has the format ``data.source`` reads, every line of it is
valid, and how much there is (samples, characters, tokens, sequences of ``train.seq_len``), with
empty and duplicate samples and over-long samples.

Files are validated line by line with ``engine.data.formats`` (a text file cut into documents by
``data.text_unit``, as the engine cuts it; a line over ``data.max_line_bytes`` is an error, never
read whole) and tokenized with the ``tokenizers`` library (no torch,
no transformers). Every line is always validated; a file larger than
``FULL_TOKENIZE_BYTES`` has only an even sample of its lines tokenized, and the token figures say
they are estimates. Shard directories are checked from their manifest and file sizes, never read.

Facts for later checks go to ``ctx.dataset``: ``source``, ``path``, ``format``,
``records``, ``documents`` (valid, non-empty samples), ``text_unit`` (line, paragraph or file; None for JSONL), ``chars``, ``bytes``, ``tokens`` (with one
end-of-text per document, as the engine's stream; None without a tokenizer), ``tokens_estimated``,
``sequences`` (tokens // seq_len; None without tokens), ``will_create``.
"""

from __future__ import annotations

import math
from pathlib import Path

from cockpit.checks.base import CheckContext, CheckResult, result
from cockpit.checks.dataset_findings import (
    FULL_TOKENIZE_BYTES,
    SAMPLE_TOKENIZE_BYTES,
    counts_result,
    duplicates_result,
    empty_result,
    lines_result,
    seq_len_result,
    tokens_result,
)
from cockpit.checks.dataset_shards import check_shards
from engine.data.detect import Detection, detect_format
from engine.data.lines import FormatError
from engine.data.records import iter_samples
from engine.data.summary import LengthStats, Summary
from engine.data.textunits import UnitChoice, choose_text_unit
from engine.units import nbytes

#: Texts per ``encode_batch`` call.
BATCH = 2_000


def check_dataset(ctx: CheckContext) -> list[CheckResult]:
    if ctx.cfg is None:
        return []
    if ctx.cfg.data.source == "shards":
        return check_shards(ctx)
    return _check_file(ctx)


# --- text and JSONL files ---------------------------------------------------------------------


def _check_path(ctx: CheckContext) -> CheckResult | None:
    """The ``dataset.path`` result, or None when the file is there (the caller reports it)."""
    data = ctx.cfg.data
    path = Path(data.path)
    if not path.exists():
        if data.source == "demo":
            ctx.dataset = {
                "source": "demo",
                "path": str(path),
                "format": "text",
                "records": data.demo.samples,
                "tokens": None,
                "sequences": None,
                "will_create": True,
            }
            return result(
                "dataset.path",
                "Data file",
                "ok",
                f"{path}: will be created at launch (the demo corpus: {data.demo.samples:,} lines, "
                f"seed {data.demo.seed})",
                will_create=str(path),
            )
        return result(
            "dataset.path",
            "Data file",
            "fail",
            f"data.path: {path} not found",
            "point data.path at the training file, or use data.source: demo",
        )
    if path.is_dir():
        return result(
            "dataset.path",
            "Data file",
            "fail",
            f"data.path: {path} is a directory; data.source {data.source} reads one file",
            "point data.path at a file, or set data.source: shards for a prepared shard directory",
        )
    return None


def check_format(ctx: CheckContext, path: Path, unit: UnitChoice) -> tuple[str, CheckResult]:
    """The format to validate the file as, and the ``dataset.format`` result (``unit``: how a text
    file is cut into documents)."""
    source = ctx.cfg.data.source
    try:
        found = detect_format(path, max_line_bytes=ctx.cfg.data.max_line_bytes)
    except FormatError as exc:  # unreadable between the checks
        found = Detection(None, str(exc))
    if found.too_long:  # not a format problem: the lines check names the lines
        return "pretrain" if source == "jsonl" else "text", result(
            "dataset.format",
            "Format",
            "skip",
            f"{path}: not detected: the lines read are all over data.max_line_bytes (see the lines check)",
            format=None,
        )
    if found.binary:
        return "text", result(
            "dataset.format",
            "Format",
            "fail",
            found.error(path),
            "point data.path at the training text",
            format=None,
            binary=True,
        )
    if source == "jsonl":
        if found.format == "pretrain":
            return "pretrain", result(
                "dataset.format", "Format", "ok", f"pretrain JSONL ({found.reason})", format="pretrain"
            )
        if found.format in (None, "text"):
            return "pretrain", result(
                "dataset.format",
                "Format",
                "fail",
                f"{path}: not pretrain JSONL ({found.reason})",
                'data.source jsonl reads one JSON object per line with a "text" string; '
                "use data.source: text for plain text",
                format=found.format,
            )
        return found.format, result(
            "dataset.format",
            "Format",
            "fail",
            f'{path}: {found.format} data ({found.reason}), but data.source jsonl trains on the "text" key of '
            f"each line (pretrain format)",
            f'convert it to {{"text": ...}} lines for pretraining; the engine does not train on {found.format} '
            f"data yet",
            format=found.format,
        )
    if found.format not in (None, "text"):
        return "text", result(
            "dataset.format",
            "Format",
            "warn",
            f"{path}: lines are JSON objects ({found.format}: {found.reason}), but data.source "
            f"{source} trains on every line as raw text, JSON syntax included",
            "set data.source: jsonl for pretrain JSONL",
            format="text",
            looks_like=found.format,
        )
    return "text", result(
        "dataset.format", "Format", "ok", f"text: {unit.describe()}", format="text", text_unit=unit.unit
    )


def _check_file(ctx: CheckContext) -> list[CheckResult]:
    cfg = ctx.cfg
    missing = _check_path(ctx)
    if missing is not None:
        return [missing]
    path = Path(cfg.data.path)
    size = path.stat().st_size
    out = [result("dataset.path", "Data file", "ok", f"{path}: {nbytes(size)}", bytes=size)]
    try:
        unit = choose_text_unit(path, cfg.data.text_unit, cfg.data.max_line_bytes)
    except FormatError as exc:  # unreadable between the checks
        return out + [result("dataset.format", "Format", "fail", str(exc), "check data.path")]
    fmt, fmt_result = check_format(ctx, path, unit)
    out.append(fmt_result)
    if fmt_result.data.get("binary"):
        return out

    tok = _load_tokenizer(cfg)
    every = 1 if size <= FULL_TOKENIZE_BYTES else math.ceil(size / SAMPLE_TOKENIZE_BYTES)
    summary = Summary(str(path), fmt, max_problems=50)
    tokens = LengthStats()
    over = 0
    sampled_chars = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal over
        for enc in tok.encode_batch(batch, add_special_tokens=False):
            n = len(enc.ids)
            tokens.add(n)
            over += n > cfg.train.seq_len
        batch.clear()

    if fmt == "text":
        summary.unit = unit
    for sample in iter_samples(path, fmt, unit.unit, cfg.data.max_line_bytes):
        summary.add(sample)
        if tok is None or sample.text is None or not sample.ok or not sample.text.strip():
            continue
        documents = summary.lengths.count
        if (documents - 1) % every == 0:
            batch.append(sample.text)
            sampled_chars += len(sample.text)
            if len(batch) >= BATCH:
                flush()
    if batch:
        flush()

    out.append(lines_result(summary))
    documents = summary.lengths.count
    out.append(counts_result(summary))
    total_tokens = None
    estimated = every > 1
    if tok is not None and tokens.count:
        body = tokens.total if not estimated else round(tokens.total * summary.chars / max(sampled_chars, 1))
        total_tokens = body + documents  # one end-of-text after every document
        out.append(tokens_result(ctx, summary, tokens, total_tokens, estimated, sampled_chars))
        out.append(seq_len_result(ctx, fmt, tokens, over, estimated))
    elif documents:
        why = (
            f"no tokenizer at {cfg.tokenizer.path} yet (it is trained on this data at launch)"
            if tok is None
            else "nothing to tokenize"
        )
        out.append(result("dataset.tokens", "Tokens", "skip", f"{why}: lengths are in characters"))
    out.append(empty_result(summary))
    out.append(duplicates_result(ctx, summary))
    ctx.dataset = {
        "source": cfg.data.source,
        "path": str(path),
        "format": fmt,
        "records": summary.records,
        "text_unit": unit.unit if fmt == "text" else None,
        "documents": documents,
        "invalid": summary.invalid,
        "chars": summary.chars,
        "bytes": size,
        "tokens": total_tokens,
        "tokens_estimated": estimated and total_tokens is not None,
        "sequences": None if total_tokens is None else total_tokens // cfg.train.seq_len,
        "will_create": False,
    }
    return out


def _load_tokenizer(cfg):
    """The run's tokenizer as the engine encodes with it (no padding, no truncation), or None."""
    from engine.data.tokenizer import read_tokenizer

    try:
        return read_tokenizer(Path(cfg.tokenizer.path) / "tokenizer.json")
    except ValueError:  # missing or malformed: the tokenizer check reports it
        return None
