"""Cost of background uploads: the demo's training steps/s while every checkpoint is uploaded
against the same run without upload targets, measured in one benchmark run.

Both modes save a checkpoint every ``--save-every`` steps (the checkpoint itself costs the same);
"on" adds a file:// upload target in the same temporary directory, so the upload thread reads,
hashes, writes and reads back every checkpoint beside the training loop (the CPU and disk work of
an upload, without a network's latency, which only makes the thread wait). Runs alternate on/off so
that machine noise hits both alike; steps/s is taken from the engine's own metrics between the first
and the last logged step (start-up and the end-of-run wait for uploads excluded). Prints a table and
writes JSON to bench/results/upload_overhead.json.

    .venv/bin/python bench/upload_overhead.py [--steps 150] [--save-every 10] [--repeats 3]
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

from cockpit.client import read_events  # noqa: E402
from cockpit.launch import new_run_dir, prepare_config  # noqa: E402
from engine.rundir import RunPaths  # noqa: E402


def one_run(workdir: Path, label: str, on: bool, steps: int, save_every: int, index: int) -> tuple[float, int]:
    """Steps/s of one run, and the uploads it verified."""
    overrides = [
        f"train.max_steps={steps}",
        f"train.save_every={save_every}",
        "train.log_every=10",
        "events.enabled=false",
        "telemetry.enabled=false",
        f"data.path={workdir / 'data' / 'corpus.txt'}",
        f"tokenizer.path={workdir / 'data' / 'tokenizer'}",
    ]
    if on:
        overrides.append(f"upload.targets=['file://{workdir / 'remote'}']")
    config_path, cfg = prepare_config("demo", overrides)
    run_dir = new_run_dir(cfg, config_path, workdir / f"{label}-{index}")
    code = subprocess.call(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if code != 0:
        raise SystemExit(f"{label} run failed (exit {code}); see {RunPaths(run_dir).logs}")
    events = list(read_events(RunPaths(run_dir).events))
    metrics = [e for e in events if e["type"] == "metrics"]
    uploads = sum(1 for e in events if e["type"] == "upload" and e["action"] == "done")
    first, last = metrics[0], metrics[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"]), uploads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--save-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "upload_overhead.json")
    args = ap.parse_args()

    results: dict[str, list[float]] = {"on": [], "off": []}
    uploads: list[int] = []
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        work = Path(tmp)
        one_run(work, "warmup", False, 30, 0, 0)  # generates the corpus and tokenizer once
        for i in range(args.repeats):
            for label in ("off", "on") if i % 2 == 0 else ("on", "off"):
                sps, done = one_run(work, label, label == "on", args.steps, args.save_every, i)
                results[label].append(sps)
                if label == "on":
                    uploads.append(done)
                print(f"  run {i + 1}/{args.repeats} {label:>3}: {sps:.3f} steps/s", flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["on"] / med["off"]
    print()
    print(f"{'mode':<6}{'median steps/s':>16}{'runs':>40}")
    for label in ("off", "on"):
        runs = ", ".join(f"{x:.3f}" for x in results[label])
        print(f"{label:<6}{med[label]:>16.3f}{runs:>40}")
    print(f"uploads verified per 'on' run: {uploads}")
    print(f"ratio on/off: {ratio:.4f}  (target >= 0.95)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "upload_overhead",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "steps": args.steps,
                "save_every": args.save_every,
                "repeats": args.repeats,
                "steps_per_s": results,
                "median": med,
                "uploads_verified": uploads,
                "ratio_on_off": ratio,
                "target": 0.95,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
