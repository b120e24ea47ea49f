"""NVIDIA GPUs through NVML (``pynvml``, from the nvidia-ml-py package): the one place that talks to it.

Every failure reads as "no GPU" or an unknown field, never as an exception: without the package, a
driver or a device, ``Nvml().count`` is 0 and ``read()`` is ``[]``; a field one device cannot
report is ``None``. Torch-free, so the cockpit can count GPUs without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment; ``None`` where NVML could not read the field."""

    index: int
    """NVML device index (0-based)."""
    name: str | None
    """Product name, e.g. ``NVIDIA H100 80GB HBM3``."""
    util: float | None
    """GPU utilisation over the driver's last sample period, in percent."""
    mem_used: int | None
    """Device memory in use, in bytes."""
    mem_free: int | None
    """Device memory free, in bytes."""
    mem_total: int | None
    """Device memory, in bytes."""
    temp_c: float | None
    """Core temperature, in degrees Celsius."""
    power_w: float | None
    """Power draw, in watts."""


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class Nvml:
    """An NVML session: ``with Nvml() as nvml:`` then ``nvml.count``, ``nvml.driver()``,
    ``nvml.read()``. Initialised once on construction and shut down by ``close()``."""

    def __init__(self) -> None:
        self._nv: Any = None
        self._handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nv = pynvml
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no package, no driver, no GPU: all the same to us
            self.close()

    @property
    def count(self) -> int:
        """GPUs NVML found (0 without NVML)."""
        return len(self._handles)

    @staticmethod
    def _call(fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            return None

    def driver(self) -> str | None:
        """The NVIDIA driver version, or None."""
        if self._nv is None:
            return None
        return _text(self._call(self._nv.nvmlSystemGetDriverVersion))

    def read(self) -> list[GpuReading]:
        """A reading of every GPU, in index order."""
        nv, out = self._nv, []
        for i, h in enumerate(self._handles):
            util = self._call(nv.nvmlDeviceGetUtilizationRates, h)
            mem = self._call(nv.nvmlDeviceGetMemoryInfo, h)
            temp = self._call(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
            power = self._call(nv.nvmlDeviceGetPowerUsage, h)  # milliwatts
            out.append(
                GpuReading(
                    index=i,
                    name=_text(self._call(nv.nvmlDeviceGetName, h)),
                    util=float(util.gpu) if util is not None else None,
                    mem_used=int(mem.used) if mem is not None else None,
                    mem_free=int(mem.free) if mem is not None else None,
                    mem_total=int(mem.total) if mem is not None else None,
                    temp_c=float(temp) if temp is not None else None,
                    power_w=power / 1000.0 if power is not None else None,
                )
            )
        return out

    def close(self) -> None:
        if self._nv is not None:
            self._call(self._nv.nvmlShutdown)
        self._nv, self._handles = None, []

    def __enter__(self) -> Nvml:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gpu_count() -> int:
    """NVIDIA GPUs visible through NVML (0 without a driver)."""
    with Nvml() as nvml:
        return nvml.count
