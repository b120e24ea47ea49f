"""Training a tokenizer on data files and describing one: what ``cockpit tokenizer train|inspect``
and the wizard's tokenizer step both do.

Torch-free: ``tokenizers`` trains and reads (imported inside the functions, so importing this module
costs nothing); the saved directory is the Hugging Face layout the engine loads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

#: Encoded when no text is given: prose, code, digits, non-Latin script, emoji.
SAMPLES = (
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b",
    "3 + 4 = 7; 1234567 * 89 = 109876463",
    "Grüße aus Köln — 東京は晴れ 🙂",
)


def iter_texts(files: Iterable[Path]) -> Iterator[str]:
    """The text of every valid record of ``files``: documents of text files (``--text-unit auto``), the
    content fields of JSONL records (``engine.data.formats.sample_text``); bad lines are skipped
    (``data validate`` finds them)."""
    from engine.data import formats

    for path in files:
        detection = formats.detect_format(path)
        fmt = detection.format if detection.format not in (None, "shards") else "text"
        for sample in formats.iter_samples(path, fmt):
            if sample.ok and sample.text and sample.text.strip():
                yield sample.text


def train_on_files(
    files: list[Path],
    out: Path,
    vocab_size: int,
    *,
    min_frequency: int = 2,
    chat_tokens: bool = True,
    on_text: Callable[[str], None] | None = None,
) -> tuple[int, tuple[str, ...]]:
    """Train a byte-level BPE of ``vocab_size`` tokens on the records of ``files`` and save it to
    ``out`` (atomically: ``engine.data.tokenizer.train_tokenizer``); with the ChatML tokens and chat
    template unless ``chat_tokens`` is off. ``on_text`` sees each record as it is read (progress);
    an exception it raises stops the training and nothing is written. Returns the vocabulary size
    trained (smaller than asked when the text has no more pairs to merge) and the special tokens."""
    from engine.data.tokenizer import CHAT_TEMPLATE, CHAT_TOKENS, EOS_TOKEN, read_tokenizer, train_tokenizer

    texts = iter_texts(files)
    if on_text is not None:
        texts = _watched(texts, on_text)
    extra = CHAT_TOKENS if chat_tokens else ()
    train_tokenizer(
        None,
        out,
        vocab_size,
        texts=texts,
        extra_special_tokens=extra,
        chat_template=CHAT_TEMPLATE if chat_tokens else None,
        min_frequency=min_frequency,
    )
    return read_tokenizer(out).get_vocab_size(), (EOS_TOKEN, *extra)


def train_reporting(
    files: list[Path], out: Path, vocab_size: int, progress: Callable[[int], None], every_s: float = 0.1
) -> tuple[int, tuple[str, ...]]:
    """``train_on_files`` reporting the bytes read so far to ``progress`` (at most every ``every_s``
    seconds): the form ``cockpit.offload.run_in_child`` runs, so the app's tokenizer step trains in a
    child process that can be ended at any moment."""
    read = [0, 0.0]  # bytes read, when progress was last reported

    def on_text(text: str) -> None:
        read[0] += len(text.encode("utf-8", "replace"))
        now = time.monotonic()
        if now - read[1] >= every_s:
            read[1] = now
            progress(read[0])

    return train_on_files(files, out, vocab_size, on_text=on_text)


def _watched(texts: Iterable[str], on_text: Callable[[str], None]) -> Iterator[str]:
    for text in texts:
        on_text(text)
        yield text


def _config(directory: Path) -> dict:
    try:
        return json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _token_name(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def describe_tokenizer(
    directory: Path, texts: Iterable[str] = (), sample: Path | None = None, sample_records: int = 2000
) -> dict:
    """What ``cockpit tokenizer inspect`` shows of the tokenizer at ``directory`` (or of that
    tokenizer.json): vocabulary size, model type, special tokens, chat template, the encodings of
    ``texts`` (default ``SAMPLES``), and characters per token on them, or on up to ``sample_records``
    records of the data file ``sample``. ValueError naming the file when the tokenizer cannot be
    read or the sample has no text."""
    from engine.data.tokenizer import encoding_note, guess_eos, open_tokenizer, plain_encoding

    file = directory if directory.is_file() else directory / "tokenizer.json"
    tok = open_tokenizer(directory)
    note = encoding_note(tok)
    plain_encoding(tok)  # encoded as the engine and data prepare encode
    config = _config(file.parent)
    vocab = tok.get_vocab(with_added_tokens=True)
    special = {role: _token_name(config.get(f"{role}_token")) for role in ("bos", "eos", "pad", "unk")}
    if special["eos"] is None:
        special["eos"] = guess_eos(vocab)
    added = [t.content for t in tok.get_added_tokens_decoder().values() if t.special]
    encodings = []
    for item in list(texts) or SAMPLES:
        enc = tok.encode(item, add_special_tokens=False)
        encodings.append(
            {
                "text": item,
                "tokens": enc.tokens,
                "ids": enc.ids,
                "round_trip": tok.decode(enc.ids, skip_special_tokens=False) == item,
            }
        )
    measured = [e["text"] for e in encodings]
    n_tokens = sum(len(e["ids"]) for e in encodings)
    of = "the texts above"
    if sample is not None:
        if not sample.is_file():
            raise ValueError(f"{sample}: not found")
        measured = []
        for text in iter_texts([sample]):
            measured.append(text)
            if len(measured) >= sample_records:
                break
        if not measured:
            raise ValueError(f"{sample}: no text in it")
        n_tokens = sum(len(e.ids) for e in tok.encode_batch(measured, add_special_tokens=False))
        of = str(sample)
    chars = sum(map(len, measured))
    return {
        "path": str(file.parent),
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "model": json.loads(tok.to_str()).get("model", {}).get("type"),
        "special_tokens": special,
        "eos_missing": special["eos"] is None or special["eos"] not in vocab,
        "added_special_tokens": added,
        "chat_template": (file.parent / "chat_template.jinja").is_file() or bool(config.get("chat_template")),
        "encodings": encodings,
        "sample": {
            "records": len(measured),
            "chars": chars,
            "tokens": n_tokens,
            "chars_per_token": chars / max(1, n_tokens),
            "of": of,
        },
        "padding_truncation": note,
    }
