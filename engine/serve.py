"""`cockpit serve`: an OpenAI-compatible HTTP endpoint for one loaded checkpoint, as a Starlette app.

    GET  /v1/models             the one model served
    POST /v1/chat/completions   chat messages through the tokenizer's chat template
    POST /v1/completions        a plain prompt
    GET  /health                200 while the server is up

Both POST endpoints stream with ``"stream": true``: server-sent events, one ``data: {json}`` chunk
per piece of text, a last chunk with the finish reason (and usage, with
``stream_options.include_usage``), then ``data: [DONE]``.

One generation at a time: the model is not thread-safe, so requests wait on one lock, and the
generation itself runs in a worker thread so the server keeps answering (``/v1/models``, errors)
meanwhile. Whatever else may take long runs in a worker thread too, never on the event loop: reading
the body (JSON, at most ``MAX_BODY`` bytes nested at most ``MAX_BODY_DEPTH`` deep), rendering the chat
template, checking a JSON schema, and measuring the prompt, which is first bounded by its characters
(``engine.generation.check_prompt_length``: a prompt far longer than the model reads is refused
untokenized) and then tokenized under the generation lock, as the tokenizer is the generation's. A request a client got wrong is a 4xx with the OpenAI error object; a generation that
fails is a 500 with its message (or an error event mid-stream), and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.generation import GenerationError, Stream, check_prompt_length, prompt_text, prompt_tokens, stream
from engine.json_constraint import JsonSchemaError
from engine.nesting import nested_deeper
from engine.openai_api import (
    ApiError,
    ChatRequest,
    CompletionRequest,
    error_body,
    usage,
    validation_error,
)

log = logging.getLogger("cockpit.serve")

#: The largest request body read; a longer one is a 413 (a prompt this long would not fit a model anyway).
MAX_BODY = 8 << 20
#: The deepest a request body may nest objects and arrays (a JSON schema in it: ``MAX_SCHEMA_DEPTH``).
MAX_BODY_DEPTH = 128


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _body(request: Request, model: type, model_id: str):
    """The request's JSON body as ``model``; ApiError for malformed JSON, a wrong shape or another model."""
    raw = bytearray()
    async for part in request.stream():
        raw += part
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the body is over {MAX_BODY >> 20} MiB", code="body_too_large")
    body = await asyncio.to_thread(_parse, bytes(raw), model)
    if body.model not in (None, model_id):
        raise ApiError(
            404,
            f"the model {body.model!r} is not served here; this server serves {model_id!r}",
            "model",
            "model_not_found",
        )
    return body


def _parse(raw: bytes, model: type):
    """``raw`` read as JSON and validated as ``model`` (in a worker thread: megabytes take a while)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_json")
    for key, value in data.items():
        if nested_deeper(value, MAX_BODY_DEPTH - 1):
            raise ApiError(
                400,
                f"the body is nested more than {MAX_BODY_DEPTH} deep (at {key!r}): objects and arrays inside one another",
                key if isinstance(key, str) else None,
                "too_deep",
            )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _check_schema(schema: dict) -> None:
    from engine.json_constraint import check_schema

    try:
        check_schema(schema)
    except JsonSchemaError as exc:
        raise ApiError(400, str(exc), "response_format.json_schema.schema") from None


class Server:
    """The app's state: the loaded checkpoint, its id, and the one lock generations take."""

    def __init__(self, loaded, model_id: str):
        self.loaded, self.model_id = loaded, model_id
        self.created = int(time.time())
        self.lock = asyncio.Lock()

    async def models(self, request: Request) -> Response:
        entry = {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "cockpit"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model_id})

    async def chat(self, request: Request) -> Response:
        async def answer(body: ChatRequest) -> Response:
            text = await asyncio.to_thread(prompt_text, self.loaded.tokenizer, messages=body.chat_messages())
            schema = body.response_format.schema() if body.response_format else None
            return await self._answer(body, "chat.completion", text, body.generation_settings(), schema)

        return await self._guarded(request, ChatRequest, answer)

    async def completions(self, request: Request) -> Response:
        async def answer(body: CompletionRequest) -> Response:
            return await self._answer(body, "text_completion", body.text(), body.generation_settings(), None)

        return await self._guarded(request, CompletionRequest, answer)

    async def _guarded(self, request: Request, model: type, answer) -> Response:
        """``answer`` the request's body read as ``model``; what goes wrong as the OpenAI error object."""
        try:
            return await answer(await _body(request, model, self.model_id))
        except ApiError as exc:
            return _error(exc)
        except ValidationError as exc:
            return _error(validation_error(exc))
        except (GenerationError, ValueError) as exc:
            return _error(ApiError(400, str(exc), code="invalid_value"))

    async def _answer(self, body, kind: str, text: str, settings, schema) -> Response:
        rid = ("chatcmpl-" if kind == "chat.completion" else "cmpl-") + uuid.uuid4().hex
        if schema is not None:
            await asyncio.to_thread(_check_schema, schema)
        # a prompt too long is a 400 before any stream starts: one far too long by its characters at once,
        # else by its tokens, under the lock (a generation may be using the tokenizer)
        await asyncio.to_thread(check_prompt_length, self.loaded, text)
        if body.stream:
            async with self.lock:
                await asyncio.to_thread(prompt_tokens, self.loaded, text)
            return StreamingResponse(
                self._events(rid, kind, text, settings, schema, body.include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        async with self.lock:
            await asyncio.to_thread(prompt_tokens, self.loaded, text)
            try:
                run = stream(self.loaded, text, settings, schema)
                await asyncio.to_thread(_drain, run)
            except GenerationError as exc:
                raise ApiError(400, str(exc)) from None
            except Exception as exc:
                log.exception("generation failed")
                raise ApiError(500, f"generation failed: {type(exc).__name__}: {exc}") from None
        out = run.result
        if kind == "chat.completion":
            choice = {"index": 0, "message": {"role": "assistant", "content": out.text}}
        else:
            choice = {"index": 0, "text": out.text, "logprobs": None}
        choice["finish_reason"] = out.finish_reason
        return JSONResponse(
            {
                "id": rid,
                "object": kind,
                "created": int(time.time()),
                "model": self.model_id,
                "choices": [choice],
                "usage": usage(out.prompt_tokens, out.completion_tokens),
            }
        )

    async def _events(self, rid, kind, text, settings, schema, include_usage) -> AsyncIterator[str]:
        chunk_kind = "chat.completion.chunk" if kind == "chat.completion" else "text_completion"
        created = int(time.time())

        def event(choice: dict | None, **extra) -> str:
            data = {"id": rid, "object": chunk_kind, "created": created, "model": self.model_id}
            data["choices"] = [] if choice is None else [{"index": 0, **choice}]
            return f"data: {json.dumps({**data, **extra}, ensure_ascii=False)}\n\n"

        def piece(content: str, finish: str | None = None) -> dict:
            if kind == "chat.completion":
                return {"delta": {"content": content} if content else {}, "finish_reason": finish}
            return {"text": content, "logprobs": None, "finish_reason": finish}

        async with self.lock:
            run: Stream | None = None
            try:
                run = stream(self.loaded, text, settings, schema)
                pieces = iter(run)
                if kind == "chat.completion":
                    yield event({"delta": {"role": "assistant", "content": ""}, "finish_reason": None})
                while (content := await asyncio.to_thread(next, pieces, None)) is not None:
                    yield event(piece(content))
                out = run.result
                yield event(piece("", out.finish_reason))
                if include_usage:
                    yield event(None, usage=usage(out.prompt_tokens, out.completion_tokens))
            except GenerationError as exc:
                yield f"data: {json.dumps(error_body(str(exc), 'invalid_request_error'))}\n\n"
            except Exception as exc:
                log.exception("generation failed")
                message = f"generation failed: {type(exc).__name__}: {exc}"
                yield f"data: {json.dumps(error_body(message, 'server_error'))}\n\n"
            finally:
                if run is not None:
                    run.close()
        yield "data: [DONE]\n\n"


def _drain(run: Stream) -> None:
    for _ in run:
        pass


async def _http_error(request: Request, exc: HTTPException) -> Response:
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return JSONResponse(error_body(message, kind), status_code=exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request failed")
    return JSONResponse(error_body(f"internal error: {type(exc).__name__}: {exc}", "server_error"), status_code=500)


def create_app(loaded, model_id: str) -> Starlette:
    """The app serving ``loaded`` (``engine.checkpoint_model.load_checkpoint``) as ``model_id``."""
    server = Server(loaded, model_id)
    routes = [
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/chat/completions", server.chat, methods=["POST"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
        Route("/health", server.health, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _server_error})
