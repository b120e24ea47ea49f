"""Training: config -> build -> train -> close. The engine process's work (``python -m engine``).

    run(run_dir, cfg, resume=None)
      EventBus (main process; NullBus on the others), signals (Controls), telemetry
      Trainer.build(), Trainer.configure_model()        engine.trainer, engine.build
      engine.resume.restore()                           with --resume: Trainer.load_state_dict
      Uploader.start()                                  with upload targets: background uploads (engine.uploads)
      Trainer.fit()                                     the loop; "finished", "stopped" or "failed"
      Uploader.finish(upload.stop_wait_s)               wait for the uploads left, say what is not done
      the terminal ``status`` event; a failure is an ``error`` event first; the bus closed last

With several processes (``accelerate launch``), the main process owns the event bus and the
checkpoints, and the others follow its commands. The loop itself is engine.trainer's.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from transformers.utils import logging as hf_logging

from engine.bus import EventBus, NullBus
from engine.config import ConfigError, RunConfig
from engine.controls import Controls
from engine.data.text import DataError
from engine.resume import ResumePoint, restore
from engine.rundir import RunPaths
from engine.telemetry import Telemetry
from engine.trainer import Trainer, TrainingFault
from presets import PresetError


def run(
    run_dir: str | os.PathLike, cfg: RunConfig, controls: Controls | None = None, resume: ResumePoint | None = None
) -> int:
    """Train the run in ``run_dir``; returns the process exit code (0 finished or stopped, 1 failed).

    Every outcome ends with a terminal ``status`` event; a failure is an ``error`` event first.
    ``controls`` may come with its signal handlers installed already (``python -m engine`` does so
    before the slow imports, so an early SIGTERM is not lost). ``resume``: a checked checkpoint
    (engine.resume.load_resume_point) to continue from."""
    paths = RunPaths(Path(run_dir).resolve())
    paths.logs.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()
    main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        bus = EventBus(paths.root, serve=cfg.events.enabled) if main_process else NullBus()
    except OSError as exc:
        print(f"engine: cannot open the event bus in {paths.root}: {exc}", file=sys.stderr, flush=True)
        return 1
    if controls is None:
        controls = Controls()
        controls.install_signal_handlers()
    controls.bus = bus
    trainer = Trainer(cfg, paths, bus, controls, main_process)
    telemetry = Telemetry(bus, cfg.telemetry.interval_s) if cfg.telemetry.enabled and main_process else None

    uploader = None
    if main_process and cfg.upload.targets:
        from engine.uploads import Uploader

        uploader = Uploader(
            paths,
            cfg.upload.targets,
            cfg.upload.retries,
            bus.emit,
            log=trainer.info,
            parallel_files=cfg.upload.parallel_files,
        )
        trainer.checkpoints.send_to(uploader)

    def finish_uploads() -> None:  # idempotent; before the terminal status, so its events precede it
        nonlocal uploader
        if uploader is not None:
            if uploader.pending():
                trainer.info(f"waiting up to {cfg.upload.stop_wait_s:g}s for {len(uploader.pending())} upload(s)")
            uploader.finish(cfg.upload.stop_wait_s)
            uploader = None
            trainer.checkpoints.prune({trainer.step, trainer.best_eval_step})  # what is verified now may go

    def stop_telemetry() -> None:  # idempotent; its last sample must precede the terminal status
        if telemetry is not None:
            telemetry.stop()

    if main_process:
        print(f"engine pid {os.getpid()}: run {paths.run_id} in {paths.root}", flush=True)
    try:
        if resume is not None:
            trainer.step = resume.step
            trainer.set_state("starting", f"resumed from {resume.path.name}")
        else:
            trainer.set_state("starting")
        if telemetry is not None:
            telemetry.start()
        if uploader is not None:
            uploader.start()  # what an earlier engine left, and checkpoints without a verified copy
        trainer.build()
        trainer.configure_model()
        if resume is not None:
            restore(trainer, resume)
        final = trainer.fit()
        finish_uploads()
        stop_telemetry()
        trainer.set_state(
            final, trainer.failure_reason or controls.stop_reason or f"reached max_steps ({cfg.train.max_steps})"
        )
        if main_process:
            print(
                f"run {final} at step {trainer.step}"
                + (f": {trainer.failure_reason}" if trainer.failure_reason else ""),
                flush=True,
            )
        return 1 if final == "failed" else 0
    except Exception as exc:
        user_error = isinstance(
            exc, (ConfigError, DataError, PresetError, TrainingFault)
        )  # says what to fix; no class name needed
        message = str(exc) if user_error else f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        try:
            finish_uploads()
        except Exception as upload_exc:  # the run's own error is the one to report
            print(f"uploads: {type(upload_exc).__name__}: {upload_exc}", file=sys.stderr, flush=True)
        stop_telemetry()
        bus.emit("error", message=message, traceback=tb, step=trainer.step)
        trainer.set_state("failed", message)
        print(f"run failed: {message}" if user_error else tb, file=sys.stderr, flush=True)
        return 1
    finally:
        stop_telemetry()
        if trainer.metrics is not None:
            trainer.metrics.close()
        bus.close()
