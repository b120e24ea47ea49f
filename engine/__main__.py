"""``python -m engine --run-dir DIR [--resume latest|PATH]``: train the run described by ``DIR/run.yaml``.

``--resume latest`` continues from the checkpoint named by ``DIR/checkpoints/latest``; ``--resume
PATH`` from the checkpoint directory ``PATH``. Either way the run goes on in ``DIR`` (see
engine/resume.py).

Exit codes: 0 finished or stopped, 1 failed (after an ``error`` event and ``status failed``),
2 the run directory or its ``run.yaml`` is missing or invalid, another engine holds the run directory
(``engine.lock``), or the checkpoint to resume from is missing, corrupt or lacks a part (one line on
stderr; nothing in the run directory is changed).
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
    parser.add_argument(
        "--resume",
        metavar="latest|PATH",
        default=None,
        help="continue from a checkpoint: 'latest' (DIR/checkpoints/latest) or a checkpoint directory",
    )
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

    from engine.rundir import RunLock, RunLocked, RunPaths

    lock = None
    if int(os.environ.get("RANK", "0")) == 0:  # one engine per run directory, held until this process exits
        try:
            lock = RunLock(run_dir)
        except RunLocked as exc:
            print(f"engine: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(
                f"engine: {run_dir}: cannot lock the run directory ({exc.strerror or exc}); check its permissions",
                file=sys.stderr,
            )
            return 2

    from engine.controls import Controls
    from engine.resume import ResumeError, load_resume_point, resolve_checkpoint

    def refuse(message: str) -> int:
        """Exit 2 with one line, leaving the run directory as it was."""
        print(f"engine: {message}", file=sys.stderr)
        if lock is not None:
            lock.release(remove=True)
        return 2

    try:
        ckpt = resolve_checkpoint(run_dir, args.resume) if args.resume else None
    except ResumeError as exc:
        return refuse(str(exc))
    controls = Controls()
    controls.install_signal_handlers()  # before the slow imports: an early SIGTERM is not lost
    resume = None
    if ckpt is not None:
        try:
            resume = load_resume_point(ckpt)  # reads the checkpoint (imports torch); writes nothing
        except ResumeError as exc:
            return refuse(" / ".join(str(exc).splitlines()))
    RunPaths(run_dir).logs.mkdir(parents=True, exist_ok=True)
    from engine.train import run

    return run(run_dir, cfg, controls, resume=resume)


if __name__ == "__main__":
    sys.exit(main())
