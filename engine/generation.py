"""Generating text with a loaded checkpoint: the one owner of sampling, stop rules and streaming,
for `cockpit ckpt sample`, `cockpit serve` and the checkpoint viewer alike.

    loaded = load_checkpoint(ckpt_dir)                        # engine.checkpoint_model
    text = prompt_text(loaded.tokenizer, messages=[{"role": "user", "content": "hi"}])
    out = generate(loaded, text, GenerationSettings(max_new_tokens=32))       # Generated
    for piece in stream(loaded, text, settings): print(piece, end="")       # the same loop, piece by piece

One loop (``_pieces``) is behind both: a token at a time through the model's KV cache, the logits
through Transformers' own processors (repetition penalty, temperature, top-k, top-p), sampled with
a ``torch.Generator`` of the request's seed (temperature 0 is greedy and needs none). It ends on an
end-of-text token (or ``<|im_end|>`` of a chat tokenizer): finish reason ``stop``; on a stop string,
which is cut from the text: ``stop``; or after ``max_new_tokens``: ``length``. Text is handed out
only once it can no longer change: not while the decoded bytes end inside a UTF-8 character, and not
the tail that might still become a stop string.

A JSON schema constrains the output through xgrammar (``engine.json_constraint``): every
token the schema does not allow next is masked, so a finished output parses and validates.

Torch is imported inside the functions; the settings model is torch-free.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: The end of a turn in a ChatML tokenizer (``engine.data.tokenizer.CHAT_TOKENS``): a chat reply stops there.
END_OF_TURN = "<|im_end|>"
#: The most stop strings one request may give (as OpenAI's API).
MAX_STOP = 4
#: A generous bound on the characters of prompt text one token stands for: a prompt longer than the
#: model's context length times this is refused without being tokenized (``check_prompt_length``).
CHARS_PER_TOKEN = 64


class GenerationError(ValueError):
    """A request a user made cannot be generated (bad settings, a chat request without a chat
    template, a bad JSON schema); the message says what and what to do."""


class GenerationSettings(BaseModel):
    """How to generate: validated, so a bad value is refused before the model runs."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False, frozen=True)

    max_new_tokens: int = Field(128, ge=1, le=1 << 16)
    """The most tokens to generate; reaching it ends with finish reason ``length``."""
    temperature: float = Field(0.0, ge=0.0, le=10.0)
    """Softmax temperature; 0 is greedy (the most likely token each step: deterministic)."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling: sample among the most likely tokens whose probabilities add up to this (1: all)."""
    top_k: int = Field(0, ge=0)
    """Sample among the k most likely tokens only (0: no limit)."""
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    """Divide the logits of tokens already in the text by this (1: off; >1 repeats less)."""
    seed: int | None = Field(None, ge=0, lt=1 << 63)
    """Seed of the sampler, so a sampled output can be reproduced (None: a fresh one each time)."""
    stop: tuple[str, ...] = Field((), max_length=MAX_STOP)
    """Strings that end the output when generated; the stop string itself is not part of the text."""

    @field_validator("stop", mode="before")
    @classmethod
    def _one_string_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s for s in value):
            raise ValueError("a stop string may not be empty")
        return value

    @classmethod
    def parse(cls, **values: Any) -> GenerationSettings:
        """The settings of ``values`` (None: the default); GenerationError naming each bad field."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise GenerationError(settings_problems(exc)) from None


def settings_problems(exc: ValidationError) -> str:
    """One line naming each bad field of a ValidationError and what is wrong with it."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        message = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


@dataclass(frozen=True)
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    seconds: float = 0.0


@dataclass
class _Progress:
    """What a run of ``_pieces`` has done so far; filled in as it goes."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: Literal["stop", "length"] = "length"
    text: list[str] = field(default_factory=list)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer, prompt: str | None = None, messages: list[dict] | None = None) -> str:
    """The text to continue: ``prompt`` as it is, or ``messages`` ({"role", "content"} each) through
    the tokenizer's chat template with the assistant's turn opened. GenerationError for a chat
    request to a tokenizer without a template, or for neither or both of prompt and messages."""
    if (prompt is None) == (messages is None):
        raise GenerationError("give either a prompt or chat messages, not both and not neither")
    if prompt is not None:
        return prompt
    if not messages:
        raise GenerationError("messages: at least one message is needed")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise GenerationError(f"messages[{i}]: a message is an object with a 'role' and a 'content' string")
        if not isinstance(message.get("content"), str):
            raise GenerationError(f"messages[{i}].content: must be a string")
    if not has_chat_template(tokenizer):
        raise GenerationError(
            "this model's tokenizer has no chat template, so chat messages cannot be rendered; send a plain "
            "prompt (completions) instead, or train on a tokenizer that has one (`cockpit tokenizer train` makes one)"
        )
    return tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages], tokenize=False, add_generation_prompt=True
    )


def resolve_device(name: str) -> str:
    """The torch device of a ``--device`` value: ``auto`` is cuda when there is one, else cpu."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu" or name == "cuda" or name.startswith("cuda:"):
        if name != "cpu" and not torch.cuda.is_available():
            raise GenerationError(f"device {name!r}: no CUDA device here (use --device cpu)")
        return name
    raise GenerationError(f"device {name!r}: one of auto, cpu, cuda, cuda:N")


def stop_token_ids(tokenizer) -> set[int]:
    """The tokens that end an output: end of text, and the end of a turn where the vocabulary has it."""
    ids = {tokenizer.eos_token_id}
    turn = tokenizer.convert_tokens_to_ids(END_OF_TURN) if END_OF_TURN in tokenizer.get_vocab() else None
    if turn is not None:
        ids.add(turn)
    return {i for i in ids if i is not None}


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of ``text`` might still grow into a stop string (or are half a
    UTF-8 character), so must not be handed out yet."""
    hold = 1 if text.endswith("\ufffd") else 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:n]):
                hold = n
                break
    return hold


def _processors(settings: GenerationSettings):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    out = LogitsProcessorList()
    if settings.repetition_penalty != 1.0:
        out.append(RepetitionPenaltyLogitsProcessor(settings.repetition_penalty))
    if settings.temperature > 0:
        if settings.temperature != 1.0:
            out.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k:
            out.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            out.append(TopPLogitsWarper(settings.top_p))
    return out


def context_length(loaded) -> int | None:
    """The most tokens the model reads, prompt and output together (its ``max_position_embeddings``)."""
    return getattr(loaded.model.config, "max_position_embeddings", None) or None


def check_prompt_length(loaded, text: str) -> None:
    """GenerationError when ``text`` has more characters than any prompt the model reads could: more
    than its context length times the characters one token can stand for (``CHARS_PER_TOKEN``, or the
    longest token of the vocabulary where that is longer). Cheap (the text is not tokenized, the
    vocabulary looked at only past the first bound), so a huge prompt is refused before the tokenizer
    spends seconds on it; ``prompt_tokens`` checks it first, and then the tokens themselves."""
    limit = context_length(loaded)
    if not limit or len(text) <= limit * CHARS_PER_TOKEN:
        return
    longest = max(map(len, loaded.tokenizer.get_vocab()), default=0)  # a token's text: at least its characters
    bound = limit * max(CHARS_PER_TOKEN, longest)
    if len(text) > bound:
        raise GenerationError(
            f"the prompt is too long: {len(text)} characters, more than {limit} tokens can hold ({bound});"
            f" this model reads at most {limit} tokens in all"
        )


def prompt_tokens(loaded, text: str) -> list[int]:
    """The token ids of ``text`` as generation reads them; GenerationError when there are more than the
    model reads (``context_length``), so no room is left to generate (and, before tokenizing, when the
    text is too long for that to be possible: ``check_prompt_length``)."""
    check_prompt_length(loaded, text)
    tokenizer = loaded.tokenizer
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:  # an empty prompt: start from end of text, as a document starts after one
        ids = [tokenizer.eos_token_id]
    limit = context_length(loaded)
    if limit and len(ids) >= limit:
        raise GenerationError(f"the prompt is too long: {len(ids)} tokens; this model reads at most {limit} in all")
    return ids


def _cache_argument(model) -> str:
    """The name of the KV cache in the model's forward: ``cache`` from Transformers 5, ``past_key_values`` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _pieces(
    loaded, text: str, settings: GenerationSettings, json_schema: dict | None, progress: _Progress
) -> Iterator[str]:
    """The one generation loop: yields text pieces and keeps ``progress`` up to date."""
    import torch

    model, tokenizer = loaded.model, loaded.tokenizer
    stops = stop_token_ids(tokenizer)
    constraint = None
    if json_schema is not None:
        from engine.json_constraint import JsonConstraint

        constraint = JsonConstraint(tokenizer, json_schema, model.get_output_embeddings().weight.shape[0], stops)
    device = next(model.parameters()).device
    prompt_ids = prompt_tokens(loaded, text)
    progress.prompt_tokens = len(prompt_ids)
    limit = context_length(loaded)
    max_new = min(settings.max_new_tokens, limit - len(prompt_ids)) if limit else settings.max_new_tokens
    processors = _processors(settings)
    sampler = None
    if settings.temperature > 0:
        sampler = torch.Generator(device=device)
        sampler.manual_seed(settings.seed if settings.seed is not None else int.from_bytes(os.urandom(7), "little"))
    ids = torch.tensor([prompt_ids], device=device)
    cache_name = _cache_argument(model)
    past = None
    completion: list[int] = []
    sent = 0
    for _ in range(max_new):
        # inference mode per step, never across a yield: the caller may resume this generator on another
        # thread (the server does), and grad mode is per thread
        with torch.inference_mode():
            out = model(input_ids=ids[:, -1:] if past is not None else ids, use_cache=True, **{cache_name: past})
            past = getattr(out, cache_name)
            logits = out.logits[:, -1, :].float()
            if constraint is not None:
                logits = constraint.mask(logits)
            logits = processors(ids, logits)
            if sampler is None:
                token = int(logits.argmax(dim=-1))
            else:
                token = int(torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=sampler))
            ids = torch.cat([ids, torch.tensor([[token]], device=device)], dim=1)
        progress.completion_tokens += 1
        if constraint is not None:
            constraint.accept(token)
        if token in stops:
            progress.finish_reason = "stop"
            break
        completion.append(token)
        decoded = tokenizer.decode(completion, skip_special_tokens=True)
        cut = min((i for i in (decoded.find(s) for s in settings.stop) if i >= 0), default=-1)
        if cut >= 0:
            if cut > sent:
                progress.text.append(decoded[sent:cut])
                yield decoded[sent:cut]
            progress.finish_reason = "stop"
            return
        ready = len(decoded) - _held_back(decoded, settings.stop)
        if ready > sent:
            progress.text.append(decoded[sent:ready])
            yield decoded[sent:ready]
            sent = ready
    if completion:
        decoded = tokenizer.decode(completion, skip_special_tokens=True)
        if len(decoded) > sent:
            progress.text.append(decoded[sent:])
            yield decoded[sent:]


class Stream:
    """The text pieces of one generation, as they are made; after the last, ``result`` is the
    whole ``Generated`` (token counts, finish reason)."""

    def __init__(self, loaded, text: str, settings: GenerationSettings, json_schema: dict | None = None):
        self._progress = _Progress()
        self._pieces = _pieces(loaded, text, settings, json_schema, self._progress)
        self._started = time.perf_counter()
        self.result: Generated | None = None

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces
        p = self._progress
        self.result = Generated(
            text="".join(p.text),
            prompt_tokens=p.prompt_tokens,
            completion_tokens=p.completion_tokens,
            finish_reason=p.finish_reason,
            seconds=time.perf_counter() - self._started,
        )

    def close(self) -> None:
        self._pieces.close()


def stream(loaded, text: str, settings: GenerationSettings, json_schema: dict | None = None) -> Stream:
    """Generate from ``text`` piece by piece: iterate the Stream for the pieces, then read ``result``."""
    return Stream(loaded, text, settings, json_schema)


def generate(loaded, text: str, settings: GenerationSettings, json_schema: dict | None = None) -> Generated:
    """Generate from ``text`` (a prompt, or ``prompt_text`` of chat messages) with ``loaded``
    (``engine.checkpoint_model.load_checkpoint``)."""
    run = stream(loaded, text, settings, json_schema)
    for _ in run:
        pass
    assert run.result is not None
    return run.result


def sample_checkpoint(
    ckpt_dir: str | os.PathLike,
    prompt: str,
    *,
    chat: bool | None = False,
    json_schema: dict | None = None,
    dtype: str = "auto",
    device: str = "cpu",
    progress: Callable[[str], None] | None = None,
    **settings: Any,
) -> dict:
    """Load ``ckpt_dir`` and generate once from ``prompt`` (a user message when ``chat``; None: when
    the tokenizer has a chat template): plain
    arguments in, a plain dict out (text, prompt_tokens, completion_tokens, finish_reason,
    seconds, step), so the checkpoint viewer can call it in a child process
    (``cockpit.ckpt_actions``: ``progress`` gets the text so far as it grows). ``settings`` are
    GenerationSettings' fields. GenerationError or engine.checkpoint_model.CheckpointLoadError for
    bad input."""
    from engine.checkpoint_model import load_checkpoint

    parsed = GenerationSettings.parse(**settings)
    loaded = load_checkpoint(ckpt_dir, dtype=dtype, device=device)
    if chat is None:
        chat = has_chat_template(loaded.tokenizer)
    text = prompt_text(
        loaded.tokenizer,
        messages=[{"role": "user", "content": prompt}] if chat else None,
        prompt=None if chat else prompt,
    )
    run = stream(loaded, text, parsed, json_schema)
    so_far = ""
    for piece in run:
        so_far += piece
        if progress is not None:
            progress(so_far)
    out = run.result
    assert out is not None
    return {
        "text": out.text,
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "finish_reason": out.finish_reason,
        "seconds": out.seconds,
        "step": loaded.step,
    }
