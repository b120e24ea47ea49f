"""Machine telemetry: a daemon thread that samples CPU, RAM and GPUs and emits ``telemetry`` events.

GPUs are read through ``engine.nvml``: without NVML, a driver or a GPU, ``gpus`` is ``[]``; a GPU
field NVML cannot read is ``None``. Torch-free.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psutil

from engine.nvml import GpuReading, Nvml

log = logging.getLogger(__name__)


def gpu_payload(gpu: GpuReading) -> dict[str, Any]:
    """One entry of a ``telemetry`` event's ``gpus``."""
    return {
        "index": gpu.index,
        "name": gpu.name,
        "util": gpu.util,
        "mem_used": gpu.mem_used,
        "mem_total": gpu.mem_total,
        "temp_c": gpu.temp_c,
        "power_w": gpu.power_w,
    }


def sample_system(process: psutil.Process | None = None, gpus: Nvml | None = None) -> dict[str, Any]:
    """One ``telemetry`` payload. ``cpu_percent`` is utilisation since the previous call in this
    process (the first call reads 0)."""
    vm = psutil.virtual_memory()
    process = process or psutil.Process(os.getpid())
    return {
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "ram_used": int(vm.total - vm.available),
        "ram_total": int(vm.total),
        "proc_rss": int(process.memory_info().rss),
        "gpus": [gpu_payload(g) for g in gpus.read()] if gpus is not None else [],
    }


class Telemetry:
    """Emits a ``telemetry`` event every ``interval_s`` seconds from a daemon thread."""

    def __init__(self, bus, interval_s: float):
        self.bus = bus
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    def start(self) -> Telemetry:
        self._thread.start()
        return self

    def _run(self) -> None:
        """A sample at once (so a dashboard has numbers from the start), then one every
        ``interval_s``, and a last one when stopped (so even the shortest run has one)."""
        gpus = Nvml()
        process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=0.1)  # prime the counter: cpu_percent measures since the last call
        try:
            self._sample(process, gpus)
            while not self._stop.wait(self.interval_s):
                self._sample(process, gpus)
            self._sample(process, gpus)
        finally:
            gpus.close()

    def _sample(self, process: psutil.Process, gpus: Nvml) -> None:
        try:
            self.bus.emit("telemetry", **sample_system(process, gpus))
        except Exception:
            log.exception("telemetry sample failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
