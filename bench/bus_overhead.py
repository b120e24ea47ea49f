"""Cost of the live channel: the demo's training steps/s with the event bus and telemetry on
against off, measured in one run.

"on"  = the socket server thread serving, a live subscriber attached, telemetry sampled every 2 s
        (the way the dashboard runs it);
"off" = no socket thread, no subscriber, no telemetry (events.jsonl is still written: it is the run's
        record, and costs one buffered write per logging interval).

Runs alternate on/off so that machine noise hits both alike; steps/s is taken from the engine's own
metrics between the first and the last logged step (start-up excluded). Prints a table and writes
JSON to bench/results/bus_overhead.json.

    .venv/bin/python bench/bus_overhead.py [--steps 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cockpit.client import RunClient, read_events  # noqa: E402
from cockpit.launch import new_run_dir, prepare_config  # noqa: E402
from engine.rundir import RunPaths  # noqa: E402


def one_run(workdir: Path, label: str, on: bool, steps: int, index: int) -> float:
    overrides = [
        f"train.max_steps={steps}",
        "train.save_every=0",
        "train.log_every=10",
        f"events.enabled={str(on).lower()}",
        f"telemetry.enabled={str(on).lower()}",
        f"data.path={workdir / 'data' / 'corpus.txt'}",
        f"tokenizer.path={workdir / 'data' / 'tokenizer'}",
    ]
    config_path, cfg = prepare_config("demo", overrides)
    run_dir = new_run_dir(cfg, config_path, workdir / f"{label}-{index}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    follower = None
    if on:  # a live subscriber, like the dashboard
        stop = threading.Event()
        follower = threading.Thread(
            target=lambda: [None for _ in RunClient(run_dir, pid=proc.pid).follow(stop=stop)], daemon=True
        )
        follower.start()
    code = proc.wait()
    if follower is not None:
        follower.join(10)
    if code != 0:
        raise SystemExit(f"{label} run failed (exit {code}); see {RunPaths(run_dir).logs}")
    metrics = [e for e in read_events(RunPaths(run_dir).events) if e["type"] == "metrics"]
    first, last = metrics[0], metrics[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bus_overhead.json")
    args = ap.parse_args()

    results: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        work = Path(tmp)
        one_run(work, "warmup", False, 30, 0)  # generates the corpus and tokenizer once
        for i in range(args.repeats):
            for label in ("off", "on") if i % 2 == 0 else ("on", "off"):
                sps = one_run(work, label, label == "on", args.steps, i)
                results[label].append(sps)
                print(f"  run {i + 1}/{args.repeats} {label:>3}: {sps:.3f} steps/s", flush=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    ratio = med["on"] / med["off"]
    print()
    print(f"{'mode':<6}{'median steps/s':>16}{'runs':>40}")
    for label in ("off", "on"):
        runs = ", ".join(f"{x:.3f}" for x in results[label])
        print(f"{label:<6}{med[label]:>16.3f}{runs:>40}")
    print(f"ratio on/off: {ratio:.4f}  (target >= 0.97)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "bus_overhead",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": platform.node(),
                "cpus": __import__("os").cpu_count(),
                "steps": args.steps,
                "repeats": args.repeats,
                "steps_per_s": results,
                "median": med,
                "ratio_on_off": ratio,
                "target": 0.97,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
