"""RunState: the dashboard's pure reducer of protocol events."""

from __future__ import annotations

import math

import pytest
from tui_helpers import GPU_H100, T0, fixture_events

from cockpit.run_state import MAX_LOG_ENTRIES, RunState
from engine import units
from engine.protocol import decode_event, encode, make_event


class Events:
    """Builds a gapless event stream for one run."""

    def __init__(self, run: str = "r"):
        self.run, self.seq = run, 0

    def __call__(self, type_: str, ts: float | None = None, **payload) -> dict:
        e = make_event(type_, self.run, self.seq, ts=T0 + self.seq if ts is None else ts, **payload)
        self.seq += 1
        return e


def metrics(ev: Events, step: int, loss: float | None, **kw) -> dict:
    payload = dict(
        step=step,
        loss=loss,
        lr=1e-3,
        tokens_per_s=1000.0,
        tokens_seen=step * 100,
        step_time_s=0.1,
        elapsed_s=step * 0.1,
        eta_s=(100 - step) * 0.1,
    )
    payload.update(kw)
    return ev("metrics", **payload)


def test_empty_state_is_connecting():
    s = RunState(run="r")
    assert s.state == "connecting" and not s.terminal
    assert s.stats().loss is None and s.elapsed() is None and s.eta() is None
    assert s.telemetry_view().known is False
    assert s.checkpoint_rows() == ()


def test_hello_status_and_metrics_fill_the_header_and_stats():
    ev = Events()
    s = RunState()
    s.apply_all(
        [
            ev("status", state="starting", step=0),
            ev(
                "hello",
                protocol=1,
                config={},
                preset="tiny",
                params=123_200,
                world_size=1,
                device="cpu",
                pid=99,
                max_steps=100,
                tokens_per_step=512,
            ),
            ev("status", state="running", step=0),
            metrics(ev, 1, 6.0),
            metrics(ev, 10, 4.0, grad_norm=0.8, mfu=None),
        ]
    )
    h = s.header()
    assert (h.run, h.state, h.preset, h.params, h.device) == ("r", "running", "tiny", 123_200, "cpu")
    st = s.stats()
    assert (st.step, st.max_steps, st.loss, st.best_loss, st.lr, st.grad_norm) == (10, 100, 4.0, 4.0, 1e-3, 0.8)
    assert st.tokens_per_s == 1000.0 and st.mfu is None
    assert s.loss_steps == [1, 10] and s.loss_values == [6.0, 4.0]
    assert st.loss_trend == pytest.approx(-2.0)


def test_the_state_takes_the_models_decode_event_returns():
    ev = Events()
    line = encode(metrics(ev, 5, None, grad_norm=float("inf")))
    s = RunState()
    s.apply(decode_event(line))
    assert (s.step, s.loss, s.grad_norm, s.lr) == (5, None, None, 1e-3) and math.isnan(s.loss_values[0])


def test_events_already_applied_are_ignored():
    ev = Events()
    e1, e2 = metrics(ev, 1, 5.0), metrics(ev, 2, 4.0)
    s = RunState()
    s.apply_all([e1, e2, e1, e2])
    assert s.loss_steps == [1, 2] and s.last_seq == 1


def test_non_finite_loss_is_a_gap_and_a_warning():
    ev = Events()
    s = RunState()
    s.apply_all([metrics(ev, 1, 5.0), metrics(ev, 2, None), metrics(ev, 3, 4.0)])
    assert math.isnan(s.loss_values[1]) and s.best_loss == 4.0
    assert any(e.level == "warning" and "not finite" in e.text for e in s.logs)


def test_checkpoints_saved_pruned_failed_newest_first():
    ev = Events()
    s = RunState()
    s.apply_all(
        [
            ev(
                "checkpoint",
                action="saved",
                step=10,
                path="checkpoints/checkpoint-10",
                size_bytes=1000,
                reason="interval",
            ),
            ev(
                "checkpoint",
                action="saved",
                step=20,
                path="checkpoints/checkpoint-20",
                size_bytes=2000,
                reason="command",
            ),
            ev("checkpoint", action="pruned", step=10, path="checkpoints/checkpoint-10"),
            ev("checkpoint", action="failed", step=30, path="checkpoints/checkpoint-30", error="disk full"),
        ]
    )
    rows = s.checkpoint_rows()
    assert [(c.step, c.action) for c in rows] == [(30, "failed"), (20, "saved"), (10, "pruned")]
    assert rows[2].size_bytes == 1000 and rows[2].reason == "interval"  # kept from the saved event
    assert [c.step for c in s.live_checkpoints] == [20]
    assert s.errors == 1
    texts = [e.text for e in s.logs]
    assert any("checkpoint saved at step 20 (command)" in t for t in texts)
    assert any("disk full" in t for t in texts)


def test_telemetry_view_with_and_without_gpus():
    ev = Events()
    s = RunState()
    s.apply(ev("telemetry", cpu_percent=50.0, ram_used=1, ram_total=2, proc_rss=3, gpus=[]))
    v = s.telemetry_view()
    assert v.known and v.cpu_percent == 50.0 and v.gpus == ()
    s.apply(ev("telemetry", cpu_percent=60.0, ram_used=1, ram_total=2, proc_rss=3, gpus=[GPU_H100]))
    (g,) = s.telemetry_view().gpus
    assert (g.index, g.name, g.util, g.temp_c) == (0, "NVIDIA H100 80GB HBM3", 87.0, 64.0)


def test_log_error_state_and_spillover_entries():
    ev = Events()
    s = RunState()
    s.apply_all(
        [
            ev("status", state="starting", step=0),
            ev("status", state="running", step=0),
            ev("status", state="checkpointing", step=5),  # routine: not logged
            ev("status", state="running", step=5),
            ev("log", level="warning", message="slow disk"),
            ev("error", message="boom", step=7, traceback="Traceback...\nValueError: boom"),
            ev("spillover", dropped=12),
            ev("status", state="failed", step=7, reason="boom"),
        ]
    )
    levels = [(e.level, e.text) for e in s.logs]
    assert levels[0] == ("state", "starting") and levels[1] == ("state", "running")
    assert ("warning", "slow disk") in levels
    assert ("error", "step 7: boom (ValueError: boom)") in levels
    assert ("warning", "12 events dropped by a slow consumer") in levels
    assert levels[-1] == ("state", "failed — boom")
    assert not any("checkpointing" in t for _, t in levels)
    assert s.terminal and s.state == "failed" and s.dropped == 12
    assert [e.index for e in s.logs] == list(range(len(levels)))


def test_log_keeps_the_newest_entries():
    ev = Events()
    s = RunState()
    s.apply_all(ev("log", level="info", message=f"line {i}") for i in range(MAX_LOG_ENTRIES + 50))
    assert len(s.logs) == MAX_LOG_ENTRIES and s.log_total == MAX_LOG_ENTRIES + 50
    assert s.logs[-1].text == f"line {MAX_LOG_ENTRIES + 49}" and s.logs[0].index == 50


def test_elapsed_and_eta_tick_while_live_and_freeze_when_over():
    ev = Events()
    s = RunState()
    s.apply(ev("status", ts=T0, state="running", step=0))
    s.apply(metrics(ev, 10, 3.0, ts=T0 + 10, eta_s=90.0))
    assert s.elapsed(now=T0 + 15) == pytest.approx(15)
    assert s.eta(now=T0 + 15) == pytest.approx(85)
    assert s.eta(now=T0 + 500) == 0.0
    s.apply(ev("status", ts=T0 + 20, state="finished", step=100))
    assert s.elapsed(now=T0 + 1000) == pytest.approx(20)
    assert s.eta(now=T0 + 1000) == 0.0


def test_mark_gone_only_for_a_live_run():
    ev = Events()
    s = RunState()
    s.apply(ev("status", state="running", step=3))
    s.mark_gone()
    assert s.state == "dead" and s.logs[-1].level == "error"
    done = RunState()
    done.apply(ev("status", state="finished", step=3))
    done.mark_gone()
    assert done.state == "finished"


def test_the_fixture_run_folds_to_its_final_numbers():
    s = RunState()
    s.apply_all(fixture_events(max_steps=300, log_every=10))
    assert s.state == "finished" and s.step == 300 and s.max_steps == 300
    assert len(s.loss_steps) == 31 and s.loss_steps[0] == 1 and s.loss_steps[-1] == 300
    assert s.loss_values[-1] < s.loss_values[0]
    assert [c.step for c in s.live_checkpoints] == [200, 300]
    assert s.eval_steps == [100, 200, 300]
    assert s.elapsed() == pytest.approx(2.1 + 300 * 0.25 + 0.7, abs=0.01)


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "—"),
        (0, "0"),
        (950, "950"),
        (12_345, "12.3k"),
        (999_960, "1M"),
        (3_415_040, "3.42M"),
        (4.567e9, "4.57B"),
    ],
)
def test_si_units(value, text):
    assert units.si(value) == text


def test_other_units():
    assert units.rate(12_345) == "12.3k tok/s"
    assert units.nbytes(45.2 * 2**20) == "45.2 MiB" and units.nbytes(812) == "812 B"
    assert units.nbytes(1023.6 * 2**30) == "1.0 TiB" and units.nbytes(120 * 2**30) == "120 GiB"
    assert units.nbytes(-340 * 2**20) == "-340 MiB" and units.nbytes(2048) == "2.0 KiB"
    assert units.bytes_pair(5.1 * 2**30, 15.6 * 2**30) == "5.1/15.6 GiB"
    assert units.duration(3 * 86400) == "3d00h" and units.duration(None) == "—"
    assert units.duration(4.2) == "4.2s" and units.duration(83) == "1m23s"
    assert units.duration(7300) == "2h01m" and units.duration(90_000) == "1d01h"
    assert units.loss(2.34567) == "2.346" and units.loss(10.37) == "10.37" and units.loss(float("nan")) == "nan"
    assert units.lr(3e-4) == "3.00e-04" and units.integer(12345) == "12,345"


def test_a_resume_from_an_earlier_checkpoint_drops_the_redone_points():
    ev, s = Events(), RunState()
    s.apply(ev("status", state="running", step=0))
    for step in range(1, 31):
        s.apply(metrics(ev, step, 5.0 - step / 10))
    s.apply(ev("eval", step=20, loss=3.5, perplexity=33.1))
    s.apply(ev("eval", step=30, loss=3.0, perplexity=20.1))
    # killed at step 30, resumed from checkpoint-20: the engine says so and trains 21.. again
    s.apply(ev("status", state="starting", step=20, reason="resumed from checkpoint-20"))
    assert s.step == 20 and s.loss_steps == list(range(1, 21)) and s.eval_steps == [20]
    # The numbers shown are those of step 20 again, not of the undone steps 21..30.
    assert s.loss == pytest.approx(3.0) and s.prev_loss == pytest.approx(3.1) and s.best_loss == pytest.approx(3.0)
    assert (s.eval_loss, s.eval_ppl) == (3.5, 33.1)
    for step in range(21, 26):
        s.apply(metrics(ev, step, 1.0))
    assert s.loss_steps == list(range(1, 26)) and s.loss_values[-1] == 1.0 and s.step == 25 and s.best_loss == 1.0
