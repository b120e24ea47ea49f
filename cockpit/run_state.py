"""What the dashboard knows about a run, rebuilt from its events. Pure: no I/O, no Textual.

``RunState.apply(event)`` folds one protocol event (see ``engine/protocol.py``) into the state;
``apply_all(events)`` folds a batch. The same events in the same order always give the same state,
so a run attached to after the fact looks exactly like one watched live.

Snapshots (``header()``, ``stats(now)``, ``telemetry_view()``, ``checkpoint_rows()``) are small frozen
values the dashboard hands to its widgets' reactives.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from engine.protocol import TERMINAL_STATES

#: Log entries kept for the log tail.
MAX_LOG_ENTRIES = 1000

#: States in which the engine is making progress, so elapsed time and ETA tick on the clock.
_TICKING_STATES = frozenset({"starting", "running", "checkpointing"})


@dataclass(frozen=True)
class LogEntry:
    index: int          # running number, 0-based, over the whole run
    ts: float | None
    level: str          # debug | info | warning | error | state | checkpoint | eval | upload
    text: str


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: str
    action: str                 # saved | pruned | failed
    reason: str | None = None
    size_bytes: int | None = None
    error: str | None = None
    ts: float | None = None


@dataclass(frozen=True)
class HeaderInfo:
    run: str
    state: str
    reason: str | None
    preset: str | None
    device: str | None
    params: int | None
    world_size: int | None


@dataclass(frozen=True)
class Stats:
    state: str
    step: int
    max_steps: int | None
    loss: float | None
    loss_trend: float | None    # mean of the latest losses minus the mean of the ones before
    best_loss: float | None
    lr: float | None
    grad_norm: float | None
    tokens_per_s: float | None
    tokens_seen: int | None
    mfu: float | None
    eval_loss: float | None
    eval_ppl: float | None
    elapsed_s: float | None
    eta_s: float | None


@dataclass(frozen=True)
class GpuView:
    index: int
    name: str
    util: float | None
    mem_used: int | None
    mem_total: int | None
    temp_c: float | None
    power_w: float | None


@dataclass(frozen=True)
class TelemetryView:
    known: bool                 # a telemetry event has arrived
    cpu_percent: float | None = None
    ram_used: int | None = None
    ram_total: int | None = None
    proc_rss: int | None = None
    gpus: tuple[GpuView, ...] = ()


_INF = float("inf")


def _num(value: Any) -> float | None:
    """A finite float, or None (for null, nan, inf, or anything that is not a number)."""
    t = type(value)
    if t is float:
        return value if value == value and value != _INF and value != -_INF else None
    if t is int:
        return float(value)
    return None


def _int(value: Any) -> int | None:
    t = type(value)
    if t is int:
        return value
    if t is float and value == value and value != _INF and value != -_INF:
        return int(value)
    return None


@dataclass
class RunState:
    run: str = ""
    state: str = "connecting"
    reason: str | None = None
    last_seq: int = -1

    # hello
    preset: str | None = None
    params: int | None = None
    device: str | None = None
    world_size: int | None = None
    max_steps: int | None = None
    tokens_per_step: int | None = None
    pid: int | None = None
    config: dict | None = None

    # metrics
    step: int = 0
    loss: float | None = None
    prev_loss: float | None = None
    best_loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    tokens_seen: int | None = None
    step_time_s: float | None = None
    elapsed_s: float | None = None
    eta_s: float | None = None
    mfu: float | None = None
    metrics_ts: float | None = None

    #: Loss curve: parallel lists, one entry per metrics event; a diverged step's loss is nan.
    loss_steps: list[int] = field(default_factory=list)
    loss_values: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    eval_values: list[float] = field(default_factory=list)
    eval_loss: float | None = None
    eval_ppl: float | None = None

    telemetry: dict | None = None
    telemetry_ts: float | None = None

    #: Checkpoints by step, in the order first seen.
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)

    logs: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=MAX_LOG_ENTRIES))
    log_total: int = 0
    errors: int = 0
    dropped: int = 0

    started_ts: float | None = None     # ts of the first event
    ended_ts: float | None = None       # ts of the terminal status event
    last_ts: float | None = None
    #: Revision counter, bumped by every event applied (lets views skip work when nothing changed).
    revision: int = 0

    # --- folding events -------------------------------------------------------------------

    def apply_all(self, events: Iterable[dict]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: dict) -> None:
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return  # already applied
            self.last_seq = seq
        self.revision += 1
        ts = _num(event.get("ts"))
        if ts is not None:
            if self.started_ts is None:
                self.started_ts = ts
            self.last_ts = ts
        if not self.run and isinstance(event.get("run"), str):
            self.run = event["run"]
        handler = getattr(self, f"_on_{event.get('type')}", None)
        if handler is not None:
            handler(event, ts)

    def _log(self, ts: float | None, level: str, text: str) -> None:
        self.logs.append(LogEntry(self.log_total, ts, level, text))
        self.log_total += 1

    def _on_hello(self, e: dict, ts: float | None) -> None:
        self.preset = e.get("preset") if isinstance(e.get("preset"), str) else self.preset
        self.params = _int(e.get("params"))
        self.device = e.get("device") if isinstance(e.get("device"), str) else None
        self.world_size = _int(e.get("world_size"))
        self.max_steps = _int(e.get("max_steps"))
        self.tokens_per_step = _int(e.get("tokens_per_step"))
        self.pid = _int(e.get("pid"))
        self.config = e.get("config") if isinstance(e.get("config"), dict) else None

    def _on_status(self, e: dict, ts: float | None) -> None:
        state = e.get("state")
        if not isinstance(state, str):
            return
        step = _int(e.get("step"))
        if step is not None and step < self.step:
            self._rewind(step)  # resumed from an earlier checkpoint: what came after it was redone
        elif step is not None:
            self.step = step
        reason = e.get("reason") if isinstance(e.get("reason"), str) else None
        changed = state != self.state
        # A routine checkpoint (running -> checkpointing -> running) is logged by its checkpoint
        # event; only other transitions are worth a line.
        routine = {self.state, state} == {"running", "checkpointing"}
        self.state = state
        self.reason = reason
        if state in TERMINAL_STATES:
            self.ended_ts = ts
        if changed and not routine:
            self._log(ts, "state", f"{state}" + (f" — {reason}" if reason else ""))

    def _rewind(self, step: int) -> None:
        """Forget the loss and eval points after ``step``: a resumed run trains them again."""
        self.step = step
        keep = sum(1 for s in self.loss_steps if s <= step)
        del self.loss_steps[keep:], self.loss_values[keep:]
        keep = sum(1 for s in self.eval_steps if s <= step)
        del self.eval_steps[keep:], self.eval_values[keep:]
        self.ended_ts = None

    def _on_metrics(self, e: dict, ts: float | None) -> None:
        step = _int(e.get("step"))
        if step is None:
            return
        self.step = max(self.step, step)
        loss = _num(e.get("loss"))
        self.prev_loss, self.loss = self.loss, loss
        if loss is not None and (self.best_loss is None or loss < self.best_loss):
            self.best_loss = loss
        self.loss_steps.append(step)
        self.loss_values.append(loss if loss is not None else math.nan)
        self.lr = _num(e.get("lr"))
        self.grad_norm = _num(e.get("grad_norm"))
        self.tokens_per_s = _num(e.get("tokens_per_s"))
        self.tokens_seen = _int(e.get("tokens_seen"))
        self.step_time_s = _num(e.get("step_time_s"))
        self.elapsed_s = _num(e.get("elapsed_s"))
        self.eta_s = _num(e.get("eta_s"))
        self.mfu = _num(e.get("mfu"))
        self.metrics_ts = ts
        if loss is None:
            self._log(ts, "warning", f"step {step}: loss is not finite")

    def _on_eval(self, e: dict, ts: float | None) -> None:
        step, loss = _int(e.get("step")), _num(e.get("loss"))
        if step is None or loss is None:
            return
        self.eval_steps.append(step)
        self.eval_values.append(loss)
        self.eval_loss = loss
        self.eval_ppl = _num(e.get("perplexity"))
        ppl = f", perplexity {self.eval_ppl:.2f}" if self.eval_ppl is not None else ""
        self._log(ts, "eval", f"eval at step {step}: loss {loss:.4f}{ppl}")

    def _on_telemetry(self, e: dict, ts: float | None) -> None:
        self.telemetry = e
        self.telemetry_ts = ts

    def _on_checkpoint(self, e: dict, ts: float | None) -> None:
        step = _int(e.get("step"))
        action = e.get("action")
        if step is None or not isinstance(action, str):
            return
        old = self.checkpoints.get(step)
        ckpt = Checkpoint(
            step=step,
            path=str(e.get("path") or (old.path if old else "")),
            action=action,
            reason=e.get("reason") or (old.reason if old else None),
            size_bytes=_int(e.get("size_bytes")) if e.get("size_bytes") is not None
            else (old.size_bytes if old else None),
            error=e.get("error"),
            ts=ts,
        )
        self.checkpoints[step] = ckpt
        if action == "saved":
            from cockpit.units import nbytes  # local: keeps this module's import surface tiny

            size = f", {nbytes(ckpt.size_bytes)}" if ckpt.size_bytes is not None else ""
            why = f" ({ckpt.reason})" if ckpt.reason else ""
            self._log(ts, "checkpoint", f"checkpoint saved at step {step}{why}{size}: {ckpt.path}")
        elif action == "pruned":
            self._log(ts, "debug", f"checkpoint pruned: {ckpt.path}")
        else:
            self.errors += 1
            self._log(ts, "error", f"checkpoint at step {step} failed: {ckpt.error or 'unknown error'}")

    def _on_upload(self, e: dict, ts: float | None) -> None:
        action = e.get("action")
        what = f"{e.get('path')} → {e.get('target')}"
        if action == "queued":
            self._log(ts, "upload", f"upload queued: {what}")
        elif action == "done":
            self._log(ts, "upload", f"upload done: {what}")
        elif action == "failed":
            self.errors += 1
            self._log(ts, "error", f"upload failed: {what}: {e.get('error') or 'unknown error'}")

    def _on_log(self, e: dict, ts: float | None) -> None:
        level = e.get("level") if e.get("level") in ("debug", "info", "warning", "error") else "info"
        self._log(ts, level, str(e.get("message", "")))

    def _on_error(self, e: dict, ts: float | None) -> None:
        self.errors += 1
        text = str(e.get("message", "error"))
        step = _int(e.get("step"))
        if step is not None:
            text = f"step {step}: {text}"
        tb = e.get("traceback")
        if isinstance(tb, str) and tb.strip():
            last = tb.strip().splitlines()[-1]
            if last not in text:
                text = f"{text} ({last})"
        self._log(ts, "error", text)

    def _on_spillover(self, e: dict, ts: float | None) -> None:
        dropped = _int(e.get("dropped")) or 0
        self.dropped += dropped
        self._log(ts, "warning", f"{dropped} events dropped by a slow consumer")

    # --- derived --------------------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def live_checkpoints(self) -> list[Checkpoint]:
        return [c for c in self.checkpoints.values() if c.action == "saved"]

    def mark_gone(self, state: str = "dead") -> None:
        """The event stream ended without a terminal state: the engine died."""
        if not self.terminal and self.state != state:
            self.state = state
            self.reason = "the engine exited without a final status"
            self._log(self.last_ts, "error", f"{state} — {self.reason}")
            self.revision += 1

    def loss_trend(self, window: int = 10) -> float | None:
        """How the loss moves: the mean of the last ``k`` logged losses minus the mean of the ``k``
        before them (k = window, fewer early in a run); negative when it falls."""
        values = [v for v in self.loss_values[-2 * window:] if not math.isnan(v)]
        k = min(window, len(values) // 2)
        if k < 1:
            return None
        return sum(values[-k:]) / k - sum(values[-2 * k:-k]) / k

    def elapsed(self, now: float | None = None) -> float | None:
        """Wall time since the run started: to its end for a finished run, to ``now`` while live."""
        if self.started_ts is None:
            return None
        if self.ended_ts is not None:
            return max(0.0, self.ended_ts - self.started_ts)
        if now is None or self.state not in _TICKING_STATES | {"paused", "stopping"}:
            end = self.last_ts if self.last_ts is not None else self.started_ts
        else:
            end = max(now, self.last_ts or now)
        return max(0.0, end - self.started_ts)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds to the end of the run: the engine's estimate counted down on the clock."""
        if self.terminal:
            return 0.0 if self.state == "finished" else None
        eta = self.eta_s
        if eta is None and self.step_time_s and self.max_steps:
            eta = self.step_time_s * max(0, self.max_steps - self.step)
        if eta is None:
            return None
        if now is not None and self.metrics_ts is not None and self.state in _TICKING_STATES:
            eta -= max(0.0, now - self.metrics_ts)
        return max(0.0, eta)

    # --- snapshots for the widgets ----------------------------------------------------------

    def header(self) -> HeaderInfo:
        return HeaderInfo(self.run, self.state, self.reason, self.preset, self.device, self.params,
                          self.world_size)

    def stats(self, now: float | None = None) -> Stats:
        return Stats(
            state=self.state, step=self.step, max_steps=self.max_steps, loss=self.loss,
            loss_trend=self.loss_trend(), best_loss=self.best_loss, lr=self.lr, grad_norm=self.grad_norm,
            tokens_per_s=self.tokens_per_s, tokens_seen=self.tokens_seen, mfu=self.mfu,
            eval_loss=self.eval_loss, eval_ppl=self.eval_ppl,
            elapsed_s=self.elapsed(now), eta_s=self.eta(now),
        )

    def telemetry_view(self) -> TelemetryView:
        t = self.telemetry
        if t is None:
            return TelemetryView(known=False)
        gpus = []
        for i, g in enumerate(t.get("gpus") or []):
            if not isinstance(g, dict):
                continue
            gpus.append(GpuView(
                index=_int(g.get("index")) if _int(g.get("index")) is not None else i,
                name=str(g.get("name") or "GPU"),
                util=_num(g.get("util")), mem_used=_int(g.get("mem_used")),
                mem_total=_int(g.get("mem_total")), temp_c=_num(g.get("temp_c")),
                power_w=_num(g.get("power_w")),
            ))
        return TelemetryView(
            known=True, cpu_percent=_num(t.get("cpu_percent")), ram_used=_int(t.get("ram_used")),
            ram_total=_int(t.get("ram_total")), proc_rss=_int(t.get("proc_rss")), gpus=tuple(gpus),
        )

    def checkpoint_rows(self) -> tuple[Checkpoint, ...]:
        """Checkpoints, newest step first."""
        return tuple(sorted(self.checkpoints.values(), key=lambda c: c.step, reverse=True))
