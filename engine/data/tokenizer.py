"""Byte-level BPE tokenizer: trained on the corpus with the ``tokenizers`` library and saved in the
Hugging Face layout, so ``AutoTokenizer.from_pretrained(dir)`` loads it.

``<|endoftext|>`` is the only special token; it serves as end of text, beginning of text and padding.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS_TOKEN = "<|endoftext|>"


#: End-of-text tokens of common tokenizers, tried in order when no tokenizer_config.json names one.
EOS_CANDIDATES = (EOS_TOKEN, "<|end_of_text|>", "</s>", "<eos>", "<|eot_id|>")


def guess_eos(vocab: dict[str, int]) -> str | None:
    """The end-of-text token of a bare ``tokenizer.json``'s vocabulary, or None."""
    return next((t for t in EOS_CANDIDATES if t in vocab), None)


def has_tokenizer(path: str | os.PathLike) -> bool:
    return (Path(path) / "tokenizer.json").is_file()


def train_tokenizer(corpus: str | os.PathLike, out_dir: str | os.PathLike, vocab_size: int) -> Path:
    """Train a byte-level BPE of ``vocab_size`` tokens on ``corpus`` and save it to ``out_dir``.

    Written to a temporary directory beside ``out_dir`` and moved into place when complete
    (``tokenizer.json``, the marker of a complete tokenizer, last)."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS_TOKEN],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(corpus)], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=EOS_TOKEN, model_max_length=1 << 30)

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
    """The tokenizer saved at ``path`` (a ``PreTrainedTokenizerFast``) with an EOS token set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.eos_token_id is None:  # a bare tokenizer.json: no tokenizer_config.json names it
        eos = guess_eos(tokenizer.get_vocab())
        if eos is not None:
            tokenizer.eos_token = eos
    if tokenizer.eos_token_id is None:
        raise ValueError(f"{path}: the tokenizer has no end-of-text token (eos_token in tokenizer_config.json, "
                         f"or one of {', '.join(EOS_CANDIDATES)} in its vocabulary)")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
