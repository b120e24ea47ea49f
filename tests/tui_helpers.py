"""Helpers for the TUI tests: finished-run fixtures written from fixed events, and waiting on the
dashboard. (Real engines come from the ``make_run_dir`` / ``start_engine`` fixtures of conftest.py.)"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.checkpoint_index import write_manifest
from engine.protocol import encode, make_event

REPO = Path(__file__).resolve().parents[1]

#: 2024-05-01 12:00:00 UTC: every fixture event is timed from here.
T0 = 1714564800.0

GPU_H100 = {
    "index": 0,
    "name": "NVIDIA H100 80GB HBM3",
    "util": 87.0,
    "mem_used": 41_200_000_000,
    "mem_total": 85_520_000_000,
    "temp_c": 64.0,
    "power_w": 412.0,
}


def fixture_events(
    run: str = "demo-run",
    max_steps: int = 300,
    log_every: int = 10,
    save_every: int = 100,
    eval_every: int = 100,
    gpus: list[dict] | None = None,
    final_state: str = "finished",
    seed: int = 7,
) -> list[dict]:
    """The events of a whole (deterministic) run: hello, states, metrics with a falling noisy
    loss, telemetry, evals, checkpoints (one pruned), logs and a terminal status."""
    rng = random.Random(seed)
    seq = 0
    out: list[dict] = []
    tokens_per_step = 2048
    step_time = 0.25

    def emit(type_: str, ts: float, **payload: Any) -> None:
        nonlocal seq
        out.append(make_event(type_, run, seq, ts=round(ts, 3), **payload))
        seq += 1

    emit("status", T0, state="starting", step=0, reason="launched")
    emit("log", T0 + 0.4, level="info", message="tokenizer: trained 1,024 tokens on data/demo/corpus.txt")
    emit("log", T0 + 1.1, level="info", message="data: 2.41M tokens, 1% held out for validation")
    emit(
        "hello",
        T0 + 2.0,
        protocol=1,
        config={"preset": "tiny"},
        preset="tiny",
        params=3_415_040,
        world_size=1,
        device="cuda:0 NVIDIA H100 80GB HBM3" if gpus else "cpu",
        pid=4242,
        max_steps=max_steps,
        tokens_per_step=tokens_per_step,
    )
    emit("status", T0 + 2.1, state="running", step=0)
    start = T0 + 2.1
    stop_at = max_steps if final_state == "finished" else max_steps * 2 // 3
    pruned = False
    for step in range(1, stop_at + 1):
        ts = start + step * step_time
        if step == 1 or step % log_every == 0:
            base = 2.1 + 4.9 * math.exp(-step / (max_steps / 6))
            loss = base + rng.gauss(0, 0.06)
            warm = min(1.0, step / 30)
            lr = 3e-3 * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max_steps)))
            emit(
                "metrics",
                ts,
                step=step,
                loss=round(loss, 4),
                lr=lr,
                grad_norm=round(0.4 + 2.0 * math.exp(-step / 40) + rng.random() * 0.1, 3),
                tokens_per_s=round(tokens_per_step / step_time * (0.97 + 0.06 * rng.random()), 1),
                tokens_seen=step * tokens_per_step,
                step_time_s=step_time,
                elapsed_s=round(step * step_time, 2),
                eta_s=round((max_steps - step) * step_time, 2),
                mfu=0.41 if gpus else None,
            )
        if step % 20 == 0:
            emit(
                "telemetry",
                ts + 0.01,
                cpu_percent=round(55 + 20 * rng.random(), 1),
                ram_used=5_100_000_000 + step * 1_000_000,
                ram_total=16_700_000_000,
                proc_rss=812_000_000 + step * 100_000,
                gpus=list(gpus or []),
            )
        if eval_every and step % eval_every == 0:
            ev = 2.2 + 4.9 * math.exp(-step / (max_steps / 6)) + 0.05
            emit("eval", ts + 0.05, step=step, loss=round(ev, 4), perplexity=round(math.exp(ev), 2))
        if save_every and step % save_every == 0 and step != max_steps:
            emit("status", ts + 0.06, state="checkpointing", step=step)
            emit(
                "checkpoint",
                ts + 0.5,
                action="saved",
                step=step,
                path=f"checkpoints/checkpoint-{step}",
                size_bytes=41_300_000,
                reason="interval",
            )
            emit("status", ts + 0.51, state="running", step=step)
            if step >= 2 * save_every and not pruned:
                emit(
                    "checkpoint",
                    ts + 0.52,
                    action="pruned",
                    step=save_every,
                    path=f"checkpoints/checkpoint-{save_every}",
                )
                pruned = True
        if step == max_steps // 2:
            emit("log", ts + 0.02, level="warning", message=f"loss spike at step {step} (grad norm clipped)")
    end = start + stop_at * step_time
    if final_state == "finished":
        emit("status", end + 0.01, state="checkpointing", step=stop_at)
        emit(
            "checkpoint",
            end + 0.6,
            action="saved",
            step=stop_at,
            path=f"checkpoints/checkpoint-{stop_at}",
            size_bytes=41_300_000,
            reason="final",
        )
        emit("status", end + 0.7, state="finished", step=stop_at, reason="reached max_steps")
    elif final_state == "stopped":
        emit("status", end + 0.01, state="stopping", step=stop_at, reason="stop command")
        emit("status", end + 0.6, state="stopped", step=stop_at, reason="stop command")
    elif final_state == "failed":
        emit(
            "error",
            end + 0.01,
            message="CUDA out of memory",
            step=stop_at,
            traceback="Traceback (most recent call last):\n  ...\ntorch.OutOfMemoryError: CUDA out of memory",
        )
        emit("status", end + 0.05, state="failed", step=stop_at, reason="CUDA out of memory")
    return out


#: Upload targets of the fixture uploads (as the engine names them: credentials removed).
TARGET_A = "file:///mnt/backup/runs"
TARGET_B = "s3://ckpt-bucket/runs"
UPLOAD_BYTES = 41_300_000


def _ckpt(step: int) -> str:
    return f"checkpoints/checkpoint-{step}"


#: (action, step, target, bytes_done, error) of the fixture uploads of a run checkpointed at 100
#: (later pruned), 200 and 300: 100 done on both targets (progress collapses to the latest), 200
#: done on A and failed on B, 300 uploading to A (45%) and queued for B.
UPLOAD_PLAN: tuple[tuple[str, int, str, int | None, str | None], ...] = (
    ("queued", 100, TARGET_A, 0, None),
    ("queued", 100, TARGET_B, 0, None),
    ("progress", 100, TARGET_A, 10_000_000, None),
    ("progress", 100, TARGET_A, 30_000_000, None),
    ("done", 100, TARGET_A, UPLOAD_BYTES, None),
    ("progress", 100, TARGET_B, 20_000_000, None),
    ("done", 100, TARGET_B, UPLOAD_BYTES, None),
    ("queued", 200, TARGET_A, 0, None),
    ("queued", 200, TARGET_B, 0, None),
    ("done", 200, TARGET_A, UPLOAD_BYTES, None),
    ("progress", 200, TARGET_B, 5_000_000, None),
    ("failed", 200, TARGET_B, None, "connection reset by peer (after 5 tries)"),
    ("queued", 300, TARGET_A, 0, None),
    ("queued", 300, TARGET_B, 0, None),
    ("progress", 300, TARGET_A, 9_000_000, None),
    ("progress", 300, TARGET_A, 18_585_000, None),
)


def with_uploads(events: list[dict], plan=UPLOAD_PLAN) -> list[dict]:
    """``events`` followed by the ``upload`` events of ``plan`` (seq and time carry on, 0.5 s apart),
    as the engine writes them: each with the bytes to send, and the bytes sent but when failed."""
    out = list(events)
    run, seq, ts = out[-1]["run"], out[-1]["seq"], out[-1]["ts"]
    for i, (action, step, target, done, error) in enumerate(plan, 1):
        payload: dict[str, Any] = {"action": action, "path": _ckpt(step), "target": target}
        payload["bytes_total"] = UPLOAD_BYTES
        if done is not None:
            payload["bytes_done"] = done
        if error is not None:
            payload["error"] = error
        out.append(make_event("upload", run, seq + i, ts=round(ts + 0.5 * i, 3), **payload))
    return out


def write_run(run_dir: Path, events: list[dict], state: str | None = None) -> Path:
    """A run directory holding ``events`` and a status.json of a run whose engine has exited."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "events.jsonl", "wb") as f:
        for e in events:
            f.write(encode(e))
    last_state = state or next((e["state"] for e in reversed(events) if e["type"] == "status"), "unknown")
    step = max((e.get("step", 0) for e in events if e["type"] in ("metrics", "status")), default=0)
    status = {
        "run": run_dir.name,
        "pid": None,
        "state": last_state,
        "step": step,
        "seq": events[-1]["seq"] if events else -1,
        "heartbeat": events[-1]["ts"] if events else T0,
    }
    (run_dir / "status.json").write_text(json.dumps(status, indent=1) + "\n", encoding="utf-8")
    (run_dir / "run.yaml").write_text("name: demo-run\npreset: tiny\n", encoding="utf-8")
    return run_dir


MODEL_CONFIG = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


def viewer_run(root: Path, events: list[dict] | None = None) -> Path:
    """The fixture run of the dashboard snapshots (checkpoints saved at 100, 200 and 300, 100 pruned)
    with the two kept checkpoint directories on disk: fixed files, a manifest, ``latest``. ``events``:
    the run's events instead of the fixture's (of the run named demo-run)."""
    run = write_run(root / "demo-run", events if events is not None else fixture_events(run="demo-run"))
    for i, step in enumerate((200, 300)):
        ckpt = run / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "config.json").write_text(json.dumps(MODEL_CONFIG, indent=1), encoding="utf-8")
        (ckpt / "model.safetensors").write_bytes(bytes(range(256)) * (40 + 8 * i))
        (ckpt / "training_state.pt").write_bytes(b"\x00" * 1000 * (3 + i))
        write_manifest(ckpt, step)
        manifest = json.loads((ckpt / "manifest.json").read_text())
        manifest["created"] = T0 + 2.1 + step * 0.25 + 0.5
        (ckpt / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    (run / "checkpoints" / "latest").write_text("checkpoint-300\n", encoding="utf-8")
    return run


def finished_run(run_dir: Path, **kwargs: Any) -> Path:
    return write_run(run_dir, fixture_events(run=run_dir.name, **kwargs))


# --- waiting on the app ------------------------------------------------------------------------


async def wait_for(
    predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def settled_text(app, *expected: str, timeout: float = 10.0) -> str:
    """The screen's text once it shows each of ``expected``, or as it is after ``timeout``: a
    loaded screen may still be scrolling its log into place on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        text = screen_text(app)
        if all(e in text for e in expected) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)


async def screen_still(pilot, polls: int = 40) -> None:
    """Wait until the screen stops changing (two looks 0.05 s apart agree): a worker's last message,
    or a log scrolling into place, may still be arriving on a busy machine."""
    shown = None
    for _ in range(polls):
        await pilot.pause(0.05)
        if (now := screen_text(pilot.app)) == shown:
            return
        shown = now


def screen_text(app) -> str:
    """The plain text of what the app shows right now."""
    from rich.console import Console

    width, height = app.size
    console = Console(
        width=width,
        height=height,
        record=True,
        file=open(os.devnull, "w"),
        force_terminal=True,
        color_system=None,
        legacy_windows=False,
    )
    screen_render = app.screen._compositor.render_update(full=True)
    console.print(screen_render)
    return console.export_text(styles=False)


# --- a real engine -----------------------------------------------------------------------------


def engine_available() -> bool:
    return (REPO / "engine" / "train.py").exists() and (REPO / "engine" / "__main__.py").exists()
