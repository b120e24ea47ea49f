"""The OpenAI API's shapes that `cockpit serve` speaks: typed request bodies, what each asks of
``engine.generation``, and the error object. Torch-free; the server is ``engine.serve``.

Requests are checked as OpenAI's API checks them: a wrong type, a missing field or a value out of
range is a 400 naming the field (``param``). What this server cannot do is refused the same way,
never silently ignored: ``n`` > 1, ``logprobs``, ``logit_bias``, tools, ``echo``, ``best_of`` > 1,
non-zero presence/frequency penalties, several prompts in one request. Fields a client sends that
the API knows but that change nothing here (``user``, ``metadata``, ``store``, ...) are accepted.
``top_k`` and ``repetition_penalty`` are accepted as extensions, as vLLM does.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.generation import MAX_STOP, GenerationSettings

#: The most tokens one request may ask for (``GenerationSettings.max_new_tokens``' bound).
MAX_TOKENS = 1 << 16


class ApiError(Exception):
    """An error answered with the OpenAI error object (``error_body``) and ``status``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    @property
    def kind(self) -> str:
        if self.status >= 500:
            return "server_error"
        return {401: "authentication_error", 404: "not_found_error"}.get(self.status, "invalid_request_error")

    def body(self) -> dict:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def validation_error(exc: ValidationError) -> ApiError:
    """A 400 naming the first bad field as ``param`` and every problem in the message."""
    problems, params = [], []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if not _union_member(p))
        message = err["msg"] if err["type"] != "missing" else "this field is required"
        if err["type"] == "value_error" and not where:  # a rule across fields: "field: what is wrong"
            message = message.removeprefix("Value error, ")
            head = message.split(":", 1)[0]
            where = head if head.isidentifier() else ""
            problems.append(message)
        else:
            problems.append(f"{where}: {message}" if where else message)
        params.append(where)
    merged: dict[str, list[str]] = {}  # a field of several types fails once per type: one line for it
    for where, problem in zip(params, problems, strict=True):
        merged.setdefault(where, []).append(problem.removeprefix(f"{where}: ") if where else problem)
    message = "; ".join((f"{w}: " if w else "") + " or ".join(dict.fromkeys(p)) for w, p in merged.items())
    return ApiError(400, message, params[0] if params and params[0] else None, "invalid_value")


def _union_member(part) -> bool:
    """Whether a part of a pydantic error location names a member of a union (``str``, ``list[str]``)
    rather than a field."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "list", "dict", "none") or "[" in part)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict | None = None
    """For ``json_schema``: {"name": ..., "schema": {...}, "strict": ...}."""

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and not isinstance((self.json_schema or {}).get("schema"), dict):
            raise ValueError("type json_schema needs json_schema.schema, a JSON schema object")
        return self

    def schema(self) -> dict | None:
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema":
            return (self.json_schema or {})["schema"]
        return None


class _Sampling(_Body):
    """What both endpoints share."""

    model: str | None = None
    """The served model's id (GET /v1/models); another id is a 404, none is the served model."""
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    seed: int | None = Field(None, ge=0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict | None = None
    n: int = Field(1, ge=1)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    logprobs: Any = None
    logit_bias: dict | None = None

    @model_validator(mode="after")
    def _supported(self) -> _Sampling:
        if self.n != 1:
            raise ValueError("n: only n=1 is supported (one generation at a time)")
        if self.presence_penalty or self.frequency_penalty:
            raise ValueError("presence_penalty and frequency_penalty are not supported; use repetition_penalty")
        if self.logprobs not in (None, False, 0):
            raise ValueError("logprobs: not supported")
        if self.logit_bias:
            raise ValueError("logit_bias: not supported")
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        if len(stops) > MAX_STOP or any(not s for s in stops):
            raise ValueError(f"stop: at most {MAX_STOP} strings, none empty")
        return self

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

    def settings(self, max_tokens: int | None) -> GenerationSettings:
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
            "stop": self.stop or (),
        }
        if max_tokens is not None:
            values["max_new_tokens"] = max_tokens
        return GenerationSettings.model_validate(values)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list | None = None

    @model_validator(mode="after")
    def _no_tool_calls(self) -> ChatMessage:
        if self.tool_calls:
            raise ValueError("tool_calls: tools are not supported")
        return self

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    response_format: ResponseFormat | None = None
    tools: list | None = None

    @model_validator(mode="after")
    def _no_tools(self) -> ChatRequest:
        if self.tools:
            raise ValueError("tools: not supported")
        return self

    def chat_messages(self) -> list[dict]:
        role = {"developer": "system"}
        return [{"role": role.get(m.role, m.role), "content": m.text()} for m in self.messages]

    def generation_settings(self) -> GenerationSettings:
        return self.settings(self.max_completion_tokens or self.max_tokens)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1, le=MAX_TOKENS)
    """16 when not given, as OpenAI's completions endpoint."""
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_prompt(self) -> CompletionRequest:
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise ValueError("prompt: one prompt per request (a list of exactly one string)")
        if self.echo or self.suffix or (self.best_of or 1) > 1:
            raise ValueError("echo, suffix and best_of > 1 are not supported")
        return self

    def text(self) -> str:
        return self.prompt[0] if isinstance(self.prompt, list) else self.prompt

    def generation_settings(self) -> GenerationSettings:
        return self.settings(self.max_tokens)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
