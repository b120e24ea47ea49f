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

    from cockpit.tokenizer_info import train_on_files

    paths = expand_files(files)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    t0 = time.perf_counter()
    try:
        size, special = train_on_files(
            paths, out, vocab_size, min_frequency=min_frequency, chat_tokens=not no_chat_tokens
        )
    except OSError as exc:
        fail(f"{out}: cannot write the tokenizer ({exc.strerror or exc})")
    note = "" if size == vocab_size else f" (asked for {vocab_size:,}: the text has no more pairs to merge)"
    typer.echo(
        f"trained a byte-level BPE of {size:,} tokens{note} on {len(paths)} file(s) in "
        f"{time.perf_counter() - t0:.1f} s; special tokens {', '.join(special)}; saved to {out}"
    )


def inspect(
    directory: Path = typer.Argument(..., help="Tokenizer directory (tokenizer.json) or a tokenizer.json file."),
    text: list[str] = typer.Option([], "--text", help="Text to encode (repeatable; default: a few built-in samples)."),
    sample: Path | None = typer.Option(None, "--sample", help="A data file to measure characters per token on."),
    sample_records: int = typer.Option(2000, "--sample-records", min=1, help="Records of --sample to read."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Vocabulary size, special tokens, sample encodings and characters per token; says when its
    tokenizer.json turns on padding or truncation (turned off for encoding)."""
    from cockpit.tokenizer_info import describe_tokenizer

    try:
        report = describe_tokenizer(directory, text, sample, sample_records)
    except ValueError as exc:
        fail(str(exc))
    special, added, chat = report["special_tokens"], report["added_special_tokens"], report["chat_template"]
    note, encodings, ratio = report["padding_truncation"], report["encodings"], report["sample"]
    if as_json:
        typer.echo(json.dumps(report, indent=1, ensure_ascii=False))
        return
    typer.echo(f"{report['path']}: {report['model']} tokenizer, {report['vocab_size']:,} tokens")
    typer.echo(
        "special tokens: "
        + ", ".join(f"{role} {name!r}" for role, name in special.items() if name)
        + (f"; added: {', '.join(added)}" if added else "")
        + f"; chat template: {'yes' if chat else 'no'}"
    )
    if note:
        typer.echo(note)
    if report["eos_missing"]:
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
