"""Environment: Python, the packages training needs, the torch build, and the GPUs (NVML).

Nothing here imports torch: its version and build come from the installed files
(``importlib.metadata`` and ``torch/version.py``), so the report stays fast.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import platform
import re
import sys
from pathlib import Path

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.nvml import Nvml
from engine.units import bytes_pair

#: distribution -> (import name, needed for training)
PACKAGES: dict[str, tuple[str, bool]] = {
    "torch": ("torch", True),
    "transformers": ("transformers", True),
    "accelerate": ("accelerate", True),
    "tokenizers": ("tokenizers", True),
    "safetensors": ("safetensors", True),
    "numpy": ("numpy", True),
    "pydantic": ("pydantic", True),
    "textual": ("textual", False),
    "psutil": ("psutil", False),
    "nvidia-ml-py": ("pynvml", False),
    "tensorboard": ("tensorboard", False),
}
MIN_PYTHON = (3, 10)
REINSTALL = "make install (or: .venv/bin/pip install -e .)"


def torch_build() -> dict[str, str | None]:
    """``{"version", "cuda", "hip"}`` of the installed torch, read from ``torch/version.py``."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return {"version": None, "cuda": None, "hip": None}
    text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8", errors="replace")

    def field(name: str) -> str | None:
        m = re.search(rf"^{name}\s*(?::\s*[^=]+)?=\s*['\"]([^'\"]*)['\"]", text, re.M)
        return m.group(1) if m else None

    return {"version": field("__version__"), "cuda": field("cuda"), "hip": field("hip")}


def gpus() -> tuple[list[dict], str | None]:
    """NVIDIA GPUs through NVML: ``([{"index", "name", "memory_total", "memory_free"}], driver)``;
    ``([], None)`` without NVML, a driver or a GPU, or when one of these cannot be read."""
    with Nvml() as nvml:
        driver, readings = nvml.driver(), nvml.read()
    if driver is None or any(None in (g.name, g.mem_total, g.mem_free) for g in readings):
        return [], None
    return [
        {"index": g.index, "name": g.name, "memory_total": g.mem_total, "memory_free": g.mem_free} for g in readings
    ], driver


def check_environment(ctx: CheckContext) -> list[CheckResult]:
    out = []
    py = sys.version_info
    ok = py[:2] >= MIN_PYTHON
    out.append(
        result(
            "environment.python",
            "Python",
            "ok" if ok else "fail",
            f"Python {platform.python_version()} ({sys.executable})",
            None if ok else f"use Python {'.'.join(map(str, MIN_PYTHON))} or newer",
            version=platform.python_version(),
        )
    )

    versions, missing_required, missing_optional = {}, [], []
    for dist, (_module, required) in PACKAGES.items():
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
            (missing_required if required else missing_optional).append(dist)
    listed = ", ".join(f"{d} {v}" for d, v in versions.items() if v)
    if missing_required:
        out.append(
            result(
                "environment.packages",
                "Packages",
                "fail",
                f"missing: {', '.join(missing_required)}; installed: {listed}",
                REINSTALL,
                versions=versions,
            )
        )
    elif missing_optional:
        out.append(
            result(
                "environment.packages",
                "Packages",
                "warn",
                f"optional, missing: {', '.join(missing_optional)}; installed: {listed}",
                REINSTALL,
                versions=versions,
            )
        )
    else:
        out.append(result("environment.packages", "Packages", "ok", listed, versions=versions))

    build = torch_build()
    found, driver = gpus()
    ctx.gpus = found
    if build["version"] is None:
        out.append(result("environment.torch", "PyTorch build", "fail", "torch is not installed", REINSTALL))
    else:
        kind = (
            f"CUDA {build['cuda']}"
            if build["cuda"]
            else f"ROCm {build['hip']}"
            if build["hip"]
            else "MPS (Apple GPU)"
            if sys.platform == "darwin" and platform.machine() == "arm64"
            else "CPU only"
        )
        if found and not (build["cuda"] or build["hip"]):
            out.append(
                result(
                    "environment.torch",
                    "PyTorch build",
                    "warn",
                    f"torch {build['version']} is a CPU-only build, but {len(found)} NVIDIA GPU(s) are present: "
                    "training would run on the CPU",
                    "install a CUDA build: .venv/bin/pip install --force-reinstall torch --index-url "
                    "https://download.pytorch.org/whl/cu128 (README, Using a GPU)",
                    blocking=False,
                    **build,
                )
            )
        else:
            out.append(result("environment.torch", "PyTorch build", "ok", f"torch {build['version']}, {kind}", **build))

    if not found:
        out.append(
            result(
                "environment.gpus",
                "GPUs",
                "skip",
                "no NVIDIA GPU found (NVML unavailable or no device): training runs on the CPU",
                gpus=[],
            )
        )
    else:
        names = "; ".join(
            f"{g['index']}: {g['name']}, {bytes_pair(g['memory_free'], g['memory_total'])} free" for g in found
        )
        out.append(
            result(
                "environment.gpus",
                "GPUs",
                "ok",
                f"{len(found)} GPU(s), driver {driver}: {names}",
                gpus=found,
                driver=driver,
            )
        )
    if ctx.nproc > 1 and found and ctx.nproc > len(found):
        out.append(
            result(
                "environment.processes",
                "Processes",
                "fail",
                f"{ctx.nproc} processes asked for, {len(found)} GPU(s) present",
                f"use --nproc {len(found)} or fewer (one process per GPU)",
            )
        )
    return out
