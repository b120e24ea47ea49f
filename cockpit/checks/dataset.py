"""Dataset: the training data exists, has the format ``data.source`` reads, every line of it is
valid, and how much there is (samples, characters, tokens, sequences of ``train.seq_len``), with
empty and duplicate samples and over-long samples.

Files are validated line by line with ``engine.data.formats`` (a text file cut into documents by
``data.text_unit``, as the engine cuts it) and tokenized with the ``tokenizers`` library (no torch,
no transformers). Every line is always validated; a file larger than
``FULL_TOKENIZE_BYTES`` has only an even sample of its lines tokenized, and the token figures say
they are estimates. Shard directories are checked from their manifest and file sizes, never read.

Facts for later checks go to ``ctx.dataset``: ``source``, ``path``, ``format``,
``records``, ``documents`` (valid, non-empty samples), ``text_unit`` (line, paragraph or file; None for JSONL), ``chars``, ``bytes``, ``tokens`` (with one
end-of-text per document, as the engine's stream; None without a tokenizer), ``tokens_estimated``,
``sequences`` (tokens // seq_len; None without tokens), ``will_create``.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.data.detect import Detection, detect_format
from engine.data.lines import ERROR_KINDS, FormatError
from engine.data.manifest import ShardSummary, inspect_shards
from engine.data.records import iter_samples
from engine.data.summary import LengthStats, Summary
from engine.data.textunits import UnitChoice, choose_text_unit
from engine.units import nbytes

#: Files up to this size are tokenized whole; larger ones only in part.
FULL_TOKENIZE_BYTES = 64 << 20
#: About how many bytes of a larger file are tokenized (an even sample of its lines).
SAMPLE_TOKENIZE_BYTES = 16 << 20
#: Texts per ``encode_batch`` call.
BATCH = 2_000
#: Problems quoted in a result's detail.
QUOTED = 5

_WARNING_KINDS = ("empty", "empty_field", "blank")


def _quote(problems: list, total: int) -> str:
    lines = "\n".join(str(p) for p in problems)
    more = total - len(problems)
    return lines + (f"\n… and {more:,} more" if more > 0 else "")


def _enough(ctx: CheckContext, tokens: int, estimated: bool) -> CheckResult | None:
    """A blocking failure when the training part of the stream has fewer windows of seq_len than
    there are processes (the engine refuses to start), else None."""
    cfg = ctx.cfg
    seq_len = cfg.train.seq_len
    train_tokens = tokens - int(tokens * cfg.data.val_fraction)
    if train_tokens // seq_len >= ctx.nproc:
        return None
    about = "about " if estimated else ""
    return result(
        "dataset.tokens",
        "Tokens",
        "fail",
        f"{about}{train_tokens:,} training tokens: fewer than {ctx.nproc} sequence(s) of train.seq_len {seq_len}",
        "use more text or a smaller train.seq_len",
        tokens=tokens,
        train_tokens=train_tokens,
    )


def check_dataset(ctx: CheckContext) -> list[CheckResult]:
    if ctx.cfg is None:
        return []
    if ctx.cfg.data.source == "shards":
        return _check_shards(ctx)
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
        found = detect_format(path)
    except FormatError as exc:  # unreadable between the checks
        found = Detection(None, str(exc))
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
        unit = choose_text_unit(path, cfg.data.text_unit)
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
    for sample in iter_samples(path, fmt, unit.unit):
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
    out.append(_counts_result(summary))
    total_tokens = None
    estimated = every > 1
    if tok is not None and tokens.count:
        body = tokens.total if not estimated else round(tokens.total * summary.chars / max(sampled_chars, 1))
        total_tokens = body + documents  # one end-of-text after every document
        out.append(_tokens_result(ctx, summary, tokens, total_tokens, estimated, sampled_chars))
        out.append(_seq_len_result(ctx, fmt, tokens, over, estimated))
    elif documents:
        why = (
            f"no tokenizer at {cfg.tokenizer.path} yet (it is trained on this data at launch)"
            if tok is None
            else "nothing to tokenize"
        )
        out.append(result("dataset.tokens", "Tokens", "skip", f"{why}: lengths are in characters"))
    out.append(_empty_result(summary))
    out.append(_duplicates_result(ctx, summary))
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


def lines_result(s: Summary) -> CheckResult:
    counts = {k: n for k, n in s.counts.items() if k in ERROR_KINDS}
    if not counts:
        return result(
            "dataset.lines",
            "Lines",
            "ok",
            f"all {s.records:,} {s.format} records valid",
            records=s.records,
            invalid=0,
            problems={},
        )
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return result(
        "dataset.lines",
        "Lines",
        "fail",
        f"{s.invalid:,} of {s.records:,} records have errors ({kinds}):\n"
        + _quote(s.first(ERROR_KINDS, QUOTED), s.errors),
        "fix or drop the lines named (the engine stops at the first malformed line)",
        records=s.records,
        invalid=s.invalid,
        problems=counts,
        first=[str(p) for p in s.first(ERROR_KINDS, QUOTED)],
    )


def _counts_result(s: Summary) -> CheckResult:
    n = s.lengths.count
    if n == 0:
        return result(
            "dataset.counts",
            "Samples",
            "fail",
            f"no text: none of the {s.records:,} records has a non-empty sample",
            "put training text in the file",
            records=s.records,
            documents=0,
        )
    L = s.lengths
    return result(
        "dataset.counts",
        "Samples",
        "ok",
        f"{n:,} samples, {s.chars:,} characters ({nbytes(s.bytes)}); characters per sample: "
        f"p50 {L.percentile(50):,}, p90 {L.percentile(90):,}, max {L.max:,}",
        records=s.records,
        documents=n,
        chars=s.chars,
        bytes=s.bytes,
        lengths_chars=L.to_json(),
    )


def _tokens_result(
    ctx: CheckContext, s: Summary, tokens: LengthStats, total: int, estimated: bool, sampled_chars: int
) -> CheckResult:
    cfg = ctx.cfg
    too_few = _enough(ctx, total, estimated)
    if too_few is not None:
        return too_few
    seq_len = cfg.train.seq_len
    val = int(total * cfg.data.val_fraction)
    about = "about " if estimated else ""
    detail = (
        f"{about}{total:,} tokens ({s.lengths.count:,} documents, each + end-of-text) = "
        f"{about}{total // seq_len:,} sequences of {seq_len}; {val:,} held out (data.val_fraction "
        f"{cfg.data.val_fraction}); tokens per sample: p50 {tokens.percentile(50):,}, "
        f"p90 {tokens.percentile(90):,}, max {tokens.max:,}; {s.chars / max(total - s.lengths.count, 1):.2f} "
        f"characters per token"
    )
    if estimated:
        detail += (
            f"\nestimated: the file is over {nbytes(FULL_TOKENIZE_BYTES)}, so every line was validated but only "
            f"{tokens.count:,} of {s.lengths.count:,} samples ({nbytes(sampled_chars)} of text) were tokenized"
        )
    return result(
        "dataset.tokens",
        "Tokens",
        "ok",
        detail,
        tokens=total,
        estimated=estimated,
        sequences=total // seq_len,
        val_tokens=val,
        tokenized_samples=tokens.count,
        lengths_tokens=tokens.to_json(),
    )


def _seq_len_result(ctx: CheckContext, fmt: str, tokens: LengthStats, over: int, estimated: bool) -> CheckResult:
    seq_len = ctx.cfg.train.seq_len
    n = tokens.count
    of = f"{over:,} of {n:,}" + (" tokenized" if estimated else "")
    data = {"over": over, "of": n, "seq_len": seq_len, "longest": tokens.max}
    if over == 0:
        return result(
            "dataset.seq_len",
            "Sample length",
            "ok",
            f"every sample fits in train.seq_len {seq_len} (longest {tokens.max:,} tokens)",
            **data,
        )
    if fmt in ("text", "pretrain"):
        return result(
            "dataset.seq_len",
            "Sample length",
            "ok",
            f"{of} samples ({100 * over / n:.1f}%) are longer than train.seq_len {seq_len} tokens "
            f"(longest {tokens.max:,}): fine for pretraining, documents are packed into one token "
            f"stream and cut into windows of {seq_len}",
            **data,
        )
    return result(
        "dataset.seq_len",
        "Sample length",
        "warn",
        f"{of} samples ({100 * over / n:.1f}%) are longer than train.seq_len {seq_len} tokens "
        f"(longest {tokens.max:,}) and would be truncated",
        "raise train.seq_len or drop or split the long samples",
        **data,
    )


def _empty_result(s: Summary) -> CheckResult:
    counts = {k: s.counts.get(k, 0) for k in _WARNING_KINDS}
    total = sum(counts.values())
    if not total:
        return result("dataset.empty", "Empty samples", "ok", "no empty samples", **counts)
    what = ", ".join(
        f"{n:,} {label}"
        for (k, n), label in zip(counts.items(), ("empty sample(s)", "sample(s) with an empty field", "blank line(s)"))
        if n
    )
    return result(
        "dataset.empty",
        "Empty samples",
        "warn",
        f"{what}:\n" + _quote(s.first(_WARNING_KINDS, QUOTED), total),
        "drop them (the engine skips empty documents; an empty field trains on nothing)",
        **counts,
        first=[str(p) for p in s.first(_WARNING_KINDS, QUOTED)],
    )


def _duplicates_result(ctx: CheckContext, s: Summary) -> CheckResult:
    n, docs = s.duplicates, s.lengths.count
    partial = "" if s.duplicates_exact else f" (compared with the first {s.max_tracked:,} distinct samples only)"
    if not n:
        return result("dataset.duplicates", "Duplicates", "ok", f"no exact duplicates{partial}", duplicates=0)
    share = f"{n:,} of {docs:,} samples ({100 * n / docs:.1f}%) repeat an earlier one exactly (whitespace normalised){partial}"
    first = s.first(("duplicate",), QUOTED)
    if ctx.cfg.data.source == "demo":
        return result(
            "dataset.duplicates",
            "Duplicates",
            "ok",
            f"{share}: by design, the demo corpus draws from a few patterns",
            duplicates=n,
        )
    return result(
        "dataset.duplicates",
        "Duplicates",
        "warn",
        f"{share}:\n" + _quote(first, n),
        "deduplicate the data: repeated samples are memorised and weigh more in the loss",
        duplicates=n,
        first=[str(p) for p in first],
    )


# --- shard directories ------------------------------------------------------------------------


def _check_shards(ctx: CheckContext) -> list[CheckResult]:
    cfg = ctx.cfg
    path = Path(cfg.data.path)
    if not path.is_dir():
        what = "not found" if not path.exists() else "is a file, not a shard directory"
        return [
            result(
                "dataset.path",
                "Shard directory",
                "fail",
                f"data.path: {path} {what}",
                "prepare shards with `cockpit data prepare --input FILE --tokenizer DIR --out DIR "
                "--seq-len N`, or set data.source to text or jsonl for a file",
            )
        ]
    out = [result("dataset.path", "Shard directory", "ok", f"{path}")]
    shards = inspect_shards(path)
    if shards.manifest is None or shards.problems:
        out.append(
            result(
                "dataset.manifest",
                "Shard manifest",
                "fail",
                _quote(shards.problems[:QUOTED], len(shards.problems)),
                "prepare the shards again (cockpit data prepare)",
                problems=[str(p) for p in shards.problems],
            )
        )
        return out
    m = shards.manifest
    out.append(
        result(
            "dataset.manifest",
            "Shard manifest",
            "ok",
            f"{shards.shards} shard(s), {shards.tokens:,} tokens ({m.dtype}), prepared for seq_len "
            f"{shards.seq_len} with tokenizer sha256 {shards.tokenizer_sha256[:12]}…",
            shards=shards.shards,
            tokens=shards.tokens,
            dtype=m.dtype,
        )
    )
    out.append(_shard_tokenizer_result(cfg, path, shards))
    seq_len = cfg.train.seq_len
    if shards.seq_len != seq_len:
        out.append(
            result(
                "dataset.shard_seq_len",
                "Shard seq_len",
                "fail",
                f"shards in {path} were prepared for seq_len {shards.seq_len}, this run uses train.seq_len {seq_len}",
                f"set train.seq_len: {shards.seq_len} or prepare the shards again",
                shards_seq_len=shards.seq_len,
                seq_len=seq_len,
            )
        )
    else:
        out.append(result("dataset.shard_seq_len", "Shard seq_len", "ok", f"prepared for train.seq_len {seq_len}"))
    total = shards.tokens
    too_few = _enough(ctx, total, False)
    if too_few is not None:
        out.append(too_few)
    else:
        prepared_val = (m.val_tokens or 0) if m.val_shards else 0
        val = prepared_val or int(total * cfg.data.val_fraction)
        held = (
            f"{val:,} in the validation shards"
            if prepared_val
            else f"{val:,} held out (data.val_fraction {cfg.data.val_fraction})"
        )
        dropped = m.documents.dropped if m.documents else {}
        extra = (
            (
                f"; prepared from {m.documents.read:,} records, {sum(dropped.values()):,} dropped ("
                + ", ".join(f"{k} {v:,}" for k, v in dropped.items())
                + ")"
            )
            if dropped
            else ""
        )
        mask = "; fine-tuning loss mask: only the assistant's tokens are learnt" if m.loss_mask else ""
        train_tokens = total if prepared_val else total - val
        out.append(
            result(
                "dataset.tokens",
                "Tokens",
                "ok",
                f"{train_tokens:,} training tokens = {train_tokens // seq_len:,} sequences of {seq_len}; "
                f"{held}{extra}{mask}",
                tokens=total,
                sequences=total // seq_len,
                val_tokens=val,
                loss_mask=m.loss_mask,
            )
        )
    ctx.dataset = {
        "source": "shards",
        "path": str(path),
        "format": "shards",
        "records": None,
        "documents": None,
        "chars": None,
        "bytes": None,
        "tokens": total,
        "tokens_estimated": False,
        "sequences": total // seq_len,
        "shards": shards.shards,
        "will_create": False,
    }
    return out


def _shard_tokenizer_result(cfg, path: Path, shards: ShardSummary) -> CheckResult:
    theirs = shards.tokenizer_sha256
    written_with = shards.manifest.tokenizer.path
    where = f" ({written_with})" if written_with else ""
    file = Path(cfg.tokenizer.path) / "tokenizer.json"
    if not file.is_file():
        return result(
            "dataset.shard_tokenizer",
            "Shard tokenizer",
            "skip",
            f"no tokenizer at tokenizer.path {cfg.tokenizer.path} to compare with: the shards were written "
            f"with sha256 {theirs[:12]}…{where}",
            shards_sha256=theirs,
        )
    ours = hashlib.sha256(file.read_bytes()).hexdigest()
    data: dict[str, Any] = {"shards_sha256": theirs, "tokenizer_sha256": ours}
    if ours != theirs:
        return result(
            "dataset.shard_tokenizer",
            "Shard tokenizer",
            "fail",
            f"shards in {path} were written with tokenizer sha256 {theirs[:12]}…{where}, this run's "
            f"tokenizer in {cfg.tokenizer.path} has {ours[:12]}…",
            "prepare the shards again with this tokenizer, or set tokenizer.path to the one they were written with",
            **data,
        )
    return result(
        "dataset.shard_tokenizer",
        "Shard tokenizer",
        "ok",
        f"written with this run's tokenizer (sha256 {ours[:12]}…)",
        **data,
    )
