"""engine.nvml: the one NVML wrapper. Without a GPU it reports none and raises nothing; with NVML
answering (a stand-in ``pynvml`` module: this machine has no GPU), each field maps to its reading and
a field the device refuses is None. The telemetry payload, the environment check and the launcher's
GPU count all read through it."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from engine.nvml import GpuReading, Nvml, gpu_count

GIB = 1 << 30


class NVMLError(Exception):
    pass


def refuse(*_args):
    raise NVMLError("not supported")


def fake_pynvml(devices: list[dict], driver=b"550.54.15", init=lambda: None) -> types.ModuleType:
    """A ``pynvml`` that answers for ``devices`` (dicts of what each call returns; a callable raises);
    ``calls`` records init/shutdown."""
    nv = types.ModuleType("pynvml")
    nv.NVML_TEMPERATURE_GPU = 0
    nv.calls = []

    def answer(key):
        def call(handle, *args):
            value = devices[handle][key]
            return value(*args) if callable(value) else value

        return call

    def nvml_init():
        nv.calls.append("init")
        init()

    nv.nvmlInit = nvml_init
    nv.nvmlShutdown = lambda: nv.calls.append("shutdown")
    nv.nvmlDeviceGetCount = lambda: len(devices)
    nv.nvmlDeviceGetHandleByIndex = lambda i: i
    nv.nvmlSystemGetDriverVersion = (lambda: driver) if not callable(driver) else driver
    nv.nvmlDeviceGetName = answer("name")
    nv.nvmlDeviceGetUtilizationRates = answer("util")
    nv.nvmlDeviceGetMemoryInfo = answer("mem")
    nv.nvmlDeviceGetTemperature = lambda h, sensor: answer("temp")(h) if sensor == nv.NVML_TEMPERATURE_GPU else None
    nv.nvmlDeviceGetPowerUsage = answer("power")
    return nv


H100 = {
    "name": b"NVIDIA H100 80GB HBM3",
    "util": SimpleNamespace(gpu=87, memory=40),
    "mem": SimpleNamespace(used=60 * GIB, free=20 * GIB, total=80 * GIB),
    "temp": 71,
    "power": 612_500,
}
QUIET = {
    "name": "NVIDIA A10",
    "util": refuse,
    "mem": SimpleNamespace(used=1 * GIB, free=23 * GIB, total=24 * GIB),
    "temp": refuse,
    "power": refuse,
}


def test_without_a_gpu_nvml_reports_none_and_raises_nothing():
    # this machine: pynvml is installed, no driver answers
    with Nvml() as nvml:
        assert (nvml.count, nvml.read(), nvml.driver()) == (0, [], None)
    assert gpu_count() == 0


def test_without_the_package_nvml_reports_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    assert gpu_count() == 0


def test_each_field_maps_to_its_reading_and_a_refused_one_is_none(monkeypatch):
    nv = fake_pynvml([H100, QUIET])
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    with Nvml() as nvml:
        assert nvml.count == 2 and nvml.driver() == "550.54.15"
        first, second = nvml.read()
        assert nv.calls == ["init"]  # initialised once, however often it is read
    assert nv.calls == ["init", "shutdown"]
    assert first == GpuReading(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        util=87.0,
        mem_used=60 * GIB,
        mem_free=20 * GIB,
        mem_total=80 * GIB,
        temp_c=71.0,
        power_w=612.5,
    )
    assert second == GpuReading(
        index=1,
        name="NVIDIA A10",
        util=None,
        mem_used=1 * GIB,
        mem_free=23 * GIB,
        mem_total=24 * GIB,
        temp_c=None,
        power_w=None,
    )
    with pytest.raises(AttributeError):
        first.util = 0.0  # frozen: a reading is a record of one moment


def test_a_driver_that_fails_to_initialise_reads_as_no_gpu(monkeypatch):
    nv = fake_pynvml([H100], init=refuse)
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    with Nvml() as nvml:
        assert (nvml.count, nvml.read(), nvml.driver()) == (0, [], None)
    assert gpu_count() == 0


def test_the_telemetry_payload_keeps_its_keys_and_units(monkeypatch):
    from engine.protocol import make_event
    from engine.telemetry import sample_system

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([H100, QUIET]))
    with Nvml() as nvml:
        sample = sample_system(gpus=nvml)
    make_event("telemetry", "r", 0, **sample)
    assert sample["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "util": 87.0,
            "mem_used": 60 * GIB,
            "mem_total": 80 * GIB,
            "temp_c": 71.0,
            "power_w": 612.5,
        },
        {
            "index": 1,
            "name": "NVIDIA A10",
            "util": None,
            "mem_used": 1 * GIB,
            "mem_total": 24 * GIB,
            "temp_c": None,
            "power_w": None,
        },
    ]


def test_the_environment_check_and_the_launcher_count_through_it(monkeypatch):
    from cockpit.checks.environment import gpus
    from engine.nvml import gpu_count

    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([H100, QUIET]))
    assert gpu_count() == 2
    assert gpus() == (
        [
            {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total": 80 * GIB, "memory_free": 20 * GIB},
            {"index": 1, "name": "NVIDIA A10", "memory_total": 24 * GIB, "memory_free": 23 * GIB},
        ],
        "550.54.15",
    )
    # memory it cannot read: the check reports no GPU rather than a half-known one, as before
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([dict(H100, mem=refuse)]))
    assert gpus() == ([], None)
