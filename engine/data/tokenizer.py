"""Byte-level BPE tokenizer: trained on the corpus with the ``tokenizers`` library and saved in the
Hugging Face layout, so ``AutoTokenizer.from_pretrained(dir)`` loads it.

Every tokenizer loaded for encoding (``load_tokenizer``, ``read_tokenizer``) has padding and
truncation turned off, whatever its ``tokenizer.json`` says (BERT-style tokenizers ship with
``"padding"`` and ``"truncation"`` on): documents are packed whole into one token stream, so padding
would fill the shards with pad tokens and truncation would cut every document at its
``max_length``. ``encoding_note`` says what a file had on.

``<|endoftext|>`` serves as end of text, beginning of text and padding. ``cockpit tokenizer train``
adds the chat markers ``<|im_start|>`` and ``<|im_end|>`` (``CHAT_TOKENS``) and a ChatML chat
template, so ``tokenizer.apply_chat_template`` works on what it trains.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS_TOKEN = "<|endoftext|>"
#: Chat markers of ``cockpit tokenizer train`` (ChatML).
CHAT_TOKENS = ("<|im_start|>", "<|im_end|>")
#: ChatML, as a Jinja chat template for ``tokenizer_config.json``.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


#: End-of-text tokens of common tokenizers, tried in order when no tokenizer_config.json names one.
EOS_CANDIDATES = (EOS_TOKEN, "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>")


def guess_eos(vocab: dict[str, int]) -> str | None:
    """The end-of-text token of a bare ``tokenizer.json``'s vocabulary, or None."""
    return next((t for t in EOS_CANDIDATES if t in vocab), None)


def has_tokenizer(path: str | os.PathLike) -> bool:
    return (Path(path) / "tokenizer.json").is_file()


def train_tokenizer(
    corpus: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    vocab_size: int,
    *,
    texts: Iterable[str] | None = None,
    extra_special_tokens: tuple[str, ...] = (),
    chat_template: str | None = None,
    min_frequency: int = 2,
) -> Path:
    """Train a byte-level BPE of ``vocab_size`` tokens on the text file ``corpus`` (or on ``texts``)
    and save it to ``out_dir``, with ``<|endoftext|>`` and ``extra_special_tokens`` as special tokens.

    Written to a temporary directory beside ``out_dir`` and moved into place when complete
    (``tokenizer.json``, the marker of a complete tokenizer, last)."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = [EOS_TOKEN, *(t for t in extra_special_tokens if t != EOS_TOKEN)]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if texts is not None:
        tok.train_from_iterator(texts, trainer)
    else:
        tok.train([str(corpus)], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=1 << 30,
        additional_special_tokens=special[1:] or None,
    )
    if chat_template:
        fast.chat_template = chat_template

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fast.save_pretrained(tmp)
        if not out_dir.exists():
            try:
                os.rename(tmp, out_dir)
                return out_dir
            except OSError:
                if has_tokenizer(out_dir):  # another process finished first; use theirs
                    return out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in tmp.iterdir())
        names.sort(key=lambda n: n == "tokenizer.json")
        for name in names:
            os.replace(tmp / name, out_dir / name)
        return out_dir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer saved at ``path`` (a ``PreTrainedTokenizerFast``) with an EOS token set and
    padding and truncation off (``plain_encoding``)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    plain_encoding(tokenizer.backend_tokenizer)
    if tokenizer.eos_token_id is None:  # a bare tokenizer.json: no tokenizer_config.json names it
        eos = guess_eos(tokenizer.get_vocab())
        if eos is not None:
            tokenizer.eos_token = eos
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"{path}: the tokenizer has no end-of-text token (eos_token in tokenizer_config.json, "
            f"or one of {', '.join(EOS_CANDIDATES)} in its vocabulary)"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def open_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """The ``tokenizers`` Tokenizer of a directory's ``tokenizer.json`` (or of that file) exactly as
    saved, padding and truncation included; ValueError naming the file when it is missing or not a
    tokenizer. Encode with ``read_tokenizer``'s instead."""
    path = Path(path)
    file = path if path.is_file() else path / "tokenizer.json"
    if not file.is_file():
        raise ValueError(f"{path}: no tokenizer here (tokenizer.json is missing)")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:  # the library raises a bare Exception for a malformed file
        raise ValueError(f"{file}: not a valid tokenizer.json ({exc})") from None


def read_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """The ``tokenizers`` Tokenizer of a directory's ``tokenizer.json`` (or of that file), without
    transformers, padding and truncation off; ValueError naming the file when it is missing or not
    a tokenizer."""
    return plain_encoding(open_tokenizer(path))


def plain_encoding(tokenizer: Tokenizer) -> Tokenizer:
    """``tokenizer`` with padding and truncation turned off (in place): a document encodes to all
    of its tokens and nothing else."""
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def encoding_note(tokenizer: Tokenizer) -> str | None:
    """What the saved tokenizer (``open_tokenizer``) turns on that encoding turns off, e.g.
    ``tokenizer.json enables padding to 128 and truncation at 128: both are turned off for encoding;
    ...``; None when it has neither."""
    pad, trunc = tokenizer.padding, tokenizer.truncation
    found = []
    if pad:
        found.append(f"padding to {pad['length']}" if pad.get("length") else "padding to the longest in a batch")
    if trunc:
        found.append(f"truncation at {trunc['max_length']}")
    if not found:
        return None
    both = "both are" if len(found) == 2 else "it is"
    return (
        f"tokenizer.json enables {' and '.join(found)}: {both} turned off for encoding; documents are "
        f"packed whole into one token stream, end-of-text between them"
    )


def eos_token_id(path: str | os.PathLike, tokenizer: Tokenizer | None = None) -> int:
    """The end-of-text id of the tokenizer saved at ``path``, without transformers: the
    ``eos_token`` of its tokenizer_config.json, else a known end-of-text token of its vocabulary.
    Raises ValueError naming the directory when it has none."""
    import json

    path = Path(path)
    tokenizer = tokenizer or read_tokenizer(path)
    name = None
    config = path / "tokenizer_config.json"
    if config.is_file():
        try:
            value = json.loads(config.read_text(encoding="utf-8")).get("eos_token")
        except ValueError:
            value = None
        name = value.get("content") if isinstance(value, dict) else value
    if not isinstance(name, str) or tokenizer.token_to_id(name) is None:
        name = guess_eos(tokenizer.get_vocab())
    if name is None:
        raise ValueError(
            f"{path}: the tokenizer has no end-of-text token (eos_token in tokenizer_config.json, "
            f"or one of {', '.join(EOS_CANDIDATES)} in its vocabulary)"
        )
    return tokenizer.token_to_id(name)
