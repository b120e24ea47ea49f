"""JSON-schema constrained generation through xgrammar: the schema is compiled into a grammar over the
tokenizer's bytes, and at each step every token that cannot continue a document valid against it is
masked out of the logits; once the document is complete only the stop tokens are allowed.

The document is compact JSON (``", "`` and ``": "`` between items, no other whitespace), so an
untrained model cannot spend its tokens on blanks. xgrammar lets raw control characters into a
string, which JSON allows only escaped: tokens holding one are masked too (compact JSON needs none
of them).

A schema is checked first (``check_schema``: nested at most ``MAX_SCHEMA_DEPTH`` deep, a valid JSON
Schema, by ``jsonschema``, that xgrammar can compile), so a bad one is refused up front, naming where
it came from, never in the middle of a generation. The tokenizer's side (xgrammar's TokenizerInfo and compiler) is built once per tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.generation import GenerationError
from engine.nesting import nested_deeper

#: The deepest a JSON schema may nest objects and arrays inside one another (``{}`` is 1 deep): far
#: more than any real schema needs, and shallow enough that ``jsonschema``'s and xgrammar's recursion
#: through it stays well inside Python's recursion limit.
MAX_SCHEMA_DEPTH = 64
_TOO_DEEP = f"the JSON schema is nested more than {MAX_SCHEMA_DEPTH} deep (objects and arrays inside one another)"

_COMPILERS: dict[int, Any] = {}  # id(tokenizer) -> (tokenizer, vocab size, compiler, control-character mask)


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
    except RecursionError:
        raise JsonSchemaError(f"{path}: {_TOO_DEEP}") from None
    try:
        check_schema(schema)
    except JsonSchemaError as exc:
        raise JsonSchemaError(f"{path}: {exc}") from None
    return schema


def check_schema(schema: Any) -> None:
    """JsonSchemaError unless ``schema`` is a valid JSON Schema that xgrammar can compile."""
    if not isinstance(schema, dict):
        raise JsonSchemaError(f"a JSON schema is an object, not {type(schema).__name__}")
    if nested_deeper(schema, MAX_SCHEMA_DEPTH):
        raise JsonSchemaError(_TOO_DEEP)
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise JsonSchemaError(f"not a valid JSON schema ({where + ': ' if where else ''}{exc.message})") from None
    import xgrammar

    try:
        xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)
    except Exception as exc:  # xgrammar raises RuntimeError (and others) for what it does not support
        raise JsonSchemaError(f"a JSON schema that cannot be enforced ({type(exc).__name__}: {exc})") from None


def _compiler(tokenizer, vocab_size: int, stop_ids: list[int]):
    """xgrammar's compiler for ``tokenizer`` and the mask of its tokens holding a control character."""
    kept = _COMPILERS.get(id(tokenizer))
    if kept is not None and kept[0] is tokenizer and kept[1] == (vocab_size, tuple(stop_ids)):
        return kept[2], kept[3]
    import torch
    import xgrammar

    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
    compiler = xgrammar.GrammarCompiler(info)
    control = torch.zeros(vocab_size, dtype=torch.bool)
    for token in range(min(vocab_size, len(tokenizer))):
        if any(ord(c) < 0x20 for c in tokenizer.decode([token])):
            control[token] = True
    _COMPILERS.clear()  # one model at a time: do not keep old tokenizers alive
    _COMPILERS[id(tokenizer)] = (tokenizer, (vocab_size, tuple(stop_ids)), compiler, control)
    return compiler, control


class JsonConstraint:
    """The grammar state of one generation: ``mask`` the logits of the next token, then ``accept`` it."""

    def __init__(self, tokenizer, schema: dict, vocab_size: int, stop_ids: list[int]):
        import xgrammar

        check_schema(schema)
        compiler, self._control = _compiler(tokenizer, vocab_size, sorted(stop_ids))
        grammar = compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        self._matcher = xgrammar.GrammarMatcher(grammar)
        self._bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)

    def mask(self, logits):
        """``logits`` (1 x vocab) with every token the schema does not allow next set to -inf."""
        import xgrammar

        self._matcher.fill_next_token_bitmask(self._bitmask)
        xgrammar.apply_token_bitmask_inplace(logits, self._bitmask.to(logits.device))
        return logits.masked_fill(self._control.to(logits.device), float("-inf"))

    def accept(self, token: int) -> None:
        if not self._matcher.accept_token(token):
            raise RuntimeError(f"the JSON grammar refused token {token}, which it had allowed")
