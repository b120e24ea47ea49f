"""Start-up time of the `cockpit` command: `cockpit --help`, `cockpit runs`, `cockpit presets list`
and `cockpit presets show tiny` (target < 0.5 s each), next to a bare `python -c pass` and
`python -c "import torch"` for scale. Prints a table and writes JSON to bench/results/cli_startup.json.

    .venv/bin/python bench/cli_startup.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The commands with the < 0.5 s target.
TARGETED = ["cockpit --help", "cockpit presets list", "cockpit presets show tiny"]


def time_command(argv: list[str], repeats: int, cwd: str) -> list[float]:
    subprocess.run(argv, capture_output=True, cwd=cwd, check=True)  # warm the page cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, cwd=cwd, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cli_startup.json")
    args = ap.parse_args()
    cockpit = shutil.which("cockpit", path=str(Path(sys.executable).parent)) or "cockpit"
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "cockpit --help": [cockpit, "--help"],
        "cockpit runs (empty)": [cockpit, "runs"],
        "cockpit presets list": [cockpit, "presets", "list"],
        "cockpit presets show tiny": [cockpit, "presets", "show", "tiny"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    results = {}
    with tempfile.TemporaryDirectory() as cwd:
        for name, argv in cases.items():
            results[name] = time_command(argv, args.repeats, cwd)
    print(f"{'command':<30}{'median s':>10}{'min s':>10}{'max s':>10}")
    for name, times in results.items():
        print(f"{name:<30}{statistics.median(times):>10.3f}{min(times):>10.3f}{max(times):>10.3f}")
    for name in TARGETED:
        print(f"{name} median {statistics.median(results[name]):.3f} s (target < 0.5 s)")
    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "bench": "cli_startup",
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "machine": platform.node(),
                "cpus": os.cpu_count(),
                "repeats": args.repeats,
                "seconds": results,
                "median": {k: statistics.median(v) for k, v in results.items()},
                "target_s": 0.5,
                "targeted": TARGETED,
                "load_after": os.getloadavg(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
