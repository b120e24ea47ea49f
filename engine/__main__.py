"""``python -m engine --run-dir DIR``: train the run described by ``DIR/run.yaml``.

Exit codes: 0 finished or stopped, 1 failed (after an ``error`` event and ``status failed``),
2 the run directory or its ``run.yaml`` is missing or invalid (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before anything imports transformers or huggingface_hub: never reach out to the Hub, no bars.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description="cockpit training engine")
    parser.add_argument("--run-dir", required=True, type=Path, help="run directory holding run.yaml")
    args = parser.parse_args(argv)

    from engine.config import ConfigError, read_run_config

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        print(f"engine: {run_dir}: run directory not found", file=sys.stderr)
        return 2
    try:
        cfg = read_run_config(run_dir)
    except ConfigError as exc:
        print(f"engine: {' / '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    from engine.controls import Controls

    controls = Controls()
    controls.install_signal_handlers()  # before the slow imports: an early SIGTERM is not lost
    from engine.train import run

    return run(run_dir, cfg, controls)


if __name__ == "__main__":
    sys.exit(main())
