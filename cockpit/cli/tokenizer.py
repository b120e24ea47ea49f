"""`cockpit tokenizer train|inspect`: a byte-level BPE trained on your files, and a look inside one.

Both are torch-free: ``tokenizers`` trains and loads; the saved directory is the Hugging Face
layout, so ``AutoTokenizer.from_pretrained(DIR)`` and the engine load it as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cockpit.cli.common import expand_files, fail

tokenizer_app = typer.Typer(
    help="Train a tokenizer on your data, or inspect one.", no_args_is_help=True, rich_markup_mode=None
)

#: Shown by ``inspect`` when no ``--text`` is given: prose, code, digits, non-Latin script, emoji.
SAMPLES = (
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b",
    "3 + 4 = 7; 1234567 * 89 = 109876463",
    "Grüße aus Köln — 東京は晴れ 🙂",
)


def iter_texts(files: list[Path]):
    """The text of every valid record of ``files``: documents of text files (``--text-unit auto``), the content fields of JSONL
    records (``engine.data.formats.sample_text``); bad lines are skipped (``data validate`` finds them)."""
    from engine.data import formats

    for path in files:
        detection = formats.detect_format(path)
        fmt = detection.format if detection.format not in (None, "shards") else "text"
        for sample in formats.iter_samples(path, fmt):
            if sample.ok and sample.text and sample.text.strip():
                yield sample.text


def train(
    files: list[str] = typer.Option(..., "--files", help="Training text: files or globs (repeatable), .txt or .jsonl."),
    vocab_size: int = typer.Option(
        ..., "--vocab-size", min=260, max=262_144, help="Vocabulary size, special tokens included."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write (Hugging Face layout)."),
    min_frequency: int = typer.Option(2, "--min-frequency", min=1, help="Pairs seen fewer times are not merged."),
    no_chat_tokens: bool = typer.Option(
        False, "--no-chat-tokens", help="Leave out <|im_start|>, <|im_end|> and the chat template."
    ),
) -> None:
    """Train a byte-level BPE tokenizer (special tokens and a ChatML chat template included)."""
    import time

    from engine.data.tokenizer import CHAT_TEMPLATE, CHAT_TOKENS, EOS_TOKEN, train_tokenizer

    paths = expand_files(files)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    t0 = time.perf_counter()
    extra = () if no_chat_tokens else CHAT_TOKENS
    try:
        train_tokenizer(
            None,
            out,
            vocab_size,
            texts=iter_texts(paths),
            extra_special_tokens=extra,
            chat_template=None if no_chat_tokens else CHAT_TEMPLATE,
            min_frequency=min_frequency,
        )
    except OSError as exc:
        fail(f"{out}: cannot write the tokenizer ({exc.strerror or exc})")
    from tokenizers import Tokenizer

    size = Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size()
    note = "" if size == vocab_size else f" (asked for {vocab_size:,}: the text has no more pairs to merge)"
    typer.echo(
        f"trained a byte-level BPE of {size:,} tokens{note} on {len(paths)} file(s) in "
        f"{time.perf_counter() - t0:.1f} s; special tokens {', '.join((EOS_TOKEN, *extra))}; saved to {out}"
    )


def _config(directory: Path) -> dict:
    try:
        return json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _token_name(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def inspect(
    directory: Path = typer.Argument(..., help="Tokenizer directory (tokenizer.json) or a tokenizer.json file."),
    text: list[str] = typer.Option([], "--text", help="Text to encode (repeatable; default: a few built-in samples)."),
    sample: Path | None = typer.Option(None, "--sample", help="A data file to measure characters per token on."),
    sample_records: int = typer.Option(2000, "--sample-records", min=1, help="Records of --sample to read."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Vocabulary size, special tokens, sample encodings and characters per token; says when its
    tokenizer.json turns on padding or truncation (turned off for encoding)."""
    from engine.data.tokenizer import encoding_note, guess_eos, open_tokenizer, plain_encoding

    file = directory if directory.is_file() else directory / "tokenizer.json"
    try:
        tok = open_tokenizer(directory)
    except ValueError as exc:
        fail(str(exc))
    note = encoding_note(tok)
    plain_encoding(tok)  # encoded as the engine and data prepare encode
    config = _config(file.parent)
    vocab = tok.get_vocab(with_added_tokens=True)
    special = {role: _token_name(config.get(f"{role}_token")) for role in ("bos", "eos", "pad", "unk")}
    if special["eos"] is None:
        special["eos"] = guess_eos(vocab)
    added = [t.content for t in tok.get_added_tokens_decoder().values() if t.special]
    encodings = []
    for item in text or SAMPLES:
        enc = tok.encode(item, add_special_tokens=False)
        encodings.append(
            {
                "text": item,
                "tokens": enc.tokens,
                "ids": enc.ids,
                "round_trip": tok.decode(enc.ids, skip_special_tokens=False) == item,
            }
        )
    chars = sum(len(e["text"]) for e in encodings)
    ratio = {
        "records": len(encodings),
        "chars": chars,
        "tokens": sum(len(e["ids"]) for e in encodings),
        "chars_per_token": chars / max(1, sum(len(e["ids"]) for e in encodings)),
        "of": "the texts above",
    }
    if sample is not None:
        if not sample.is_file():
            fail(f"--sample {sample}: not found")
        texts = []
        for t in iter_texts([sample]):
            texts.append(t)
            if len(texts) >= sample_records:
                break
        if not texts:
            fail(f"--sample {sample}: no text in it")
        n_tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
        ratio = {
            "records": len(texts),
            "chars": sum(map(len, texts)),
            "tokens": n_tokens,
            "chars_per_token": sum(map(len, texts)) / max(1, n_tokens),
            "of": str(sample),
        }
    chat = (file.parent / "chat_template.jinja").is_file() or bool(config.get("chat_template"))
    report = {
        "path": str(file.parent),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "model": json.loads(tok.to_str()).get("model", {}).get("type"),
        "special_tokens": special,
        "added_special_tokens": added,
        "chat_template": chat,
        "encodings": encodings,
        "sample": ratio,
        "padding_truncation": note,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=1, ensure_ascii=False))
        return
    missing = [role for role in ("eos",) if special[role] is None or special[role] not in vocab]
    typer.echo(f"{file.parent}: {report['model']} tokenizer, {report['vocab_size']:,} tokens")
    typer.echo(
        "special tokens: "
        + ", ".join(f"{role} {name!r}" for role, name in special.items() if name)
        + (f"; added: {', '.join(added)}" if added else "")
        + f"; chat template: {'yes' if chat else 'no'}"
    )
    if note:
        typer.echo(note)
    if missing:
        typer.echo("warning: no end-of-text token: the engine needs one (eos_token in tokenizer_config.json)")
    for e in encodings:
        flag = "" if e["round_trip"] else "   (does not decode back to the same text)"
        typer.echo(f"\n{e['text']!r}: {len(e['ids'])} tokens for {len(e['text'])} characters{flag}")
        typer.echo("  " + " | ".join(e["tokens"][:40]) + (" ..." if len(e["tokens"]) > 40 else ""))
    typer.echo(
        f"\n{ratio['of']}: {ratio['chars_per_token']:.2f} characters per token over {ratio['records']:,} "
        f"record(s) ({ratio['chars']:,} characters, {ratio['tokens']:,} tokens)"
    )


def register(app: typer.Typer) -> None:
    tokenizer_app.command("train")(train)
    tokenizer_app.command("inspect")(inspect)
    app.add_typer(tokenizer_app, name="tokenizer")
