"""The wire protocol: typed models, round trips, validation, version check."""

import json
import math

import pytest

from engine import protocol as P

GPU = {"index": 0, "name": "NVIDIA H100", "util": 87.0, "mem_used": 4, "mem_total": 8, "temp_c": 64.0, "power_w": 412.5}

#: Every field of every event type, with a value of its type.
FULL_PAYLOADS = {
    "hello": dict(
        protocol=1,
        config={"preset": "tiny", "train": {"lr": 0.001}},
        preset="tiny",
        params=1000,
        world_size=2,
        device="cpu",
        pid=42,
        max_steps=300,
        tokens_per_step=2048,
    ),
    "status": dict(state="running", step=3, reason="resumed from checkpoint-2"),
    "metrics": dict(
        step=10,
        loss=2.5,
        lr=1e-3,
        grad_norm=0.8,
        tokens_per_s=1234.5,
        tokens_seen=20480,
        step_time_s=0.25,
        elapsed_s=2.5,
        eta_s=70.0,
        mfu=0.41,
        data_position=[0, 160],
        cost_usd=0.01,
        data_wait_s=0.001,
        compute_s=0.249,
        skipped_steps=1,
    ),
    "eval": dict(step=100, loss=3.25, perplexity=25.79, best=True, best_loss=3.25, best_step=100),
    "telemetry": dict(cpu_percent=55.5, ram_used=1, ram_total=2, proc_rss=3, gpus=[GPU]),
    "checkpoint": dict(
        action="failed",
        step=20,
        path="checkpoints/checkpoint-20",
        size_bytes=10,
        reason="interval",
        error="disk full",
        duration_s=0.05,
    ),
    "upload": dict(
        action="progress",
        path="checkpoints/checkpoint-20",
        target="hf://me/model",
        bytes_done=5,
        bytes_total=10,
        error=None,
    ),
    "log": dict(level="warning", message="slow disk"),
    "error": dict(message="boom", traceback="Traceback...\nValueError: boom", step=7),
    "spillover": dict(dropped=12),
}


def required(type_: str) -> dict:
    return {k: v for k, v in FULL_PAYLOADS[type_].items() if not P.EVENT_PAYLOADS[type_][k].startswith("optional")}


def test_every_event_type_has_a_model_with_documented_fields():
    assert set(FULL_PAYLOADS) == P.EVENT_TYPES == set(P.EVENT_MODELS)
    for type_, cls in P.EVENT_MODELS.items():
        assert set(FULL_PAYLOADS[type_]) == set(P.EVENT_PAYLOADS[type_]), type_
        payload = {k: f for k, f in cls.model_fields.items() if k not in P.Event.model_fields}
        undocumented = [name for name, f in payload.items() if not f.description]
        assert undocumented == [], f"{type_}: {undocumented} have no docstring"
    assert all(f.description for f in P.Event.model_fields.values())


@pytest.mark.parametrize("type_", sorted(P.EVENT_TYPES))
@pytest.mark.parametrize("fields", [required, FULL_PAYLOADS.get])
def test_every_event_type_round_trips(type_, fields):
    event = P.make_event(type_, "run-1", 7, ts=123.5, **fields(type_))
    assert isinstance(event, P.EVENT_MODELS[type_])
    line = P.encode(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line.startswith(b'{"v":1,"type":"%s","run":"run-1","seq":7,' % type_.encode())
    decoded = P.decode_event(line)
    assert decoded == event and type(decoded) is type(event)
    assert json.loads(line) == {"v": 1, "type": type_, "run": "run-1", "seq": 7, "ts": 123.5, **fields(type_)}
    for key, value in fields(type_).items():  # read by attribute, or like the dict of the line
        assert decoded[key] == value == getattr(decoded, key) if key != "gpus" else decoded.gpus[0].util == 87.0


def test_a_newer_engines_extra_keys_are_ignored_by_readers_and_refused_by_make_event():
    line = json.dumps(
        {"v": 1, "type": "log", "run": "r", "seq": 0, "ts": 0, "level": "info", "message": "x", "colour": "blue"}
    )
    assert P.decode_event(line).message == "x"
    with pytest.raises(P.ProtocolError, match="log event has no field colour"):
        P.make_event("log", "r", 0, level="info", message="x", colour="blue")


@pytest.mark.parametrize(
    "type_, payload, message",
    [
        ("metrics", {**FULL_PAYLOADS["metrics"], "loss": "2.5"}, r"metrics event: 'loss' should be a valid number"),
        ("hello", {**FULL_PAYLOADS["hello"], "params": 1.5}, r"hello event: 'params' should be a valid integer"),
        ("status", {**FULL_PAYLOADS["status"], "state": "sleeping"}, r"status event: 'state' should be 'starting'"),
        ("eval", {**FULL_PAYLOADS["eval"], "best": 1}, r"eval event: 'best' should be a valid boolean"),
        (
            "telemetry",
            {**FULL_PAYLOADS["telemetry"], "gpus": [{"index": "0"}]},
            r"'gpus.0.index' should be a valid int",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_on_both_sides(type_, payload, message):
    with pytest.raises(P.ProtocolError, match=message):
        P.make_event(type_, "r", 0, **payload)
    line = json.dumps({"v": 1, "type": type_, "run": "r", "seq": 0, "ts": 0, **payload})
    with pytest.raises(P.ProtocolError, match=message):
        P.decode_event(line)


@pytest.mark.parametrize("seq", [-1, "3", 1.5, True, None])
def test_a_bad_seq_is_refused(seq):
    line = json.dumps({"v": 1, "type": "log", "run": "r", "seq": seq, "ts": 0, "level": "info", "message": "x"})
    with pytest.raises(P.ProtocolError, match="log event.*'seq'"):
        P.decode_event(line)


@pytest.mark.parametrize(
    "line",
    [
        b'{"v": 1, "type": "log", "run": "r", "ts": 0, "level": "info", "message": "x", "seq": ' + b"9" * 5000 + b"}",
        b"[" * 20_000,
        b"{" * 20_000,
    ],
)
def test_hostile_lines_are_a_protocol_error(line):
    with pytest.raises(P.ProtocolError):
        P.decode_event(line)
    with pytest.raises(P.ProtocolError):
        P.decode_command(line)


def test_an_event_without_a_type_is_refused():
    with pytest.raises(P.ProtocolError, match="event has no 'type'"):
        P.decode_event(b'{"v": 1, "run": "r", "seq": 0, "ts": 0}')


def test_event_carries_the_envelope():
    event = P.make_event("log", "r", 3, level="info", message="hi")
    assert {"v", "type", "run", "seq", "ts"} <= set(P.Event.model_fields) <= set(type(event).model_fields)
    assert all(key in event for key in ("v", "type", "run", "seq", "ts", "level", "message"))
    assert event["v"] == event.v == P.PROTOCOL_VERSION == 1


def test_missing_payload_key_is_refused_on_both_sides():
    with pytest.raises(P.ProtocolError, match="metrics event is missing .*loss"):
        P.make_event("metrics", "r", 0, step=1)
    line = json.dumps({"v": 1, "type": "status", "run": "r", "seq": 0, "ts": 0, "step": 0})
    with pytest.raises(P.ProtocolError, match="status event is missing state"):
        P.decode_event(line)


def test_unknown_event_type_is_refused():
    with pytest.raises(P.ProtocolError, match="unknown event type 'bogus'"):
        P.make_event("bogus", "r", 0)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_protocol_versions_are_refused(version):
    line = json.dumps({"v": version, "type": "log", "run": "r", "seq": 0, "ts": 0, "level": "info", "message": "x"})
    with pytest.raises(P.ProtocolError, match="protocol version"):
        P.decode_event(line)
    with pytest.raises(P.ProtocolError, match="protocol version"):
        P.decode_command(json.dumps({"v": version, "cmd": "stop"}))


def test_non_finite_floats_travel_as_null():
    event = P.make_event(
        "metrics",
        "r",
        1,
        step=1,
        loss=float("nan"),
        lr=float("inf"),
        tokens_per_s=1.0,
        tokens_seen=1,
        step_time_s=1.0,
        elapsed_s=1.0,
    )
    line = P.encode(event)
    assert b'"loss":null,"lr":null' in line
    decoded = P.decode_event(line)
    assert decoded.loss is None and decoded.lr is None and decoded.tokens_per_s == 1.0
    nan_eval = P.make_event("eval", "r", 2, step=1, loss=math.nan, perplexity=math.exp(min(math.nan, 700.0)))
    assert P.decode_event(P.encode(nan_eval)).perplexity is None
    gpu = P.make_event(
        "telemetry", "r", 3, cpu_percent=1.0, ram_used=1, ram_total=1, proc_rss=1, gpus=[{**GPU, "power_w": math.inf}]
    )
    assert P.decode_event(P.encode(gpu)).gpus[0].power_w is None


def test_reader_states_are_defined_once():
    assert P.TERMINAL_STATES < set(P.STATES) and P.DEAD in P.ENDED_STATES
    assert {P.DEAD, P.UNKNOWN, P.CONNECTING}.isdisjoint(P.STATES)


@pytest.mark.parametrize(
    "line, message",
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"v": 1}', "no 'cmd'"),
        (b'{"v": 1, "cmd": "explode"}', "unknown command 'explode'"),
        (b'{"v": 1, "cmd": "subscribe", "from_seq": -1}', "from_seq"),
        (b'{"v": 1, "cmd": "subscribe", "from_seq": "0"}', "from_seq"),
        (b'{"v": 1, "cmd": "stop", "id": [1]}', "'id'"),
        (b'{"v": 1, "cmd": "stop", "pad": "' + b"x" * P.MAX_LINE_BYTES + b'"}', "longer than"),
        (b'{"v": 1, "cmd": "subscribe", "from_seq": ' + b"9" * 5000 + b"}", "not acceptable JSON"),
        (b"[" * 20_000, "not acceptable JSON|not JSON"),
    ],
)
def test_malformed_commands_name_the_problem(line, message):
    with pytest.raises(P.ProtocolError, match=message):
        P.decode_command(line)


@pytest.mark.parametrize(
    "line, id_, cmd",
    [
        (b'{"v": 1, "cmd": "explode", "id": "x-1"}', "x-1", None),
        (b'{"v": 2, "cmd": "stop", "id": 7}', 7, "stop"),
        (b'{"v": 1, "cmd": "subscribe", "from_seq": -1, "id": "s"}', "s", "subscribe"),
        (b'{"v": 1, "id": "no-cmd"}', "no-cmd", None),
        (b'{"v": 1, "cmd": "stop", "id": true}', None, "stop"),
    ],
)
def test_a_malformed_command_object_keeps_its_id_for_the_reply(line, id_, cmd):
    with pytest.raises(P.CommandError) as caught:
        P.decode_command(line)
    assert (caught.value.id, caught.value.cmd) == (id_, cmd)


def test_commands_round_trip():
    assert P.COMMANDS == set(P.COMMAND_ARGS) == {"subscribe", "checkpoint_now", "pause", "resume", "stop"}
    for name in P.COMMANDS:
        cmd = P.make_command(name, "id-1")
        decoded = P.decode_command(P.encode(cmd))
        assert decoded == cmd and isinstance(decoded, P.COMMAND_MODELS[name]) and decoded.cmd == name
    assert P.decode_command(b'{"v":1,"cmd":"subscribe"}').from_seq == 0
    assert P.decode_command(P.encode(P.make_command("subscribe", 3, from_seq=9))).from_seq == 9


def test_reply_lines_decode():
    reply = P.make_reply("a", False, "stop", "nope")
    decoded = P.decode_event(P.encode(reply))
    assert decoded == reply and isinstance(decoded, P.Reply) and (decoded.ok, decoded.error) == (False, "nope")
    with pytest.raises(P.ProtocolError, match="reply: 'ok' should be a valid boolean"):
        P.decode_event(b'{"v": 1, "type": "reply", "ok": "yes"}')


def test_protocol_and_config_import_without_torch():
    import subprocess
    import sys

    code = (
        "import sys, engine.protocol, engine.config, engine.rundir, engine.bus; "
        "bad = [m for m in ('torch', 'transformers', 'textual', 'accelerate') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
