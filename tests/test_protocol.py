"""The wire protocol: round trips, validation, version check."""

import json

import pytest

from engine import protocol as P


def sample_payload(type_: str) -> dict:
    return {key: 1 for key in P._required(P.EVENT_PAYLOADS[type_])}


@pytest.mark.parametrize("type_", sorted(P.EVENT_TYPES))
def test_every_event_type_round_trips(type_):
    event = P.make_event(type_, "run-1", 7, ts=123.5, **sample_payload(type_))
    line = P.encode(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert P.decode_event(line) == event


def test_event_carries_the_envelope():
    event = P.make_event("log", "r", 3, level="info", message="hi")
    assert {"v", "type", "run", "seq", "ts"} <= event.keys()
    assert event["v"] == P.PROTOCOL_VERSION == 1


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
    event = P.make_event("metrics", "r", 1, step=1, loss=float("nan"), lr=float("inf"), tokens_per_s=1.0,
                         tokens_seen=1, step_time_s=1.0, elapsed_s=1.0)
    decoded = P.decode_event(P.encode(event))
    assert decoded["loss"] is None and decoded["lr"] is None and decoded["tokens_per_s"] == 1.0


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
    ],
)
def test_malformed_commands_name_the_problem(line, message):
    with pytest.raises(P.ProtocolError, match=message):
        P.decode_command(line)


def test_commands_round_trip():
    for name in P.COMMANDS:
        cmd = P.make_command(name, "id-1")
        assert P.decode_command(P.encode(cmd))["cmd"] == name
    assert P.decode_command(b'{"v":1,"cmd":"subscribe"}')["from_seq"] == 0


def test_reply_lines_decode():
    reply = P.make_reply("a", False, "stop", "nope")
    assert P.decode_event(P.encode(reply)) == reply


def test_protocol_and_config_import_without_torch():
    import subprocess
    import sys

    code = ("import sys, engine.protocol, engine.config, engine.rundir, engine.bus; "
            "bad = [m for m in ('torch', 'transformers', 'textual', 'accelerate') if m in sys.modules]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
