"""Machine: RAM, CPU cores, and the disk where the run's checkpoints go.

The disk footprint is what the run will keep: checkpoint size (fp32 weights 4 B + AdamW moments
8 B per parameter, plus the tokenizer and state) times the checkpoints retained
(``train.save_total_limit``, or every ``save_every`` checkpoint of the run plus the final one).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil

from cockpit.checks.base import CheckContext, CheckResult, result
from engine.sizing import CHECKPOINT_BYTES_PER_PARAM
from engine.units import nbytes

#: Tokenizer files, training state besides the moments, manifest.
CHECKPOINT_EXTRA_BYTES = 8 << 20
#: Keep this share of the disk free beyond the footprint.
DISK_MARGIN = 0.10


def nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def writable_problem(path: Path) -> str | None:
    """Why the run directory cannot be made under ``path``, or None: tries a real file (the
    permission bits do not tell for root, nor for read-only or full filesystems)."""
    base = nearest_existing(path)
    if not base.is_dir():
        return f"{base} is not a directory"
    try:
        fd, name = tempfile.mkstemp(prefix=".cockpit-check-", dir=base)
    except OSError as exc:
        return f"cannot create files in {base} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(name)
    return None


def retained_checkpoints(train) -> int:
    """Checkpoints on disk at the end of the run."""
    saved = (train.max_steps // train.save_every if train.save_every else 0) + 1  # + the final one
    if train.save_total_limit:
        return min(saved, train.save_total_limit + 1)  # the best is kept beyond the limit, at most one more
    return saved


def checkpoint_bytes(total_params: int) -> int:
    return total_params * CHECKPOINT_BYTES_PER_PARAM + CHECKPOINT_EXTRA_BYTES


def check_machine(ctx: CheckContext) -> list[CheckResult]:
    out = []
    vm = psutil.virtual_memory()
    free = ctx.ram_free_bytes if ctx.ram_free_bytes is not None else int(vm.available)
    out.append(
        result("machine.ram", "RAM", "ok", f"{nbytes(free)} free of {nbytes(vm.total)}", free=free, total=int(vm.total))
    )
    cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or cores
    out.append(
        result(
            "machine.cpu", "CPU cores", "ok", f"{cores} logical, {physical} physical", logical=cores, physical=physical
        )
    )
    cfg = ctx.cfg
    if cfg is None:
        return out

    runs_dir = Path(cfg.runs_dir)
    problem = writable_problem(runs_dir)
    if problem:
        out.append(
            result(
                "machine.output",
                "Output directory",
                "fail",
                f"{runs_dir}: not writable: {problem}",
                "set runs_dir in the config (or --run-dir) to a directory you can write",
            )
        )
        return out
    out.append(
        result(
            "machine.output",
            "Output directory",
            "ok",
            f"{runs_dir} is writable" + ("" if runs_dir.exists() else " (will be created)"),
        )
    )

    base = nearest_existing(runs_dir)
    disk_free = ctx.disk_free_bytes if ctx.disk_free_bytes is not None else shutil.disk_usage(base).free
    model = ctx.model or {}
    total_params = model.get("total_params")
    if not total_params:
        out.append(
            result(
                "machine.disk",
                "Disk",
                "skip",
                f"{nbytes(disk_free)} free at {base}; checkpoint size unknown (the model could not be sized)",
                free=disk_free,
            )
        )
        return out
    each = checkpoint_bytes(total_params)
    kept = retained_checkpoints(cfg.train)
    staging = 0  # uploads stage nothing yet
    need = each * kept + staging
    detail = (
        f"{nbytes(disk_free)} free at {base}; the run keeps {kept} checkpoint(s) of ~{nbytes(each)} = {nbytes(need)}"
    )
    data = {"free": disk_free, "needed": need, "checkpoint_bytes": each, "checkpoints_kept": kept}
    if need > disk_free:
        out.append(
            result(
                "machine.disk",
                "Disk",
                "fail",
                f"{detail}: not enough disk",
                f"free {nbytes(need - disk_free)} at {base}, lower train.save_total_limit, or point runs_dir "
                "at a larger disk",
                **data,
            )
        )
    elif need > disk_free * (1 - DISK_MARGIN):
        out.append(
            result(
                "machine.disk",
                "Disk",
                "warn",
                f"{detail}: less than {DISK_MARGIN:.0%} would be left",
                "free some disk or lower train.save_total_limit",
                **data,
            )
        )
    else:
        out.append(result("machine.disk", "Disk", "ok", detail, **data))
    return out
