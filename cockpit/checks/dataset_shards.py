"""The dataset check of a prepared shard directory: from its manifest and file sizes, never read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cockpit.checks.base import CheckContext, CheckResult, result
from cockpit.checks.dataset_findings import QUOTED, enough_tokens, quote_problems
from engine.data.manifest import ShardSummary, inspect_shards
from engine.digest import file_sha256


def check_shards(ctx: CheckContext) -> list[CheckResult]:
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
                quote_problems(shards.problems[:QUOTED], len(shards.problems)),
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
    too_few = enough_tokens(ctx, total, False)
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
    ours = file_sha256(file)
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
