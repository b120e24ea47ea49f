"""The dataset check's findings about a file: the results made from a scan's ``Summary`` (lines,
counts, tokens, sequence length, empty and duplicate samples), and the two rules the file and shard
checks share (quoting problems, enough tokens for the processes)."""

from __future__ import annotations

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.data.lines import ERROR_KINDS
from engine.data.summary import LengthStats, Summary
from engine.units import nbytes

#: Files up to this size are tokenized whole; larger ones only in part.
FULL_TOKENIZE_BYTES = 64 << 20
#: About how many bytes of a larger file are tokenized (an even sample of its lines).
SAMPLE_TOKENIZE_BYTES = 16 << 20

#: Problems quoted in a result's detail.
QUOTED = 5

_WARNING_KINDS = ("empty", "empty_field", "blank")


def quote_problems(problems: list, total: int) -> str:
    lines = "\n".join(str(p) for p in problems)
    more = total - len(problems)
    return lines + (f"\n… and {more:,} more" if more > 0 else "")


def enough_tokens(ctx: CheckContext, tokens: int, estimated: bool) -> CheckResult | None:
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
        + quote_problems(s.first(ERROR_KINDS, QUOTED), s.errors),
        "fix or drop the lines named (the engine stops at the first malformed line)",
        records=s.records,
        invalid=s.invalid,
        problems=counts,
        first=[str(p) for p in s.first(ERROR_KINDS, QUOTED)],
    )


def counts_result(s: Summary) -> CheckResult:
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


def tokens_result(
    ctx: CheckContext, s: Summary, tokens: LengthStats, total: int, estimated: bool, sampled_chars: int
) -> CheckResult:
    cfg = ctx.cfg
    too_few = enough_tokens(ctx, total, estimated)
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


def seq_len_result(ctx: CheckContext, fmt: str, tokens: LengthStats, over: int, estimated: bool) -> CheckResult:
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


def empty_result(s: Summary) -> CheckResult:
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
        f"{what}:\n" + quote_problems(s.first(_WARNING_KINDS, QUOTED), total),
        "drop them (the engine skips empty documents; an empty field trains on nothing)",
        **counts,
        first=[str(p) for p in s.first(_WARNING_KINDS, QUOTED)],
    )


def duplicates_result(ctx: CheckContext, s: Summary) -> CheckResult:
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
        f"{share}:\n" + quote_problems(first, n),
        "deduplicate the data: repeated samples are memorised and weigh more in the loss",
        duplicates=n,
        first=[str(p) for p in first],
    )
