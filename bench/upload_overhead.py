"""Cost of background uploads: the training steps/s of a run whose every checkpoint is uploaded
against the same run without upload targets.

The demo config with the ``nano`` preset (5M parameters: a 59 MB checkpoint with its optimizer
state), short steps (``--micro-batch 4``) and a checkpoint every ``--save-every`` steps in both modes
(the checkpoint itself costs the same); "on" adds a file:// upload target in the same temporary
directory, so the upload thread reads, hashes, writes and reads back every checkpoint beside the
training loop: the CPU and disk work of an upload, without a network's latency (which only makes the
thread wait). On a CPU-only machine that work competes with training for the same cores, the worst
case. Runs alternate off/on in pairs, and the ratio is taken within each pair (a shared machine's load
drifts over minutes); steps/s is the engine's own, between the first and the last logged step
(start-up and the end-of-run wait for uploads excluded). Prints a table and writes JSON to
bench/results/upload_overhead.json.

    .venv/bin/python bench/upload_overhead.py [--steps 120] [--save-every 10] [--repeats 3]
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


def one_run(workdir: Path, args: argparse.Namespace, on: bool, index: int) -> tuple[float, int]:
    """Steps/s of one run, and the uploads it verified."""
    overrides = [
        f"preset={args.preset}",
        f"train.micro_batch_size={args.micro_batch}",
        f"train.max_steps={args.steps}",
        f"train.save_every={args.save_every}",
        "train.log_every=10",
        "events.enabled=false",
        "telemetry.enabled=false",
        f"data.path={workdir / 'data' / 'corpus.txt'}",
        f"tokenizer.path={workdir / 'data' / 'tokenizer'}",
    ]
    if on:
        overrides.append(f"upload.targets=['file://{workdir / 'remote'}']")
    config_path, cfg = prepare_config("demo", overrides)
    run_dir = new_run_dir(cfg, config_path, workdir / f"{'on' if on else 'off'}-{index}")
    code = subprocess.call(
        [sys.executable, "-m", "engine", "--run-dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if code != 0:
        raise SystemExit(f"run failed (exit {code}); see {RunPaths(run_dir).logs}")
    events = list(read_events(RunPaths(run_dir).events))
    metrics = [e for e in events if e["type"] == "metrics"]
    uploads = sum(1 for e in events if e["type"] == "upload" and e["action"] == "done")
    first, last = metrics[0], metrics[-1]
    return (last["step"] - first["step"]) / (last["elapsed_s"] - first["elapsed_s"]), uploads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--save-every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--preset", default="nano", help="A preset whose checkpoint takes several steps to upload.")
    ap.add_argument(
        "--micro-batch", type=int, default=4, help="Sequences per step (short steps: many of them per upload)."
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "upload_overhead.json")
    args = ap.parse_args()

    runs = []
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        work = Path(tmp)
        for i in range(args.repeats):
            r: dict[str, float] = {}
            for label in ("off", "on") if i % 2 == 0 else ("on", "off"):
                r[label], done = one_run(work, args, label == "on", i)
                if label == "on":
                    r["uploads"] = done
                print(f"  pair {i + 1}/{args.repeats} {label:>3}: {r[label]:.3f} steps/s", flush=True)
            r["ratio"] = r["on"] / r["off"]
            runs.append(r)
    ratio = statistics.median(r["ratio"] for r in runs)
    print()
    print(f"{'pair':<6}{'off steps/s':>12}{'on steps/s':>12}{'on/off':>9}{'uploads':>9}")
    for i, r in enumerate(runs, 1):
        print(f"{i:<6}{r['off']:>12.3f}{r['on']:>12.3f}{r['ratio']:>9.3f}{r['uploads']:>9}")
    print(f"median ratio on/off: {ratio:.4f}  (target >= 0.95)")
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
                "preset": args.preset,
                "micro_batch": args.micro_batch,
                "repeats": args.repeats,
                "runs": runs,
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
