"""Dry run: build the real engine on a config and run a few real optimizer steps, measuring them.

    python -m engine.dryrun --config FILE [--set key=value ...] [--steps 3] [--warmup 1] --json OUT

What it builds is what ``cockpit run`` builds (``engine.trainer.Trainer``: Accelerate, data,
tokenizer, model, fused AdamW, gradient checkpointing and compile as configured), with events going
nowhere (``NullBus``) and a temporary run directory, so nothing is written into the user's runs or
data: a demo corpus or a tokenizer the run would create at launch is made in the temporary
directory instead (and deleted with it). One process, whatever ``--nproc`` the run will have.

Measured, over ``--steps`` optimizer steps after ``--warmup`` steps (the warm-up creates AdamW's
moments, so the peak covers it; its time does not count):

- **peak memory**, ``peak.training_bytes``: what training adds to the process, the quantity
  ``cockpit.checks.memory.estimate_memory`` estimates as ``training`` --
  on CUDA ``torch.cuda.max_memory_allocated`` (since the start, before the model nothing is
  allocated on the GPU) minus the allocated bytes before the model was built; ``reserved_bytes`` is
  the caching allocator's peak (``max_memory_reserved``).
  On the CPU the resident set: the kernel's high-water mark (``VmHWM``) reset after the build
  (``/proc/self/clear_refs`` = 5), read after the steps, minus the resident set just before the
  model was built (imports, the family's modeling code included, tokenizer and token stream are the
  baseline, not training; so is the runtime's one-time start-up -- the autograd engine, the thread
  pools, oneDNN -- which ``warm_up_runtime`` triggers on a throwaway network before the baseline:
  it varies with library versions by tens of MiB and does not grow with the model or the batch);
  ``absolute_bytes`` is the whole process's peak.
- **step time**: mean wall time of the measured steps (the device synchronised after each),
  ``tokens_per_s`` from it.

The JSON has ``ok: true`` and these figures, or ``ok: false`` with ``error`` (bad data, a config
the engine refuses, out of memory: ``kind`` says which) and the exit code is 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text

#: Exit code of a dry run that could not run (the JSON says why).
EXIT_FAILED = 2


def _proc_status_bytes(key: str) -> int | None:
    """A ``kB`` figure of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int | None:
    """Resident set of this process now."""
    value = _proc_status_bytes("VmRSS")
    if value is None:
        try:
            import psutil

            value = int(psutil.Process().memory_info().rss)
        except Exception:
            return None
    return value


def reset_rss_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (``VmHWM``) to the current RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def warm_up_runtime(device: str = "cpu") -> None:
    """Start what the first training step of any model starts once per process (autograd's engine,
    the intra-op thread pool, oneDNN's kernels, fused AdamW) on a throwaway network, and free it,
    so that a resident-set baseline taken afterwards holds it."""
    import torch

    net = torch.nn.Sequential(
        torch.nn.Embedding(64, 128), torch.nn.Linear(128, 256), torch.nn.SiLU(), torch.nn.Linear(256, 64)
    ).to(device)
    opt = torch.optim.AdamW(net.parameters(), fused=True)
    tokens = torch.randint(0, 64, (8, 32), device=device)
    for _ in range(2):
        logits = net(tokens)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    del net, opt, tokens, logits


def redirect_generated_data(cfg, tmp: Path) -> list[str]:
    """Point what the run would create at launch into ``tmp``: a missing demo corpus and a missing
    tokenizer (trained by demo/text/jsonl runs). Returns what was redirected, for the report."""
    notes = []
    data, tok = cfg.data, cfg.tokenizer
    if data.source == "demo" and not Path(data.path).exists():
        data.path = tmp / "data" / "corpus.txt"
        notes.append(f"demo corpus generated in {data.path} (the run makes it at launch)")
    if data.source != "shards" and not (Path(tok.path) / "tokenizer.json").is_file():
        tok.path = tmp / "data" / "tokenizer"
        notes.append(f"tokenizer trained in {tok.path} (the run trains it at launch)")
    return notes


def dry_run(cfg, steps: int = 3, warmup: int = 1, workdir: Path | None = None) -> dict[str, Any]:
    """Build the engine for ``cfg`` (a resolved RunConfig, changed in place: data redirected into
    the work directory, events and telemetry off) and time ``steps`` optimizer steps after
    ``warmup``. Raises what the engine raises."""
    import torch

    from engine.bus import NullBus
    from engine.controls import Controls
    from engine.rundir import RunPaths
    from engine.trainer import Trainer

    workdir = Path(workdir or tempfile.mkdtemp(prefix="cockpit-dryrun-"))
    notes = redirect_generated_data(cfg, workdir)
    cfg.events.enabled = False
    cfg.telemetry.enabled = False
    paths = RunPaths(workdir / "run")
    paths.logs.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()

    baseline: dict[str, int | None] = {}

    def take_baseline(config) -> None:  # just before the model exists
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]  # imports the modeling code (~90 MiB resident): not training
        if not cuda:
            warm_up_runtime()
        baseline["rss"] = rss_bytes()
        baseline["cuda"] = torch.cuda.memory_allocated() if cuda else None

    trainer = Trainer(cfg, paths, NullBus(), Controls(), main_process=True)
    t0 = time.perf_counter()
    trainer.build(before_model=take_baseline)
    trainer.configure_model()
    build_s = time.perf_counter() - t0

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    peak_reset = reset_rss_peak()
    losses, times = [], []
    for i in range(warmup + steps):
        sync()
        t = time.perf_counter()
        values, _ = trainer.train_step()
        loss = float(values[0])  # host sync, as a logging step does
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            losses.append(loss)
        trainer.step += 1

    if cuda:
        peak = {
            "kind": "cuda",
            "baseline_bytes": baseline.get("cuda") or 0,
            "absolute_bytes": int(torch.cuda.max_memory_allocated()),
            "reserved_bytes": int(torch.cuda.max_memory_reserved()),
        }
    else:
        hwm = _proc_status_bytes("VmHWM") if peak_reset else None
        peak = {
            "kind": "cpu_rss",
            "baseline_bytes": baseline.get("rss") or 0,
            "absolute_bytes": hwm,
            "rss_after_bytes": rss_bytes(),
            "peak_reset": peak_reset,
        }
    if peak["absolute_bytes"] is not None:
        peak["training_bytes"] = max(0, peak["absolute_bytes"] - peak["baseline_bytes"])
    step_s = sum(times) / len(times) if times else None
    train = cfg.train
    return {
        "ok": True,
        "device": trainer.device,
        "params": trainer.n_params,
        "vocab_size": trainer.model_config.vocab_size,
        "precision": train.precision,
        "micro_batch_size": train.micro_batch_size,
        "seq_len": train.seq_len,
        "grad_accum_steps": train.grad_accum_steps,
        "gradient_checkpointing": train.gradient_checkpointing,
        "threads": torch.get_num_threads(),
        "warmup_steps": warmup,
        "steps": steps,
        "step_s": step_s,
        "step_s_all": times,
        "tokens_per_step": trainer.tokens_per_step,
        "tokens_per_s": trainer.tokens_per_step / step_s if step_s else None,
        "max_steps": train.max_steps,
        "losses": losses,
        "build_s": build_s,
        "peak": peak,
        "notes": notes,
    }


def error_kind(exc: BaseException) -> str:
    """``oom``, ``data``, ``config`` or ``error``."""
    name = type(exc).__name__
    if "OutOfMemory" in name or isinstance(exc, MemoryError):
        return "oom"
    if name == "DataError":
        return "data"
    if name in ("ConfigError", "PresetError"):
        return "config"
    return "error"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engine.dryrun", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="run config (YAML)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted), as cockpit run --set",
    )
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="optimizer steps before measuring (default 1)")
    parser.add_argument("--json", required=True, type=Path, help="where to write the result")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="cockpit-dryrun-"))
    try:
        from engine.config import load_config

        cfg = load_config(args.config, args.overrides).resolved()
        out = dry_run(cfg, args.steps, args.warmup, workdir)
        code = 0
    except Exception as exc:  # every failure becomes JSON the check can show
        message = str(exc) or type(exc).__name__
        kind = error_kind(exc)
        if kind == "oom":
            try:
                from engine.trainer import oom_message

                message = oom_message(1, cfg.train)
            except Exception:
                pass
        elif kind == "error":
            message = f"{type(exc).__name__}: {message}"
        out, code = {"ok": False, "error": message, "kind": kind}, EXIT_FAILED
        print(f"dry run failed: {message}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out["elapsed_s"] = time.perf_counter() - t0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(out, indent=1), fsync=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
