"""engine.generation and `cockpit ckpt sample` on the real checkpoint of a tiny run (``chat_checkpoint``),
loaded once for the module; generation lengths are kept tiny."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest
from typer.testing import CliRunner

from cockpit.cli import app
from engine.generation import (
    GenerationError,
    GenerationSettings,
    generate,
    prompt_text,
    stream,
)

runner = CliRunner()

#: A schema whose every document is short: a boolean, an enum and a string of at most 4 characters.
SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "color": {"enum": ["red", "green"]},
        "name": {"type": "string", "maxLength": 4},
    },
    "required": ["ok", "color", "name"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def loaded(chat_checkpoint):
    from engine.checkpoint_model import load_checkpoint

    return load_checkpoint(chat_checkpoint)


def test_prompt_text_applies_the_chat_template(loaded):
    text = prompt_text(
        loaded.tokenizer, messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert prompt_text(loaded.tokenizer, prompt="plain") == "plain"


def test_prompt_text_refuses_chat_without_a_template_and_bad_messages(loaded):
    plain = copy.copy(loaded.tokenizer)
    plain.chat_template = None
    with pytest.raises(GenerationError, match="no chat template"):
        prompt_text(plain, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(GenerationError, match="not both"):
        prompt_text(loaded.tokenizer, prompt="a", messages=[{"role": "user", "content": "b"}])
    with pytest.raises(GenerationError, match=r"messages\[0\].content"):
        prompt_text(loaded.tokenizer, messages=[{"role": "user", "content": 3}])


def test_settings_are_validated_with_each_bad_field_named():
    with pytest.raises(GenerationError) as err:
        GenerationSettings.parse(max_new_tokens=0, temperature=-1, top_p=1.5, stop=["a", ""], nope=1)
    for name in ("max_new_tokens", "temperature", "top_p", "stop", "nope: unknown setting"):
        assert name in str(err.value)
    assert GenerationSettings.parse(stop="x", seed=None).stop == ("x",)


def test_greedy_is_deterministic_and_counts_tokens(loaded):
    settings = GenerationSettings(max_new_tokens=6)
    a, b = generate(loaded, "The cat", settings), generate(loaded, "The cat", settings)
    assert a.text == b.text and a.completion_tokens == b.completion_tokens
    assert a.prompt_tokens == len(loaded.tokenizer("The cat", add_special_tokens=False)["input_ids"])
    assert a.finish_reason == "length" and a.completion_tokens == 6 and a.text


def test_streamed_pieces_join_to_the_text_and_stop_strings_cut_it(loaded):
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0, seed=5)
    full = generate(loaded, "A", settings)
    run = stream(loaded, "A", settings)
    pieces = list(run)
    assert "".join(pieces) == full.text and run.result == full.__class__(
        **{**vars(full), "seconds": run.result.seconds}
    )
    assert len(full.text) >= 4, full
    stop = full.text[2:4]  # sampled with the same seed, the output is the same up to the stop string
    cut = stream(loaded, "A", settings.model_copy(update={"stop": (stop,)}))
    assert "".join(cut) == full.text[: full.text.index(stop)]
    assert cut.result.finish_reason == "stop"


def test_a_json_schema_constrains_an_untrained_model_to_valid_json(loaded):
    out = generate(loaded, "Answer:", GenerationSettings(max_new_tokens=80), json_schema=SCHEMA)
    assert out.finish_reason == "stop", out
    jsonschema.validate(json.loads(out.text), SCHEMA)


def test_sample_checkpoint_returns_plain_values(chat_checkpoint, loaded):
    """As the checkpoint viewer calls it (``cockpit.ckpt_actions.call_action``, here in-process)."""
    from cockpit.ckpt_actions import call_action

    texts: list[str] = []
    kwargs = {"prompt": "hi", "chat": True, "max_new_tokens": 4}
    info = call_action("engine.generation:sample_checkpoint", str(chat_checkpoint), kwargs, texts.append)
    assert texts and texts[-1] == info["text"] and all(b.startswith(a) for a, b in zip(texts, texts[1:]))
    text = prompt_text(loaded.tokenizer, messages=[{"role": "user", "content": "hi"}])
    expected = generate(loaded, text, GenerationSettings(max_new_tokens=4))
    assert json.loads(json.dumps(info)) == info
    assert (info["text"], info["completion_tokens"], info["prompt_tokens"], info["step"]) == (
        expected.text,
        expected.completion_tokens,
        expected.prompt_tokens,
        2,
    )


def test_cli_sample_streams_the_greedy_text(chat_checkpoint, loaded):
    result = runner.invoke(app, ["ckpt", "sample", str(chat_checkpoint), "--prompt", "The cat", "-n", "6"])
    assert result.exit_code == 0, result.output
    expected = generate(loaded, "The cat", GenerationSettings(max_new_tokens=6))
    assert result.stdout == expected.text + "\n"
    assert "finish length" in result.stderr


def test_cli_sample_json_reports_token_counts_of_a_chat_prompt(chat_checkpoint, loaded):
    args = ["ckpt", "sample", str(chat_checkpoint), "-p", "hi", "--chat", "-n", "5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["prompt"] == prompt_text(loaded.tokenizer, messages=[{"role": "user", "content": "hi"}])
    assert info["prompt_tokens"] == len(loaded.tokenizer(info["prompt"], add_special_tokens=False)["input_ids"])
    assert info["completion_tokens"] <= 5 and info["finish_reason"] in ("stop", "length") and info["step"] == 2


def test_cli_sample_json_schema(chat_checkpoint, tmp_path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    args = ["ckpt", "sample", str(chat_checkpoint), "-p", "x", "-n", "80", "--json-schema", str(schema), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    jsonschema.validate(json.loads(json.loads(result.stdout)["text"]), SCHEMA)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such JSON schema file"),
        ("{not json", "not valid JSON"),
        ('{"type": "object", "properties": {"a": {"type": "nonsense"}}}', "properties/a/type"),
        ("[1, 2]", "a JSON schema is an object"),
    ],
)
def test_cli_sample_refuses_a_bad_schema_file_naming_it(chat_checkpoint, tmp_path, content, message):
    schema = tmp_path / "schema.json"
    if content is not None:
        schema.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["ckpt", "sample", str(chat_checkpoint), "-p", "x", "--json-schema", str(schema)])
    assert result.exit_code == 2
    assert f"error: {schema}: " in result.stderr and message in result.stderr


@pytest.mark.parametrize("levels", [40, 300, 100_000])
def test_cli_sample_refuses_a_schema_nested_too_deep_in_one_line(chat_checkpoint, tmp_path, levels):
    """The attack: a schema 300 deep was a RecursionError traceback (100 000 deep: already in json.loads)."""
    schema = tmp_path / "deep.json"
    schema.write_text('{"type": "object", "properties": {"a": ' * levels + "{}" + "}}" * levels, encoding="utf-8")
    result = runner.invoke(app, ["ckpt", "sample", str(chat_checkpoint), "-p", "x", "--json-schema", str(schema)])
    assert result.exit_code == 2, result.output
    line = f"error: {schema}: the JSON schema is nested more than 64 deep (objects and arrays inside one another)"
    assert result.stderr == line + "\n"


def test_cli_sample_refuses_bad_settings_naming_the_options(chat_checkpoint):
    result = runner.invoke(app, ["ckpt", "sample", str(chat_checkpoint), "-p", "x", "--temperature", "-1", "-n", "0"])
    assert result.exit_code == 2
    assert "--temperature:" in result.stderr and "--max-new-tokens:" in result.stderr
