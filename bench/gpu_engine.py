"""GPU figures of the engine, in one run: tokens/s and MFU of ``dense_175m`` and ``mac_mini`` in bf16,
NVML telemetry as the dashboard gets it, and the memory estimate of ``cockpit check`` against the dry
run's ``max_memory_allocated``.

For each preset: the real engine (``python -m engine --run-dir``) trains ``--steps`` steps on the demo
corpus with the preset's own vocabulary (``model.vocab_size``, the embedding padded beyond the demo
tokenizer's) so that the FLOPs are the preset's; tokens/s and MFU are the medians of the engine's own
``metrics`` events after the first logging interval (warm-up and kernel selection excluded); the
telemetry events say whether NVML saw the GPU. Then ``python -m engine.dryrun`` on the same config
measures the peak, and ``estimate_memory`` (torch-free, ``cockpit/checks/memory.py``) estimates it.

    python3 bench/gpu_engine.py [--presets dense_175m,mac_mini] [--steps 60] [--micro-batch 16]
                                [--seq-len 1024] [--out FILE]
    python3 bench/gpu_engine.py --smoke      # on a CPU: tiny, fp32, 20 steps (checks the script)

Targets (issue [engine]): >= 40% MFU for dense_175m on an H100/H200; (issue [check]) the estimate
within +-25% of the measured peak for dense_175m in bf16. Prints a table and writes JSON
(bench/results/gpu_engine.json unless --out). ``bench/device_check.sh`` runs it on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The preset vocabularies (the demo tokenizer is smaller; the embedding is padded to these).
PRESET_VOCAB = {"dense_175m": 50257, "mac_mini": 32000, "dense_75m": 32000, "tiny": 1024, "nano": 1024}


def make_run(work: Path, preset: str, args) -> Path:
    from cockpit.launch import new_run_dir, prepare_config

    overrides = [
        f"preset={preset}",
        f"train.precision={args.precision}",
        f"train.micro_batch_size={args.micro_batch}",
        f"train.seq_len={args.seq_len}",
        f"train.max_steps={args.steps}",
        "train.warmup_steps=5",
        "train.log_every=10",
        "train.save_every=0",
        "train.eval_every=0",
        "telemetry.interval_s=1",
        f"data.demo.samples={args.samples}",
        f"data.path={work / 'data' / 'corpus.txt'}",
        f"tokenizer.path={work / 'data' / 'tokenizer'}",
    ]
    if preset in PRESET_VOCAB:
        overrides.append(f"model.vocab_size={PRESET_VOCAB[preset]}")
    config_path, cfg = prepare_config("demo", overrides)
    return new_run_dir(cfg, config_path, work / preset)


def engine_figures(run_dir: Path, env: dict) -> dict:
    from cockpit.client import read_events
    from engine.rundir import RunPaths

    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)], env=env, capture_output=True, text=True
    )
    events = list(read_events(RunPaths(run_dir).events))
    if proc.returncode != 0:
        errors = [e.get("message") for e in events if e["type"] == "error"]
        return {"ok": False, "error": errors[-1] if errors else proc.stderr[-2000:]}
    hello = next(e for e in events if e["type"] == "hello")
    metrics = [e for e in events if e["type"] == "metrics"][1:]  # after the first interval
    telemetry = [e for e in events if e["type"] == "telemetry"]
    gpus = [g for e in telemetry for g in e.get("gpus") or []]

    def med(key):
        values = [e[key] for e in metrics if e.get(key) is not None]
        return statistics.median(values) if values else None

    return {
        "ok": True,
        "device": hello.get("device"),
        "params": hello.get("params") or hello.get("n_params"),
        "tokens_per_s": med("tokens_per_s"),
        "mfu": med("mfu"),
        "step_s": med("step_time_s"),
        "data_wait_s": med("data_wait_s"),
        "last_loss": metrics[-1]["loss"] if metrics else None,
        "wall_s": time.perf_counter() - t0,
        "telemetry_samples": len(telemetry),
        "nvml_gpus": len({g.get("index") for g in gpus}),
        "gpu_util_max": max((g.get("util") or 0 for g in gpus), default=None),
        "gpu_power_max_w": max((g.get("power_w") or 0 for g in gpus), default=None),
        "gpu_name": gpus[0].get("name") if gpus else None,
    }


def memory_figures(run_dir: Path, env: dict) -> dict:
    from cockpit.checks.memory import estimate_memory
    from cockpit.checks.model_facts import model_facts
    from engine.config import read_run_config
    from engine.rundir import RunPaths

    out = run_dir / "dry_run.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.dryrun",
            "--config",
            str(RunPaths(run_dir).run_yaml),
            "--steps",
            "3",
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    measured = json.loads(out.read_text())
    if not measured.get("ok"):
        return {"ok": False, "error": measured.get("error")}
    cfg = read_run_config(run_dir)
    device = "cuda" if measured["peak"]["kind"] == "cuda" else "cpu"
    est = estimate_memory(model_facts(cfg, measured["vocab_size"]), cfg, 1, device=device)
    got = measured["peak"]["training_bytes"]
    return {
        "ok": True,
        "device": device,
        "estimate_bytes": est["training"],
        "measured_bytes": got,
        "diff": (est["training"] - got) / got if got else None,
        "reserved_bytes": measured["peak"].get("reserved_bytes"),
        "dry_run_tokens_per_s": measured.get("tokens_per_s"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="dense_175m,mac_mini")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--samples", type=int, default=20000, help="demo corpus lines")
    ap.add_argument("--smoke", action="store_true", help="CPU check of the script: tiny, fp32, seq 128, 20 steps")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_engine.json")
    args = ap.parse_args()
    if args.smoke:
        args.presets, args.steps, args.micro_batch, args.seq_len, args.precision = "tiny", 20, 8, 128, "fp32"
        args.samples = 3000
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="cockpit-gpubench-") as tmp:
        work = Path(tmp)
        for preset in args.presets.split(","):
            run_dir = make_run(work, preset, args)
            row = {
                "preset": preset,
                "precision": args.precision,
                "micro_batch_size": args.micro_batch,
                "seq_len": args.seq_len,
                "steps": args.steps,
                "engine": engine_figures(run_dir, env),
            }
            row["memory"] = memory_figures(run_dir, env)
            rows.append(row)
            print(json.dumps(row), flush=True)

    print()
    print("| preset | device | tokens/s | MFU | NVML GPUs | est. MiB | measured MiB | diff |")
    print("|--------|--------|---------:|----:|----------:|---------:|-------------:|-----:|")
    for r in rows:
        e, m = r["engine"], r["memory"]
        if not e["ok"]:
            print(f"| {r['preset']} | failed: {e['error']} | | | | | | |")
            continue
        mfu = f"{100 * e['mfu']:.1f}%" if e.get("mfu") is not None else "-"
        mem = (
            f"{m['estimate_bytes'] / 2**20:.0f} | {m['measured_bytes'] / 2**20:.0f} | {100 * m['diff']:+.1f}%"
            if m.get("ok")
            else f"- | - | {m.get('error')}"
        )
        print(f"| {r['preset']} | {e['device']} | {e['tokens_per_s']:,.0f} | {mfu} | {e['nvml_gpus']} | {mem} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": platform.platform(),
                "args": {k: str(v) for k, v in vars(args).items()},
                "rows": rows,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print(f"wrote {args.out}")
    return 0 if all(r["engine"]["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
