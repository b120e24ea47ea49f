"""Dry run (``cockpit check --dry-run``): a few real optimizer steps of the real engine, measured.

Runs ``python -m engine.dryrun`` in a subprocess (torch stays out of the cockpit; offline, so no
download is attempted) on the resolved config, which builds the engine exactly as ``cockpit run``
does in a temporary directory and times ``DRY_RUN_STEPS`` steps after one warm-up step. Reported:

- ``dry_run.steps``: the steps ran (device, parameters, losses), or the error that stopped them
  (bad data, out of memory, a config the engine refuses): a blocking failure;
- ``dry_run.memory``: the measured peak next to the estimate of ``memory.estimate`` for the same
  single process (``training``: what training adds to the process), with the difference in percent;
  a warning when the estimate was too low by more than ``TOLERANCE`` and ``TOLERANCE_BYTES`` both
  (a few MiB of allocator noise on a small model is not worth a warning);
- ``dry_run.speed``: step time and tokens/s;
- ``dry_run.eta``: the whole run (``max_steps`` x step time, ``max_steps`` as the engine computes
  it, epochs included) and its cost at ``--price-per-hour`` or ``train.price_per_hour``.

Skipped when the memory estimate says the run does not fit (a dry run would only run out of
memory, and on a CPU take the machine with it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.units import duration, nbytes

#: Measured optimizer steps (after one warm-up step).
DRY_RUN_STEPS = 3
#: Seconds the dry run may take before it is stopped.
TIMEOUT_S = 600
#: Estimate vs measured peak: within this (relative to the measured) is ``ok``.
TOLERANCE = 0.25
#: ... and by at least this many bytes.
TOLERANCE_BYTES = 32 << 20

ROOT = Path(__file__).resolve().parents[2]


def run_dry_run(
    cfg: Any, steps: int = DRY_RUN_STEPS, timeout: float = TIMEOUT_S, cancel: threading.Event | None = None
) -> dict[str, Any]:
    """Run ``engine.dryrun`` on ``cfg`` (a resolved RunConfig) in a subprocess; its JSON, or
    ``{"ok": False, "error": ...}`` when it died without writing one (killed, timed out, or
    ``cancel`` set: the subprocess is killed, ``kind`` is ``cancelled``)."""
    with tempfile.TemporaryDirectory(prefix="cockpit-check-") as tmp:
        config, out = Path(tmp) / "run.yaml", Path(tmp) / "dry_run.json"
        config.write_text(cfg.to_yaml(), encoding="utf-8")
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        cmd = [
            sys.executable,
            "-m",
            "engine.dryrun",
            "--config",
            str(config),
            "--steps",
            str(steps),
            "--json",
            str(out),
        ]
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                cancelled = cancel is not None and cancel.is_set()
                if cancelled or time.monotonic() > deadline:
                    proc.kill()
                    proc.communicate()
                    if cancelled:
                        return {"ok": False, "kind": "cancelled", "error": "the dry run was cancelled"}
                    return {
                        "ok": False,
                        "kind": "timeout",
                        "error": f"the dry run took longer than {timeout:.0f} s and was stopped",
                    }
        if out.is_file():
            try:
                return json.loads(out.read_text(encoding="utf-8"))
            except ValueError:
                pass
        tail = (stderr or stdout or "").strip().splitlines()[-3:]
        why = (
            f"killed by signal {-proc.returncode} (out of memory?)"
            if proc.returncode < 0
            else f"exited with code {proc.returncode}"
        )
        return {"ok": False, "kind": "crash", "error": f"the dry run {why}" + (f": {' | '.join(tail)}" if tail else "")}


def _fix_for(kind: str, cfg: Any) -> str:
    if kind == "oom":
        return (
            "lower train.micro_batch_size (raise train.grad_accum_steps to keep the batch), turn on "
            "train.gradient_checkpointing, or use train.precision bf16"
        )
    if kind == "data":
        return "fix the data file named above (cockpit data validate), or point data.path at another"
    if kind == "config":
        return "fix the key named above"
    return "run it for real to see the full traceback: cockpit run CONFIG --headless"


def check_dry_run(ctx: CheckContext) -> list[CheckResult]:
    if not ctx.dry_run or ctx.cfg is None:
        return []
    cfg = ctx.cfg
    est = ctx.memory or {}
    fit = ctx.memory_fit or {}
    if fit and not fit.get("fits", True):
        return [
            result(
                "dry_run.steps",
                "Dry run",
                "skip",
                "not run: the memory estimate says this run does not fit (see memory.fit)",
                blocking=False,
            )
        ]

    measured = run_dry_run(cfg)
    if not measured.get("ok"):
        kind = measured.get("kind", "error")
        return [
            result(
                "dry_run.steps",
                "Dry run",
                "fail",
                f"the dry run failed: {measured.get('error')}",
                _fix_for(kind, cfg),
                kind=kind,
                error=measured.get("error"),
            )
        ]

    out = []
    losses = measured.get("losses") or []
    loss = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else ""
    notes = measured.get("notes") or []
    out.append(
        result(
            "dry_run.steps",
            "Dry run",
            "ok",
            f"{measured['steps']} optimizer steps (+{measured['warmup_steps']} warm-up) on {measured['device']}, "
            f"{measured['params']:,} parameters, {loss}; built in {measured['build_s']:.1f} s"
            + (f"; {'; '.join(notes)} (in a temporary directory)" if notes else ""),
            device=measured["device"],
            params=measured["params"],
            losses=losses,
            build_s=measured["build_s"],
            elapsed_s=measured.get("elapsed_s"),
        )
    )

    out.append(_memory_result(ctx, measured, est))

    step_s, tps = measured["step_s"], measured["tokens_per_s"]
    out.append(
        result(
            "dry_run.speed",
            "Speed",
            "ok",
            f"{step_s:.3f} s per optimizer step, {tps:,.0f} tokens/s ({measured['tokens_per_step']:,} tokens per "
            f"step, one process)",
            step_s=step_s,
            tokens_per_s=tps,
            tokens_per_step=measured["tokens_per_step"],
            step_s_all=measured.get("step_s_all"),
        )
    )

    max_steps = int(measured.get("max_steps") or cfg.train.max_steps)
    eta_s = max_steps * step_s
    price = ctx.price_per_hour if ctx.price_per_hour is not None else (cfg.train.price_per_hour or None)
    cost = price * eta_s / 3600 if price else None
    detail = f"{max_steps:,} steps x {step_s:.3f} s = {duration(eta_s)} of training"
    if cost is not None:
        detail += f", about ${cost:,.2f} at ${price:g}/h"
    else:
        detail += " (no price: --price-per-hour or train.price_per_hour gives the cost)"
    if ctx.nproc > 1:
        detail += f"; measured with one process, {ctx.nproc} data-parallel processes take about as long per step"
    detail += "; start-up, evaluation and checkpoints come on top"
    status = "ok"
    fix = None
    budget = cfg.train.budget_usd
    if cost is not None and budget and cost > budget:
        status, fix = "warn", f"train.budget_usd {budget:g} stops the run early; raise it or lower train.max_steps"
        detail += f"; over train.budget_usd {budget:g}"
    max_hours = cfg.train.max_hours
    if max_hours and eta_s > max_hours * 3600:
        status, fix = "warn", f"train.max_hours {max_hours:g} stops the run early; raise it or lower train.max_steps"
        detail += f"; over train.max_hours {max_hours:g}"
    out.append(
        result(
            "dry_run.eta",
            "Time and cost",
            status,
            detail,
            fix,
            blocking=False,
            max_steps=max_steps,
            eta_s=eta_s,
            price_per_hour=price,
            cost_usd=cost,
        )
    )
    return out


def _memory_result(ctx: CheckContext, measured: dict[str, Any], est_run: dict[str, Any]) -> CheckResult:
    """Measured peak against the estimate for the process the dry run was (one process, this device)."""
    from cockpit.checks.memory import estimate_memory
    from cockpit.checks.model_facts import model_facts

    peak = measured.get("peak") or {}
    got = peak.get("training_bytes")
    if got is None:
        return result(
            "dry_run.memory", "Measured memory", "skip", "the peak could not be measured on this system", blocking=False
        )
    device = "cuda" if peak.get("kind") == "cuda" else "cpu"
    try:
        facts = model_facts(ctx.cfg, measured.get("vocab_size"))
        est = estimate_memory(facts, ctx.cfg, 1, device=device)
    except Exception as exc:  # the estimate failed where the engine did not: show the measurement anyway
        return result(
            "dry_run.memory",
            "Measured memory",
            "warn",
            f"measured {nbytes(got)}; no estimate: {exc}",
            blocking=False,
            measured=got,
        )
    want = est["training"]
    diff = (want - got) / got if got else 0.0
    where = (
        "max_memory_allocated above the allocations before the model; reserved "
        f"{nbytes(peak.get('reserved_bytes') or 0)}"
        if device == "cuda"
        else f"resident-set peak above the {nbytes(peak.get('baseline_bytes') or 0)} before the model; "
        f"whole process {nbytes(peak.get('absolute_bytes') or 0)}"
    )
    detail = f"measured {nbytes(got)} for training ({where}), estimated {nbytes(want)}: {diff:+.0%}"
    data = {
        "measured": got,
        "estimated": want,
        "diff": diff,
        "device": device,
        "peak": peak,
        "estimate_run": est_run.get("total"),
    }
    if diff < -TOLERANCE and got - want > TOLERANCE_BYTES:
        return result(
            "dry_run.memory",
            "Measured memory",
            "warn",
            detail + " (the estimate is too low)",
            "trust the measured figure; leave more headroom than memory.fit suggests",
            blocking=False,
            **data,
        )
    return result("dry_run.memory", "Measured memory", "ok", detail, **data)
