"""Tokenizer: loads from the local directory (a Hugging Face tokenizer directory or a bare
``tokenizer.json``), its vocabulary fits the model's embedding, it has its special tokens, it
round-trips text, and whether its ``tokenizer.json`` turns on padding or truncation (the engine and
``cockpit data prepare`` turn them off for encoding). Read with the ``tokenizers`` library (fast,
no transformers import).
"""

from __future__ import annotations

import json
from pathlib import Path

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.data.tokenizer import EOS_CANDIDATES, encoding_note, guess_eos, open_tokenizer, plain_encoding
from engine.sizing import embedding_rows, embedding_too_small

#: Text a byte-level tokenizer must give back unchanged.
SAMPLE = "The quick brown fox, 3.14 km/h!\n  Ünïcödé: naïve café, 東京, emoji 🚀."


def special_tokens(tok_dir: Path, vocab: dict[str, int]) -> dict[str, str | None]:
    """eos/bos/pad tokens as ``tokenizer_config.json`` names them, else guessed as the engine does
    (``engine.data.tokenizer.load_tokenizer``: pad and bos fall back to eos)."""
    names: dict[str, str | None] = {"eos": None, "bos": None, "pad": None}
    config = tok_dir / "tokenizer_config.json"
    if config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        for key in names:
            value = data.get(f"{key}_token")
            names[key] = value.get("content") if isinstance(value, dict) else value
    if names["eos"] is None:
        names["eos"] = guess_eos(vocab)
    return names


def check_tokenizer(ctx: CheckContext) -> list[CheckResult]:
    cfg = ctx.cfg
    if cfg is None:
        return []
    tok_dir = Path(cfg.tokenizer.path)
    file = tok_dir / "tokenizer.json"
    if not file.is_file():
        if cfg.data.source in ("demo", "text", "jsonl"):
            ctx.tokenizer = {"vocab_size": cfg.tokenizer.vocab_size, "will_train": True}
            return [
                result(
                    "tokenizer.load",
                    "Tokenizer",
                    "ok",
                    f"{tok_dir}: will be created at launch (a byte-level BPE of {cfg.tokenizer.vocab_size:,} tokens "
                    f"trained on {cfg.data.path.name})",
                    will_create=str(tok_dir),
                )
            ]
        what = "not found" if not tok_dir.exists() else "has no tokenizer.json"
        return [
            result(
                "tokenizer.load",
                "Tokenizer",
                "fail",
                f"tokenizer.path: {tok_dir} {what}",
                "point tokenizer.path at the tokenizer the shards were written with (cockpit tokenizer train makes one)",
            )
        ]

    try:
        tok = open_tokenizer(file)
    except ValueError as exc:
        return [
            result(
                "tokenizer.load",
                "Tokenizer",
                "fail",
                f"{file}: cannot be loaded ({exc})",
                "re-create the tokenizer (cockpit tokenizer train)",
            )
        ]
    note = encoding_note(tok)
    plain_encoding(tok)
    vocab = tok.get_vocab(with_added_tokens=True)
    size = max(len(vocab), tok.get_vocab_size(with_added_tokens=True))
    ctx.tokenizer = {"vocab_size": size, "will_train": False}
    out = [
        result(
            "tokenizer.load",
            "Tokenizer",
            "ok",
            f"{tok_dir}: {size:,} tokens"
            + ("" if (tok_dir / "tokenizer_config.json").is_file() else " (bare tokenizer.json)"),
            vocab_size=size,
        )
    ]

    padded = cfg.model.get("vocab_size")
    if embedding_too_small(size, padded):
        out.append(
            result(
                "tokenizer.vocab",
                "Vocabulary vs embedding",
                "fail",
                f"the tokenizer's {size:,} tokens do not fit the model's embedding of {int(padded):,} "
                f"(model.vocab_size)",
                f"remove model.vocab_size or set it to at least {size:,}",
            )
        )
    else:
        embedding = embedding_rows(size, padded)
        out.append(
            result(
                "tokenizer.vocab",
                "Vocabulary vs embedding",
                "ok",
                f"embedding of {embedding:,} rows for {size:,} tokens"
                + (" (model.vocab_size pads it)" if padded is not None else " (sized to the tokenizer)"),
            )
        )

    specials = special_tokens(tok_dir, vocab)
    missing_in_vocab = [f"{k} {v!r}" for k, v in specials.items() if v is not None and v not in vocab]
    if specials["eos"] is None or missing_in_vocab:
        detail = (
            f"{', '.join(missing_in_vocab)} not in the vocabulary"
            if missing_in_vocab
            else f"no end-of-text token: tokenizer_config.json names none and none of {', '.join(EOS_CANDIDATES)} is in the vocabulary"
        )
        out.append(
            result(
                "tokenizer.special",
                "Special tokens",
                "fail",
                detail,
                "add eos_token to tokenizer_config.json (documents are separated by it)",
            )
        )
    else:
        shown = ", ".join(f"{k} {v}" if v else f"{k} = eos" for k, v in specials.items())
        out.append(result("tokenizer.special", "Special tokens", "ok", shown, **specials))

    out.append(
        result(
            "tokenizer.encoding",
            "Padding and truncation",
            "ok",
            note or "off in tokenizer.json: documents are encoded whole",
            turned_off=note is not None,
        )
    )

    ids = tok.encode(SAMPLE, add_special_tokens=False).ids
    back = tok.decode(ids, skip_special_tokens=False)
    if back != SAMPLE:
        at = next((i for i, (a, b) in enumerate(zip(back, SAMPLE)) if a != b), min(len(back), len(SAMPLE)))
        out.append(
            result(
                "tokenizer.roundtrip",
                "Round trip",
                "warn",
                f"decode(encode(text)) differs from the text at character {at}: {SAMPLE[at : at + 12]!r} came back "
                f"as {back[at : at + 12]!r}",
                "a byte-level BPE (cockpit tokenizer train) round-trips any text",
            )
        )
    else:
        out.append(
            result(
                "tokenizer.roundtrip",
                "Round trip",
                "ok",
                f"{len(SAMPLE)} characters -> {len(ids)} tokens -> the same text ({len(SAMPLE) / max(len(ids), 1):.2f} chars/token)",
            )
        )
    return out
