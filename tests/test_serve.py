"""`cockpit serve`: the OpenAI-compatible endpoint on loopback, answered by the official `openai`
client and by raw HTTP. One real server (uvicorn in a thread, on a free port) over the real
checkpoint of a tiny run (``chat_checkpoint``), loaded once; one `cockpit serve` subprocess for the
command itself."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import openai
import pytest
from typer.testing import CliRunner

from cockpit.cli import app
from engine.generation import GenerationSettings, generate, prompt_text

REPO = Path(__file__).resolve().parents[1]
MODEL = "chat:2"
SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "size": {"enum": ["S", "M", "L"]}},
    "required": ["ok", "size"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def loaded(chat_checkpoint):
    from engine.checkpoint_model import load_checkpoint

    return load_checkpoint(chat_checkpoint)


@contextlib.contextmanager
def serving(loaded, model_id: str = MODEL):
    """``engine.serve.create_app`` on uvicorn in a thread, on a free loopback port: its base URL."""
    import uvicorn

    from engine.serve import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(loaded, model_id), log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def base_url(loaded):
    with serving(loaded) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)


def post(url: str, body: bytes | str) -> tuple[int, dict]:
    """POST ``body`` as it is (no client in between to fix it) and read the JSON answer."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def deep_schema(levels: int) -> dict:
    """A JSON schema of objects ``levels`` deep, each with one property (2 JSON containers a level)."""
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def _json_schema_format(levels: int) -> dict:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "deep", "schema": deep_schema(levels)}}}


def _nested_lists(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_models_lists_the_served_checkpoint(client):
    assert [m.id for m in client.models.list()] == [MODEL]


def test_chat_completion_is_the_greedy_text_with_usage(client, loaded):
    messages = [{"role": "user", "content": "hi"}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, temperature=0)
    expected = generate(loaded, prompt_text(loaded.tokenizer, messages=messages), GenerationSettings(max_new_tokens=5))
    assert reply.choices[0].message.content == expected.text and reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == expected.finish_reason
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        expected.prompt_tokens,
        expected.completion_tokens,
    )
    assert reply.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens


def test_streamed_chat_chunks_join_to_the_non_streamed_text(client):
    args = {"model": MODEL, "messages": [{"role": "user", "content": "tell"}], "max_tokens": 6, "temperature": 0}
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True}))
    content = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(content) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completion_streamed_and_not(client, loaded):
    whole = client.completions.create(model=MODEL, prompt="The cat", max_tokens=5, temperature=0)
    assert whole.choices[0].text == generate(loaded, "The cat", GenerationSettings(max_new_tokens=5)).text
    assert whole.usage.completion_tokens == 5 and whole.choices[0].finish_reason == "length"
    chunks = list(client.completions.create(model=MODEL, prompt="The cat", max_tokens=5, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text


def test_response_format_json_schema_gives_valid_json(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "json please"}],
        max_tokens=40,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}},
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMA)


def test_the_client_sees_an_unsupported_request_as_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2)
    assert err.value.body["param"] == "n" and "n=1" in err.value.body["message"]
    with pytest.raises(openai.NotFoundError) as err:
        client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    assert err.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("path", "body", "param", "words"),
    [
        ("chat/completions", '{"model": "chat:2", "messages": [', None, "not valid JSON"),
        ("chat/completions", "[1, 2]", None, "JSON object"),
        ("completions", "[" * 100_000, None, "not valid JSON"),
        ("chat/completions", '{"model": "chat:2"}', "messages", "required"),
        ("chat/completions", '{"messages": "hi"}', "messages", "list"),
        ("chat/completions", '{"messages": [{"role": "user", "content": 7}]}', "messages.0.content", "string"),
        (
            "chat/completions",
            '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "max_tokens",
            "greater",
        ),
        ("completions", '{"prompt": "x", "temperature": "hot"}', "temperature", "number"),
        ("completions", '{"prompt": ["a", "b"]}', "prompt", "one prompt"),
        ("completions", '{"prompt": "x", "max_tokens": -3}', "max_tokens", "greater than"),
        (
            "chat/completions",
            '{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",'
            ' "json_schema": {"schema": {"type": "nonsense"}}}}',
            "response_format.json_schema.schema",
            "not a valid JSON schema",
        ),
        (
            "chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "x"}], **_json_schema_format(300)}),
            "response_format",
            "nested more than 128 deep",
        ),
        (
            "chat/completions",
            json.dumps({"messages": [{"role": "user", "content": "x"}], **_json_schema_format(40)}),
            "response_format.json_schema.schema",
            "nested more than 64 deep",
        ),
        ("completions", json.dumps({"prompt": "x", "metadata": _nested_lists(200)}), "metadata", "nested more than"),
    ],
    ids=[
        "malformed-json",
        "not-an-object",
        "too-deep",
        "no-messages",
        "messages-not-a-list",
        "content-not-text",
        "max-tokens-0",
        "temperature-not-a-number",
        "several-prompts",
        "max-tokens-negative",
        "bad-json-schema",
        "json-schema-300-deep",
        "json-schema-40-deep",
        "body-200-deep",
    ],
)
def test_bad_requests_get_a_4xx_with_the_openai_error_shape(base_url, path, body, param, words):
    status, answer = post(f"{base_url}/{path}", body)
    assert status == 400, answer
    assert set(answer["error"]) == {"message", "type", "param", "code"}
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == param
    assert words in answer["error"]["message"]
    status, after = post(f"{base_url}/completions", '{"prompt": "x", "max_tokens": 1}')  # still serving
    assert status == 200 and after["usage"]["completion_tokens"] == 1


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("counted", ["tokens", "characters"])
def test_a_prompt_longer_than_the_model_reads_is_refused(base_url, loaded, stream, counted):
    """Counted in tokens, or, past the model's positions times CHARS_PER_TOKEN, in characters alone."""
    from engine.generation import CHARS_PER_TOKEN

    limit = loaded.model.config.max_position_embeddings
    prompt = "word " * (limit if counted == "tokens" else limit * CHARS_PER_TOKEN // 5 + 1)
    assert len(prompt) <= limit * CHARS_PER_TOKEN if counted == "tokens" else len(prompt) > limit * CHARS_PER_TOKEN
    status, answer = post(f"{base_url}/completions", json.dumps({"prompt": prompt, "stream": stream}))
    assert status == 400 and answer["error"]["message"].startswith("the prompt is too long: ")
    assert f" {counted}" in answer["error"]["message"]
    assert f"this model reads at most {limit}" in answer["error"]["message"]


@pytest.mark.parametrize("path", ["completions", "chat/completions"])
def test_a_huge_prompt_is_refused_untokenized_while_the_server_goes_on_answering(base_url, path):
    """The attack: a 7.7 MB prompt was tokenized on the event loop (seconds), and /health waited for it.
    Now it is a 400 by its characters alone, and /health answers at once meanwhile."""
    text = "word " * 1_540_000
    body = {"prompt": text} if path == "completions" else {"messages": [{"role": "user", "content": text}]}
    answer: list = []
    big = threading.Thread(
        target=lambda: answer.extend(post(f"{base_url}/{path}", json.dumps({**body, "stream": True})))
    )
    big.start()
    waits = []
    while not waits or big.is_alive():
        start = time.monotonic()
        with urllib.request.urlopen(f"{base_url.removesuffix('/v1')}/health", timeout=30) as response:
            assert response.status == 200
        waits.append(time.monotonic() - start)
    big.join()
    assert max(waits) < 1.0, waits
    status, error = answer
    assert status == 400 and error["error"]["message"].startswith("the prompt is too long: 77")
    assert "this model reads at most" in error["error"]["message"]


def test_a_body_over_the_bound_is_a_413_in_the_error_shape(base_url):
    from engine.serve import MAX_BODY

    status, answer = post(f"{base_url}/completions", json.dumps({"prompt": "x" * (MAX_BODY + 1)}))
    assert status == 413 and answer["error"]["code"] == "body_too_large" and "MiB" in answer["error"]["message"]


def test_unknown_paths_and_methods_answer_in_the_error_shape(base_url):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base_url}/nothing", timeout=10)
    assert err.value.code == 404 and json.loads(err.value.read())["error"]["type"] == "not_found_error"


def test_a_failing_generation_is_a_500_and_the_server_goes_on(loaded):
    """A model whose embedding is smaller than the tokenizer's vocabulary fails on the first token of
    the prompt (a real IndexError in the forward pass, no mock)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = LlamaConfig(vocab_size=4, hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1)
    broken = dataclasses.replace(loaded, model=LlamaForCausalLM(tiny).eval())
    with serving(broken, "broken") as url:
        status, answer = post(f"{url}/completions", '{"prompt": "The cat", "max_tokens": 2}')
        assert status == 500 and answer["error"]["type"] == "server_error"
        assert answer["error"]["message"].startswith("generation failed: IndexError")
        request = urllib.request.Request(
            f"{url}/completions", data=b'{"prompt": "The cat", "stream": true}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            events = [line for line in response.read().decode().splitlines() if line.startswith("data: ")]
        assert json.loads(events[0][6:])["error"]["type"] == "server_error" and events[-1] == "data: [DONE]"
        with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
            assert json.loads(response.read())["data"][0]["id"] == "broken"


def test_serve_refuses_a_non_loopback_host_without_allow_remote(chat_checkpoint):
    result = CliRunner().invoke(app, ["serve", str(chat_checkpoint), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--allow-remote" in result.stderr and "authentication" in result.stderr


def test_cockpit_serve_command_serves_until_interrupted(chat_checkpoint):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "serve", str(chat_checkpoint), "--port", "0", "--model-name", "m"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+/v1)", line)
        assert found, line + proc.stdout.read() if proc.poll() is not None else line
        status, answer = post(f"{found.group(1)}/completions", '{"model": "m", "prompt": "hi", "max_tokens": 2}')
        assert status == 200 and answer["usage"]["completion_tokens"] == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
