"""JSON-schema constrained generation through lm-format-enforcer: at each step, every token that
cannot continue a JSON document valid against the schema is masked out of the logits, and once the
document is complete only end of text is allowed.

The library's own Transformers adapter does not import under Transformers 5, so its core is used
(``TokenEnforcer`` with a ``JsonSchemaParser``) and the tokenizer's table of tokens is built here the
way that adapter builds it: each regular token decoded after a "0", to see whether it starts a word.
The table depends on the tokenizer only, so it is built once per tokenizer and kept.

What the library supports of JSON Schema is what is enforced (types, properties, required, enum,
const, minLength/maxLength, arrays with min/maxItems, anyOf, $ref); a schema it cannot read is
refused up front (``JsonSchemaError``), never in the middle of a generation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.generation import GenerationError

#: Whitespace allowed in a row between JSON tokens: a little for readability, not so much that an
#: untrained model spends its token budget on blanks.
MAX_WHITESPACE = 2

_TOKENIZER_DATA: dict[int, Any] = {}  # id(tokenizer) -> (tokenizer, TokenEnforcerTokenizerData)


class JsonSchemaError(GenerationError):
    """A JSON schema that cannot be used; the message names where it came from."""


def read_schema(path: str | os.PathLike) -> dict:
    """The JSON schema in the file ``path``; JsonSchemaError naming the file when it is missing, not
    JSON, or not a schema the constraint can enforce."""
    path = Path(path)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JsonSchemaError(f"{path}: no such JSON schema file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonSchemaError(f"{path}: cannot read the JSON schema ({exc})") from None
    except ValueError as exc:
        raise JsonSchemaError(f"{path}: not valid JSON ({exc})") from None
    try:
        check_schema(schema)
    except JsonSchemaError as exc:
        raise JsonSchemaError(f"{path}: {exc}") from None
    return schema


def check_schema(schema: Any) -> None:
    """JsonSchemaError unless ``schema`` is an object the constraint can enforce."""
    if not isinstance(schema, dict):
        raise JsonSchemaError(f"a JSON schema is an object, not {type(schema).__name__}")
    _parser(schema)


def _parser(schema: dict):
    from lmformatenforcer import JsonSchemaParser

    try:
        return JsonSchemaParser(schema)
    except Exception as exc:  # pydantic's ValidationError and others, from the library's schema model
        first = str(exc).strip().splitlines()
        raise JsonSchemaError(f"not a JSON schema that can be enforced ({first[0] if first else exc})") from None


def _usable(token_text: str) -> bool:
    """Whether a token may be offered to the parser at all: not part of a UTF-8 character (the parser
    reads characters, not bytes), and no control character but a line break (JSON allows them in a
    string only escaped, and the library's fast path for strings would let them through raw)."""
    return "\ufffd" not in token_text and all(c.isprintable() or c in "\n\r" for c in token_text)


def _tokenizer_data(tokenizer):
    """lm-format-enforcer's table of ``tokenizer``'s tokens, built once per tokenizer."""
    kept = _TOKENIZER_DATA.get(id(tokenizer))
    if kept is not None and kept[0] is tokenizer:
        return kept[1]
    from lmformatenforcer import TokenEnforcerTokenizerData

    vocab_size = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    regular = []
    for token in range(vocab_size):
        if token in special:
            continue
        after_zero = tokenizer.decode([zero, token])[1:]
        alone = tokenizer.decode([token])
        if not _usable(after_zero):
            continue
        regular.append((token, after_zero, len(after_zero) > len(alone)))

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")

    data = TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, vocab_size)
    _TOKENIZER_DATA.clear()  # one model is served at a time; do not keep old tokenizers alive
    _TOKENIZER_DATA[id(tokenizer)] = (tokenizer, data)
    return data


class JsonConstraint:
    """Masks the logits of one generation to what the schema allows next."""

    def __init__(self, tokenizer, schema: dict):
        from lmformatenforcer import TokenEnforcer

        check_schema(schema)
        self._enforcer = TokenEnforcer(_tokenizer_data(tokenizer), _parser(schema))
        config = self._enforcer.root_parser.config  # the TokenEnforcer's, shared by every state of the parser
        config.max_consecutive_whitespaces = MAX_WHITESPACE
        # the characters a string may hold: the tokenizer's, less control characters, which JSON
        # allows in a string only escaped (the library would let them through raw)
        config.alphabet = "".join(c for c in config.alphabet if c.isprintable())

    def mask(self, token_sequence: list[int], logits):
        """``logits`` (1 x vocab) with every token the schema does not allow after ``token_sequence``
        (prompt and output so far) set to -inf."""
        import torch

        allowed = self._enforcer.get_allowed_tokens(token_sequence).allowed_tokens
        keep = torch.full_like(logits, float("-inf"))
        index = torch.tensor([t for t in allowed if t < logits.shape[-1]], dtype=torch.long, device=logits.device)
        keep[:, index] = 0.0
        return logits + keep
