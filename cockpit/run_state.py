"""What the dashboard knows about a run, rebuilt from its events. Pure: no I/O, no Textual.

``RunState.apply(event)`` folds one protocol event model (see ``engine/protocol.py``: what
``decode_event`` returns; the model guarantees every field's type) into the state; ``apply_all(events)``
folds a batch. The same events in the same order always give the same state,
so a run attached to after the fact looks exactly like one watched live.

Snapshots (``header()``, ``stats(now)``, ``telemetry_view()``, ``checkpoint_rows()``) are small frozen
values the dashboard hands to its widgets' reactives.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace

from engine import protocol as P
from engine import units
from engine.protocol import CONNECTING, DEAD, ENDED_STATES, TERMINAL_STATES
from engine.upload_status import UploadCopy, UploadFold

#: Log entries kept for the log tail.
MAX_LOG_ENTRIES = 1000

#: States in which the engine is making progress, so elapsed time and ETA tick on the clock.
_TICKING_STATES = frozenset({"starting", "running", "checkpointing"})


@dataclass(frozen=True)
class LogEntry:
    index: int  # running number, 0-based, over the whole run
    ts: float | None
    level: str  # debug | info | warning | error | state | checkpoint | eval | upload
    text: str


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: str
    action: str  # saved | pruned | failed
    reason: str | None = None
    size_bytes: int | None = None
    error: str | None = None
    ts: float | None = None
    #: Its copy at each upload target (``engine.upload_status``), latest state each.
    uploads: tuple[UploadCopy, ...] = ()


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
    loss_trend: float | None  # mean of the latest losses minus the mean of the ones before
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
class TelemetryView:
    known: bool  # a telemetry event has arrived
    cpu_percent: float | None = None
    ram_used: int | None = None
    ram_total: int | None = None
    proc_rss: int | None = None
    gpus: tuple[P.GpuSample, ...] = ()  # the protocol's own readings


@dataclass
class RunState:
    run: str = ""
    state: P.RunStateName = CONNECTING
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
    eval_values: list[float] = field(default_factory=list)  # nan where the held-out loss was not finite
    eval_loss: float | None = None  # nan: the latest evaluation was not finite
    eval_ppl: float | None = None
    eval_ppls: list[float | None] = field(default_factory=list)

    telemetry: P.Telemetry | None = None
    telemetry_ts: float | None = None

    #: Checkpoints by step, in the order first seen.
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    #: Each checkpoint's copies at the upload targets (progress events collapse to the latest).
    uploads: UploadFold = field(default_factory=UploadFold)

    logs: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=MAX_LOG_ENTRIES))
    log_total: int = 0
    errors: int = 0
    dropped: int = 0

    started_ts: float | None = None  # ts of the first event
    ended_ts: float | None = None  # ts of the terminal status event
    last_ts: float | None = None
    #: Revision counter, bumped by every event applied (lets views skip work when nothing changed).
    revision: int = 0

    # --- folding events -------------------------------------------------------------------

    def apply_all(self, events: Iterable[P.Event]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: P.Event) -> None:
        if event.seq <= self.last_seq:
            return  # already applied
        self.last_seq = event.seq
        self.revision += 1
        ts = event.ts
        if self.started_ts is None:
            self.started_ts = ts
        self.last_ts = ts
        if not self.run:
            self.run = event.run
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event, ts)

    def _log(self, ts: float | None, level: str, text: str) -> None:
        self.logs.append(LogEntry(self.log_total, ts, level, text))
        self.log_total += 1

    def _on_hello(self, e: P.Hello, ts: float) -> None:
        self.preset, self.params, self.device, self.world_size = e.preset, e.params, e.device, e.world_size
        self.max_steps, self.tokens_per_step, self.pid, self.config = e.max_steps, e.tokens_per_step, e.pid, e.config

    def _on_status(self, e: P.Status, ts: float) -> None:
        state = e.state
        if e.step < self.step:
            self._rewind(e.step)  # resumed from an earlier checkpoint: what came after it was redone
        else:
            self.step = e.step
        changed = state != self.state
        # A routine checkpoint (running -> checkpointing -> running) is logged by its checkpoint
        # event; only other transitions are worth a line.
        routine = {self.state, state} == {"running", "checkpointing"}
        self.state = state
        self.reason = e.reason
        if state in TERMINAL_STATES:
            self.ended_ts = ts
        if changed and not routine:
            self._log(ts, "state", f"{state}" + (f" — {e.reason}" if e.reason else ""))

    def _rewind(self, step: int) -> None:
        """Forget the loss and eval points after ``step``: a resumed run trains them again. The
        latest numbers become those of the last point kept."""
        self.step = step
        keep = sum(1 for s in self.loss_steps if s <= step)
        del self.loss_steps[keep:], self.loss_values[keep:]
        kept = [v for v in self.loss_values if not math.isnan(v)]
        self.loss = kept[-1] if kept else None
        self.prev_loss = kept[-2] if len(kept) > 1 else None
        self.best_loss = min(kept, default=None)
        keep = sum(1 for s in self.eval_steps if s <= step)
        del self.eval_steps[keep:], self.eval_values[keep:]
        self.eval_loss = self.eval_values[-1] if self.eval_values else None
        self.eval_ppl = self.eval_ppls[keep - 1] if keep else None
        del self.eval_ppls[keep:]
        self.ended_ts = None

    def _on_metrics(self, e: P.Metrics, ts: float) -> None:
        step, loss = e.step, e.loss
        self.step = max(self.step, step)
        self.prev_loss, self.loss = self.loss, loss
        if loss is not None and (self.best_loss is None or loss < self.best_loss):
            self.best_loss = loss
        self.loss_steps.append(step)
        self.loss_values.append(loss if loss is not None else math.nan)
        self.lr, self.grad_norm, self.tokens_per_s, self.tokens_seen = e.lr, e.grad_norm, e.tokens_per_s, e.tokens_seen
        self.step_time_s, self.elapsed_s, self.eta_s, self.mfu = e.step_time_s, e.elapsed_s, e.eta_s, e.mfu
        self.metrics_ts = ts
        if loss is None:
            self._log(ts, "warning", f"step {step}: loss is not finite")

    def _on_eval(self, e: P.Eval, ts: float) -> None:
        """A held-out loss; one that is not finite is a gap on the chart and reads "nan"."""
        loss = e.loss if e.loss is not None else math.nan
        self.eval_steps.append(e.step)
        self.eval_values.append(loss)
        self.eval_ppls.append(e.perplexity)
        self.eval_loss, self.eval_ppl = loss, e.perplexity
        ppl = f", perplexity {e.perplexity:.2f}" if e.perplexity is not None else ""
        shown = f"{e.loss:.4f}" if e.loss is not None else "nan"
        self._log(ts, "eval" if e.loss is not None else "warning", f"eval at step {e.step}: loss {shown}{ppl}")

    def _on_telemetry(self, e: P.Telemetry, ts: float) -> None:
        self.telemetry = e
        self.telemetry_ts = ts

    def _on_checkpoint(self, e: P.Checkpoint, ts: float) -> None:
        step, action = e.step, e.action
        old = self.checkpoints.get(step)
        ckpt = Checkpoint(
            step=step,
            path=e.path or (old.path if old else ""),
            action=action,
            reason=e.reason or (old.reason if old else None),
            size_bytes=e.size_bytes if e.size_bytes is not None else (old.size_bytes if old else None),
            error=e.error,
            ts=ts,
        )
        self.checkpoints[step] = ckpt
        if action == "saved":
            size = f", {units.nbytes(ckpt.size_bytes)}" if ckpt.size_bytes is not None else ""
            why = f" ({ckpt.reason})" if ckpt.reason else ""
            self._log(ts, "checkpoint", f"checkpoint saved at step {step}{why}{size}: {ckpt.path}")
        elif action == "pruned":
            self._log(ts, "debug", f"checkpoint pruned: {ckpt.path}")
        else:
            self.errors += 1
            self._log(ts, "error", f"checkpoint at step {step} failed: {ckpt.error or 'unknown error'}")

    def _on_upload(self, e: P.Upload, ts: float) -> None:
        copy = self.uploads.apply(e)
        what = f"{e.path} → {e.target}"
        if e.action == "queued":
            self._log(ts, "upload", f"upload queued: {what}")
        elif e.action == "done":
            size = f" ({units.nbytes(copy.bytes_total)}, verified)" if copy.bytes_total is not None else " (verified)"
            self._log(ts, "upload", f"upload done: {what}{size}")
        elif e.action == "failed":
            self.errors += 1
            self._log(ts, "error", f"upload failed: {what}: {e.error or 'unknown error'}")

    def _on_log(self, e: P.Log, ts: float) -> None:
        self._log(ts, e.level, e.message)

    def _on_error(self, e: P.Error, ts: float) -> None:
        self.errors += 1
        text = e.message if e.step is None else f"step {e.step}: {e.message}"
        if e.traceback and e.traceback.strip():
            last = e.traceback.strip().splitlines()[-1]
            if last not in text:
                text = f"{text} ({last})"
        self._log(ts, "error", text)

    def _on_spillover(self, e: P.Spillover, ts: float) -> None:
        self.dropped += e.dropped
        self._log(ts, "warning", f"{e.dropped} events dropped by a slow consumer")

    # --- derived --------------------------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def live_checkpoints(self) -> list[Checkpoint]:
        return [c for c in self.checkpoints.values() if c.action == "saved"]

    @property
    def ended(self) -> bool:
        """The run is over: a terminal state, or its engine died."""
        return self.state in ENDED_STATES

    def mark_gone(self, state: str = DEAD) -> None:
        """The event stream ended without a terminal state: the engine died."""
        if not self.terminal and self.state != state:
            self.state = state
            self.reason = "the engine exited without a final status"
            self._log(self.last_ts, "error", f"{state} — {self.reason}")
            self.revision += 1

    def loss_trend(self, window: int = 10) -> float | None:
        """How the loss moves: the mean of the last ``k`` logged losses minus the mean of the ``k``
        before them (k = window, fewer early in a run); negative when it falls."""
        values = [v for v in self.loss_values[-2 * window :] if not math.isnan(v)]
        k = min(window, len(values) // 2)
        if k < 1:
            return None
        return sum(values[-k:]) / k - sum(values[-2 * k : -k]) / k

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
        return HeaderInfo(self.run, self.state, self.reason, self.preset, self.device, self.params, self.world_size)

    def stats(self, now: float | None = None) -> Stats:
        derived = {"loss_trend": self.loss_trend(), "elapsed_s": self.elapsed(now), "eta_s": self.eta(now)}
        # every other field of the snapshot is the state's field of the same name
        held = {f.name: getattr(self, f.name) for f in fields(Stats) if f.name not in derived}
        return Stats(**held, **derived)

    def telemetry_view(self) -> TelemetryView:
        t = self.telemetry
        if t is None:
            return TelemetryView(known=False)
        return TelemetryView(
            known=True,
            cpu_percent=t.cpu_percent,
            ram_used=t.ram_used,
            ram_total=t.ram_total,
            proc_rss=t.proc_rss,
            gpus=tuple(t.gpus),
        )

    def checkpoint_rows(self) -> tuple[Checkpoint, ...]:
        """Checkpoints, newest step first, each with its upload copies."""
        rows = sorted(self.checkpoints.values(), key=lambda c: c.step, reverse=True)
        return tuple(replace(c, uploads=self.uploads.copies(c.path)) if c.path else c for c in rows)
