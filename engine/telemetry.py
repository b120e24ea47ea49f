"""Machine telemetry: a daemon thread that samples CPU, RAM and GPUs and emits ``telemetry`` events.

GPUs are read through NVML (``pynvml``, from the nvidia-ml-py package) when it imports and finds a
driver; otherwise ``gpus`` is ``[]``. A GPU field NVML cannot read is ``None``. Torch-free.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import psutil

log = logging.getLogger(__name__)


class GpuSampler:
    """Per-GPU readings through NVML; ``sample()`` returns [] when NVML is unavailable."""

    def __init__(self):
        self.handles: list[Any] = []
        self.nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no package, no driver, no GPU: all the same to us
            self.close()

    @staticmethod
    def _read(fn, *args):
        try:
            return fn(*args)
        except Exception:
            return None

    def sample(self) -> list[dict[str, Any]]:
        if self.nvml is None:
            return []
        nv, out = self.nvml, []
        for i, h in enumerate(self.handles):
            name = self._read(nv.nvmlDeviceGetName, h)
            util = self._read(nv.nvmlDeviceGetUtilizationRates, h)
            mem = self._read(nv.nvmlDeviceGetMemoryInfo, h)
            temp = self._read(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            power = self._read(nv.nvmlDeviceGetPowerUsage, h)  # milliwatts
            out.append({
                "index": i,
                "name": name.decode() if isinstance(name, bytes) else name,
                "util": float(util.gpu) if util is not None else None,
                "mem_used": int(mem.used) if mem is not None else None,
                "mem_total": int(mem.total) if mem is not None else None,
                "temp_c": float(temp) if temp is not None else None,
                "power_w": power / 1000.0 if power is not None else None,
            })
        return out

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
        self.nvml, self.handles = None, []


def sample_system(process: psutil.Process | None = None, gpus: GpuSampler | None = None) -> dict[str, Any]:
    """One ``telemetry`` payload. ``cpu_percent`` is utilisation since the previous call in this
    process (the first call reads 0)."""
    vm = psutil.virtual_memory()
    process = process or psutil.Process(os.getpid())
    return {
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "ram_used": int(vm.total - vm.available),
        "ram_total": int(vm.total),
        "proc_rss": int(process.memory_info().rss),
        "gpus": gpus.sample() if gpus is not None else [],
    }


class Telemetry:
    """Emits a ``telemetry`` event every ``interval_s`` seconds from a daemon thread."""

    def __init__(self, bus, interval_s: float):
        self.bus = bus
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)

    def start(self) -> "Telemetry":
        self._thread.start()
        return self

    def _run(self) -> None:
        """A sample at once (so a dashboard has numbers from the start), then one every
        ``interval_s``, and a last one when stopped (so even the shortest run has one)."""
        gpus = GpuSampler()
        process = psutil.Process(os.getpid())
        psutil.cpu_percent(interval=0.1)  # prime the counter: cpu_percent measures since the last call
        try:
            self._sample(process, gpus)
            while not self._stop.wait(self.interval_s):
                self._sample(process, gpus)
            self._sample(process, gpus)
        finally:
            gpus.close()

    def _sample(self, process: psutil.Process, gpus: "GpuSampler") -> None:
        try:
            self.bus.emit("telemetry", **sample_system(process, gpus))
        except Exception:
            log.exception("telemetry sample failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
